#!/usr/bin/env bash
# The main command of README.md: build atoll and start a local testnet of
# 4 validators and 2 shards in the background (`atoll localnet init` once,
# then `atoll localnet start`), and print how to send a transfer, where the
# logs are and how to stop it.
#
# The testnet lives in $ATOLL_LOCALNET (default $TMPDIR/atoll-localnet) and
# is reused on the next start (its chain goes on); `--fresh` stops it and
# starts over. Other arguments go to `atoll localnet init` for a new one,
# e.g. `scripts/localnet.sh --fresh --validators 6 --shards 3`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --locked -p atoll-node
atoll="$CARGO_TARGET_DIR/release/atoll"
dir=${ATOLL_LOCALNET:-${TMPDIR:-/tmp}/atoll-localnet}
init=()
for arg in "$@"; do
  if [ "$arg" = --fresh ]; then
    if [ -d "$dir" ]; then
      "$atoll" localnet stop --dir "$dir" || true
      rm -rf "$dir"
    fi
  else
    init+=("$arg")
  fi
done
if [ -d "$dir" ]; then
  [ ${#init[@]} -eq 0 ] || echo "Reusing $dir: init options ignored (pass --fresh to start over)" >&2
else
  "$atoll" localnet init --dir "$dir" --validators 4 --shards 2 "${init[@]}"
fi
exec "$atoll" localnet start --dir "$dir"
