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
//! - [`adapter`]: the one rumqttc client for 3.1.1 and 5.0 (options, requests, events, quick
//!   ACKs), shared with the controller client.
//! - `topic`: topic bookkeeping, no I/O.
//! - [`quickack`]: immediate TCP ACKs on rumqttc's socket, so that a broker with Nagle's
//!   algorithm on does not hold our next request behind a PUBACK's delayed ACK.
//! - the module root: the MTP task (connection lifecycle, Records in and out).

pub mod adapter;
pub mod quickack;
mod topic;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{MqttConfig, MqttController, MqttVersion};
use crate::directory::KnownControllers;
use crate::event::{Dest, LinkInfo, PeerAuth};
use crate::link::{Ctx, Outbound};
use crate::records::{self, ConnectKind};
use crate::tls::{self, SeenCertificate, TlsError};
use adapter::{AdapterError, Client, Incoming, Loop, Options, PublishProperties};
use topic::{Silenced, Topics};

/// Records kept while the connection is down or not yet subscribed; older ones are dropped
/// first when it overflows.
const PENDING_LIMIT: usize = 256;

/// Requests rumqttc buffers between this task and its event loop.
const REQUEST_CAPACITY: usize = 64;

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

/// A new client and event loop, and where the broker's certificate will be once TLS is up.
fn connect(
    cfg: &MqttConfig,
    ctx: &Ctx,
    client_id: &str,
) -> Result<(Client, Loop, Option<SeenCertificate>), TlsError> {
    let (tls, seen) = match &cfg.tls {
        None => (None, None),
        Some(t) => {
            let (config, seen) = tls::recording_client_config(t)?;
            (Some(config), Some(seen))
        }
    };
    // R-MQTT.8: 3.1.1 SHOULD use the Endpoint ID when no ClientID is configured.
    let client_id = if client_id.is_empty() && cfg.protocol_version == MqttVersion::V3_1_1 {
        ctx.endpoint_id.as_str()
    } else {
        client_id
    };
    let options = Options {
        host: cfg.broker_address.clone(),
        port: cfg.broker_port,
        version: cfg.protocol_version,
        client_id: client_id.to_string(),
        keep_alive: Duration::from_secs(u64::from(cfg.keep_alive_secs)),
        clean_start: true,
        credentials: cfg
            .username
            .as_ref()
            .map(|u| (u.clone(), cfg.password.clone().unwrap_or_default())),
        tls,
        max_packet_size: ctx.max_record_size.saturating_add(PACKET_OVERHEAD),
        v311_max_incoming: ctx
            .max_record_size
            .saturating_mul(V311_HARD_LIMIT_FACTOR)
            .saturating_add(PACKET_OVERHEAD),
        // R-MQTT.12/13: the Endpoint ID as a user property; ask for Response Information.
        user_properties: vec![("usp-endpoint-id".to_string(), ctx.endpoint_id.clone())],
        request_response_info: true,
        max_inflight: adapter::MAX_INFLIGHT,
        request_capacity: REQUEST_CAPACITY,
    };
    let (client, lp) = adapter::connect(&options);
    Ok((client, lp, seen))
}

/// Queues a PUBLISH of `bytes` to controller topic `dest` (R-MQTT.23/24/27: the reply-to as
/// Response Topic or topic suffix, Content Type `usp.msg`).
fn publish(
    client: &Client,
    topics: &Topics,
    dest: &str,
    qos_level: u8,
    bytes: Vec<u8>,
) -> Result<(), AdapterError> {
    let (topic, response_topic) = topics.publish_target(dest);
    let properties = PublishProperties {
        response_topic,
        content_type: Some(CONTENT_TYPES[0].to_string()),
    };
    client.try_publish(&topic, qos_level, bytes, properties)
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
        Err(reason) => return Ended::Disabled(reason.to_string()),
    };
    let mut topics = Topics::new(cfg);
    let mut info = LinkInfo::default();
    let mut known_controllers = KnownControllers::default();
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
                let known = known_controllers.current(&ctx.controllers, &ctx.name, &cfg.controllers);
                drain(&client, &mut lp, &topics, known, &carried.silenced, ctx).await;
                return Ended::Shutdown;
            }
            Some(out) = outbound.recv() => {
                if topics.ready() {
                    send(&client, &topics, &carried.silenced, cfg, ctx, out);
                } else {
                    keep(pending, out, ctx);
                }
            }
            incoming = lp.poll() => match incoming {
                Err(reason) => return Ended::Failed(reason.to_string()),
                Ok(Incoming::ConnAck { refused: Some(code), .. }) => {
                    return Ended::Failed(format!("broker refused the connection: {code}"));
                }
                Ok(Incoming::ConnAck { refused: None, assigned_client_id, response_information, subscribe_topics, quick_ack }) => {
                    // Without quick ACKs the MTP still works, and a stock broker then delays the
                    // request after each PUBACK (PublishQoS 1 or 2) by our delayed-ACK timer.
                    if let Some(err) = quick_ack {
                        tracing::info!(mtp = %ctx.name, %err, "TCP quick ACKs unavailable on this connection");
                    }
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
                            if let Err(err) = client.try_subscribe(&filters, 1) {
                                return Ended::Failed(format!("SUBSCRIBE: {err}"));
                            }
                        }
                        Err(err) => {
                            let _ = client.try_disconnect();
                            return Ended::Disabled(err.to_string());
                        }
                    }
                }
                Ok(Incoming::SubAck(granted)) => {
                    if let Err(err) = topics.on_suback(&granted) {
                        // R-MQTT.17: without a subscription the agent must not publish.
                        let _ = client.try_disconnect();
                        return Ended::Failed(err.to_string());
                    }
                    let reply_to = topics.reply_to().unwrap_or_default().to_string();
                    let known = known_controllers.current(&ctx.controllers, &ctx.name, &cfg.controllers);
                    for c in known.iter().filter(|c| !carried.silenced.contains(&c.topic)) {
                        let record = records::connect(
                            &ConnectKind::Mqtt { version: cfg.protocol_version, subscribed_topic: reply_to.clone() },
                            &ctx.endpoint_id,
                            &c.endpoint_id,
                        );
                        if let Err(err) = publish(&client, &topics, &c.topic, cfg.publish_qos, record) {
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
                    let known = known_controllers.current(&ctx.controllers, &ctx.name, &cfg.controllers);
                    if let (Some(version), Some(from_id)) = (records::mqtt_connect_version(&bytes), from.as_deref())
                        && let Err(err) = topics.on_connect_record(&mut carried.silenced, known, from_id, version)
                    {
                        tracing::error!(mtp = %ctx.name, %err, "Record dropped (R-MQTT.26a)");
                        continue;
                    }
                    let reply = match topics.on_publish(&mut carried.silenced, known, &topic, response_topic.as_deref(), from.as_deref()) {
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
                Ok(Incoming::BrokerDisconnect(code)) => {
                    return Ended::Failed(format!("broker disconnected: {code}"));
                }
                Ok(Incoming::Unanswered | Incoming::DisconnectSent | Incoming::Other) => {}
            },
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
    if let Err(err) = publish(client, topics, &dest, cfg.publish_qos, out.bytes) {
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
            let _ = publish(client, topics, &c.topic, 1, bye);
        }
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(DRAIN, async {
        while let Ok(ev) = lp.poll().await {
            if matches!(ev, Incoming::DisconnectSent) {
                break;
            }
        }
    })
    .await;
}
