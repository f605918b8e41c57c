// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface ICrossShard {
    function callAsync(address to, bytes calldata data, uint256 gas) external payable;
    function callAsync(address to, bytes calldata data, uint256 gas, bytes4 callback, uint256 callbackGas)
        external
        payable;
}

/// Sends calls to other shards through the cross-shard contract and takes
/// their results back (tests and examples).
contract Dispatcher {
    ICrossShard constant CROSS_SHARD = ICrossShard(0x00000000000000000000000000000000000A7011);

    uint256 public results;
    bool public lastSuccess;
    bytes public lastOutput;

    /// Sends `data` to `to` on its shard with `gas` gas; `msg.value` pays
    /// for the gas and the rest goes with the call.
    function dispatch(address to, bytes calldata data, uint256 gas) external payable {
        CROSS_SHARD.callAsync{value: msg.value}(to, data, gas);
    }

    /// As `dispatch`, and has the result sent back to `onResult` with
    /// `callbackGas` gas.
    function dispatchWithCallback(address to, bytes calldata data, uint256 gas, uint256 callbackGas)
        external
        payable
    {
        CROSS_SHARD.callAsync{value: msg.value}(to, data, gas, this.onResult.selector, callbackGas);
    }

    /// Sends two calls, then reverts if `fail`: neither is sent then.
    function dispatchTwice(address to, bytes calldata data, uint256 gas, bool fail) external payable {
        CROSS_SHARD.callAsync{value: msg.value / 2}(to, data, gas);
        CROSS_SHARD.callAsync{value: msg.value - msg.value / 2}(to, data, gas);
        require(!fail, "Dispatcher: asked to fail");
    }

    /// The result of a call sent with a callback.
    function onResult(bool success, bytes calldata output) external {
        require(msg.sender == address(CROSS_SHARD), "Dispatcher: only the cross-shard contract calls back");
        results += 1;
        lastSuccess = success;
        lastOutput = output;
    }
}
