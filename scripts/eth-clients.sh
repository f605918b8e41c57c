#!/usr/bin/env bash
# Ethereum tools against a dev node: web3.py reads a deployed ERC-20
# through the eth_ methods and checks every answer
# (scripts/eth_clients/web3_reads.py). web3.py (pinned) is installed from
# PyPI into ~/.cache/atoll/py on first use. Run by scripts/test.sh after
# the Rust tests, with the atoll binary they built; it stops its node
# itself and gives up after 3 minutes.
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
  --dev-accounts 3 >"$work/dev.log" 2>&1 &
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
