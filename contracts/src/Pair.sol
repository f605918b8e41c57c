// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

interface IToken {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// A constant-product AMM pair (x * y = k, 0.3% fee) over two ERC-20 tokens.
contract Pair {
    IToken public immutable token0;
    IToken public immutable token1;
    uint256 public reserve0;
    uint256 public reserve1;

    event Mint(address indexed provider, uint256 amount0, uint256 amount1);
    event Swap(address indexed trader, bool zeroForOne, uint256 amountIn, uint256 amountOut);

    constructor(IToken a, IToken b) {
        token0 = a;
        token1 = b;
    }

    /// Adds liquidity: the caller must have approved both amounts.
    function addLiquidity(uint256 amount0, uint256 amount1) external {
        require(token0.transferFrom(msg.sender, address(this), amount0), "Pair: transfer0");
        require(token1.transferFrom(msg.sender, address(this), amount1), "Pair: transfer1");
        reserve0 += amount0;
        reserve1 += amount1;
        emit Mint(msg.sender, amount0, amount1);
    }

    /// The output of swapping `amountIn` in the given direction now.
    function quote(uint256 amountIn, bool zeroForOne) public view returns (uint256) {
        (uint256 rin, uint256 rout) = zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0);
        uint256 inWithFee = amountIn * 997;
        return (inWithFee * rout) / (rin * 1000 + inWithFee);
    }

    /// Swaps `amountIn` of one token for at least `minOut` of the other.
    function swap(uint256 amountIn, bool zeroForOne, uint256 minOut) external returns (uint256 out) {
        out = quote(amountIn, zeroForOne);
        require(out > 0 && out >= minOut, "Pair: slippage");
        (IToken tin, IToken tout) = zeroForOne ? (token0, token1) : (token1, token0);
        require(tin.transferFrom(msg.sender, address(this), amountIn), "Pair: pay in");
        require(tout.transfer(msg.sender, out), "Pair: pay out");
        if (zeroForOne) {
            reserve0 += amountIn;
            reserve1 -= out;
        } else {
            reserve1 += amountIn;
            reserve0 -= out;
        }
        emit Swap(msg.sender, zeroForOne, amountIn, out);
    }
}
