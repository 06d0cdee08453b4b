//! A controller's MQTT connection through a broker. It subscribes to its own topic and waits
//! for SUBACK before publishing (R-MQTT.17); it publishes Records to the agent's topic with the
//! Response Topic property and Content Type `usp.msg` (MQTT 5, R-MQTT.23/27) or with a
//! `/reply-to=` suffix (3.1.1, R-MQTT.24). A lost broker connection is re-established and the
//! subscription renewed; Records wait (bounded by the channel) until it is. The MQTT client
//! itself, for either version and with its TCP quick ACKs, is usp-mtp's
//! [`usp_mtp::mqtt::adapter`]; this module owns the controller's topics and connection task.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::ControllerError;
pub use usp_mtp::config::MqttVersion;
use usp_mtp::mqtt::adapter::{self, AdapterError, Client, Incoming, Loop, PublishProperties};

/// The Content Type of a USP Record (R-MQTT.27).
const CONTENT_TYPE: &str = "usp.msg";

/// Requests buffered between the publishing task and rumqttc's event loop.
const REQUEST_CAPACITY: usize = 256;

/// The largest packet either side may send; a whole-tree GetResp is far below it.
const MAX_PACKET: usize = 16 * 1024 * 1024;

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
    /// The connection failed, or rumqttc did not take the request.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
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

    /// The QoS of our PUBLISH and SUBSCRIBE: 2 is treated as 1.
    fn qos(&self) -> u8 {
        self.qos.min(1)
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
    let client_id = if endpoint.client_id.is_empty() && endpoint.version == MqttVersion::V3_1_1 {
        generated_client_id(controller_id)
    } else {
        endpoint.client_id.clone()
    };
    adapter::connect(&adapter::Options {
        host: endpoint.host.clone(),
        port: endpoint.port,
        version: endpoint.version,
        client_id,
        keep_alive: Duration::from_secs(60),
        clean_start: true,
        credentials: None,
        tls: None,
        max_packet_size: MAX_PACKET,
        v311_max_incoming: MAX_PACKET,
        user_properties: vec![("usp-endpoint-id".to_string(), controller_id.to_string())],
        request_response_info: false,
        max_inflight: adapter::MAX_INFLIGHT,
        request_capacity: REQUEST_CAPACITY,
    })
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
    loop {
        let packet = match event_loop.poll().await {
            Ok(packet) => packet,
            Err(reason) => {
                ready.send_replace(false);
                if let Some(first) = first.take() {
                    drop(first.send(Err(reason.into())));
                    return;
                }
                tracing::warn!(%reason, "MQTT connection lost; reconnecting");
                tokio::time::sleep(RECONNECT_WAIT).await;
                continue;
            }
        };
        match packet {
            Incoming::ConnAck {
                refused: None,
                quick_ack,
                ..
            } => {
                if let Some(err) = quick_ack {
                    tracing::debug!(%err, "TCP quick ACKs unavailable on this connection");
                }
                if let Err(reason) = client.subscribe(&[endpoint.filter()], endpoint.qos()).await {
                    tracing::warn!(%reason, "MQTT SUBSCRIBE could not be queued");
                }
            }
            Incoming::ConnAck {
                refused: Some(code),
                ..
            } => {
                let reason = MqttLinkError::Refused(code);
                match first.take() {
                    Some(first) => {
                        drop(first.send(Err(reason)));
                        return;
                    }
                    None => tracing::warn!(%reason, "broker refused CONNECT"),
                }
            }
            Incoming::SubAck(granted) if granted.iter().all(|g| *g) => {
                ready.send_replace(true);
                if let Some(first) = first.take() {
                    drop(first.send(Ok(())));
                }
            }
            Incoming::SubAck(_) => match first.take() {
                Some(first) => {
                    let reason = MqttLinkError::SubscribeRefused(endpoint.own_topic.clone());
                    drop(first.send(Err(reason)));
                    return;
                }
                None => tracing::warn!("broker refused SUBSCRIBE"),
            },
            Incoming::Publish { payload, .. } => {
                if incoming.send(payload).await.is_err() {
                    return;
                }
            }
            Incoming::BrokerDisconnect(_)
            | Incoming::DisconnectSent
            | Incoming::Unanswered
            | Incoming::Other => {}
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
        let properties = PublishProperties {
            response_topic: Some(endpoint.own_topic.clone()),
            content_type: Some(CONTENT_TYPE.to_string()),
        };
        let sent = client
            .publish(&topic, endpoint.qos(), record, properties)
            .await;
        if let Err(reason) = sent {
            tracing::warn!(%reason, "MQTT PUBLISH failed; record dropped");
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
