#!/usr/bin/env bash
# The execution benchmark on one block of 20,000 transfers over 10,000 accounts, with as
# many threads as the machine has cores. Arguments go to `atoll bench execute`
# (see `--help`), e.g. `--accounts 2 --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --locked -p atoll-node
exec "$CARGO_TARGET_DIR/release/atoll" bench execute "$@"
