#!/usr/bin/env bash
# One load measurement on a fresh node: `scripts/load.sh SHARDS RATIO TPS
# SECONDS` initialises a throwaway home with SHARDS shards and 10,000 funded
# dev accounts, runs the node, sends TPS transfers per second for SECONDS
# seconds with RATIO of them (0 to 1) to another shard, prints the load
# generator's JSON report (finalized TPS, latency and settlement
# percentiles) and the beacon's block rate, and stops the node.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
[ $# -eq 4 ] || { echo "usage: scripts/load.sh SHARDS RATIO TPS SECONDS" >&2; exit 2; }
shards=$1 ratio=$2 tps=$3 seconds=$4
cargo build --release --locked -p atoll-node >&2
atoll="$CARGO_TARGET_DIR/release/atoll"
home=$(mktemp -d)/home
port=${ATOLL_LOAD_PORT:-28900}
rpc="http://127.0.0.1:$port"
"$atoll" init --home "$home" --shards "$shards" --dev-accounts 10000 \
  --rpc-addr "127.0.0.1:$port" --no-metrics >/dev/null
"$atoll" run --home "$home" >"$home.log" 2>&1 &
node=$!
trap 'kill $node 2>/dev/null; wait $node 2>/dev/null; rm -rf "$(dirname "$home")"' EXIT
for _ in $(seq 1 150); do grep -q "RPC listening" "$home.log" && break; sleep 0.2; done
beacon() { "$atoll" status --rpc "$rpc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["beacon"]["height"])'; }
b0=$(beacon); t0=$(date +%s.%N)
"$atoll" load --rpc "$rpc" --accounts 10000 --tps "$tps" --duration "$seconds" \
  --cross-shard-ratio "$ratio" --json 2>/dev/null | tail -1
b1=$(beacon); t1=$(date +%s.%N)
python3 -c "print('beacon blocks per second: %.1f' % (($b1 - $b0) / ($t1 - $t0)))"
