#!/usr/bin/env bash
# The bounded fuzz pass of CI (scripts/test.sh runs it): builds every
# cargo-fuzz target of fuzz/ on the stable toolchain, replays the inputs
# that once crashed a target (fuzz/regressions/<target>/), then fuzzes
# each target for ATOLL_FUZZ_SECONDS (default 20) from its committed seed
# corpus (fuzz/corpus/<target>/, copied to a scratch folder so that the
# committed one stays as it is). One target at a time.
#
#   scripts/fuzz.sh                     every target
#   scripts/fuzz.sh check_run payload   only these
#   ATOLL_FUZZ_SECONDS=600 scripts/fuzz.sh check_run
#
# Fails (non-zero exit, with the reason) when cargo-fuzz cannot be
# installed, a target does not build, a regression input still crashes,
# or fuzzing finds a crash; it never skips. A crash leaves its input under
# $CARGO_TARGET_DIR/fuzz/artifacts/<target>/ and the command that replays
# it is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

CARGO_FUZZ_VERSION=0.13.1
script_started=$SECONDS
SECONDS_PER_TARGET="${ATOLL_FUZZ_SECONDS:-20}"
FUZZ_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"
# cargo-fuzz needs nightly-only rustc flags; stable rustc takes them with
# RUSTC_BOOTSTRAP=1. No sanitizer: a panic is what the targets look for.
export RUSTC_BOOTSTRAP=1
FUZZ=(cargo fuzz)
FUZZ_FLAGS=(-s none --target-dir "$FUZZ_TARGET_DIR")

fail() {
  echo "fuzz: FAILED: $*" >&2
  exit 1
}

[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] ||
  fail "ATOLL_FUZZ_SECONDS must be a whole number of seconds above 0, not '$SECONDS_PER_TARGET'"

# cargo-fuzz, pinned.
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked ||
    fail "cannot install cargo-fuzz $CARGO_FUZZ_VERSION (cargo install cargo-fuzz --version $CARGO_FUZZ_VERSION --locked): the fuzz pass cannot run"
fi

# fuzz/Cargo.lock must be current and agree with Cargo.lock on every
# package both hold.
cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null ||
  fail "fuzz/Cargo.lock is out of date: run 'cargo metadata --manifest-path fuzz/Cargo.toml' and commit it"
lock_versions() {
  awk '/^\[\[package\]\]/{n=""} /^name = /{n=$3} /^version = /{if (n != "") print n, $3}' "$1" | tr -d '"' | sort -u
}
# A package of both lockfiles must be locked by the fuzz one at a version
# the main one locks.
mismatch=$(awk 'NR == FNR {main[$1 " " $2] = 1; name[$1] = 1; next}
  ($1 in name) && !(($1 " " $2) in main) {printf "%s %s; ", $1, $2}' \
  <(lock_versions Cargo.lock) <(lock_versions fuzz/Cargo.lock))
[ -z "$mismatch" ] ||
  fail "fuzz/Cargo.lock locks versions Cargo.lock does not: $mismatch copy Cargo.lock to fuzz/Cargo.lock and run 'cargo metadata --manifest-path fuzz/Cargo.toml'"

cargo fmt --manifest-path fuzz/Cargo.toml -- --check ||
  fail "the fuzz targets are not formatted: run 'cargo fmt --manifest-path fuzz/Cargo.toml'"

# RocksDB: link the static library the main build already compiled (about
# 13 minutes of C++ on 2 cores) instead of compiling it again: the newest
# librocksdb.a of the locked librocksdb-sys version under
# $CARGO_TARGET_DIR/release (test.sh has just built it). A copy with its
# debug sections stripped (1.5 GB -> ~45 MB; backtraces need the Rust line
# tables, not RocksDB's) is kept in the fuzz target dir, refreshed when the
# main build's changes, and used alone when the main build is gone. With
# neither, librocksdb-sys compiles RocksDB into the fuzz target dir, once.
rocksdb_version=$(lock_versions fuzz/Cargo.lock | awk '$1 == "librocksdb-sys" {print $2}')
[ -n "$rocksdb_version" ] || fail "fuzz/Cargo.lock locks no librocksdb-sys"
rocksdb_copy="$FUZZ_TARGET_DIR/rocksdb"
built=""
for output in "$CARGO_TARGET_DIR"/release/build/librocksdb-sys-*/output; do
  [ -f "$output" ] || continue
  grep -q "^cargo:cargo_manifest_dir=.*/librocksdb-sys-$rocksdb_version\$" "$output" || continue
  lib="$(sed -n 's/^cargo:out_dir=//p' "$output")/librocksdb.a"
  if [ -f "$lib" ] && { [ -z "$built" ] || [ "$lib" -nt "$built" ]; }; then
    built="$lib"
  fi
done
if [ -n "$built" ]; then
  source_id="$rocksdb_version $(stat -c '%n %s %Y' "$built")"
  if [ "$(cat "$rocksdb_copy/source" 2>/dev/null)" != "$source_id" ]; then
    echo "fuzz: linking RocksDB $rocksdb_version from the main build ($built)" >&2
    rm -rf "$rocksdb_copy"
    mkdir -p "$rocksdb_copy"
    strip --strip-debug -o "$rocksdb_copy/librocksdb.a" "$built" ||
      fail "cannot copy $built into $rocksdb_copy (strip --strip-debug)"
    echo "$source_id" >"$rocksdb_copy/source"
  fi
fi
if [ "$(cut -d' ' -f1 "$rocksdb_copy/source" 2>/dev/null)" = "$rocksdb_version" ]; then
  export ROCKSDB_LIB_DIR="$rocksdb_copy" ROCKSDB_STATIC=1
else
  echo "fuzz: no RocksDB $rocksdb_version built by the main build in $CARGO_TARGET_DIR:" \
    "compiling it for the fuzz build (about 13 minutes on 2 cores, once)" >&2
  unset ROCKSDB_LIB_DIR ROCKSDB_STATIC
fi

build_started=$SECONDS
echo "fuzz: building the targets (cargo-fuzz $CARGO_FUZZ_VERSION, stable toolchain, into $FUZZ_TARGET_DIR)" >&2
"${FUZZ[@]}" build "${FUZZ_FLAGS[@]}" ||
  fail "the fuzz targets do not build: ${FUZZ[*]} build ${FUZZ_FLAGS[*]}"
build_seconds=$((SECONDS - build_started))
fuzz_started=$SECONDS

mapfile -t all_targets < <("${FUZZ[@]}" list)
[ ${#all_targets[@]} -gt 0 ] || fail "cargo fuzz list names no targets"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="$FUZZ_TARGET_DIR/$host/release"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/atoll-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# The targets that serve from a RocksDB store make it in a temporary
# directory, and libFuzzer ends a run without dropping it: 75 MB left in
# /tmp per such target and run. Under the scratch directory they go with it.
mkdir "$scratch/tmp"
export TMPDIR="$scratch/tmp"

failures=()
summary=()
for target in "${targets[@]}"; do
  printf '%s\n' "${all_targets[@]}" | grep -qx "$target" ||
    fail "no fuzz target '$target' (targets: ${all_targets[*]})"
  bin="$bin_dir/$target"
  [ -x "$bin" ] || fail "the build left no binary $bin"
  artifacts="$FUZZ_TARGET_DIR/artifacts/$target"
  mkdir -p "$artifacts"
  log="$scratch/$target.log"

  # Every input that once crashed this target must pass now.
  regressions=()
  if [ -d "fuzz/regressions/$target" ]; then
    mapfile -t regressions < <(find "fuzz/regressions/$target" -type f | sort)
  fi
  if [ ${#regressions[@]} -gt 0 ]; then
    echo "fuzz: $target: replaying ${#regressions[@]} regression input(s)" >&2
    if ! "$bin" -runs=1 "${regressions[@]}" >"$log" 2>&1; then
      grep -E 'panicked at|^attempt|ERROR|Running:' "$log" | head -20 >&2 || true
      echo "fuzz: $target: a regression input crashes it again; replay with:" >&2
      echo "  $bin -runs=1 ${regressions[*]}" >&2
      failures+=("$target (regression)")
      summary+=("$(printf '%-26s %6s %14s %10s  %s' "$target" - - - "REGRESSION CRASHES")")
      continue
    fi
  fi

  corpus="$scratch/corpus/$target"
  mkdir -p "$corpus"
  if [ -d "fuzz/corpus/$target" ]; then
    cp fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  fi
  if [ ${#regressions[@]} -gt 0 ]; then
    cp "${regressions[@]}" "$corpus"/
  fi
  [ -n "$(ls -A "$corpus")" ] || fail "$target has no seed corpus in fuzz/corpus/$target"

  echo "fuzz: $target: fuzzing for ${SECONDS_PER_TARGET}s from $(ls "$corpus" | wc -l) inputs" >&2
  target_started=$SECONDS
  status=0
  "$bin" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  took=$((SECONDS - target_started))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs=${runs:-?}
  rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' "$log" | tail -1)
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked at|^attempt|ERROR|Test unit written' "$log" | head -20 >&2 || true
    crash=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)
    echo "fuzz: $target: CRASH after ${took}s; replay with:" >&2
    echo "  $bin -runs=1 ${crash:-<artifact>}" >&2
    echo "  (keep it as a regression: copy it into fuzz/regressions/$target/)" >&2
    failures+=("$target")
    summary+=("$(printf '%-26s %5ss %14s %10s  %s' "$target" "$took" "$runs" "${rate:-?}" "CRASH ${crash:-}")")
  else
    summary+=("$(printf '%-26s %5ss %14s %10s  %s' "$target" "$took" "$runs" "${rate:-?}" ok)")
  fi
done

echo
echo "fuzz: setup $((build_started - script_started))s, build ${build_seconds}s," \
  "replay and fuzzing $((SECONDS - fuzz_started))s, total $((SECONDS - script_started))s"
printf '%-26s %6s %14s %10s  %s\n' target time executions exec/s result
printf '%s\n' "${summary[@]}"
if [ ${#failures[@]} -gt 0 ]; then
  fail "${#failures[@]} target(s) crashed: ${failures[*]} (inputs under $FUZZ_TARGET_DIR/artifacts/)"
fi
