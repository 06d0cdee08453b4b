#!/usr/bin/env bash
# Builds the example plugins in Python, JavaScript and C against wit/ and installs the
# toolchains they need when they are absent. Idempotent: a plugin whose inputs (sources, WIT,
# this script, tool versions) did not change is taken from the cache in milliseconds.
#
# Usage: examples/plugins/build.sh [--no-install] [--out DIR] [--regen-c]
#   --no-install  fail (naming the command to run) instead of installing a missing toolchain;
#                 the tests use this so that a missing toolchain is an error, never a skip.
#   --out DIR     output directory (default: $CARGO_TARGET_DIR or <repo>/target, + /tmp/example-plugins,
#                 which is where `cargo test` looks).
#   --regen-c     regenerate the committed C bindings in c/gen/ with the pinned wit-bindgen
#                 (installed with `cargo install` if absent, about 3 minutes), then build.
#
# Output: DIR/plugins/<lang>/{manifest.toml,<lang>.wasm}, one plugin directory per language.
# Toolchains: componentize-py in DIR/tools/venv, componentize-js and jco in DIR/tools/npm
# (versions pinned by javascript/package-lock.json), Debian's clang + wasi-libc via apt-get.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
WIT_BINDGEN_VERSION=0.63.0
APT_PACKAGES=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
LANGS=(python javascript c)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
wit="$repo/wit"

install=1
regen_c=0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --no-install) install=0 ;;
        --regen-c) regen_c=1 ;;
        --out) out="$2"; shift ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$out" ]; then
    out="${CARGO_TARGET_DIR:-$repo/target}/tmp/example-plugins"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
tools="$out/tools"
mkdir -p "$tools" "$out/cache" "$out/plugins"

say() { echo "build.sh: $*" >&2; }

missing() {
    if [ "$install" = 0 ]; then
        say "$1 is missing; install the toolchains with: examples/plugins/build.sh"
        exit 1
    fi
}

# --- toolchains -------------------------------------------------------------------------

ensure_python() {
    local venv="$tools/venv"
    if [ "$("$venv/bin/componentize-py" --version 2>/dev/null)" = "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
        return
    fi
    missing "componentize-py $COMPONENTIZE_PY_VERSION"
    say "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
}

ensure_npm() {
    local dir="$tools/npm"
    if [ -x "$dir/node_modules/.bin/componentize-js" ] && [ -x "$dir/node_modules/.bin/jco" ] \
        && cmp -s "$here/javascript/package-lock.json" "$dir/package-lock.json"; then
        return
    fi
    missing "componentize-js (npm ci of examples/plugins/javascript/package-lock.json)"
    say "installing componentize-js and jco into $dir (npm ci)"
    mkdir -p "$dir"
    cp "$here/javascript/package.json" "$here/javascript/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

c_toolchain_ok() {
    command -v clang >/dev/null && command -v wasm-ld >/dev/null \
        && [ -f /usr/lib/wasm32-wasi/libc.a ] \
        && [ -n "$(ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a 2>/dev/null)" ]
}

ensure_c() {
    if c_toolchain_ok; then
        return
    fi
    missing "clang/wasi-libc (apt-get install ${APT_PACKAGES[*]})"
    if [ "$(id -u)" != 0 ]; then
        say "installing ${APT_PACKAGES[*]} needs root: run apt-get install -y ${APT_PACKAGES[*]}"
        exit 1
    fi
    say "installing ${APT_PACKAGES[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
    c_toolchain_ok || { say "clang/wasi-libc still unusable after apt-get install"; exit 1; }
}

# --- C bindings ---------------------------------------------------------------------------

# The C bindings are generated once and committed: generating them needs wit-bindgen-cli,
# whose `cargo install` takes about 3 minutes. c/gen/WIT_SHA256 records the WIT they were
# generated from; the build refuses stale bindings, so a WIT change cannot go unnoticed.
wit_sha256() {
    cat "$wit"/*.wit | sha256sum | cut -d' ' -f1
}

regen_c_bindings() {
    if [ "$(wit-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$WIT_BINDGEN_VERSION" ]; then
        say "installing wit-bindgen-cli $WIT_BINDGEN_VERSION (cargo install, about 3 minutes)"
        cargo install --locked --quiet wit-bindgen-cli --version "$WIT_BINDGEN_VERSION"
    fi
    rm -rf "$here/c/gen"
    wit-bindgen c "$wit" --world dm-plugin --out-dir "$here/c/gen" >/dev/null
    wit_sha256 >"$here/c/gen/WIT_SHA256"
    say "regenerated examples/plugins/c/gen with wit-bindgen $WIT_BINDGEN_VERSION"
}

check_c_bindings() {
    if [ "$(cat "$here/c/gen/WIT_SHA256" 2>/dev/null)" != "$(wit_sha256)" ]; then
        say "examples/plugins/c/gen is stale (generated from another WIT); run: examples/plugins/build.sh --regen-c"
        exit 1
    fi
}

# --- plugins ------------------------------------------------------------------------------

tool_versions() {
    case "$1" in
        python) "$tools/venv/bin/componentize-py" --version ;;
        javascript) sha256sum <"$here/javascript/package-lock.json" ;;
        c)
            clang --version | head -n1
            dpkg-query -W -f '${Version}\n' wasi-libc 2>/dev/null || echo "wasi-libc unknown"
            sha256sum <"$here/javascript/package-lock.json"
            ;;
    esac
}

# Hash of everything that determines a plugin's bytes.
input_hash() {
    local lang="$1"
    {
        echo "$lang"
        tool_versions "$lang"
        sha256sum <"$0"
        (cd "$repo" && find wit "examples/plugins/$lang" -type f \
            \( -name '*.wit' -o -name '*.py' -o -name '*.js' -o -name '*.c' -o -name '*.h' -o -name '*.o' -o -name '*.toml' \) \
            -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

build_python() {
    "$tools/venv/bin/componentize-py" -d "$wit" -w dm-plugin componentize \
        -p "$here/python" app -o "$1" >/dev/null
}

build_javascript() {
    # `-d http fetch-event`: without it the component imports wasi:http, which the agent does
    # not provide. `jco componentize` is not used: it fails on this WIT with "failed to get
    # path metadata"; componentize-js itself works.
    "$tools/npm/node_modules/.bin/componentize-js" "$here/javascript/plugin.js" \
        --wit "$wit" --world-name dm-plugin -d http fetch-event -o "$1" >/dev/null
}

build_c() {
    local core
    core="$(mktemp "$out/c-core.XXXXXX.wasm")"
    # A reactor: no main(), the host calls the exports. Debug info is stripped at link time;
    # the component-type section comes from the generated dm_plugin_component_type.o.
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
        -Wno-unused-parameter -Wl,--strip-debug -I "$here/c/gen" -o "$core" \
        "$here/c/plugin.c" "$here/c/gen/dm_plugin.c" "$here/c/gen/dm_plugin_component_type.o"
    # `jco new` (wasm-tools' `component new`, shipped with jco) wraps the core module with
    # the WASI preview1-to-preview2 reactor adapter that jco bundles.
    "$tools/npm/node_modules/.bin/jco" new "$core" --wasi-reactor -o "$1" >/dev/null
    rm -f "$core"
}

build_one() {
    local lang="$1" hash cached dest start
    hash="$(input_hash "$lang")"
    cached="$out/cache/$lang-$hash.wasm"
    if [ ! -f "$cached" ]; then
        say "building $lang plugin"
        start=$(date +%s%N)
        rm -f "$out/cache/$lang-"*.wasm
        "build_$lang" "$cached.partial"
        mv "$cached.partial" "$cached"
        say "built $lang plugin in $(( ($(date +%s%N) - start) / 1000000 )) ms: $(stat -c %s "$cached") bytes"
    fi
    dest="$out/plugins/$lang"
    mkdir -p "$dest"
    # Replaced by rename, and only when changed, so a test reading the plugin directory while
    # another run of this script finishes never sees a partial file.
    if ! cmp -s "$here/$lang/manifest.toml" "$dest/manifest.toml"; then
        cp "$here/$lang/manifest.toml" "$dest/.manifest.toml.$$"
        mv -f "$dest/.manifest.toml.$$" "$dest/manifest.toml"
    fi
    if [ ! "$cached" -ef "$dest/$lang.wasm" ]; then
        ln -f "$cached" "$dest/.$lang.wasm.$$" 2>/dev/null || cp "$cached" "$dest/.$lang.wasm.$$"
        mv -f "$dest/.$lang.wasm.$$" "$dest/$lang.wasm"
    fi
}

if [ "$regen_c" = 1 ]; then
    regen_c_bindings
fi
check_c_bindings
ensure_python
ensure_npm
ensure_c
# The three builds are independent; componentize-py and componentize-js are mostly serial, so
# running them side by side roughly halves a cold build on two cores.
pids=()
for lang in "${LANGS[@]}"; do
    build_one "$lang" &
    pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
if [ "$failed" = 1 ]; then
    say "a plugin failed to build (see above)"
    exit 1
fi
echo "$out/plugins"
