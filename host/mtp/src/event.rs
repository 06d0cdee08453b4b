//! The boundary with the agent: what transports report ([`MtpEvent`], [`InboundRecord`]), the
//! opaque [`ReplyPath`] a response travels back on, and the [`ControllerTarget`] a notification
//! is addressed to.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Which binding an MTP speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// MQTT 3.1.1 or 5.0.
    Mqtt,
    /// STOMP 1.2.
    Stomp,
    /// WebSocket, agent as client or server.
    WebSocket,
    /// Unix domain socket.
    Uds,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Mqtt => "MQTT",
            Protocol::Stomp => "STOMP",
            Protocol::WebSocket => "WebSocket",
            Protocol::Uds => "UDS",
        })
    }
}

/// Where a Record came from, so its response goes back the same way. The agent hands it back
/// unchanged to [`crate::Mtps::send`]; its contents are private to this crate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplyPath {
    pub(crate) mtp: Arc<str>,
    pub(crate) dest: Dest,
}

impl ReplyPath {
    /// Name of the configured MTP the Record arrived on.
    pub fn mtp(&self) -> &str {
        &self.mtp
    }

    /// The binding the Record arrived over.
    pub fn protocol(&self) -> Protocol {
        match self.dest {
            Dest::Topic(_) => Protocol::Mqtt,
            Dest::Destination(_) => Protocol::Stomp,
            Dest::WsSession(_) | Dest::WsPeer(_) => Protocol::WebSocket,
            Dest::UdsConnection(_) | Dest::UdsPeer(_) => Protocol::Uds,
        }
    }
}

impl fmt::Display for ReplyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dest {
            Dest::Topic(t) => write!(f, "{} topic {t}", self.mtp),
            Dest::Destination(d) => write!(f, "{} destination {d}", self.mtp),
            Dest::WsSession(id) => write!(f, "{} session {id}", self.mtp),
            Dest::UdsConnection(id) => write!(f, "{} connection {id}", self.mtp),
            Dest::WsPeer(eid) | Dest::UdsPeer(eid) => write!(f, "{} peer {eid}", self.mtp),
        }
    }
}

/// Where inside one MTP a Record goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Dest {
    /// An MQTT topic.
    Topic(String),
    /// A STOMP destination.
    Destination(String),
    /// One WebSocket session, by the id the MTP gave it.
    WsSession(u64),
    /// The WebSocket session whose peer has this Endpoint ID.
    WsPeer(String),
    /// One UDS connection, by the id the MTP gave it.
    UdsConnection(u64),
    /// The UDS connection whose peer announced this Endpoint ID in its handshake.
    UdsPeer(String),
}

/// Where a notification for a controller goes: one of the controller's MTPs
/// (`Device.LocalAgent.Controller.{i}.MTP.{j}.`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "kebab-case")]
pub enum ControllerTarget {
    /// Publish on `topic` through the agent's MQTT MTP `mtp` (`Controller.{i}.MTP.{j}.MQTT.Topic`).
    Mqtt {
        /// Name of the agent's MQTT MTP.
        mtp: String,
        /// The controller's topic.
        topic: String,
    },
    /// SEND to `destination` through the agent's STOMP MTP `mtp`.
    Stomp {
        /// Name of the agent's STOMP MTP.
        mtp: String,
        /// The controller's destination.
        destination: String,
    },
    /// Through the WebSocket MTP `mtp`: a client MTP's own session to its controller, or the
    /// session a server MTP holds with the peer whose Endpoint ID is `endpoint_id`.
    #[serde(rename = "websocket")]
    WebSocket {
        /// Name of the agent's WebSocket MTP (client or server).
        mtp: String,
        /// The controller's Endpoint ID.
        endpoint_id: String,
    },
    /// Through the UDS MTP `mtp`, on the connection whose peer announced `endpoint_id`.
    Uds {
        /// Name of the agent's UDS MTP.
        mtp: String,
        /// The controller's Endpoint ID.
        endpoint_id: String,
    },
}

impl ControllerTarget {
    /// Name of the agent MTP this target goes through.
    pub fn mtp(&self) -> &str {
        match self {
            ControllerTarget::Mqtt { mtp, .. }
            | ControllerTarget::Stomp { mtp, .. }
            | ControllerTarget::WebSocket { mtp, .. }
            | ControllerTarget::Uds { mtp, .. } => mtp,
        }
    }

    pub(crate) fn dest(&self) -> Dest {
        match self {
            ControllerTarget::Mqtt { topic, .. } => Dest::Topic(topic.clone()),
            ControllerTarget::Stomp { destination, .. } => Dest::Destination(destination.clone()),
            ControllerTarget::WebSocket { endpoint_id, .. } => Dest::WsPeer(endpoint_id.clone()),
            ControllerTarget::Uds { endpoint_id, .. } => Dest::UdsPeer(endpoint_id.clone()),
        }
    }
}

/// The certificate chain a TLS peer presented, with the identities R-SEC.0a compares `from_id`
/// to. The chain lets the agent find the first certificate of it that a
/// `ControllerTrust.Credential.{i}` names, from the leaf up (R-SEC.25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The presented chain, DER, end-entity certificate first, as the peer sent it (rustls
    /// verified that it chains to the trust store; the trust anchor itself is usually absent).
    pub chain: Vec<Vec<u8>>,
    /// subjectAltName URIs (`urn:bbf:usp:id:...`) and DNS names, in certificate order.
    pub identities: Vec<String>,
}

impl PeerCertificate {
    /// The end-entity certificate, DER (empty if the peer sent no certificate at all, which
    /// rustls does not let through).
    pub fn leaf(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }

    /// Whether `endpoint_id` is named by this certificate: the URI
    /// `urn:bbf:usp:id:<endpoint_id>`, or for `fqdn::<name>` the DNS name `<name>` (R-SEC.0a).
    pub fn names_endpoint(&self, endpoint_id: &str) -> bool {
        let urn = format!("urn:bbf:usp:id:{endpoint_id}");
        let fqdn = endpoint_id.strip_prefix("fqdn::");
        self.identities
            .iter()
            .any(|id| id == &urn || fqdn.is_some_and(|name| id.eq_ignore_ascii_case(name)))
    }
}

/// Who the TLS peer of a connection is, as far as authentication goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAuth {
    /// No TLS, TLS without a peer certificate, or UDS.
    None,
    /// The controller itself presented this certificate (WebSocket, either role).
    Endpoint(PeerCertificate),
    /// The MQTT or STOMP broker presented this certificate; it says nothing about the
    /// controller unless the broker is trusted (R-SEC.4a).
    Broker(PeerCertificate),
}

/// A Record as it arrived, with the way back.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    /// The Record, as received (already checked to decode as a `usp_record.Record`).
    pub bytes: Vec<u8>,
    /// Hand this back to [`crate::Mtps::send`] with the response.
    pub reply: ReplyPath,
    /// The TLS peer of the connection the Record came over.
    pub peer: PeerAuth,
}

/// What the agent learns once a link is up (for `Device.MQTT.Client.{i}.` / `STOMP.` status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The MQTT ClientId in use (the broker-assigned one when none was configured, R-MQTT.9).
    pub client_id: Option<String>,
    /// The MQTT topic or STOMP destination the agent subscribed to and announces as reply-to.
    pub reply_to: Option<String>,
    /// MQTT 5 CONNACK Response Information, if the broker sent it.
    pub response_information: Option<String>,
    /// The STOMP `subscribe-dest` header, if the broker sent it.
    pub destination_from_server: Option<String>,
    /// The local address a server MTP listens on (WebSocket `host:port`, UDS path).
    pub listening: Option<String>,
}

/// Everything the transports tell the agent, in arrival order per MTP.
#[derive(Debug, Clone)]
pub enum MtpEvent {
    /// A Record arrived.
    Record(InboundRecord),
    /// A client MTP's connection (broker or controller) is up and its Connect Records are sent,
    /// or a server MTP is listening.
    Up {
        /// Name of the MTP.
        mtp: String,
        /// What was negotiated.
        info: LinkInfo,
    },
    /// A client MTP's connection went down; it retries with backoff unless it was stopped.
    Down {
        /// Name of the MTP.
        mtp: String,
        /// Why.
        reason: String,
    },
    /// A peer opened a session to a server MTP (WebSocket server, UDS) and identified itself.
    PeerConnected {
        /// Name of the MTP.
        mtp: String,
        /// The peer's Endpoint ID (`eid=` query, UDS handshake).
        endpoint_id: String,
    },
    /// A server MTP's session with a peer ended.
    PeerDisconnected {
        /// Name of the MTP.
        mtp: String,
        /// The peer's Endpoint ID.
        endpoint_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(ids: &[&str]) -> PeerCertificate {
        PeerCertificate {
            chain: Vec::new(),
            identities: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn certificate_names_endpoint_by_urn() {
        let c = cert(&["urn:bbf:usp:id:proto::ctrl", "other.example"]);
        assert!(c.names_endpoint("proto::ctrl"));
        assert!(!c.names_endpoint("proto::other"));
    }

    #[test]
    fn fqdn_endpoint_matches_dns_name() {
        let c = cert(&["Ctrl.Example.org"]);
        assert!(c.names_endpoint("fqdn::ctrl.example.org"));
        assert!(!c.names_endpoint("proto::ctrl.example.org"));
    }

    #[test]
    fn target_routes_to_named_mtp() {
        let t = ControllerTarget::Mqtt {
            mtp: "mqtt-1".into(),
            topic: "usp/c".into(),
        };
        assert_eq!(t.mtp(), "mqtt-1");
        assert_eq!(t.dest(), Dest::Topic("usp/c".into()));
    }
}
