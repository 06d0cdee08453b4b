//! Integration tests of usp-mtp against real sockets and real brokers (mosquitto, RabbitMQ).
//! Brokers come from tests/services/install.sh; a missing broker fails the test.

#![allow(clippy::unwrap_used, reason = "tests")]

mod mqtt;
mod stomp;
mod support;
mod uds;
mod websocket;
