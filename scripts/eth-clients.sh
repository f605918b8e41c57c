#!/usr/bin/env bash
# Ethereum tools against a dev node of two shards, then against a localnet
# of two validators and two shards. On the dev node, web3.py reads a
# deployed ERC-20 through the eth_ methods and checks every answer
# (scripts/eth_clients/web3_reads.py). On each, web3.py sends Ethereum-signed
# transactions from the first account of the standard test mnemonic:
# deploys, transfers, approves, swaps, reads logs, sees a revert charged,
# and moves value to the other shard (scripts/eth_clients/web3_sends.py);
# then ethers v6 does the same with contracts it compiles with solcjs
# (scripts/eth_clients/ethers_sends.js). ethers and solc (pinned) are
# installed from npm into ~/.cache/atoll/js on first use; web3.py (pinned)
# is installed from
# PyPI into ~/.cache/atoll/py on first use. Run by scripts/test.sh after
# the Rust tests, with the atoll binary they built; it stops its nodes
# itself, and each client gives up after 4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
WEB3_VERSION=8.0.0
venv="${HOME}/.cache/atoll/py"
if ! "$venv/bin/python" -c "import sys, web3; sys.exit(web3.__version__ != '$WEB3_VERSION')" 2>/dev/null; then
  echo "eth-clients: installing web3.py $WEB3_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "web3==$WEB3_VERSION"
fi
ETHERS_VERSION=6.17.0
SOLC_VERSION=0.8.37
js="${HOME}/.cache/atoll/js"
if ! grep -qs "\"version\": \"$ETHERS_VERSION\"" "$js/node_modules/ethers/package.json" ||
   ! grep -qs "\"version\": \"$SOLC_VERSION\"" "$js/node_modules/solc/package.json"; then
  echo "eth-clients: installing ethers $ETHERS_VERSION and solc $SOLC_VERSION into $js" >&2
  mkdir -p "$js"
  (cd "$js" && npm install --no-audit --no-fund --silent "ethers@$ETHERS_VERSION" "solc@$SOLC_VERSION")
fi
atoll="$CARGO_TARGET_DIR/release/atoll"
[ -x "$atoll" ] || cargo build --release --locked --workspace --all-targets
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# The RPC URL a node's log shows once it serves ($1: the log).
rpc_of() {
  local url=
  for _ in $(seq 1 300); do
    url=$(grep -o 'RPC listening on http://127\.0\.0\.1:[0-9]*' "$1" | head -1 | grep -o 'http.*' || true)
    [ -n "$url" ] && break
    sleep 0.2
  done
  [ -n "$url" ] || { cat "$1" >&2; echo "eth-clients: a node did not start" >&2; exit 1; }
  echo "$url"
}

# A dev node of two shards.
"$atoll" dev --fresh --home "$work/dev" --rpc-addr 127.0.0.1:0 --no-metrics \
  --shards 2 --dev-accounts 3 >"$work/dev.log" 2>&1 &
pids+=($!)
rpc=$(rpc_of "$work/dev.log")
holder=$(grep -o '(0) 0x[0-9a-f]\{40\}' "$work/dev.log" | head -1 | cut -d' ' -f2)
deployed=$(timeout 60 "$atoll" tx deploy --rpc "$rpc" --key "$work/dev/keys/dev-0.json" \
  --code contracts/out/Token.bin --args "$(printf '%064x' 1000000)")
token=$(grep -o '"created": *"0x[0-9a-f]\{40\}"' <<<"$deployed" | grep -o '0x[0-9a-f]*' || true)
[ -n "$token" ] || { echo "$deployed" >&2; echo "eth-clients: the token was not deployed" >&2; exit 1; }
timeout 120 "$venv/bin/python" scripts/eth_clients/web3_reads.py "$rpc" "$token" "$holder"
timeout 240 "$venv/bin/python" scripts/eth_clients/web3_sends.py "$rpc"
NODE_PATH="$js/node_modules" timeout 240 node scripts/eth_clients/ethers_sends.js "$rpc"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# A localnet of two validators and two shards: web3.py through one
# validator, ethers through the other.
base=${ATOLL_ETH_CLIENTS_PORT:-29500}
"$atoll" localnet init --dir "$work/net" --validators 2 --shards 2 --dev-accounts 3 \
  --base-port "$base" >/dev/null
for i in 0 1; do
  "$atoll" run --home "$work/net/validator-$i" >"$work/validator-$i.log" 2>&1 &
  pids+=($!)
done
rpc0=$(rpc_of "$work/validator-0.log")
rpc1=$(rpc_of "$work/validator-1.log")
echo "eth-clients: a localnet of 2 validators at $rpc0 and $rpc1" >&2
timeout 240 "$venv/bin/python" scripts/eth_clients/web3_sends.py "$rpc0"
# The other validator runs the same final blocks a moment later: wait for
# it to show the account's nonce before signing with it there.
timeout 60 "$venv/bin/python" - "$rpc0" "$rpc1" <<'PY'
import sys, time
from web3 import Web3
me = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
a, b = (Web3(Web3.HTTPProvider(url)) for url in sys.argv[1:3])
while b.eth.get_transaction_count(me) < a.eth.get_transaction_count(me):
    time.sleep(0.2)
PY
NODE_PATH="$js/node_modules" timeout 240 node scripts/eth_clients/ethers_sends.js "$rpc1"
