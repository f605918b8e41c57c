// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface ICrossShard {
    function callAsync(address to, bytes calldata data, uint256 gas) external payable;
}

/// Sends calls to other shards through the cross-shard contract (tests
/// and examples).
contract Dispatcher {
    ICrossShard constant CROSS_SHARD = ICrossShard(0x00000000000000000000000000000000000A7011);

    /// Sends `data` to `to` on its shard with `gas` gas; `msg.value` pays
    /// for the gas and the rest goes with the call.
    function dispatch(address to, bytes calldata data, uint256 gas) external payable {
        CROSS_SHARD.callAsync{value: msg.value}(to, data, gas);
    }

    /// Sends two calls, then reverts if `fail`: neither is sent then.
    function dispatchTwice(address to, bytes calldata data, uint256 gas, bool fail) external payable {
        CROSS_SHARD.callAsync{value: msg.value / 2}(to, data, gas);
        CROSS_SHARD.callAsync{value: msg.value - msg.value / 2}(to, data, gas);
        require(!fail, "Dispatcher: asked to fail");
    }
}
