//! Builds the guest components (first-party plugins and the fault-test guests) for
//! `wasm32-wasip2` with a nested cargo, so a plain `cargo build`/`cargo test` produces them
//! with no manual step. The plugins are assembled into a directory holding, per plugin,
//! `<name>/manifest.toml` and `<name>/<name>.wasm` (what `PluginHost::load_dir` reads); both
//! locations are handed to the crate through `env!`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [&str; 3] = ["device-info", "network", "time"];
const TEST_GUESTS: [&str; 3] = ["faulty", "ungranted", "wide"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // <target>/<profile>/build/usp-runtime-<hash>/out: one guest target directory per outer
    // target directory, shared by build, test and clippy runs so guests compile once.
    let guest_target = out_dir.ancestors().nth(4).map_or_else(
        || out_dir.join("wasm-guests"),
        |target| target.join("wasm-guests"),
    );

    for watched in [
        "wit",
        "sdk/src",
        "sdk/Cargo.toml",
        "sdk/Cargo.lock",
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "tests/guests/Cargo.toml",
        "tests/guests/Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for plugin in PLUGINS {
        for watched in ["src", "Cargo.toml", "manifest.toml"] {
            println!(
                "cargo:rerun-if-changed={}",
                root.join("plugins").join(plugin).join(watched).display()
            );
        }
    }
    for guest in TEST_GUESTS {
        for watched in ["src", "Cargo.toml"] {
            println!(
                "cargo:rerun-if-changed={}",
                root.join("tests/guests")
                    .join(guest)
                    .join(watched)
                    .display()
            );
        }
    }

    ensure_guest_target();
    build_workspace(&root.join("plugins/Cargo.toml"), &guest_target);
    build_workspace(&root.join("tests/guests/Cargo.toml"), &guest_target);
    let wasm_dir = guest_target.join(GUEST_TARGET).join("release");

    let bundle = out_dir.join("plugins");
    for plugin in PLUGINS {
        let dir = bundle.join(plugin);
        fs::create_dir_all(&dir).expect("create plugin bundle directory");
        fs::copy(
            root.join("plugins").join(plugin).join("manifest.toml"),
            dir.join("manifest.toml"),
        )
        .expect("copy plugin manifest");
        let built = wasm_dir.join(format!("usp_plugin_{}.wasm", plugin.replace('-', "_")));
        fs::copy(&built, dir.join(format!("{plugin}.wasm")))
            .unwrap_or_else(|err| panic!("copy {}: {err}", built.display()));
    }
    println!(
        "cargo:rustc-env=USP_BUNDLED_PLUGINS_DIR={}",
        bundle.display()
    );
    for guest in TEST_GUESTS {
        let built = wasm_dir.join(format!("usp_test_guest_{guest}.wasm"));
        println!(
            "cargo:rustc-env=USP_TEST_GUEST_{}={}",
            guest.to_uppercase(),
            built.display()
        );
    }
}

const GUEST_TARGET: &str = "wasm32-wasip2";

/// A toolchain that came preinstalled ignores `rust-toolchain.toml`'s `targets`, so the guest
/// target can be missing even though the channel matches; without it the nested build fails
/// deep inside with "can't find crate for `core`". Adds it through rustup when rustup manages
/// this toolchain, and otherwise stops with the one command that fixes it.
fn ensure_guest_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = |sysroot: &Path| sysroot.join("lib/rustlib").join(GUEST_TARGET).is_dir();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", GUEST_TARGET]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        add.arg("--toolchain").arg(toolchain);
    }
    let added = add.status().is_ok_and(|status| status.success());
    if !added || !sysroot.as_deref().is_some_and(installed) {
        panic!(
            "the {GUEST_TARGET} target is not installed for this toolchain and rustup could not \
             add it; run `rustup target add {GUEST_TARGET}` (or install your distribution's \
             {GUEST_TARGET} standard library) and build again"
        );
    }
}

fn build_workspace(manifest: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--manifest-path",
        ])
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        // The outer build's flags and wrappers (coverage instrumentation, clippy's wrapper,
        // a native target-cpu) break or slow a wasm32 build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .unwrap_or_else(|err| panic!("run cargo for {}: {err}", manifest.display()));
    assert!(
        status.success(),
        "building guests of {} failed",
        manifest.display()
    );
}
