"""web3.py against an atoll dev node: reads a deployed ERC-20 (the
shipped Token) through the eth_ methods and checks every answer, the
chain's state by the atoll_ methods where it can. Usage:
web3_reads.py RPC_URL TOKEN_ADDRESS HOLDER_ADDRESS (the holder deployed
the token with a supply of 1,000,000 and sent nothing else)."""

import json
import pathlib
import sys

from web3 import Web3
from web3.exceptions import ContractLogicError

rpc, token_address, holder_address = sys.argv[1:4]
w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
holder = Web3.to_checksum_address(holder_address)
abi = json.loads(
    (pathlib.Path(__file__).parents[2] / "contracts/out/Token.abi.json").read_text()
)
token = w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=abi)


def check(what, got, expected):
    if got != expected:
        sys.exit(f"web3.py: {what}: got {got!r}, expected {expected!r}")
    print(f"web3.py: {what}: {got!r}")


atoll_account = w3.provider.make_request("atoll_getAccount", [holder_address])["result"]
check("connected", w3.is_connected(), True)
check("client version", w3.client_version.split("/")[0], "atoll")
check("chain id", w3.eth.chain_id, int(w3.net.version))
check("block number is a beacon height", w3.eth.block_number > 0, True)
check("gas price", w3.eth.gas_price > 0, True)
check("balance", w3.eth.get_balance(holder), int(atoll_account["balance"]))
check("nonce", w3.eth.get_transaction_count(holder), atoll_account["nonce"])
check("pending nonce", w3.eth.get_transaction_count(holder, "pending"), atoll_account["nonce"])
check("code", len(w3.eth.get_code(token.address)) > 1000, True)
check("balanceOf", token.functions.balanceOf(holder).call(), 1_000_000)
check("totalSupply", token.functions.totalSupply().call(), 1_000_000)
check("totalSupply is slot 0", int.from_bytes(w3.eth.get_storage_at(token.address, 0), "big"), 1_000_000)
gas = token.functions.transfer(holder, 5).estimate_gas({"from": holder})
check("estimated gas in range", 21_000 < gas < 100_000, True)
try:
    token.functions.transfer(holder, 10**9).call({"from": holder})
    sys.exit("web3.py: a transfer of more than the balance did not revert")
except ContractLogicError as e:
    check("revert reason", "Token: balance too low" in str(e), True)
print("web3.py: every read answered as expected")
