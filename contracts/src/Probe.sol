// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// What a factory creates.
contract Child {
    uint256 public value;

    constructor(uint256 v) payable {
        value = v;
    }

    function set(uint256 v) external {
        value = v;
    }
}

/// Exercises what the executor must get right: self-calls, reverts,
/// running out of gas, CREATE and CREATE2, transient storage, memory
/// copies, value sent on, and code run by a plain transfer.
contract Probe {
    uint256 public counter;
    uint256 public received;

    event Counted(uint256 value);
    event Received(address indexed from, uint256 value);

    receive() external payable {
        received += msg.value;
        emit Received(msg.sender, msg.value);
    }

    function bump() public {
        counter += 1;
        emit Counted(counter);
    }

    /// Calls itself twice through an external call.
    function bumpTwice() external {
        this.bump();
        this.bump();
    }

    /// Bumps, then reverts with `reason`: the bump is undone.
    function bumpThenFail(string calldata reason) external {
        counter += 1;
        revert(reason);
    }

    /// Writes until the gas runs out.
    function exhaust() external {
        while (true) {
            counter += 1;
        }
    }

    function create(uint256 v) external payable returns (address) {
        return address(new Child{value: msg.value}(v));
    }

    function create2(bytes32 salt, uint256 v) external returns (address) {
        return address(new Child{salt: salt}(v));
    }

    /// Stores `v` in transient storage and reads it back (TSTORE/TLOAD).
    function scratch(uint256 v) external returns (uint256 r) {
        assembly {
            tstore(0, v)
            r := tload(0)
        }
    }

    /// Returns its input copied through memory (MCOPY).
    function echo(bytes calldata data) external pure returns (bytes memory out) {
        out = data;
        bytes memory copy = new bytes(out.length);
        assembly {
            mcopy(add(copy, 32), add(out, 32), mload(out))
        }
        return copy;
    }

    /// Sends the value it is paid on to `to`; reverts if that fails.
    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "Probe: forward failed");
    }

    /// The block's number, timestamp, chain id, base fee and its
    /// parent's hash.
    function context() external view returns (uint256, uint256, uint256, uint256, bytes32) {
        return (block.number, block.timestamp, block.chainid, block.basefee, blockhash(block.number - 1));
    }
}
