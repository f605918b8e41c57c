// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IToken, Pair} from "./Pair.sol";

/// Creates one AMM pair per pair of tokens, with CREATE2, as Uniswap V2's
/// factory does: the pair's address follows from the factory and the two
/// tokens. On atoll a pair lives on the factory's shard (a contract lives on
/// its creator's shard), so the factory, its pairs and the router that uses
/// them call each other synchronously; an account of another shard calls
/// `createPair` like any contract, and the call crosses shards.
contract Factory {
    mapping(address => mapping(address => address)) public getPair;
    address[] public allPairs;

    event PairCreated(address indexed token0, address indexed token1, address pair, uint256 count);

    function allPairsLength() external view returns (uint256) {
        return allPairs.length;
    }

    /// Creates the pair of `a` and `b` (in either order); tokens are sorted
    /// by address, as the pair's token0 and token1.
    function createPair(IToken a, IToken b) external returns (address pair) {
        require(address(a) != address(b), "Factory: identical tokens");
        (IToken token0, IToken token1) = address(a) < address(b) ? (a, b) : (b, a);
        require(address(token0) != address(0), "Factory: zero address");
        require(getPair[address(token0)][address(token1)] == address(0), "Factory: pair exists");
        pair = address(new Pair{salt: keccak256(abi.encode(token0, token1))}(token0, token1));
        getPair[address(token0)][address(token1)] = pair;
        getPair[address(token1)][address(token0)] = pair;
        allPairs.push(pair);
        emit PairCreated(address(token0), address(token1), pair, allPairs.length);
    }
}
