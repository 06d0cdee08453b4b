#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine: installs what the tests need (the
# wasm32-wasip2 target, real brokers, the guest toolchains), then builds and tests everything.
# Idempotent and quick when everything is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain (rust-toolchain.toml: Rust 1.95 + wasm32-wasip2)"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain list | grep -q "^$toolchain" || rustup toolchain install "$toolchain" --profile minimal
rustup component add --toolchain "$toolchain" rustfmt clippy >/dev/null 2>&1 || true
rustup target add --toolchain "$toolchain" wasm32-wasip2

step "services and guest toolchains"
tests/services/install.sh
# The usp-js interop tests (tests/e2e/mtp/interop.rs) run the npm packages pinned in the lock
# file; reinstalled only when the lock file is newer than what node_modules holds.
if [ ! tests/interop/node_modules/.package-lock.json -nt tests/interop/package-lock.json ]; then
    npm ci --prefix tests/interop --no-audit --no-fund
fi
if [ -x examples/plugins/build.sh ]; then
    examples/plugins/build.sh
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "guest-side crates (sdk, plugins, test guests): format, lints for wasm32-wasip2, unit tests"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
for guest_workspace in sdk plugins tests/guests; do
    cargo fmt --manifest-path "$guest_workspace/Cargo.toml" --all -- --check
    cargo clippy --manifest-path "$guest_workspace/Cargo.toml" --workspace --all-targets --locked \
        --target wasm32-wasip2 --target-dir "$target_dir/guest-clippy" -- -D warnings
    # The unit tests are plain Rust (paths, values, parsers of /proc and /sys text): they run
    # natively, where wit-bindgen's imports are never called.
    cargo test --manifest-path "$guest_workspace/Cargo.toml" --workspace --locked \
        --target-dir "$target_dir/guest-native"
done

step "benchmark smoke run (debug binaries: these matrix rows run end to end; no figure is taken)"
cargo build --workspace --bins --locked
SMOKE=1 AGENT="$target_dir/debug/usp-agent" BENCH="$target_dir/debug/usp-bench" \
    host/bench/matrix.sh get-deviceinfo-ws-w16 get-deviceinfo-mqtt-w1 set-1-ws-w1 idle-rss-plugins get-time-plugin-ws-w1 startup-ws notify-ws

step "fuzz smoke run (nightly + cargo-fuzz; each target from its committed corpus)"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
tests/fuzz/smoke.sh "${FUZZ_SECONDS:-15}"

step "all tests passed"
