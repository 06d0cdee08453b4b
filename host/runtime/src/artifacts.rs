//! Components built from this repository by the crate's build script: the first-party plugins
//! (as a directory [`crate::PluginHost::load_dir`] reads) and the misbehaving guests of the
//! fault tests. Paths point into the build's target directory.

/// Directory of the first-party plugins: `<name>/manifest.toml` + `<name>/<name>.wasm` for
/// `device-info`, `network` and `time`.
pub const BUNDLED_PLUGINS_DIR: &str = env!("USP_BUNDLED_PLUGINS_DIR");

/// The fault-test guest that traps, panics, loops, exhausts memory, recurses or returns a huge
/// value on request (`tests/guests/faulty`).
pub const FAULTY_GUEST: &str = env!("USP_TEST_GUEST_FAULTY");

/// The guest that imports an interface no plugin may be granted (`tests/guests/ungranted`).
pub const UNGRANTED_GUEST: &str = env!("USP_TEST_GUEST_UNGRANTED");

/// A well-behaved guest serving `Device.X_TEST_Bench.` with 100 parameters `P1`..`P100`, for
/// benchmarks (`tests/guests/wide`).
pub const WIDE_GUEST: &str = env!("USP_TEST_GUEST_WIDE");
