//! End-to-end tests: the real `usp-agent` binary on a temporary state directory, driven through
//! `uspctl` over the control socket (run in this process through `usp_controller::cli::run`, the
//! program of the `uspctl` binary: see `support`).
//!
//! Layout:
//! - `support`: the [`support::Agent`] harness (start, wait, restart, run uspctl).
//! - `cli`: every uspctl command against a running agent, output forms and error codes.
//! - `persistence`: restart, factory-reset file, corrupt database, FactoryReset()/Reboot().
//! - `remote`: uspctl as a Controller over the WebSocket MTP; unknown endpoints.
//! - `mtp`: the MTPs (WebSocket, UDS, MQTT through mosquitto) with real controllers; faults.
//! - `access_control`: RBAC over the WebSocket MTP (TP-469 2.16, 2.18).
//! - `certificate_roles`: roles granted by certificate (`ControllerTrust.Credential.{i}`) over
//!   a TLS WebSocket, and `Device.LocalAgent.Certificate.{i}.GetFingerprint()`.
//! - `notifications`: subscriptions, Notify promptness and retry timing (TP-469 1.54, 1.57).
//! - `onboarding`: `Controller.{i}.SendOnBoardRequest()` and its retries (TP-469 1.60).
//! - `subscriptions`: `Periodic!` timing, subscriptions across a restart, ObjectDeletion of
//!   nested instances.
//! - `fault`: broker restarts, kill -9 durability, slow controllers, request floods.
//! - `obuspa_reset`: obuspa factory-reset files as they are, and the Endpoint ID precedence.
//! - `typed_values`: every value of `Device.` is a value of its GetSupportedDM type.
//! - `tp469`: TP-469 cases, each named by its number, over MQTT through a stock mosquitto.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

mod access_control;
mod certificate_roles;
mod cli;
mod fault;
mod mtp;
mod notifications;
mod obuspa_reset;
mod onboarding;
mod persistence;
mod remote;
mod subscriptions;
mod support;
mod tp469;
mod typed_values;
