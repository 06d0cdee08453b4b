//! One MQTT client for both protocol versions, over rumqttc: the agent's MQTT MTP and the
//! controller client (usp-controller) both talk through it. It owns the choice between rumqttc's
//! 3.1.1 and 5.0 clients: [`connect`] builds either from version-independent [`Options`], a
//! [`Client`] subscribes, publishes and disconnects on either, and [`Loop::poll`] maps either
//! version's events into one [`Incoming`]. The loop also owns the quick-ACK wiring (see
//! [`super::quickack`]): it finds the socket after each CONNACK, re-arms it after each packet
//! we do not answer, and forgets it when the connection fails. Nothing here knows USP.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{TlsConfiguration, Transport};

use super::quickack::{FdSnapshot, QuickAck, QuickAckError};
use crate::config::MqttVersion;

/// Unacknowledged QoS 1 PUBLISHes at a time (MQTT 5; the broker may lower it further): unset,
/// rumqttc sizes its in-flight table for 65 535 PUBLISHes (13 MB).
pub const MAX_INFLIGHT: u16 = 256;

/// Why the connection or a request failed, per rumqttc version.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The MQTT 3.1.1 connection failed.
    #[error("{0}")]
    Connection(#[source] Box<rumqttc::ConnectionError>),
    /// The MQTT 5 connection failed.
    #[error("{0}")]
    Connection5(#[source] Box<rumqttc::v5::ConnectionError>),
    /// rumqttc's MQTT 3.1.1 client did not take the request.
    #[error("{0}")]
    Client(#[source] Box<rumqttc::ClientError>),
    /// rumqttc's MQTT 5 client did not take the request.
    #[error("{0}")]
    Client5(#[source] Box<rumqttc::v5::ClientError>),
}

impl From<rumqttc::ClientError> for AdapterError {
    fn from(err: rumqttc::ClientError) -> Self {
        AdapterError::Client(Box::new(err))
    }
}

impl From<rumqttc::v5::ClientError> for AdapterError {
    fn from(err: rumqttc::v5::ClientError) -> Self {
        AdapterError::Client5(Box::new(err))
    }
}

/// What a connection is opened with; the fields marked 5.0 are not sent under 3.1.1.
#[derive(Debug, Clone)]
pub struct Options {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT 5.0 or 3.1.1.
    pub version: MqttVersion,
    /// The ClientId; empty asks a 5.0 broker to assign one.
    pub client_id: String,
    /// The Keep Alive interval.
    pub keep_alive: Duration,
    /// Clean Start (5.0) or Clean Session (3.1.1).
    pub clean_start: bool,
    /// User Name and Password (an empty password when only a user name is configured).
    pub credentials: Option<(String, String)>,
    /// TLS configuration; `None` is plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The largest packet: told to the broker as Maximum Packet Size (5.0); under 3.1.1 the
    /// largest packet we send.
    pub max_packet_size: usize,
    /// 3.1.1 only: the largest packet read; bigger ones fail the connection.
    pub v311_max_incoming: usize,
    /// 5.0: CONNECT user properties.
    pub user_properties: Vec<(String, String)>,
    /// 5.0: ask for Response Information in CONNACK.
    pub request_response_info: bool,
    /// 5.0: unacknowledged QoS 1 PUBLISHes at a time (the broker may lower it further).
    pub max_inflight: u16,
    /// Requests buffered between the [`Client`] and the [`Loop`].
    pub request_capacity: usize,
}

/// What the callers need from an event, for either version.
#[derive(Debug)]
pub enum Incoming {
    /// CONNACK.
    ConnAck {
        /// The return (reason) code when the broker refused the connection.
        refused: Option<String>,
        /// 5.0: the Assigned Client Identifier.
        assigned_client_id: Option<String>,
        /// 5.0: the Response Information.
        response_information: Option<String>,
        /// 5.0: the values of the `subscribe-topic` user properties.
        subscribe_topics: Vec<String>,
        /// Why TCP quick ACKs are off on this connection, if they are.
        quick_ack: Option<QuickAckError>,
    },
    /// SUBACK: whether each filter was granted, in order.
    SubAck(Vec<bool>),
    /// A PUBLISH to us.
    Publish {
        /// The topic it was published to.
        topic: String,
        /// The payload.
        payload: Bytes,
        /// 5.0: the Response Topic property.
        response_topic: Option<String>,
        /// 5.0: the Content Type property.
        content_type: Option<String>,
    },
    /// 5.0: the broker sent DISCONNECT with this reason code.
    BrokerDisconnect(String),
    /// Our DISCONNECT went out.
    DisconnectSent,
    /// A packet we send nothing back for (PUBACK, PUBCOMP, PINGRESP); the quick ACK has been
    /// re-armed already.
    Unanswered,
    /// Anything else.
    Other,
}

/// The request side of a connection, for either version; cheap to clone.
#[derive(Clone)]
pub enum Client {
    /// MQTT 3.1.1.
    V4(rumqttc::AsyncClient),
    /// MQTT 5.0.
    V5(rumqttc::v5::AsyncClient),
}

/// Either version's event loop (boxed: they differ in size by half a kilobyte).
enum Events {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// The event side of a connection: rumqttc (re)connects inside [`Loop::poll`].
pub struct Loop {
    events: Events,
    port: u16,
    /// The sockets open before rumqttc's: it opens its socket on the first poll after a failure.
    before: FdSnapshot,
    /// Holds a duplicate of the event loop's socket: dropped as soon as that socket is.
    quickack: Option<QuickAck>,
}

/// 5.0 PUBLISH properties; both are left out under 3.1.1.
#[derive(Debug, Clone, Default)]
pub struct PublishProperties {
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Content Type.
    pub content_type: Option<String>,
}

fn qos(level: u8) -> (rumqttc::QoS, Q5) {
    match level {
        0 => (rumqttc::QoS::AtMostOnce, Q5::AtMostOnce),
        2 => (rumqttc::QoS::ExactlyOnce, Q5::ExactlyOnce),
        _ => (rumqttc::QoS::AtLeastOnce, Q5::AtLeastOnce),
    }
}

/// Records are small and each answer is awaited by its peer: Nagle's algorithm would hold every
/// Record back for the broker's delayed ACK (40 ms per request on Linux).
fn network_options() -> rumqttc::NetworkOptions {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

/// A new client and its event loop; nothing is sent before the first [`Loop::poll`].
pub fn connect(options: &Options) -> (Client, Loop) {
    let transport = match &options.tls {
        None => Transport::Tcp,
        Some(config) => Transport::tls_with_config(TlsConfiguration::Rustls(config.clone())),
    };
    let (client, events) = match options.version {
        MqttVersion::V3_1_1 => {
            let mut opts =
                rumqttc::MqttOptions::new(&options.client_id, &options.host, options.port);
            opts.set_keep_alive(options.keep_alive)
                .set_clean_session(options.clean_start)
                .set_max_packet_size(options.v311_max_incoming, options.max_packet_size)
                .set_request_channel_capacity(options.request_capacity)
                .set_transport(transport);
            if let Some((user, password)) = &options.credentials {
                opts.set_credentials(user, password);
            }
            let (c, mut l) = rumqttc::AsyncClient::new(opts, options.request_capacity);
            l.set_network_options(network_options());
            (Client::V4(c), Events::V4(Box::new(l)))
        }
        MqttVersion::V5 => {
            let mut opts =
                rumqttc::v5::MqttOptions::new(&options.client_id, &options.host, options.port);
            let mut props = p5::ConnectProperties::new();
            props.request_response_info = options.request_response_info.then_some(1);
            props.max_packet_size =
                Some(u32::try_from(options.max_packet_size).unwrap_or(u32::MAX));
            props.user_properties = options.user_properties.clone();
            opts.set_keep_alive(options.keep_alive)
                .set_clean_start(options.clean_start)
                .set_connect_properties(props)
                .set_request_channel_capacity(options.request_capacity)
                // Unset, rumqttc sizes its in-flight table for 65 535 PUBLISHes (13 MB).
                .set_outgoing_inflight_upper_limit(options.max_inflight)
                .set_network_options(network_options())
                .set_transport(transport);
            if let Some((user, password)) = &options.credentials {
                opts.set_credentials(user, password);
            }
            let (c, l) = rumqttc::v5::AsyncClient::new(opts, options.request_capacity);
            (Client::V5(c), Events::V5(Box::new(l)))
        }
    };
    let lp = Loop {
        events,
        port: options.port,
        before: FdSnapshot::take(),
        quickack: None,
    };
    (client, lp)
}

impl Client {
    /// Queues a SUBSCRIBE to `filters` without waiting (fails when the request buffer is full).
    pub fn try_subscribe(&self, filters: &[String], qos_level: u8) -> Result<(), AdapterError> {
        let (q4, q5) = qos(qos_level);
        match self {
            Client::V4(c) => c.try_subscribe_many(
                filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), q4)),
            )?,
            Client::V5(c) => {
                c.try_subscribe_many(filters.iter().map(|f| p5::Filter::new(f.clone(), q5)))?;
            }
        }
        Ok(())
    }

    /// Queues a SUBSCRIBE to `filters`, waiting for room in the request buffer.
    pub async fn subscribe(&self, filters: &[String], qos_level: u8) -> Result<(), AdapterError> {
        let (q4, q5) = qos(qos_level);
        match self {
            Client::V4(c) => {
                c.subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), q4)),
                )
                .await?;
            }
            Client::V5(c) => {
                c.subscribe_many(filters.iter().map(|f| p5::Filter::new(f.clone(), q5)))
                    .await?;
            }
        }
        Ok(())
    }

    /// Queues a PUBLISH without waiting (fails when the request buffer is full).
    pub fn try_publish(
        &self,
        topic: &str,
        qos_level: u8,
        payload: Vec<u8>,
        properties: PublishProperties,
    ) -> Result<(), AdapterError> {
        let (q4, q5) = qos(qos_level);
        match self {
            Client::V4(c) => c.try_publish(topic, q4, false, payload)?,
            Client::V5(c) => {
                c.try_publish_with_properties(
                    topic,
                    q5,
                    false,
                    payload,
                    v5_properties(properties),
                )?;
            }
        }
        Ok(())
    }

    /// Queues a PUBLISH, waiting for room in the request buffer.
    pub async fn publish(
        &self,
        topic: &str,
        qos_level: u8,
        payload: Vec<u8>,
        properties: PublishProperties,
    ) -> Result<(), AdapterError> {
        let (q4, q5) = qos(qos_level);
        match self {
            Client::V4(c) => c.publish(topic, q4, false, payload).await?,
            Client::V5(c) => {
                c.publish_with_properties(topic, q5, false, payload, v5_properties(properties))
                    .await?;
            }
        }
        Ok(())
    }

    /// Queues a DISCONNECT without waiting.
    pub fn try_disconnect(&self) -> Result<(), AdapterError> {
        match self {
            Client::V4(c) => c.try_disconnect()?,
            Client::V5(c) => c.try_disconnect()?,
        }
        Ok(())
    }
}

fn v5_properties(properties: PublishProperties) -> p5::PublishProperties {
    p5::PublishProperties {
        response_topic: properties.response_topic,
        content_type: properties.content_type,
        ..Default::default()
    }
}

impl Loop {
    /// The next event; an error means the connection is gone (the next poll reconnects).
    pub async fn poll(&mut self) -> Result<Incoming, AdapterError> {
        let incoming = match &mut self.events {
            Events::V4(l) => l
                .poll()
                .await
                .map(incoming_v4)
                .map_err(|e| AdapterError::Connection(Box::new(e))),
            Events::V5(l) => l
                .poll()
                .await
                .map(incoming_v5)
                .map_err(|e| AdapterError::Connection5(Box::new(e))),
        };
        match incoming {
            Err(err) => {
                self.quickack = None;
                self.before = FdSnapshot::take();
                Err(err)
            }
            Ok(Incoming::ConnAck {
                refused,
                assigned_client_id,
                response_information,
                subscribe_topics,
                ..
            }) => {
                let mut quick_ack = None;
                if refused.is_none() {
                    match QuickAck::find(&self.before, self.port) {
                        Ok(q) => self.quickack = Some(q),
                        Err(err) => quick_ack = Some(err),
                    }
                }
                Ok(Incoming::ConnAck {
                    refused,
                    assigned_client_id,
                    response_information,
                    subscribe_topics,
                    quick_ack,
                })
            }
            Ok(Incoming::Unanswered) => {
                if let Some(q) = &self.quickack
                    && let Err(err) = q.rearm()
                {
                    tracing::debug!(%err, "no quick ACK");
                }
                Ok(Incoming::Unanswered)
            }
            Ok(other) => Ok(other),
        }
    }
}

fn incoming_v4(event: rumqttc::Event) -> Incoming {
    use rumqttc::{Event, Outgoing, Packet};
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Incoming::ConnAck {
            refused: (ack.code != rumqttc::ConnectReturnCode::Success)
                .then(|| format!("{:?}", ack.code)),
            assigned_client_id: None,
            response_information: None,
            subscribe_topics: Vec::new(),
            quick_ack: None,
        },
        Event::Incoming(Packet::SubAck(ack)) => Incoming::SubAck(
            ack.return_codes
                .iter()
                .map(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
                .collect(),
        ),
        Event::Incoming(Packet::Publish(p)) => Incoming::Publish {
            topic: p.topic,
            payload: p.payload,
            response_topic: None,
            content_type: None,
        },
        Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_) | Packet::PingResp) => {
            Incoming::Unanswered
        }
        Event::Outgoing(Outgoing::Disconnect) => Incoming::DisconnectSent,
        _ => Incoming::Other,
    }
}

fn incoming_v5(event: rumqttc::v5::Event) -> Incoming {
    use rumqttc::Outgoing;
    use rumqttc::v5::Event;
    match event {
        Event::Incoming(p5::Packet::ConnAck(ack)) => {
            let refused =
                (ack.code != p5::ConnectReturnCode::Success).then(|| format!("{:?}", ack.code));
            let Some(props) = ack.properties else {
                return Incoming::ConnAck {
                    refused,
                    assigned_client_id: None,
                    response_information: None,
                    subscribe_topics: Vec::new(),
                    quick_ack: None,
                };
            };
            Incoming::ConnAck {
                refused,
                assigned_client_id: props.assigned_client_identifier,
                response_information: props.response_information,
                subscribe_topics: props
                    .user_properties
                    .into_iter()
                    .filter(|(k, _)| k == "subscribe-topic")
                    .map(|(_, v)| v)
                    .collect(),
                quick_ack: None,
            }
        }
        Event::Incoming(p5::Packet::SubAck(ack)) => Incoming::SubAck(
            ack.return_codes
                .iter()
                .map(|c| matches!(c, p5::SubscribeReasonCode::Success(_)))
                .collect(),
        ),
        Event::Incoming(p5::Packet::Publish(p)) => {
            let props = p.properties.unwrap_or_default();
            Incoming::Publish {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload,
                response_topic: props.response_topic,
                content_type: props.content_type,
            }
        }
        Event::Incoming(p5::Packet::Disconnect(d)) => {
            Incoming::BrokerDisconnect(format!("{:?}", d.reason_code))
        }
        Event::Incoming(
            p5::Packet::PubAck(_) | p5::Packet::PubComp(_) | p5::Packet::PingResp(_),
        ) => Incoming::Unanswered,
        Event::Outgoing(Outgoing::Disconnect) => Incoming::DisconnectSent,
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v311_refused_connack_carries_its_return_code() {
        let ack = rumqttc::ConnAck::new(rumqttc::ConnectReturnCode::NotAuthorized, false);
        let event = rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack));
        assert!(matches!(
            incoming_v4(event),
            Incoming::ConnAck { refused: Some(code), assigned_client_id: None, .. } if code == "NotAuthorized"
        ));
    }

    #[test]
    fn suback_grants_are_kept_in_order_for_either_version() {
        let v4 = rumqttc::SubAck::new(
            1,
            vec![
                rumqttc::SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce),
                rumqttc::SubscribeReasonCode::Failure,
            ],
        );
        let v5 = p5::SubAck {
            pkid: 1,
            return_codes: vec![
                p5::SubscribeReasonCode::NotAuthorized,
                p5::SubscribeReasonCode::Success(Q5::AtMostOnce),
            ],
            properties: None,
        };
        assert!(matches!(
            incoming_v4(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(v4))),
            Incoming::SubAck(g) if g == [true, false]
        ));
        assert!(matches!(
            incoming_v5(rumqttc::v5::Event::Incoming(p5::Packet::SubAck(v5))),
            Incoming::SubAck(g) if g == [false, true]
        ));
    }

    #[test]
    fn v5_connack_yields_assigned_id_response_information_and_subscribe_topics() {
        let props = p5::ConnAckProperties {
            session_expiry_interval: None,
            receive_max: None,
            max_qos: None,
            retain_available: None,
            max_packet_size: None,
            assigned_client_identifier: Some("auto-1".to_string()),
            topic_alias_max: None,
            reason_string: None,
            user_properties: vec![
                ("subscribe-topic".to_string(), "usp/agent/a".to_string()),
                ("other".to_string(), "x".to_string()),
            ],
            wildcard_subscription_available: None,
            subscription_identifiers_available: None,
            shared_subscription_available: None,
            server_keep_alive: None,
            response_information: Some("usp/resp".to_string()),
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        };
        let ack = p5::ConnAck {
            session_present: false,
            code: p5::ConnectReturnCode::Success,
            properties: Some(props),
        };
        let Incoming::ConnAck {
            refused,
            assigned_client_id,
            response_information,
            subscribe_topics,
            quick_ack,
        } = incoming_v5(rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(ack)))
        else {
            panic!("not a CONNACK");
        };
        assert_eq!(refused, None);
        assert_eq!(assigned_client_id.as_deref(), Some("auto-1"));
        assert_eq!(response_information.as_deref(), Some("usp/resp"));
        assert_eq!(subscribe_topics, ["usp/agent/a"]);
        assert!(quick_ack.is_none());
    }

    #[test]
    fn v5_publish_keeps_response_topic_and_content_type() {
        let props = p5::PublishProperties {
            response_topic: Some("usp/ctl".to_string()),
            content_type: Some("usp.msg".to_string()),
            ..Default::default()
        };
        let publish = p5::Publish::new("usp/agent/a", Q5::AtLeastOnce, &b"rec"[..], Some(props));
        assert!(matches!(
            incoming_v5(rumqttc::v5::Event::Incoming(p5::Packet::Publish(publish))),
            Incoming::Publish { topic, payload, response_topic: Some(r), content_type: Some(c) }
                if topic == "usp/agent/a" && payload == b"rec"[..] && r == "usp/ctl" && c == "usp.msg"
        ));
    }

    #[test]
    fn v5_broker_disconnect_and_unanswered_packets_are_told_apart() {
        let bye = p5::Disconnect::new(p5::DisconnectReasonCode::ServerShuttingDown);
        assert!(matches!(
            incoming_v5(rumqttc::v5::Event::Incoming(p5::Packet::Disconnect(bye))),
            Incoming::BrokerDisconnect(code) if code == "ServerShuttingDown"
        ));
        assert!(matches!(
            incoming_v4(rumqttc::Event::Incoming(rumqttc::Packet::PingResp)),
            Incoming::Unanswered
        ));
        assert!(matches!(
            incoming_v4(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)),
            Incoming::DisconnectSent
        ));
    }
}
