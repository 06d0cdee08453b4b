//! A controller's MQTT connection through a broker. It subscribes to its own topic and waits
//! for SUBACK before publishing (R-MQTT.17); it publishes Records to the agent's topic with the
//! Response Topic property and Content Type `usp.msg` (MQTT 5, R-MQTT.23/27) or with a
//! `/reply-to=` suffix (3.1.1, R-MQTT.24). A lost broker connection is re-established and the
//! subscription renewed; Records wait (bounded by the channel) until it is.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::ControllerError;
pub use usp_mtp::config::MqttVersion;
use usp_mtp::mqtt::quickack::{FdSnapshot, QuickAck};

/// The Content Type of a USP Record (R-MQTT.27).
const CONTENT_TYPE: &str = "usp.msg";

/// Requests buffered between the publishing task and rumqttc's event loop.
const REQUEST_CAPACITY: usize = 256;

/// The largest packet either side may send; a whole-tree GetResp is far below it.
const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// How long the first CONNACK and SUBACK may take before `open` gives up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between reconnect attempts after the broker went away, so a dead broker does not
/// turn the event loop into a busy loop.
const RECONNECT_WAIT: Duration = Duration::from_millis(200);

/// `/` and what would break a topic level are escaped in the `/reply-to=` suffix (R-MQTT.24).
const REPLY_TO_ESCAPES: &AsciiSet = &CONTROLS.add(b'/').add(b'%').add(b'+').add(b'#');

/// Why an MQTT connection could not be opened, or a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum MqttLinkError {
    /// The MQTT 3.1.1 connection failed.
    #[error("{0}")]
    Connection(#[source] Box<rumqttc::ConnectionError>),
    /// The MQTT 5 connection failed.
    #[error("{0}")]
    Connection5(#[source] Box<rumqttc::v5::ConnectionError>),
    /// The broker refused CONNECT with this return code.
    #[error("CONNACK {0}")]
    Refused(String),
    /// The broker refused the SUBSCRIBE to our topic.
    #[error("the broker refused SUBSCRIBE to {0}")]
    SubscribeRefused(String),
    /// The connection task ended before it connected.
    #[error("the connection task ended")]
    TaskEnded,
    /// CONNACK and SUBACK did not come in time.
    #[error("no CONNACK and SUBACK within {0:?}")]
    OpenTimeout(Duration),
    /// rumqttc's MQTT 3.1.1 client did not take the request.
    #[error("{0}")]
    Client(#[source] Box<rumqttc::ClientError>),
    /// rumqttc's MQTT 5 client did not take the request.
    #[error("{0}")]
    Client5(#[source] Box<rumqttc::v5::ClientError>),
}

/// Where the broker is and which topics the two endpoints use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT 5.0 or 3.1.1.
    pub version: MqttVersion,
    /// The topic the agent subscribed to (its `ResponseTopicConfigured`).
    pub agent_topic: String,
    /// Our own topic: we subscribe to it and the agent answers on it.
    pub own_topic: String,
    /// QoS of our PUBLISH and SUBSCRIBE (0 or 1; 2 is treated as 1).
    pub qos: u8,
    /// The MQTT ClientId; empty lets the broker assign one (5.0) or uses a generated one.
    pub client_id: String,
}

impl MqttEndpoint {
    /// MQTT 5 at QoS 1 with a broker-assigned ClientId.
    pub fn new(host: &str, port: u16, agent_topic: &str, own_topic: &str) -> Self {
        MqttEndpoint {
            host: host.to_string(),
            port,
            version: MqttVersion::V5,
            agent_topic: agent_topic.to_string(),
            own_topic: own_topic.to_string(),
            qos: 1,
            client_id: String::new(),
        }
    }

    fn target(&self) -> String {
        format!("mqtt://{}:{}", self.host, self.port)
    }

    /// What we subscribe to: our topic, and under 3.1.1 also its `/reply-to=` extensions, since
    /// the agent names its own reply-to in every PUBLISH topic, answers included (R-MQTT.22/24).
    fn filter(&self) -> String {
        match self.version {
            MqttVersion::V5 => self.own_topic.clone(),
            MqttVersion::V3_1_1 => format!("{}/#", self.own_topic),
        }
    }

    /// The PUBLISH topic: the agent's topic, with our topic appended for 3.1.1.
    fn publish_topic(&self) -> String {
        match self.version {
            MqttVersion::V5 => self.agent_topic.clone(),
            MqttVersion::V3_1_1 => format!(
                "{}/reply-to={}",
                self.agent_topic,
                utf8_percent_encode(&self.own_topic, REPLY_TO_ESCAPES)
            ),
        }
    }
}

/// Either protocol version's client handle.
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Either protocol version's event loop (boxed: they differ in size by half a kilobyte).
enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// The packets the connection task acts on.
enum Packet {
    ConnAck(Result<(), MqttLinkError>),
    SubAck(bool),
    Publish(Bytes),
    /// PUBACK, PUBCOMP or PINGRESP: nothing goes back, so our ACK of it would wait for the
    /// delayed-ACK timer while a broker with Nagle on holds the answer behind it.
    Unanswered,
    Other,
}

/// Opens the connection, subscribes, and returns once the first SUBACK arrived.
pub(super) async fn open(
    endpoint: &MqttEndpoint,
    controller_id: &str,
    outgoing: mpsc::Receiver<Vec<u8>>,
    incoming: mpsc::Sender<Bytes>,
) -> Result<JoinHandle<()>, ControllerError> {
    let (client, event_loop) = build(endpoint, controller_id);
    let (ready_tx, _) = watch::channel(false);
    let (first_tx, first) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run(
        endpoint.clone(),
        client,
        event_loop,
        outgoing,
        incoming,
        ready_tx,
        first_tx,
    ));
    let failed = |reason: MqttLinkError| ControllerError::Connect {
        target: endpoint.target(),
        reason: reason.into(),
    };
    match tokio::time::timeout(OPEN_TIMEOUT, first).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(reason))) => {
            task.abort();
            return Err(failed(reason));
        }
        Ok(Err(_)) => return Err(failed(MqttLinkError::TaskEnded)),
        Err(_) => {
            task.abort();
            return Err(failed(MqttLinkError::OpenTimeout(OPEN_TIMEOUT)));
        }
    }
    Ok(task)
}

fn build(endpoint: &MqttEndpoint, controller_id: &str) -> (Client, Loop) {
    let network = usp_mtp::mqtt::network_options();
    match endpoint.version {
        MqttVersion::V3_1_1 => {
            let id = if endpoint.client_id.is_empty() {
                generated_client_id(controller_id)
            } else {
                endpoint.client_id.clone()
            };
            let mut opts = rumqttc::MqttOptions::new(id, &endpoint.host, endpoint.port);
            opts.set_keep_alive(Duration::from_secs(60))
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET as usize, MAX_PACKET as usize)
                .set_request_channel_capacity(REQUEST_CAPACITY);
            let (client, mut event_loop) = rumqttc::AsyncClient::new(opts, REQUEST_CAPACITY);
            event_loop.set_network_options(network);
            (Client::V4(client), Loop::V4(Box::new(event_loop)))
        }
        MqttVersion::V5 => {
            let mut opts =
                rumqttc::v5::MqttOptions::new(&endpoint.client_id, &endpoint.host, endpoint.port);
            opts.set_keep_alive(Duration::from_secs(60))
                .set_clean_start(true)
                .set_max_packet_size(Some(MAX_PACKET))
                .set_request_channel_capacity(REQUEST_CAPACITY)
                // Unset, rumqttc sizes its in-flight table for 65 535 PUBLISHes (13 MB).
                .set_outgoing_inflight_upper_limit(usp_mtp::mqtt::MAX_INFLIGHT)
                .set_user_properties(vec![(
                    "usp-endpoint-id".to_string(),
                    controller_id.to_string(),
                )])
                .set_network_options(network);
            let (client, event_loop) = rumqttc::v5::AsyncClient::new(opts, REQUEST_CAPACITY);
            (Client::V5(client), Loop::V5(Box::new(event_loop)))
        }
    }
}

/// A 3.1.1 ClientId (the broker cannot assign one there): the Endpoint ID made unique per
/// process and connection, so several sessions of one controller can coexist.
fn generated_client_id(controller_id: &str) -> String {
    format!(
        "{controller_id}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The connection task: polls the event loop, renews the subscription after every CONNACK,
/// forwards received PUBLISH payloads, and runs the publisher while subscribed.
async fn run(
    endpoint: MqttEndpoint,
    client: Client,
    mut event_loop: Loop,
    outgoing: mpsc::Receiver<Vec<u8>>,
    incoming: mpsc::Sender<Bytes>,
    ready: watch::Sender<bool>,
    first: tokio::sync::oneshot::Sender<Result<(), MqttLinkError>>,
) {
    let mut first = Some(first);
    // The publisher lives in the set so that it ends with this task.
    let mut publisher = JoinSet::new();
    publisher.spawn(publish(
        endpoint.clone(),
        client.clone(),
        outgoing,
        ready.subscribe(),
    ));
    // rumqttc (re)connects inside `poll`; the sockets open before are not its socket.
    let mut before = FdSnapshot::take();
    // Holds a duplicate of the event loop's socket: dropped as soon as that socket is.
    let mut quickack: Option<QuickAck> = None;
    loop {
        let packet = match poll(&mut event_loop).await {
            Ok(packet) => packet,
            Err(reason) => {
                quickack = None;
                before = FdSnapshot::take();
                ready.send_replace(false);
                if let Some(first) = first.take() {
                    drop(first.send(Err(reason)));
                    return;
                }
                tracing::warn!(%reason, "MQTT connection lost; reconnecting");
                tokio::time::sleep(RECONNECT_WAIT).await;
                continue;
            }
        };
        match packet {
            Packet::ConnAck(Ok(())) => {
                quickack = match QuickAck::find(&before, endpoint.port) {
                    Ok(q) => Some(q),
                    Err(err) => {
                        tracing::debug!(%err, "TCP quick ACKs unavailable on this connection");
                        None
                    }
                };
                if let Err(reason) = client.subscribe(&endpoint.filter(), endpoint.qos).await {
                    tracing::warn!(%reason, "MQTT SUBSCRIBE could not be queued");
                }
            }
            Packet::ConnAck(Err(reason)) => match first.take() {
                Some(first) => {
                    drop(first.send(Err(reason)));
                    return;
                }
                None => tracing::warn!(%reason, "broker refused CONNECT"),
            },
            Packet::SubAck(true) => {
                ready.send_replace(true);
                if let Some(first) = first.take() {
                    drop(first.send(Ok(())));
                }
            }
            Packet::SubAck(false) => match first.take() {
                Some(first) => {
                    let reason = MqttLinkError::SubscribeRefused(endpoint.own_topic.clone());
                    drop(first.send(Err(reason)));
                    return;
                }
                None => tracing::warn!("broker refused SUBSCRIBE"),
            },
            Packet::Publish(payload) => {
                if incoming.send(payload).await.is_err() {
                    return;
                }
            }
            Packet::Unanswered => {
                if let Some(q) = &quickack
                    && let Err(err) = q.rearm()
                {
                    tracing::debug!(%err, "no quick ACK");
                }
            }
            Packet::Other => {}
        }
    }
}

/// Publishes each outgoing Record while the subscription stands.
async fn publish(
    endpoint: MqttEndpoint,
    client: Client,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    mut ready: watch::Receiver<bool>,
) {
    let topic = endpoint.publish_topic();
    loop {
        if ready.wait_for(|up| *up).await.is_err() {
            return;
        }
        let Some(record) = outgoing.recv().await else {
            return;
        };
        if let Err(reason) = client.publish(&topic, &endpoint, record).await {
            tracing::warn!(%reason, "MQTT PUBLISH failed; record dropped");
        }
    }
}

fn qos(level: u8) -> (rumqttc::QoS, rumqttc::v5::mqttbytes::QoS) {
    match level {
        0 => (
            rumqttc::QoS::AtMostOnce,
            rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        ),
        _ => (
            rumqttc::QoS::AtLeastOnce,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        ),
    }
}

impl Client {
    async fn subscribe(&self, topic: &str, level: u8) -> Result<(), MqttLinkError> {
        let (q4, q5) = qos(level);
        match self {
            Client::V4(c) => c.subscribe(topic, q4).await.map_err(client_error),
            Client::V5(c) => c.subscribe(topic, q5).await.map_err(client5_error),
        }
    }

    async fn publish(
        &self,
        topic: &str,
        endpoint: &MqttEndpoint,
        record: Vec<u8>,
    ) -> Result<(), MqttLinkError> {
        let (q4, q5) = qos(endpoint.qos);
        match self {
            Client::V4(c) => c
                .publish(topic, q4, false, record)
                .await
                .map_err(client_error),
            Client::V5(c) => {
                let props = p5::PublishProperties {
                    response_topic: Some(endpoint.own_topic.clone()),
                    content_type: Some(CONTENT_TYPE.to_string()),
                    ..Default::default()
                };
                c.publish_with_properties(topic, q5, false, record, props)
                    .await
                    .map_err(client5_error)
            }
        }
    }
}

fn client_error(err: rumqttc::ClientError) -> MqttLinkError {
    MqttLinkError::Client(Box::new(err))
}

fn client5_error(err: rumqttc::v5::ClientError) -> MqttLinkError {
    MqttLinkError::Client5(Box::new(err))
}

async fn poll(event_loop: &mut Loop) -> Result<Packet, MqttLinkError> {
    match event_loop {
        Loop::V4(l) => {
            use rumqttc::{Event, Packet as P};
            let event = l
                .poll()
                .await
                .map_err(|err| MqttLinkError::Connection(Box::new(err)))?;
            Ok(match event {
                Event::Incoming(P::ConnAck(ack)) => {
                    Packet::ConnAck(if ack.code == rumqttc::ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(MqttLinkError::Refused(format!("{:?}", ack.code)))
                    })
                }
                Event::Incoming(P::SubAck(ack)) => Packet::SubAck(
                    ack.return_codes
                        .iter()
                        .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                ),
                Event::Incoming(P::Publish(p)) => Packet::Publish(p.payload),
                Event::Incoming(P::PubAck(_) | P::PubComp(_) | P::PingResp) => Packet::Unanswered,
                _ => Packet::Other,
            })
        }
        Loop::V5(l) => {
            use rumqttc::v5::Event;
            let event = l
                .poll()
                .await
                .map_err(|err| MqttLinkError::Connection5(Box::new(err)))?;
            Ok(match event {
                Event::Incoming(p5::Packet::ConnAck(ack)) => {
                    Packet::ConnAck(if ack.code == p5::ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(MqttLinkError::Refused(format!("{:?}", ack.code)))
                    })
                }
                Event::Incoming(p5::Packet::SubAck(ack)) => Packet::SubAck(
                    ack.return_codes
                        .iter()
                        .all(|c| matches!(c, p5::SubscribeReasonCode::Success(_))),
                ),
                Event::Incoming(p5::Packet::Publish(p)) => Packet::Publish(p.payload),
                Event::Incoming(
                    p5::Packet::PubAck(_) | p5::Packet::PubComp(_) | p5::Packet::PingResp(_),
                ) => Packet::Unanswered,
                _ => Packet::Other,
            })
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn v5_publishes_to_the_agent_topic_itself() {
        let endpoint = MqttEndpoint::new("127.0.0.1", 1883, "usp/agent/a", "usp/ctl/c");
        assert_eq!(endpoint.publish_topic(), "usp/agent/a");
    }

    #[test]
    fn v311_subscribes_below_its_topic_to_receive_answers_carrying_a_reply_to() {
        let mut endpoint = MqttEndpoint::new("127.0.0.1", 1883, "usp/agent/a", "usp/ctl/c");
        assert_eq!(endpoint.filter(), "usp/ctl/c");
        endpoint.version = MqttVersion::V3_1_1;
        assert_eq!(endpoint.filter(), "usp/ctl/c/#");
    }

    #[test]
    fn v311_publish_topic_carries_the_encoded_reply_to() {
        let endpoint = MqttEndpoint {
            version: MqttVersion::V3_1_1,
            ..MqttEndpoint::new("127.0.0.1", 1883, "usp/agent/a", "usp/ctl/self::c")
        };
        assert_eq!(
            endpoint.publish_topic(),
            "usp/agent/a/reply-to=usp%2Fctl%2Fself::c"
        );
    }
}
