#!/usr/bin/env bash
# Recompiles the Solidity contracts in contracts/src into contracts/out
# (checked in: tests and benchmarks use those bytes, not this script).
# Installs solcjs (npm package `solc`, compiler included, works offline from
# the npm registry) into ~/.cache/atoll/solc on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
SOLC_VERSION=0.8.37
cache="${HOME}/.cache/atoll/solc"
if [ ! -f "$cache/node_modules/solc/package.json" ] || \
   ! grep -q "\"version\": \"$SOLC_VERSION\"" "$cache/node_modules/solc/package.json"; then
  echo "installing solc $SOLC_VERSION (npm) into $cache" >&2
  mkdir -p "$cache"
  (cd "$cache" && npm install --no-audit --no-fund --silent "solc@$SOLC_VERSION")
fi
NODE_PATH="$cache/node_modules" node contracts/compile.js
