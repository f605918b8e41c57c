#!/usr/bin/env bash
# The main command of README.md (until the node exists): the execution
# benchmark on a 20,000-transfer block. Extra arguments go to
# `atoll bench execute` (see `--help`), e.g. `--accounts 2 --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --locked -p atoll-node
threads=$(nproc)
exec "$CARGO_TARGET_DIR/release/atoll" bench execute --txs 20000 --accounts 10000 --threads "$threads" "$@"
