//! The WebAssembly plugin runtime: runs `usp:dm` components as data-model providers.
//!
//! Layout:
//! - [`host`]: [`PluginHost`], the engine, load/unload/replace and plugin status.
//! - [`provider`]: [`PluginProvider`], `usp_dm::Provider` for one loaded component, with
//!   deadlines, failure marking and restart with backoff.
//! - [`manifest`]: the plugin manifest (claims, grants, limits).
//! - [`config`]: [`HostConfig`], the approval policy and how grants are approved.
//! - [`cache`]: the out-of-process compile cache ([`compile_to_cache`]).
//! - [`schema`]: `describe()` output to `usp_dm::Schema`, claim and TR-181 checks.
//! - `bindings`: generated bindings and the host imports; `engine`: engine settings and the
//!   epoch ticker; [`kv`]: the per-plugin key-value store; [`error`]: [`RuntimeError`] and
//!   the mapping to USP error codes.
//! - [`artifacts`]: the components built from this repository (bundled plugins, test guests).

#![deny(missing_docs)]

pub mod artifacts;
mod bindings;
pub mod cache;
pub mod config;
mod engine;
pub mod error;
pub mod host;
pub mod kv;
pub mod manifest;
pub mod provider;
pub mod schema;

pub use cache::compile_to_cache;
pub use config::{ApprovalPolicy, Backoff, CompilerCommand, HostConfig};
pub use engine::EPOCH_TICK;
pub use error::RuntimeError;
pub use host::PluginHost;
pub use manifest::{Grants, Limits, Manifest, Preopen};
pub use provider::{PluginProvider, PluginStatus};
