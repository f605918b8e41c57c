// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// The cross-shard call contract: its code sits at
/// 0x00000000000000000000000000000000000a7011 on every shard (the chain
/// serves it; nothing is stored there).
///
/// `callAsync` sends a call to a contract on another shard: `to` runs
/// `data` there, in a later block, with `gas` gas, `msg.sender` being the
/// caller here, and the value sent here less what pays for the gas (`gas *
/// tx.gasprice`, plus `callbackGas * tx.gasprice` with a callback). What
/// the call does not use, and the value if the call fails, comes back to
/// the caller's balance. With a callback selector, the caller (a contract)
/// is then called back on its own shard with `callback(bool success, bytes
/// output)` and `callbackGas` gas, `msg.sender` being this contract.
///
/// `createAsync` creates a contract on shard `shard` the same way: there,
/// this contract runs `deploy`, which creates `initCode` with CREATE2 at
/// `addressOf(caller, salt, keccak256(initCode))`, with the value.
///
/// Calls are sent only if the transaction succeeds.
contract CrossShard {
    event Sent(
        address indexed caller,
        address indexed to,
        uint256 shard,
        uint256 value,
        uint256 gas,
        uint256 price,
        bytes data,
        bytes4 callback,
        uint256 callbackGas
    );
    event Created(address indexed caller, address indexed created);

    /// `shard` of a call: the shard that holds its target.
    uint256 constant TARGET_SHARD = type(uint256).max;

    function callAsync(address to, bytes calldata data, uint256 gas) external payable {
        send(TARGET_SHARD, to, data, gas, bytes4(0), 0);
    }

    function callAsync(address to, bytes calldata data, uint256 gas, bytes4 callback, uint256 callbackGas)
        external
        payable
    {
        require(callback != bytes4(0), "CrossShard: a callback needs a selector");
        send(TARGET_SHARD, to, data, gas, callback, callbackGas);
    }

    function createAsync(uint16 shard, bytes calldata initCode, bytes32 salt, uint256 gas) external payable {
        send(shard, address(this), abi.encodeCall(this.deploy, (salt, initCode)), gas, bytes4(0), 0);
    }

    /// Creates `initCode` with the value at `addressOf(msg.sender, salt,
    /// keccak256(initCode))` (what `createAsync` runs on its shard).
    function deploy(bytes32 salt, bytes calldata initCode) external payable returns (address created) {
        bytes memory code = initCode;
        bytes32 key = keccak256(abi.encode(msg.sender, salt));
        assembly {
            created := create2(callvalue(), add(code, 32), mload(code), key)
        }
        require(created != address(0), "CrossShard: the creation failed");
        emit Created(msg.sender, created);
    }

    /// Where `deploy` from `caller` with `salt` puts code of hash `codeHash`.
    function addressOf(address caller, bytes32 salt, bytes32 codeHash) external pure returns (address) {
        bytes32 key = keccak256(abi.encode(caller, salt));
        bytes32 hash = keccak256(
            abi.encodePacked(bytes1(0xff), address(0x00000000000000000000000000000000000A7011), key, codeHash)
        );
        return address(uint160(uint256(hash)));
    }

    function send(uint256 shard, address to, bytes memory data, uint256 gas, bytes4 callback, uint256 callbackGas)
        private
    {
        uint256 cost = (gas + callbackGas) * tx.gasprice;
        require(msg.value >= cost, "CrossShard: msg.value must cover (gas + callbackGas) * tx.gasprice");
        emit Sent(msg.sender, to, shard, msg.value - cost, gas, tx.gasprice, data, callback, callbackGas);
    }
}
