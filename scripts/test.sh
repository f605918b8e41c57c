#!/usr/bin/env bash
# The test command of README.md: formatting, lints, and every test of the
# workspace, all in the one `release` profile (so RocksDB is compiled once),
# then web3.py and ethers against a dev node and a localnet
# (scripts/eth-clients.sh), then a 60 s perturbation run on a localnet
# (scripts/perturb.sh) and a 60 s one in network namespaces 50 ms ± 10 ms
# apart with 1% loss (scripts/netns.sh; skipped where namespaces cannot be
# made), then a bounded
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
# The same with the validators on separate hosts (network namespaces, a
# delay on every link, 1% loss, cuts that drop packets silently, one way
# too), where this machine can make namespaces (as root); otherwise
# skipped, saying why.
if why=$(scripts/netns.sh check); then
  ATOLL_NETNS="--latency 50ms --jitter 10ms --loss 1%" ATOLL_PERTURB_SECONDS=60 \
    ATOLL_PERTURB_PORT=27200 scripts/perturb.sh
else
  echo "test: skipping the perturbation run in network namespaces: $why" >&2
fi
scripts/fuzz.sh
