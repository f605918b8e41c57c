#!/usr/bin/env bash
# The main command of README.md: build atoll and run a local dev node
# (`atoll dev`): one validator, funded dev accounts, JSON-RPC on
# 127.0.0.1:8545, metrics on 127.0.0.1:9615. Arguments go to `atoll dev`
# (see `--help`), e.g. `--fresh --dev-accounts 10000`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --release --locked -p atoll-node
exec "$CARGO_TARGET_DIR/release/atoll" dev "$@"
