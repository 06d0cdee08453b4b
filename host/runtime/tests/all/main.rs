//! The runtime's integration tests, one binary (each test binary links wasmtime: one link
//! instead of four). Every test drives real components built from this repository.
//!
//! - `common`: the host configuration and plugin directories the tests share.
//! - `faults`: fault isolation with the misbehaving guests of `tests/guests`.
//! - `lifecycle`: load, replace, unload, remove data; the compile cache.
//! - `plugins`: the bundled first-party plugins against this machine's `/proc` and `/sys`.
//! - `other_languages`: the Python, JavaScript and C example plugins.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;
mod faults;
mod lifecycle;
mod other_languages;
mod plugins;
