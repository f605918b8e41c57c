#!/usr/bin/env bash
# The test command of README.md: formatting, lints, and every test of the
# workspace, all in the one `release` profile (so RocksDB is compiled once),
# then web3.py and ethers against a dev node and a localnet
# (scripts/eth-clients.sh), then a 60 s perturbation run on a localnet
# (scripts/perturb.sh), then a bounded
# fuzz pass over every fuzz target (scripts/fuzz.sh; it links
# the RocksDB the tests built; ATOLL_FUZZ_SECONDS per target, default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings
cargo test --release --workspace --locked
scripts/eth-clients.sh
scripts/perturb.sh
scripts/fuzz.sh
