// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The cross-shard call contract: its code sits at
/// 0x00000000000000000000000000000000000a7011 on every shard (the chain
/// serves it; nothing is stored there). A contract calls `callAsync` to
/// send a call to a contract on another shard: `to` runs `data` there, in
/// a later block, with `gas` gas, `msg.sender` being the calling contract,
/// and the value sent here less `gas * tx.gasprice` (which pays for that
/// gas). What the call does not use, and the value if the call fails,
/// comes back to the calling contract's balance. The call is sent only if
/// the transaction succeeds.
contract CrossShard {
    event Sent(address indexed caller, address indexed to, uint256 value, uint256 gas, uint256 price, bytes data);

    function callAsync(address to, bytes calldata data, uint256 gas) external payable {
        uint256 cost = gas * tx.gasprice;
        require(msg.value >= cost, "CrossShard: msg.value must cover gas * tx.gasprice");
        emit Sent(msg.sender, to, msg.value - cost, gas, tx.gasprice, data);
    }
}
