#!/bin/sh
# Runs every fuzz target for a short time (default 20 s each) from its committed corpus, for CI.
# New inputs go to a temporary directory, so the committed corpus is left as it is. The seed is
# fixed so that a failure in CI can be replayed; long exploratory runs are in README.md.
# Usage: tests/fuzz/smoke.sh [seconds-per-target]
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -eu
cd "$(dirname "$0")"
secs="${1:-20}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The workspace denies unsafe code: libFuzzer without AddressSanitizer finds the same panics in
# safe Rust and builds much faster.
cargo +nightly fuzz build --fuzz-dir . -s none --features agent
for target in $(cargo +nightly fuzz list --fuzz-dir .); do
    mkdir -p "$scratch/$target" "corpus/$target"
    echo "== $target ($secs s)"
    if ! cargo +nightly fuzz run --fuzz-dir . -s none --features agent "$target" "$scratch/$target" "corpus/$target" -- \
        -seed=1 -max_total_time="$secs" -max_len=4096 >"$scratch/$target.log" 2>&1; then
        # The failing input's Debug dump can fill the tail on its own: show the panic first.
        grep -m 5 -A 3 'panicked at' "$scratch/$target.log" | cut -c 1-2000 >&2 || true
        tail -n 40 "$scratch/$target.log" | cut -c 1-2000 >&2
        echo "fuzz target $target failed: see tests/fuzz/artifacts/$target" >&2
        exit 1
    fi
    grep -E '^Done' "$scratch/$target.log" || tail -n 1 "$scratch/$target.log"
done
