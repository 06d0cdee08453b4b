//! The controller side of USP: what talks to an agent rather than being one. usp-agent does not
//! depend on this crate and this crate does not depend on usp-agent; both share usp-codec
//! (Records and Messages) and usp-mtp (the transports' protocol pieces and the control-socket
//! framing).
//!
//! Start reading at [`ControllerClient`]: a session with one agent over WebSocket, MQTT or
//! STOMP that sends requests, matches answers by msg_id and hands over the agent's Notify
//! messages and Connect records.
//!
//! Layout:
//! - [`client`]: the [`ControllerClient`] and its transports (usp-bench, uspctl, the tests).
//! - [`cli`]: `uspctl`, the command line (the binary is `src/bin/uspctl.rs`).

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "unit tests"))]

pub mod cli;
pub mod client;

pub use client::{
    AgentEvent, ControllerClient, ControllerError, ControllerOptions, Endpoint, LinkError,
    MqttEndpoint, MqttLinkError, MqttVersion, StompEndpoint, StompLinkError, WsEndpoint, WsError,
};
