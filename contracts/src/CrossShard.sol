// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The cross-shard call contract: its code sits at
/// 0x00000000000000000000000000000000000a7011 on every shard (the chain
/// serves it; nothing is stored there). A contract calls `callAsync` to
/// send a call to a contract on another shard: `to` runs `data` there, in
/// a later block, with `gas` gas, `msg.sender` being the calling contract,
/// and the value sent here less what pays for the gas (`gas * tx.gasprice`,
/// plus `callbackGas * tx.gasprice` with a callback). What the call does
/// not use, and the value if the call fails, comes back to the calling
/// contract's balance. With a callback selector, the calling contract is
/// then called back on its own shard with `callback(bool success, bytes
/// output)` and `callbackGas` gas, `msg.sender` being this contract. The
/// call is sent only if the transaction succeeds.
contract CrossShard {
    event Sent(
        address indexed caller,
        address indexed to,
        uint256 value,
        uint256 gas,
        uint256 price,
        bytes data,
        bytes4 callback,
        uint256 callbackGas
    );

    function callAsync(address to, bytes calldata data, uint256 gas) external payable {
        send(to, data, gas, bytes4(0), 0);
    }

    function callAsync(address to, bytes calldata data, uint256 gas, bytes4 callback, uint256 callbackGas)
        external
        payable
    {
        require(callback != bytes4(0), "CrossShard: a callback needs a selector");
        send(to, data, gas, callback, callbackGas);
    }

    function send(address to, bytes calldata data, uint256 gas, bytes4 callback, uint256 callbackGas) private {
        uint256 cost = (gas + callbackGas) * tx.gasprice;
        require(msg.value >= cost, "CrossShard: msg.value must cover (gas + callbackGas) * tx.gasprice");
        emit Sent(msg.sender, to, msg.value - cost, gas, tx.gasprice, data, callback, callbackGas);
    }
}
