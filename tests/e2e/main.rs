//! End-to-end tests: the real `usp-agent` binary on a temporary state directory, driven through
//! the real `uspctl` over the control socket.
//!
//! Layout:
//! - `support`: the [`support::Agent`] harness (start, wait, restart, run uspctl).
//! - `cli`: every uspctl command against a running agent, output forms and error codes.
//! - `persistence`: restart, factory-reset file, corrupt database, FactoryReset()/Reboot().
//! - `mtp`: the MTPs (WebSocket, UDS, MQTT through mosquitto) with real controllers; faults.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

mod cli;
mod mtp;
mod persistence;
mod support;
