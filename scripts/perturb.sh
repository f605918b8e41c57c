#!/usr/bin/env bash
# A perturbation run on a fresh local testnet: 4 validators and 2 shards
# (`atoll localnet init` in a throwaway directory), a load of transfers
# (20% to the other shard) through validator 0 while the others are
# killed, paused and disconnected on a seeded schedule, then the checks of
# `atoll localnet perturb` (see docs/operations.md, "Perturbation runs").
# Exits non-zero when a criterion fails, after the report.
#
# ATOLL_PERTURB_SECONDS (default 60) of load, ATOLL_PERTURB_SEED (default
# 1), ATOLL_PERTURB_TPS (default 200). scripts/test.sh runs it as it is;
# a soak is the same with more seconds, for example
#   ATOLL_PERTURB_SECONDS=1800 ATOLL_PERTURB_SEED=7 scripts/perturb.sh
# With ATOLL_PERTURB_KEEP=1 the directory (homes and logs) is kept and its
# path printed.
#
# ATOLL_NETNS="[--latency D] [--jitter D] [--loss P%]" runs the validators
# in network namespaces with those impairments (`scripts/netns.sh`; needs
# root), and the faults then include one-way cuts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
atoll="$CARGO_TARGET_DIR/release/atoll"
[ -x "$atoll" ] || cargo build --release --locked --workspace --all-targets
work=$(mktemp -d)
dir="$work/net"
client=()
cleanup() {
  "${client[@]}" "$atoll" localnet stop --dir "$dir" --timeout 30 >/dev/null 2>&1 || pkill -9 -f "$dir/validator-" || true
  if [ -n "${ATOLL_NETNS+set}" ]; then scripts/netns.sh down; fi
  if [ -n "${ATOLL_PERTURB_KEEP:-}" ]; then
    echo "perturb: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
netns=()
if [ -n "${ATOLL_NETNS+set}" ]; then
  # This run's own namespaces, whatever else runs beside it.
  export ATOLL_NETNS_PREFIX=${ATOLL_NETNS_PREFIX:-atoll-p$$}
  # shellcheck disable=SC2086
  scripts/netns.sh up 4 $ATOLL_NETNS >&2
  netns=(--netns) client=(scripts/netns.sh exec client)
fi
"$atoll" localnet init --dir "$dir" --validators 4 --shards 2 "${netns[@]}" \
  --base-port "${ATOLL_PERTURB_PORT:-27000}" >/dev/null
seconds=${ATOLL_PERTURB_SECONDS:-60}
# The run itself is bounded: load, settle, catch-up and checks.
timeout $((seconds + 300)) "${client[@]}" "$atoll" localnet perturb --dir "$dir" \
  --duration "$seconds" --seed "${ATOLL_PERTURB_SEED:-1}" --tps "${ATOLL_PERTURB_TPS:-200}"
