//! Plain serde configuration for every MTP. Field names follow the TR-181 parameters they come
//! from (`Device.MQTT.Client.{i}.`, `Device.STOMP.Connection.{i}.`, `Device.LocalAgent.MTP.{i}.`,
//! `Device.LocalAgent.Controller.{i}.MTP.{j}.`) so the agent can fill them from either its config
//! file or the data model. Defaults are the TR-181 defaults unless stated.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backoff::RetryPolicy;

/// Every MTP of the agent, and what they share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtpSettings {
    /// The agent's own Endpoint ID (`from_id` of Connect/Disconnect Records, `eid=`, CONNECT
    /// properties, UDS handshake).
    pub endpoint_id: String,
    /// Largest Record accepted, in bytes; bigger frames are dropped (default 1 MiB).
    #[serde(default = "default_max_record_size")]
    pub max_record_size: usize,
    /// The MTPs, each with a unique `name`.
    #[serde(default)]
    pub mtps: Vec<MtpConfig>,
}

fn default_max_record_size() -> usize {
    1 << 20
}

/// One MTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtpConfig {
    /// Unique name; [`crate::ReplyPath::mtp`] and [`crate::ControllerTarget`] refer to it.
    pub name: String,
    /// A disabled MTP is not started (`LocalAgent.MTP.{i}.Enable`; default true).
    #[serde(default = "yes")]
    pub enable: bool,
    /// What it speaks.
    #[serde(flatten)]
    pub transport: TransportConfig,
}

fn yes() -> bool {
    true
}

/// The transport of one MTP, tagged by `protocol`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "kebab-case")]
pub enum TransportConfig {
    /// An MQTT client.
    Mqtt(MqttConfig),
    /// A STOMP client.
    Stomp(StompConfig),
    /// A WebSocket server that controllers connect to.
    #[serde(rename = "websocket-server")]
    WebSocketServer(WsServerConfig),
    /// A WebSocket client session to one controller.
    #[serde(rename = "websocket-client")]
    WebSocketClient(WsClientConfig),
    /// A Unix domain socket.
    Uds(UdsConfig),
}

/// TLS material, from PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Trust store: CA certificates that peers' certificates must chain to. A server with a trust
    /// store requires a client certificate (R-MTP.1); a client without one trusts the Mozilla
    /// root CAs.
    pub ca_file: Option<PathBuf>,
    /// Our certificate chain (required for servers, optional client certificate for clients).
    pub cert_file: Option<PathBuf>,
    /// The private key for `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Name checked against the server's certificate instead of the host (clients only).
    pub server_name: Option<String>,
}

/// MQTT protocol version (`Device.MQTT.Client.{i}.ProtocolVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MqttVersion {
    /// MQTT 3.1.1.
    #[serde(rename = "3.1.1")]
    V3_1_1,
    /// MQTT 5.0 (default; the spec requires it, R-MQTT.1).
    #[serde(rename = "5.0")]
    #[default]
    V5,
}

/// A controller reached over an MQTT MTP (`Controller.{i}.MTP.{j}.MQTT.`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttController {
    /// The controller's Endpoint ID (`to_id` of the MQTTConnect record).
    pub endpoint_id: String,
    /// The controller's topic: MQTTConnect, notifications, and responses to requests that carry
    /// no reply-to.
    pub topic: String,
}

/// `Device.MQTT.Client.{i}.` plus the agent-side `LocalAgent.MTP.{i}.MQTT.` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `BrokerAddress`.
    pub broker_address: String,
    /// `BrokerPort` (default 1883).
    #[serde(default = "default_mqtt_port")]
    pub broker_port: u16,
    /// `ProtocolVersion` (default 5.0).
    #[serde(default)]
    pub protocol_version: MqttVersion,
    /// TLS settings; `None` is `TransportProtocol` TCP/IP, `Some` is TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `ClientID`; empty means: MQTT 5 lets the broker assign one (R-MQTT.9), 3.1.1 uses the
    /// Endpoint ID.
    #[serde(default)]
    pub client_id: String,
    /// `Username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `Password`.
    #[serde(default)]
    pub password: Option<String>,
    /// `KeepAliveTime`, seconds (default 60).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u16,
    /// `ConnectRetryTime`, seconds (default 5).
    #[serde(default = "default_mqtt_retry_time")]
    pub connect_retry_time: u32,
    /// `ConnectRetryIntervalMultiplier`, thousandths (default 2000).
    #[serde(default = "default_multiplier")]
    pub connect_retry_interval_multiplier: u32,
    /// `ConnectRetryMaxInterval`, seconds (default 30720).
    #[serde(default = "default_max_interval")]
    pub connect_retry_max_interval: u32,
    /// Enabled `Subscription.{i}.Topic` values.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// `LocalAgent.MTP.{i}.MQTT.ResponseTopicConfigured`: the agent's reply-to topic when the
    /// broker assigns none.
    #[serde(default)]
    pub response_topic: Option<String>,
    /// `LocalAgent.MTP.{i}.MQTT.PublishQoS` (0..=2; default 0, as obuspa: USP answers its own
    /// requests, and a QoS 1 answer makes the broker send a PUBACK that a stock broker then
    /// holds the next request behind until our delayed ACK; R-MQTT.20 requires 0 and 1).
    #[serde(default = "default_qos")]
    pub publish_qos: u8,
    /// Controllers reached through this client.
    #[serde(default)]
    pub controllers: Vec<MqttController>,
}

fn default_mqtt_port() -> u16 {
    1883
}
fn default_keep_alive() -> u16 {
    60
}
fn default_mqtt_retry_time() -> u32 {
    5
}
fn default_multiplier() -> u32 {
    2000
}
fn default_max_interval() -> u32 {
    30720
}
fn default_qos() -> u8 {
    0
}

impl MqttConfig {
    /// The reconnect policy from the `ConnectRetry*` values.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::Exponential {
            initial_secs: self.connect_retry_time,
            multiplier: self.connect_retry_interval_multiplier,
            max_secs: self.connect_retry_max_interval,
            first_from_zero: false,
        }
    }
}

/// A controller reached over a STOMP MTP (`Controller.{i}.MTP.{j}.STOMP.`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StompController {
    /// The controller's Endpoint ID.
    pub endpoint_id: String,
    /// The controller's destination.
    pub destination: String,
}

/// `Device.STOMP.Connection.{i}.` plus `LocalAgent.MTP.{i}.STOMP.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StompConfig {
    /// `Host`.
    pub host: String,
    /// `Port` (default 61613).
    #[serde(default = "default_stomp_port")]
    pub port: u16,
    /// `Username` (`login` header).
    #[serde(default)]
    pub username: Option<String>,
    /// `Password` (`passcode` header).
    #[serde(default)]
    pub password: Option<String>,
    /// `VirtualHost` (`host` header); defaults to `host`.
    #[serde(default)]
    pub virtual_host: Option<String>,
    /// `EnableHeartbeats` (default true).
    #[serde(default = "yes")]
    pub enable_heartbeats: bool,
    /// `OutgoingHeartbeat`, ms (default 30000).
    #[serde(default = "default_heartbeat")]
    pub outgoing_heartbeat: u32,
    /// `IncomingHeartbeat`, ms (default 30000).
    #[serde(default = "default_heartbeat")]
    pub incoming_heartbeat: u32,
    /// TLS settings; `None` is `EnableEncryption` false.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `LocalAgent.MTP.{i}.STOMP.Destination`, used when the broker sends no `subscribe-dest`.
    #[serde(default)]
    pub destination: Option<String>,
    /// `ServerRetryInitialInterval`, seconds (default 60).
    #[serde(default = "default_stomp_retry")]
    pub server_retry_initial_interval: u32,
    /// `ServerRetryIntervalMultiplier`, thousandths (default 2000).
    #[serde(default = "default_multiplier")]
    pub server_retry_interval_multiplier: u32,
    /// `ServerRetryMaxInterval`, seconds (default 30720).
    #[serde(default = "default_max_interval")]
    pub server_retry_max_interval: u32,
    /// Controllers reached through this connection.
    #[serde(default)]
    pub controllers: Vec<StompController>,
}

fn default_stomp_port() -> u16 {
    61613
}
fn default_heartbeat() -> u32 {
    30000
}
fn default_stomp_retry() -> u32 {
    60
}

impl StompConfig {
    /// The reconnect policy from the `ServerRetry*` values.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::Exponential {
            initial_secs: self.server_retry_initial_interval,
            multiplier: self.server_retry_interval_multiplier,
            max_secs: self.server_retry_max_interval,
            first_from_zero: true,
        }
    }
}

/// `LocalAgent.MTP.{i}.WebSocket.`: the agent as WebSocket server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsServerConfig {
    /// Address to listen on (`Interfaces`; default 127.0.0.1).
    #[serde(default = "default_bind")]
    pub bind: String,
    /// `Port` (default 8443; 0 picks a free port, reported in [`crate::LinkInfo::listening`]).
    #[serde(default = "default_ws_port")]
    pub port: u16,
    /// `Path` (default `/usp`).
    #[serde(default = "default_ws_path")]
    pub path: String,
    /// TLS settings (`EnableEncryption`); a server needs `cert_file` and `key_file`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `KeepAliveInterval`, seconds between Pings (default 60; 0 disables).
    #[serde(default = "default_ws_keep_alive")]
    pub keep_alive_secs: u32,
}

fn default_bind() -> String {
    "127.0.0.1".to_string()
}
fn default_ws_port() -> u16 {
    8443
}
fn default_ws_path() -> String {
    "/usp".to_string()
}
fn default_ws_keep_alive() -> u32 {
    60
}

/// `Controller.{i}.MTP.{j}.WebSocket.`: the agent as WebSocket client of one controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsClientConfig {
    /// `Host`.
    pub host: String,
    /// `Port`.
    pub port: u16,
    /// `Path` (default `/usp`).
    #[serde(default = "default_ws_path")]
    pub path: String,
    /// TLS settings (`EnableEncryption`): `Some` connects with `wss://`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The controller's Endpoint ID (`to_id` of the WebSocketConnect record).
    pub controller_endpoint_id: String,
    /// `KeepAliveInterval`, seconds between Pings (default 60; 0 disables).
    #[serde(default = "default_ws_keep_alive")]
    pub keep_alive_secs: u32,
    /// `SessionRetryMinimumWaitInterval`, seconds (default 5).
    #[serde(default = "default_mqtt_retry_time")]
    pub session_retry_minimum_wait_interval: u32,
    /// `SessionRetryIntervalMultiplier`, thousandths (default 2000).
    #[serde(default = "default_multiplier")]
    pub session_retry_interval_multiplier: u32,
}

impl WsClientConfig {
    /// The reconnect policy from the `SessionRetry*` values.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::Exponential {
            initial_secs: self.session_retry_minimum_wait_interval,
            multiplier: self.session_retry_interval_multiplier,
            max_secs: u32::MAX,
            first_from_zero: false,
        }
    }
}

/// Whether the UDS MTP listens or connects (`Device.UnixDomainSockets.UnixDomainSocket.{i}.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum UdsMode {
    /// Listen on `path` (default).
    #[default]
    Listen,
    /// Connect to `path`, reconnecting after a random 1–5 s.
    Connect,
}

/// A Unix domain socket MTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdsConfig {
    /// Socket path (`UnixDomainSocket.{i}.Path`).
    pub path: PathBuf,
    /// `Mode` (default Listen).
    #[serde(default)]
    pub mode: UdsMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_defaults_parses() {
        let text = r#"
            endpoint_id = "proto::agent"
            [[mtps]]
            name = "mqtt-1"
            protocol = "mqtt"
            broker_address = "127.0.0.1"
            protocol_version = "3.1.1"
            [[mtps.controllers]]
            endpoint_id = "proto::ctrl"
            topic = "usp/controller"
            [[mtps]]
            name = "ws"
            protocol = "websocket-server"
            port = 0
            [[mtps]]
            name = "uds"
            protocol = "uds"
            path = "/tmp/usp.sock"
        "#;
        let s: MtpSettings = toml::from_str(text).unwrap();
        assert_eq!(s.max_record_size, 1 << 20);
        let TransportConfig::Mqtt(m) = &s.mtps[0].transport else {
            panic!("not mqtt")
        };
        assert_eq!(m.broker_port, 1883);
        assert_eq!(m.protocol_version, MqttVersion::V3_1_1);
        assert_eq!(m.retry_policy(), RetryPolicy::MQTT_DEFAULT);
        assert!(s.mtps[1].enable);
        let TransportConfig::WebSocketServer(w) = &s.mtps[1].transport else {
            panic!("not ws")
        };
        assert_eq!(w.path, "/usp");
        assert_eq!(
            s.mtps[2].transport,
            TransportConfig::Uds(UdsConfig {
                path: "/tmp/usp.sock".into(),
                mode: UdsMode::Listen
            })
        );
    }

    #[test]
    fn unknown_protocol_is_rejected() {
        let text = r#"
            endpoint_id = "proto::agent"
            [[mtps]]
            name = "x"
            protocol = "coap"
        "#;
        assert!(toml::from_str::<MtpSettings>(text).is_err());
    }
}
