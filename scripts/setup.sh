#!/usr/bin/env bash
# Installs what building atoll needs and is missing on a fresh Debian/Ubuntu
# machine: libclang (RocksDB's Rust bindings are generated with it at build
# time) and clang. Safe to run again: it does nothing when all is present.
set -euo pipefail

need=()
[ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null | head -1)" ] || need+=(libclang-dev)
command -v clang >/dev/null 2>&1 || need+=(clang)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (needed to build RocksDB's bindings)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }

# One target directory outside the clone, reused across clones and runs: the
# RocksDB C++ build (about 13 minutes on 2 cores) then happens once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/atoll/target}"
mkdir -p "$CARGO_TARGET_DIR"
