//! The message transports end to end: the real `usp-agent` binary with its WebSocket server,
//! UDS, MQTT and STOMP MTPs (a real mosquitto and RabbitMQ started by the test), driven by controllers over real
//! sockets. Covers correct answers on each MTP and the faults of issue 3: malformed and
//! oversize Records, wrong `to_id`, unknown `from_id`, a broker down at start or restarted
//! mid-run, and a TLS certificate that does not name the `from_id`.
//!
//! Layout:
//! - `harness`: the agent process and its configuration, certificates; the brokers (mosquitto,
//!   RabbitMQ with its STOMP plugin) from `usp-testkit`.
//! - `peer`: links that send arbitrary bytes over WebSocket, UDS and MQTT.
//! - `expect`: what a correct answer looks like.
//! - `serving`: a controller on each MTP; the shipped example configuration.
//! - `faults`: bad Records on every MTP.
//! - `broker`: the broker down at start, and killed and restarted mid-run.
//! - `latency`: sequential requests through a stock broker are not held by delayed ACKs.
//! - `tls`: R-SEC.0a.
//! - `datamodel`: the MTP configuration as data, changed at run time by a Controller.
//! - `interop`: the third-party usp-js Controller library (npm) on every transport it has, and
//!   the agent's Records decoded by the independent `rusp-lib` codec.

mod broker;
mod datamodel;
pub(crate) mod expect;
mod faults;
pub(crate) mod harness;
mod interop;
mod latency;
pub(crate) mod peer;
mod serving;
mod tls;
