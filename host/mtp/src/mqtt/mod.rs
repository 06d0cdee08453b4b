//! The MQTT MTP (`Device.MQTT.Client.{i}.` with `LocalAgent.MTP.{i}.MQTT.`), over rumqttc for
//! both 3.1.1 and 5.0. The task owns one connection at a time: CONNECT (5.0: `usp-endpoint-id`
//! user property, Request Response Information, R-MQTT.12/13), SUBSCRIBE, wait for SUBACK, then
//! the MQTTConnect Record to each known controller; on any failure the connection is dropped and
//! rebuilt after the `ConnectRetry*` backoff (R-MQTT.10/33). The known controllers are the data
//! model's `Controller.{i}.MTP.{j}.MQTT.Topic` rows (read from the shared
//! [`crate::ControllerDirectory`] each time, so a changed topic applies at once), then the config
//! file's. A request without a reply-to is answered on its sender's topic among them; a 3.1.1
//! PUBLISH without a reply-to from a sender with no topic is a version mismatch and dropped
//! (R-MQTT.26a; see `topic`).
//!
//! Layout:
//! - `topic`: topic bookkeeping, no I/O.
//! - [`quickack`]: immediate TCP ACKs on rumqttc's socket, so that a broker with Nagle's
//!   algorithm on does not hold our next request behind a PUBACK's delayed ACK.

pub mod quickack;
mod topic;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{MqttConfig, MqttController, MqttVersion};
use crate::event::{Dest, LinkInfo, PeerAuth};
use crate::link::{Ctx, Outbound};
use crate::records::{self, ConnectKind};
use crate::tls::{self, SeenCertificate};
use quickack::{FdSnapshot, QuickAck};
use topic::{Silenced, Topics};

/// Records kept while the connection is down or not yet subscribed; older ones are dropped
/// first when it overflows.
const PENDING_LIMIT: usize = 256;

/// Requests rumqttc buffers between this task and its event loop.
const REQUEST_CAPACITY: usize = 64;

/// Unacknowledged QoS 1 PUBLISHes at a time (MQTT 5; the broker may lower it further).
pub const MAX_INFLIGHT: u16 = 256;

/// How long a stopping MTP waits for its Disconnect Records and DISCONNECT to be written.
const DRAIN: Duration = Duration::from_secs(2);

/// Headroom over `max_record_size` for the PUBLISH header and properties.
const PACKET_OVERHEAD: usize = 4096;

/// 3.1.1 has no Maximum Packet Size to tell the broker: packets up to this multiple of the
/// record limit are read and dropped with a log line; bigger ones fail the connection rather
/// than being buffered.
const V311_HARD_LIMIT_FACTOR: usize = 4;

/// R-MQTT.27/27a: the content types a USP Record may carry.
const CONTENT_TYPES: [&str; 2] = ["usp.msg", "application/vnd.bbf.usp.msg"];

/// One client of either protocol version.
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The event loop matching a [`Client`].
enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What the task needs from an incoming packet, for either version.
enum Incoming {
    ConnAck {
        refused: Option<String>,
        assigned_client_id: Option<String>,
        response_information: Option<String>,
        subscribe_topics: Vec<String>,
    },
    SubAck(Vec<bool>),
    Publish {
        topic: String,
        payload: Bytes,
        response_topic: Option<String>,
        content_type: Option<String>,
    },
    DisconnectSent,
    /// A packet we send nothing back for (PUBACK, PUBCOMP, PINGRESP): our ACK of it would wait
    /// for the delayed-ACK timer (see [`quickack`]).
    Unanswered,
    Other,
}

fn qos(level: u8) -> (rumqttc::QoS, Q5) {
    match level {
        0 => (rumqttc::QoS::AtMostOnce, Q5::AtMostOnce),
        2 => (rumqttc::QoS::ExactlyOnce, Q5::ExactlyOnce),
        _ => (rumqttc::QoS::AtLeastOnce, Q5::AtLeastOnce),
    }
}

/// A new client and event loop, and where the broker's certificate will be once TLS is up.
fn connect(
    cfg: &MqttConfig,
    ctx: &Ctx,
    client_id: &str,
) -> Result<(Client, Loop, Option<SeenCertificate>), String> {
    let (transport, seen) = match &cfg.tls {
        None => (Transport::Tcp, None),
        Some(t) => {
            let (config, seen) = tls::recording_client_config(t).map_err(|e| e.to_string())?;
            (
                Transport::tls_with_config(TlsConfiguration::Rustls(config)),
                Some(seen),
            )
        }
    };
    let keep_alive = Duration::from_secs(u64::from(cfg.keep_alive_secs));
    let max_packet = ctx.max_record_size.saturating_add(PACKET_OVERHEAD);
    match cfg.protocol_version {
        MqttVersion::V3_1_1 => {
            // R-MQTT.8: 3.1.1 SHOULD use the Endpoint ID when no ClientID is configured.
            let id = if client_id.is_empty() {
                ctx.endpoint_id.as_str()
            } else {
                client_id
            };
            let mut opts = rumqttc::MqttOptions::new(id, &cfg.broker_address, cfg.broker_port);
            let hard = ctx
                .max_record_size
                .saturating_mul(V311_HARD_LIMIT_FACTOR)
                .saturating_add(PACKET_OVERHEAD);
            opts.set_keep_alive(keep_alive)
                .set_clean_session(true)
                .set_max_packet_size(hard, max_packet)
                .set_request_channel_capacity(REQUEST_CAPACITY)
                .set_transport(transport);
            if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
                opts.set_credentials(u, p);
            } else if let Some(u) = &cfg.username {
                opts.set_credentials(u, "");
            }
            let (c, mut l) = rumqttc::AsyncClient::new(opts, REQUEST_CAPACITY);
            l.set_network_options(network_options());
            Ok((Client::V4(c), Loop::V4(Box::new(l)), seen))
        }
        MqttVersion::V5 => {
            let mut opts =
                rumqttc::v5::MqttOptions::new(client_id, &cfg.broker_address, cfg.broker_port);
            let mut props = p5::ConnectProperties::new();
            props.request_response_info = Some(1);
            props.max_packet_size = Some(u32::try_from(max_packet).unwrap_or(u32::MAX));
            props.user_properties = vec![("usp-endpoint-id".to_string(), ctx.endpoint_id.clone())];
            opts.set_keep_alive(keep_alive)
                .set_clean_start(true)
                .set_connect_properties(props)
                .set_request_channel_capacity(REQUEST_CAPACITY)
                // Unset, rumqttc sizes its in-flight table for 65 535 PUBLISHes (13 MB).
                .set_outgoing_inflight_upper_limit(MAX_INFLIGHT)
                .set_network_options(network_options())
                .set_transport(transport);
            if let Some(u) = &cfg.username {
                opts.set_credentials(u, cfg.password.as_deref().unwrap_or(""));
            }
            let (c, l) = rumqttc::v5::AsyncClient::new(opts, REQUEST_CAPACITY);
            Ok((Client::V5(c), Loop::V5(Box::new(l)), seen))
        }
    }
}

/// Records are small and each answer is awaited by its peer: Nagle's algorithm would hold every
/// Record back for the broker's delayed ACK (40 ms per request on Linux). Shared with the
/// controller client.
pub fn network_options() -> rumqttc::NetworkOptions {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

async fn poll(lp: &mut Loop) -> Result<Incoming, String> {
    match lp {
        Loop::V4(l) => {
            use rumqttc::{Event, Outgoing, Packet};
            match l.poll().await.map_err(|e| e.to_string())? {
                Event::Incoming(Packet::ConnAck(ack)) => Ok(Incoming::ConnAck {
                    refused: (ack.code != rumqttc::ConnectReturnCode::Success)
                        .then(|| format!("{:?}", ack.code)),
                    assigned_client_id: None,
                    response_information: None,
                    subscribe_topics: Vec::new(),
                }),
                Event::Incoming(Packet::SubAck(ack)) => Ok(Incoming::SubAck(
                    ack.return_codes
                        .iter()
                        .map(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_)))
                        .collect(),
                )),
                Event::Incoming(Packet::Publish(p)) => Ok(Incoming::Publish {
                    topic: p.topic,
                    payload: p.payload,
                    response_topic: None,
                    content_type: None,
                }),
                Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_) | Packet::PingResp) => {
                    Ok(Incoming::Unanswered)
                }
                Event::Outgoing(Outgoing::Disconnect) => Ok(Incoming::DisconnectSent),
                _ => Ok(Incoming::Other),
            }
        }
        Loop::V5(l) => {
            use rumqttc::Outgoing;
            use rumqttc::v5::Event;
            match l.poll().await.map_err(|e| e.to_string())? {
                Event::Incoming(p5::Packet::ConnAck(ack)) => {
                    let refused = (ack.code != p5::ConnectReturnCode::Success)
                        .then(|| format!("{:?}", ack.code));
                    let Some(props) = ack.properties else {
                        return Ok(Incoming::ConnAck {
                            refused,
                            assigned_client_id: None,
                            response_information: None,
                            subscribe_topics: Vec::new(),
                        });
                    };
                    Ok(Incoming::ConnAck {
                        refused,
                        assigned_client_id: props.assigned_client_identifier,
                        response_information: props.response_information,
                        subscribe_topics: props
                            .user_properties
                            .into_iter()
                            .filter(|(k, _)| k == "subscribe-topic")
                            .map(|(_, v)| v)
                            .collect(),
                    })
                }
                Event::Incoming(p5::Packet::SubAck(ack)) => Ok(Incoming::SubAck(
                    ack.return_codes
                        .iter()
                        .map(|c| matches!(c, p5::SubscribeReasonCode::Success(_)))
                        .collect(),
                )),
                Event::Incoming(p5::Packet::Publish(p)) => {
                    let props = p.properties.unwrap_or_default();
                    Ok(Incoming::Publish {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload,
                        response_topic: props.response_topic,
                        content_type: props.content_type,
                    })
                }
                Event::Incoming(p5::Packet::Disconnect(d)) => {
                    Err(format!("broker disconnected: {:?}", d.reason_code))
                }
                Event::Incoming(
                    p5::Packet::PubAck(_) | p5::Packet::PubComp(_) | p5::Packet::PingResp(_),
                ) => Ok(Incoming::Unanswered),
                Event::Outgoing(Outgoing::Disconnect) => Ok(Incoming::DisconnectSent),
                _ => Ok(Incoming::Other),
            }
        }
    }
}

impl Client {
    fn subscribe(&self, filters: &[String]) -> Result<(), String> {
        match self {
            Client::V4(c) => c.try_subscribe_many(
                filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), rumqttc::QoS::AtLeastOnce)),
            ),
            Client::V5(c) => {
                return c
                    .try_subscribe_many(
                        filters
                            .iter()
                            .map(|f| p5::Filter::new(f.clone(), Q5::AtLeastOnce)),
                    )
                    .map_err(|e| e.to_string());
            }
        }
        .map_err(|e| e.to_string())
    }

    fn publish(
        &self,
        topics: &Topics,
        dest: &str,
        qos_level: u8,
        bytes: Vec<u8>,
    ) -> Result<(), String> {
        let (topic, response_topic) = topics.publish_target(dest);
        let (q4, q5) = qos(qos_level);
        match self {
            Client::V4(c) => c
                .try_publish(topic, q4, false, bytes)
                .map_err(|e| e.to_string()),
            Client::V5(c) => {
                let props = p5::PublishProperties {
                    response_topic,
                    content_type: Some(CONTENT_TYPES[0].to_string()),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, q5, false, bytes, props)
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// How one connection ended.
enum Ended {
    Shutdown,
    Failed(String),
    /// R-MQTT.16: no topic from any source; the MTP stays down until reconfigured.
    Disabled(String),
}

/// What outlives one broker connection.
struct Carried {
    /// R-MQTT.9/11: a broker-assigned ClientId is kept for later connections.
    client_id: String,
    backoff: Backoff,
    /// R-MQTT.26a: controllers not written to after a version mismatch.
    silenced: Silenced,
}

/// Runs one MQTT client MTP until `shutdown` is cancelled.
pub(crate) async fn run(
    cfg: MqttConfig,
    ctx: Ctx,
    mut outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    let mut carried = Carried {
        client_id: cfg.client_id.clone(),
        backoff: Backoff::new(cfg.retry_policy()),
        silenced: Silenced::default(),
    };
    let mut pending: VecDeque<Outbound> = VecDeque::new();
    loop {
        let ended = connection(
            &cfg,
            &ctx,
            &mut carried,
            &mut outbound,
            &mut pending,
            &shutdown,
        )
        .await;
        let reason = match ended {
            Ended::Shutdown => return,
            Ended::Disabled(reason) => {
                ctx.down(reason).await;
                shutdown.cancelled().await;
                return;
            }
            Ended::Failed(reason) => reason,
        };
        tracing::info!(mtp = %ctx.name, %reason, "MQTT connection lost");
        ctx.down(reason).await;
        let wait = tokio::time::sleep(carried.backoff.next_wait());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut wait => break,
                Some(out) = outbound.recv() => keep(&mut pending, out, &ctx),
            }
        }
    }
}

fn keep(pending: &mut VecDeque<Outbound>, out: Outbound, ctx: &Ctx) {
    if pending.len() >= PENDING_LIMIT {
        pending.pop_front();
        tracing::warn!(mtp = %ctx.name, "MQTT not connected: oldest queued record dropped");
    }
    pending.push_back(out);
}

async fn connection(
    cfg: &MqttConfig,
    ctx: &Ctx,
    carried: &mut Carried,
    outbound: &mut mpsc::Receiver<Outbound>,
    pending: &mut VecDeque<Outbound>,
    shutdown: &CancellationToken,
) -> Ended {
    let (client, mut lp, seen) = match connect(cfg, ctx, &carried.client_id) {
        Ok(parts) => parts,
        Err(reason) => return Ended::Disabled(reason),
    };
    // rumqttc opens its socket on the first poll: the sockets open now are not it.
    let before = FdSnapshot::take();
    // Dropped with `lp` when this function returns: it holds a duplicate of lp's socket.
    let mut quickack: Option<QuickAck> = None;
    let mut topics = Topics::new(cfg);
    let mut info = LinkInfo::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Records handed over before the stop (the answer to the Set that reconfigured
                // this MTP) are published ahead of the Disconnect Records.
                while let Ok(out) = outbound.try_recv() {
                    if topics.ready() {
                        send(&client, &topics, &carried.silenced, cfg, ctx, out);
                    }
                }
                let known = ctx.controllers.mqtt_controllers(&ctx.name, &cfg.controllers);
                drain(&client, &mut lp, &topics, &known, &carried.silenced, ctx).await;
                return Ended::Shutdown;
            }
            Some(out) = outbound.recv() => {
                if topics.ready() {
                    send(&client, &topics, &carried.silenced, cfg, ctx, out);
                } else {
                    keep(pending, out, ctx);
                }
            }
            incoming = poll(&mut lp) => match incoming {
                Err(reason) => return Ended::Failed(reason),
                Ok(Incoming::ConnAck { refused: Some(code), .. }) => {
                    return Ended::Failed(format!("broker refused the connection: {code}"));
                }
                Ok(Incoming::ConnAck { refused: None, assigned_client_id, response_information, subscribe_topics }) => {
                    quickack = find_quickack(&before, cfg.broker_port, ctx);
                    if let Some(id) = assigned_client_id {
                        carried.client_id = id;
                    }
                    info.client_id = Some(if carried.client_id.is_empty() && cfg.protocol_version == MqttVersion::V3_1_1 {
                        ctx.endpoint_id.clone()
                    } else {
                        carried.client_id.clone()
                    });
                    info.response_information = response_information.clone();
                    match topics.on_connack(response_information.as_deref(), &subscribe_topics) {
                        Ok(filters) => {
                            if let Err(err) = client.subscribe(&filters) {
                                return Ended::Failed(format!("SUBSCRIBE: {err}"));
                            }
                        }
                        Err(err) => {
                            client.disconnect();
                            return Ended::Disabled(err.to_string());
                        }
                    }
                }
                Ok(Incoming::SubAck(granted)) => {
                    if let Err(err) = topics.on_suback(&granted) {
                        // R-MQTT.17: without a subscription the agent must not publish.
                        client.disconnect();
                        return Ended::Failed(err.to_string());
                    }
                    let reply_to = topics.reply_to().unwrap_or_default().to_string();
                    let known = ctx.controllers.mqtt_controllers(&ctx.name, &cfg.controllers);
                    for c in known.iter().filter(|c| !carried.silenced.contains(&c.topic)) {
                        let record = records::connect(
                            &ConnectKind::Mqtt { version: cfg.protocol_version, subscribed_topic: reply_to.clone() },
                            &ctx.endpoint_id,
                            &c.endpoint_id,
                        );
                        if let Err(err) = client.publish(&topics, &c.topic, cfg.publish_qos, record) {
                            tracing::warn!(mtp = %ctx.name, %err, "MQTTConnect not queued");
                        }
                    }
                    carried.backoff.reset();
                    info.reply_to = Some(reply_to);
                    ctx.up(info.clone()).await;
                    while let Some(out) = pending.pop_front() {
                        send(&client, &topics, &carried.silenced, cfg, ctx, out);
                    }
                }
                Ok(Incoming::Publish { topic, payload, response_topic, content_type }) => {
                    if let Some(ct) = content_type.as_deref().filter(|ct| !CONTENT_TYPES.contains(ct)) {
                        tracing::debug!(mtp = %ctx.name, content_type = ct, "unexpected content type; trying the payload as a Record");
                    }
                    let bytes = payload.to_vec();
                    let from = records::from_id(&bytes);
                    let known = ctx.controllers.mqtt_controllers(&ctx.name, &cfg.controllers);
                    if let (Some(version), Some(from_id)) = (records::mqtt_connect_version(&bytes), from.as_deref())
                        && let Err(err) = topics.on_connect_record(&mut carried.silenced, &known, from_id, version)
                    {
                        tracing::error!(mtp = %ctx.name, %err, "Record dropped (R-MQTT.26a)");
                        continue;
                    }
                    let reply = match topics.on_publish(&mut carried.silenced, &known, &topic, response_topic.as_deref(), from.as_deref()) {
                        Ok(reply) => reply.unwrap_or_default(),
                        Err(err) => {
                            // R-MQTT.26a: not answered; there is no topic to answer on until
                            // the sender sends a reply-to.
                            tracing::error!(mtp = %ctx.name, %err, from_id = ?from, "Record dropped");
                            continue;
                        }
                    };
                    let peer = seen
                        .as_ref()
                        .and_then(SeenCertificate::get)
                        .map_or(PeerAuth::None, PeerAuth::Broker);
                    if ctx.deliver(bytes, Dest::Topic(reply), peer).await.is_err() {
                        tracing::info!(mtp = %ctx.name, %topic, "PUBLISH dropped");
                    }
                }
                Ok(Incoming::Unanswered) => {
                    if let Some(q) = &quickack
                        && let Err(err) = q.rearm()
                    {
                        tracing::debug!(mtp = %ctx.name, %err, "no quick ACK");
                    }
                }
                Ok(Incoming::DisconnectSent | Incoming::Other) => {}
            },
        }
    }
}

/// The connection's socket for quick ACKs; without one the MTP still works, and a stock broker
/// then delays the request after each PUBACK (PublishQoS 1 or 2) by our delayed-ACK timer.
fn find_quickack(before: &FdSnapshot, port: u16, ctx: &Ctx) -> Option<QuickAck> {
    match QuickAck::find(before, port) {
        Ok(q) => Some(q),
        Err(err) => {
            tracing::info!(mtp = %ctx.name, %err, "TCP quick ACKs unavailable on this connection");
            None
        }
    }
}

fn send(
    client: &Client,
    topics: &Topics,
    silenced: &Silenced,
    cfg: &MqttConfig,
    ctx: &Ctx,
    out: Outbound,
) {
    let Dest::Topic(dest) = out.dest else {
        tracing::warn!(mtp = %ctx.name, dest = ?out.dest, "not an MQTT destination; dropped");
        return;
    };
    if dest.is_empty() {
        tracing::warn!(mtp = %ctx.name, "request had no reply-to and no controller topic matches; response dropped");
        return;
    }
    if silenced.contains(&dest) {
        tracing::warn!(mtp = %ctx.name, %dest, "controller's MQTT version does not match (R-MQTT.26a); record dropped");
        return;
    }
    if let Err(err) = client.publish(topics, &dest, cfg.publish_qos, out.bytes) {
        tracing::warn!(mtp = %ctx.name, %err, %dest, "PUBLISH not queued");
    }
}

/// R-MTP.7: Disconnect Records to every controller, then DISCONNECT, bounded by [`DRAIN`].
async fn drain(
    client: &Client,
    lp: &mut Loop,
    topics: &Topics,
    known: &[MqttController],
    silenced: &Silenced,
    ctx: &Ctx,
) {
    if topics.ready() {
        for c in known.iter().filter(|c| !silenced.contains(&c.topic)) {
            let bye = records::disconnect(&ctx.endpoint_id, &c.endpoint_id, "MTP stopped");
            let _ = client.publish(topics, &c.topic, 1, bye);
        }
    }
    client.disconnect();
    let _ = tokio::time::timeout(DRAIN, async {
        while let Ok(ev) = poll(lp).await {
            if matches!(ev, Incoming::DisconnectSent) {
                break;
            }
        }
    })
    .await;
}
