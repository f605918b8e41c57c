#!/usr/bin/env bash
# Ethereum tools against a dev node of two shards: web3.py reads a deployed
# ERC-20 through the eth_ methods and checks every answer
# (scripts/eth_clients/web3_reads.py), then sends Ethereum-signed
# transactions from the first account of the standard test mnemonic:
# deploys, transfers, approves, swaps, reads logs, sees a revert charged,
# and moves value to the other shard (scripts/eth_clients/web3_sends.py);
# then ethers v6 does the same with contracts it compiles with solcjs
# (scripts/eth_clients/ethers_sends.js). ethers and solc (pinned) are
# installed from npm into ~/.cache/atoll/js on first use; web3.py (pinned)
# is installed from
# PyPI into ~/.cache/atoll/py on first use. Run by scripts/test.sh after
# the Rust tests, with the atoll binary they built; it stops its node
# itself and gives up after 10 minutes.
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
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$atoll" dev --fresh --home "$work/dev" --rpc-addr 127.0.0.1:0 --no-metrics \
  --shards 2 --dev-accounts 3 >"$work/dev.log" 2>&1 &
pid=$!
rpc=
for _ in $(seq 1 150); do
  rpc=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/dev.log" | head -1 || true)
  [ -n "$rpc" ] && break
  sleep 0.2
done
[ -n "$rpc" ] || { cat "$work/dev.log" >&2; echo "eth-clients: the dev node did not start" >&2; exit 1; }
holder=$(grep -o '(0) 0x[0-9a-f]\{40\}' "$work/dev.log" | head -1 | cut -d' ' -f2)
deployed=$(timeout 60 "$atoll" tx deploy --rpc "$rpc" --key "$work/dev/keys/dev-0.json" \
  --code contracts/out/Token.bin --args "$(printf '%064x' 1000000)")
token=$(grep -o '"created": *"0x[0-9a-f]\{40\}"' <<<"$deployed" | grep -o '0x[0-9a-f]*' || true)
[ -n "$token" ] || { echo "$deployed" >&2; echo "eth-clients: the token was not deployed" >&2; exit 1; }
timeout 120 "$venv/bin/python" scripts/eth_clients/web3_reads.py "$rpc" "$token" "$holder"
timeout 240 "$venv/bin/python" scripts/eth_clients/web3_sends.py "$rpc"
NODE_PATH="$js/node_modules" timeout 240 node scripts/eth_clients/ethers_sends.js "$rpc"
