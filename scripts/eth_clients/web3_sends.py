"""web3.py sends Ethereum-signed transactions to an atoll dev node of two
shards, as a new user would: with the first account of the standard test
mnemonic it deploys two ERC-20s and their AMM pair, transfers, approves,
adds liquidity and swaps, waits for every receipt, reads the events back
with eth_getLogs, decodes a revert reason from eth_call, sees a reverted
transaction charged for its gas, and sends value to an account on the
other shard (its receipt is final at once; the balance arrives when the
credit is final). Usage: web3_sends.py RPC_URL."""

import json
import pathlib
import sys
import time

from web3 import Web3
from web3.exceptions import ContractLogicError

OUT = pathlib.Path(__file__).parents[2] / "contracts/out"
# The first two accounts of "test test ... junk" (m/44'/60'/0'/0/i).
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

rpc = sys.argv[1]
w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
me = w3.eth.account.from_key(KEY)


def check(what, got, expected):
    if got != expected:
        sys.exit(f"web3.py: {what}: got {got!r}, expected {expected!r}")
    print(f"web3.py: {what}: {got!r}")


def contract(name, address=None):
    abi = json.loads((OUT / f"{name}.abi.json").read_text())
    if address is None:
        code = (OUT / f"{name}.bin").read_text().strip()
        return w3.eth.contract(abi=abi, bytecode="0x" + code)
    return w3.eth.contract(address=address, abi=abi)


def send(call, **fields):
    """Signs and sends `call` (a built contract call or a dict), waits for
    its receipt; the receipt."""
    tx = {"from": me.address, "nonce": w3.eth.get_transaction_count(me.address, "pending")}
    tx.update(fields)
    tx = call.build_transaction(tx) if hasattr(call, "build_transaction") else {**call, **tx}
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(tx)
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        tx["maxFeePerGas"] = 2 * w3.eth.get_block("latest")["baseFeePerGas"]
        tx["maxPriorityFeePerGas"] = w3.eth.max_priority_fee
    tx.setdefault("chainId", w3.eth.chain_id)
    signed = me.sign_transaction(tx)
    sent = w3.eth.send_raw_transaction(signed.raw_transaction)
    check("the hash is keccak-256 of the raw bytes", sent, Web3.keccak(signed.raw_transaction))
    receipt = w3.eth.wait_for_transaction_receipt(sent, timeout=60, poll_latency=0.2)
    if receipt["blockNumber"] > w3.eth.block_number:
        sys.exit("web3.py: a receipt's block is above eth_blockNumber")
    return receipt


check("funded by genesis", w3.eth.get_balance(me.address) > 10**18, True)

# Two tokens and their pair.
supply = 10**24
receipts = [send(contract("Token").constructor(supply)) for _ in range(2)]
for receipt in receipts:
    check("a deployment succeeds", receipt["status"], 1)
a, b = (contract("Token", r["contractAddress"]) for r in receipts)
check("the deployer holds the supply", a.functions.balanceOf(me.address).call(), supply)
mint = a.events.Transfer().process_receipt(receipts[0])
check("the mint's Transfer event", (mint[0]["args"]["to"], mint[0]["args"]["value"]), (me.address, supply))
pair_receipt = send(contract("Pair").constructor(a.address, b.address))
pair = contract("Pair", pair_receipt["contractAddress"])

# Transfer, approve, add liquidity, swap.
receipt = send(a.functions.transfer(OTHER, 1000))
event = a.events.Transfer().process_receipt(receipt)[0]
check("transfer event", (event["args"]["to"], event["args"]["value"]), (OTHER, 1000))
check("logIndex counts across the block", event["logIndex"] >= 0, True)
check("the recipient's balance", a.functions.balanceOf(OTHER).call(), 1000)
for token in (a, b):
    receipt = send(token.functions.approve(pair.address, supply))
    check("approval event", token.events.Approval().process_receipt(receipt)[0]["args"]["spender"], pair.address)
send(pair.functions.addLiquidity(10**21, 10**21))
quote = pair.functions.quote(10**18, True).call()
check("a quote", 0 < quote < 10**18, True)
before = b.functions.balanceOf(me.address).call()
receipt = send(pair.functions.swap(10**18, True, quote))
swap = pair.events.Swap().process_receipt(receipt)[0]["args"]
check("swap event", (swap["trader"], swap["amountIn"], swap["amountOut"]), (me.address, 10**18, quote))
check("the swap paid out", b.functions.balanceOf(me.address).call() - before, quote)

# The events again, through eth_getLogs (address list, topic OR-list).
topic = Web3.keccak(text="Transfer(address,address,uint256)")
logs = w3.eth.get_logs({
    "fromBlock": receipts[0]["blockNumber"],
    "toBlock": "latest",
    "address": [a.address, b.address],
    "topics": [[topic, Web3.keccak(text="Nothing()")]],
})
# Two mints, the transfer to OTHER, the liquidity (two) and the swap (two).
check("Transfer logs of both tokens", len(logs), 7)
check("logs come in chain order", [(l["blockNumber"], l["logIndex"]) for l in logs] ==
      sorted((l["blockNumber"], l["logIndex"]) for l in logs), True)

# A revert: decoded from eth_call; sent anyway, it is charged and fails.
try:
    a.functions.transfer(OTHER, supply * 2).call({"from": me.address})
    sys.exit("web3.py: a transfer above the balance did not revert")
except ContractLogicError as e:
    check("revert reason from eth_call", "Token: balance too low" in str(e), True)
balance = w3.eth.get_balance(me.address)
receipt = send(a.functions.transfer(OTHER, supply * 2), gas=100_000)
check("a reverted transaction's status", receipt["status"], 0)
paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
check("it paid exactly its gas", balance - w3.eth.get_balance(me.address), paid)

# Native value to an account on the other shard.
mine = w3.provider.make_request("atoll_getAccount", [me.address])["result"]["shard"]
other = next(
    acct for acct in (w3.eth.account.create().address for _ in range(64))
    if w3.provider.make_request("atoll_getAccount", [acct])["result"]["shard"] != mine
)
balance = w3.eth.get_balance(me.address)
receipt = send({"to": other, "value": 12345})
check("cross-shard value: the receipt", (receipt["status"], receipt["gasUsed"]), (1, 21_000))
check("the sender paid value plus gas", balance - w3.eth.get_balance(me.address),
      12345 + 21_000 * receipt["effectiveGasPrice"])
deadline = time.time() + 30
while w3.eth.get_balance(other) != 12345:
    if time.time() > deadline:
        sys.exit("web3.py: the value never arrived on the other shard")
    time.sleep(0.2)
check("the value arrived on the other shard", w3.eth.get_balance(other), 12345)

# Blocks as clients read them.
block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
check("the block holds the transaction", receipt["transactionHash"] in [t["hash"] for t in block["transactions"]], True)
check("by hash, the same block", w3.eth.get_block(block["hash"])["number"], block["number"])
check("parent hash", block["parentHash"], w3.eth.get_block(block["number"] - 1)["hash"])
check("extraData fits 32 bytes", len(block["extraData"]) <= 32, True)
tx = w3.eth.get_transaction(receipt["transactionHash"])
check("the transaction by hash", (tx["from"], tx["to"], tx["value"]), (me.address, other, 12345))
history = w3.eth.fee_history(4, "latest", [50])
check("fee history", len(history["baseFeePerGas"]), len(history["gasUsedRatio"]) + 1)
check("an unknown receipt", w3.provider.make_request("eth_getTransactionReceipt", ["0x" + "00" * 32])["result"], None)
print("web3.py: every transaction did what it should")
