//! The USP agent: configuration, persistence, built-in objects and the wiring that runs them.
//!
//! Layout:
//! - [`agent`]: [`agent::run`], the wiring, and the data-model actor.
//! - [`boot`]: start-up state: stored tables restored, or factory defaults applied; boot cause.
//! - [`builtin`]: the agent's own objects (`Device.`, `DeviceInfo.`, `LocalAgent.`, its
//!   trusted `Certificate.{i}`, `ControllerTrust.`, the MTP tables) as providers.
//! - [`control`]: the local control socket (framing shared with `uspctl`, the agent's server).
//! - [`config`]: `agent.toml`, typed, with documented defaults and environment overrides.
//! - [`factory_reset`]: the obuspa-compatible factory-reset text format (pure parser).
//! - [`messages`]: the USP message handlers, one file per message; entry point [`messages::handle`].
//! - [`notify`]: subscriptions and notifications (Notify, retries, Periodic!, Boot!).
//! - [`rbac`]: each message's access under the published ControllerTrust rules, and the
//!   roles a TLS peer's certificate holds.
//! - [`store`]: the SQLite store written once per committed message.

#![deny(missing_docs)]

pub mod agent;
pub mod boot;
pub mod builtin;
pub mod config;
pub mod control;
pub mod factory_reset;
pub mod messages;
pub mod notify;
pub mod rbac;
pub mod store;
