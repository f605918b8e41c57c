#!/usr/bin/env bash
# One load measurement on a fresh local testnet:
# `scripts/network-load.sh VALIDATORS SHARDS RATIO TPS SECONDS [STOP]`
# initialises VALIDATORS validators (`atoll localnet init`, 10,000 funded
# dev accounts) with SHARDS shards in a throwaway directory, starts them,
# sends TPS transfers per second for SECONDS seconds (RATIO of them to
# another shard) spread over every validator's RPC, prints the load
# generator's JSON report and stops the validators.
#
# With STOP (seconds), the last validator is killed (SIGKILL) 5 s into
# the load, kept down for STOP seconds and restarted; the script prints how
# long it took to reach the final height the others had when it came back
# (the load goes to the other validators; make SECONDS longer than
# 5 + STOP + the catch-up).
#
# ATOLL_WORKLOAD=erc20|amm sends contract calls instead of transfers
# (`atoll load --workload`; ATOLL_POOLS=N pools per shard for amm, default
# 100); RATIO is then the share of accounts calling another shard's
# contracts.
#
# ATOLL_COMMITTEE_SIZE=C gives each shard a committee of C validators
# (default: every validator); ATOLL_EPOCH_LENGTH=N sets the epoch (and so
# how often committees change), in beacon blocks; ATOLL_STATE_SYNC_GAP=G
# sets `network.state_sync_gap` (0: a validator behind executes every
# block it missed instead of syncing its shards from a state snapshot).
# ATOLL_NETNS="[--latency D] [--jitter D] [--loss P%]" puts each validator
# in its own network namespace, on separate addresses joined by a bridge
# with those impairments (`scripts/netns.sh`), and the load generator in a
# clients' namespace; ATOLL_NETNS="" gives namespaces without impairment.
# ATOLL_BLOCK_INTERVAL=D sets `block.interval` (for example 250ms).
# ATOLL_KEEP_LOGS=DIR keeps the validators' logs there. ATOLL_BIN=PATH runs
# that atoll binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
[ $# -ge 5 ] || { echo "usage: scripts/network-load.sh VALIDATORS SHARDS RATIO TPS SECONDS [STOP]" >&2; exit 2; }
validators=$1 shards=$2 ratio=$3 tps=$4 seconds=$5 stop=${6:-}
# ATOLL_BIN: another atoll binary (to compare builds one after the other).
if [ -n "${ATOLL_BIN:-}" ]; then
  atoll=$ATOLL_BIN
else
  cargo build --release --locked -p atoll-node >&2
  atoll="$CARGO_TARGET_DIR/release/atoll"
fi
dir=$(mktemp -d)/net
base=${ATOLL_LOAD_PORT:-29000}
# Where validator i is, and what runs a command in its namespace (ns i)
# or in the clients' (client); both empty on loopback.
hosts=() client=()
ns() { if [ ${#client[@]} -gt 0 ]; then echo scripts/netns.sh exec "$1"; fi; }
if [ -n "${ATOLL_NETNS+set}" ]; then
  export ATOLL_NETNS_PREFIX=${ATOLL_NETNS_PREFIX:-atoll-l$$}
  # shellcheck disable=SC2086
  scripts/netns.sh up "$validators" $ATOLL_NETNS >&2
  IFS=, read -ra hosts <<<"$(scripts/netns.sh hosts "$validators")"
  client=(scripts/netns.sh exec client)
else
  for i in $(seq 0 $((validators - 1))); do hosts+=(127.0.0.1); done
fi
"$atoll" localnet init --dir "$dir" --validators "$validators" --shards "$shards" \
  --dev-accounts 10000 --base-port "$base" \
  ${ATOLL_NETNS+--hosts "$(IFS=,; echo "${hosts[*]}")"} \
  ${ATOLL_COMMITTEE_SIZE:+--committee-size "$ATOLL_COMMITTEE_SIZE"} \
  ${ATOLL_EPOCH_LENGTH:+--epoch-length "$ATOLL_EPOCH_LENGTH"} >/dev/null
if [ -n "${ATOLL_BLOCK_INTERVAL:-}" ]; then
  for config in "$dir"/validator-*/config.toml; do
    sed -i "s/^interval = .*/interval = \"$ATOLL_BLOCK_INTERVAL\"/" "$config"
  done
fi
if [ -n "${ATOLL_STATE_SYNC_GAP:-}" ]; then
  for config in "$dir"/validator-*/config.toml; do
    sed -i "s/^state_sync_gap = .*/state_sync_gap = $ATOLL_STATE_SYNC_GAP/" "$config"
  done
fi
pids=()
# (The command is started directly, so that pids holds the validator's own
# process: `netns.sh exec` execs into it.)
start() {
  # shellcheck disable=SC2046
  $(ns "$1") "$atoll" run --home "$dir/validator-$1" >>"$dir/validator-$1.log" 2>&1 &
  pids[$1]=$!
}
cleanup() {
  pkill -f "$dir/validator-" 2>/dev/null || true; sleep 1
  if [ -n "${ATOLL_KEEP_LOGS:-}" ]; then mkdir -p "$ATOLL_KEEP_LOGS" && cp "$dir"/validator-*.log "$ATOLL_KEEP_LOGS"/; fi
  rm -rf "$(dirname "$dir")"
  if [ -n "${ATOLL_NETNS+set}" ]; then scripts/netns.sh down; fi
}
trap cleanup EXIT
rpcs=()
for i in $(seq 0 $((validators - 1))); do
  start "$i"
  rpcs+=(--rpc "http://${hosts[$i]}:$((base + 10 * i))")
done
for i in $(seq 0 $((validators - 1))); do
  for _ in $(seq 1 300); do grep -q "RPC listening" "$dir/validator-$i.log" && break; sleep 0.2; done
done
# A validator's executed height: its beacon height (one beacon block per
# executed consensus block, the same on every validator whatever shards it
# tracks), or the final height of a shard it tracks if one is behind (a
# shard waiting for a state snapshot does not hold the beacon back).
final() { "${client[@]}" "$atoll" status --rpc "http://${hosts[$1]}:$((base + 10 * $1))" 2>/dev/null \
  | python3 -c 'import json,sys; s=json.load(sys.stdin); print(min([s["beacon"]["height"]] + [x["final_height"] for x in s["shards"] if x["tracked"]]))' 2>/dev/null || echo 0; }
# Wait until the validators finalize together.
for _ in $(seq 1 300); do [ "$(final 0)" -ge 2 ] && break; sleep 0.2; done
last=$((validators - 1))
if [ -n "$stop" ]; then
  # The stopped validator takes no load: send to the others only.
  rpcs=("${rpcs[@]:0:$((2 * last))}")
  (
    sleep 5
    kill -9 "${pids[$last]}"; wait "${pids[$last]}" 2>/dev/null || true
    sleep "$stop"
    target=$(final 0); t0=$(date +%s.%N)
    start "$last"
    while [ "$(final "$last")" -lt "$target" ]; do sleep 0.1; done
    t1=$(date +%s.%N)
    python3 -c "print('catch-up: %.1f s to reach beacon height $target after $stop s down' % ($t1 - $t0))" >&2
    grep -a "state snapshot\|from a peer's snapshot" "$dir/validator-$last.log" | sed 's/^/  /' >&2 || true
  ) &
  catchup=$!
fi
# CPU time (user + system, in clock ticks) of every validator process.
cpu() { for i in $(seq 0 $last); do awk '{print $14 + $15}' "/proc/${pids[$i]}/stat" 2>/dev/null || echo 0; done; }
cpu_before=($(cpu))
loadcpu=$(mktemp)
report=$(/usr/bin/time -f '%U %S %e' -o "$loadcpu" "${client[@]}" "$atoll" load "${rpcs[@]}" --accounts 10000 --tps "$tps" --duration "$seconds" \
  --cross-shard-ratio "$ratio" \
  ${ATOLL_WORKLOAD:+--workload "$ATOLL_WORKLOAD" --pools "${ATOLL_POOLS:-100}"} \
  --json 2>/dev/null | tail -1)
cpu_after=($(cpu))
echo "$report"
# CPU per finalized transaction, per validator: each validator's CPU time
# over the load (signing before the clock starts included, so an upper
# bound), divided by the transactions finalized.
python3 - "$report" "$(getconf CLK_TCK)" "${cpu_before[*]}" "${cpu_after[*]}" "$(tail -1 "$loadcpu")" <<'PY' >&2
import json, sys
report, tck = json.loads(sys.argv[1]), int(sys.argv[2])
user, system, wall = map(float, sys.argv[5].split())
before, after = map(int, sys.argv[3].split()), map(int, sys.argv[4].split())
used = [(a - b) / tck for a, b in zip(after, before)]
done = max(report.get("finalized", 0), 1)
print("validator CPU: " + ", ".join("v%d %.1f s" % (i, u) for i, u in enumerate(used))
      + " in %.1f s; per finalized transaction: " % wall
      + ", ".join("%.0f" % (u * 1e6 / done) for u in used) + " CPU-us"
      + "; the load generator: %.1f s CPU (%.0f us per transaction)" % (user + system, (user + system) * 1e6 / done))
PY
if [ -n "$stop" ]; then wait "$catchup"; fi
heights() { for i in $(seq 0 $last); do echo -n "v$i=$(final "$i") "; done; echo; }
echo "beacon heights: $(heights)"
# Shards synced from a state snapshot (validators moved to a shard their
# store last executed long ago), with the time each took.
grep -ah "installed the shard's state\|state snapshot not used" "$dir"/validator-*.log \
  | sed 's/^/  /' >&2 || true
