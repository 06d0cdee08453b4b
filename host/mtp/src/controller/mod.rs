//! The controller side of the MTPs: a [`ControllerClient`] that reaches one agent over
//! WebSocket or MQTT, sends requests, matches each answer to its request by msg_id (so many
//! requests can be in flight), and hands agent-originated Notify messages and Connect records to
//! the caller. It is what `usp-bench` and `uspctl`'s remote mode talk through.
//!
//! Each transport is a task that moves Record bytes both ways over two channels; the
//! dispatcher task in this module decodes what arrives and routes it. Nothing here interprets a
//! response beyond its msg_id.
//!
//! Layout:
//! - [`mqtt`]: MQTT 5.0 / 3.1.1 through a broker (Response Topic or `/reply-to=`).
//! - [`websocket`]: a WebSocket client session (`v1.usp`, `eid=` in the URI, binary frames).

pub mod mqtt;
pub mod websocket;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use usp_codec::msg;
use usp_codec::record::{Inbound, Record, RecordBody};
use usp_codec::usp_proto::usp::{self, body::MsgBody, request::ReqType, response::RespType};

pub use mqtt::{MqttEndpoint, MqttVersion};
pub use websocket::WsEndpoint;

/// Records queued towards the transport task before `send` waits.
const OUTGOING_QUEUE: usize = 256;

/// Agent events kept for a caller that reads them slowly; newer ones are dropped beyond this.
const EVENT_QUEUE: usize = 4096;

/// Which MTP carries the session.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A WebSocket session to the agent's WebSocket server.
    WebSocket(WsEndpoint),
    /// MQTT through a broker.
    Mqtt(MqttEndpoint),
}

/// How to reach an agent.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Our Endpoint ID: the `from_id` of our Records (the agent must know it as a controller).
    pub controller_id: String,
    /// The agent's Endpoint ID: the `to_id` of our Records.
    pub agent_id: String,
    /// The MTP and its address.
    pub endpoint: Endpoint,
    /// Most requests in flight at once; further `send` calls wait. At least 1.
    pub window: usize,
    /// How long `send` waits for the answer.
    pub timeout: Duration,
}

impl ControllerOptions {
    /// Options with a window of 16 and a 10 s timeout.
    pub fn new(controller_id: &str, agent_id: &str, endpoint: Endpoint) -> Self {
        ControllerOptions {
            controller_id: controller_id.to_string(),
            agent_id: agent_id.to_string(),
            endpoint,
            window: 16,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Something the agent sent that is not an answer to one of our requests.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A Notify request (already answered with NotifyResp when it asked for one).
    Notify(usp::Notify),
    /// A Connect record (WebSocketConnect, MQTTConnect, …): the agent is reachable.
    Connect(RecordBody),
    /// A Disconnect record.
    Disconnect {
        /// The agent's reason.
        reason: String,
        /// Its 71xx code.
        code: u32,
    },
}

/// Why a request got no answer, or the session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The transport could not be opened.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The URL or broker address.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The request has no msg_id, so its answer could not be matched.
    #[error("request has no msg_id")]
    MissingMsgId,
    /// Another request with this msg_id is still in flight.
    #[error("msg_id {0:?} is already in flight")]
    DuplicateMsgId(String),
    /// No answer within the configured timeout.
    #[error("no answer to msg_id {msg_id:?} within {timeout:?}")]
    Timeout {
        /// The unanswered request.
        msg_id: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The session ended before the answer came.
    #[error("the session to the agent is closed")]
    Closed,
}

/// What the dispatcher routes answers through: msg_id → the waiting `send`.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<usp::Msg>>>>;

/// A controller's session with one agent. `send` takes `&self`, so clones of an `Arc` of it
/// (or several futures) can pipeline requests up to the window.
#[derive(Debug)]
pub struct ControllerClient {
    controller_id: String,
    agent_id: String,
    outgoing: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    /// Bounds the requests in flight to the configured window.
    window: Semaphore,
    timeout: Duration,
    next_id: AtomicU64,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerClient {
    /// Opens the session (for MQTT: connected and subscribed) and returns the client with the
    /// stream of agent events.
    pub async fn connect(
        options: ControllerOptions,
    ) -> Result<(ControllerClient, mpsc::Receiver<AgentEvent>), ControllerError> {
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(OUTGOING_QUEUE);
        let transport = match &options.endpoint {
            Endpoint::WebSocket(ws) => {
                websocket::open(ws, &options.controller_id, outgoing_rx, incoming_tx).await?
            }
            Endpoint::Mqtt(mq) => {
                mqtt::open(mq, &options.controller_id, outgoing_rx, incoming_tx).await?
            }
        };
        let pending = Pending::default();
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let dispatcher = tokio::spawn(dispatch(
            Dispatcher {
                controller_id: options.controller_id.clone(),
                agent_id: options.agent_id.clone(),
                pending: pending.clone(),
                outgoing: outgoing.clone(),
                events: events_tx,
            },
            incoming,
        ));
        let client = ControllerClient {
            controller_id: options.controller_id,
            agent_id: options.agent_id,
            outgoing,
            pending,
            window: Semaphore::new(options.window.max(1)),
            timeout: options.timeout,
            next_id: AtomicU64::new(1),
            tasks: vec![transport, dispatcher],
        };
        Ok((client, events))
    }

    /// A msg_id no earlier request of this client used.
    pub fn next_msg_id(&self) -> String {
        format!(
            "{}-{}",
            self.controller_id,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Sends `req` with a fresh msg_id and returns the agent's answer (a response or an Error).
    pub async fn request(&self, req: ReqType) -> Result<usp::Msg, ControllerError> {
        self.send(msg::request(&self.next_msg_id(), req)).await
    }

    /// Sends a request Msg and returns the Msg that answers it (same msg_id).
    pub async fn send(&self, request: usp::Msg) -> Result<usp::Msg, ControllerError> {
        let msg_id = msg::msg_id(&request)
            .ok_or(ControllerError::MissingMsgId)?
            .to_string();
        let _permit = self
            .window
            .acquire()
            .await
            .map_err(|_| ControllerError::Closed)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.contains_key(&msg_id) {
                return Err(ControllerError::DuplicateMsgId(msg_id));
            }
            pending.insert(msg_id.clone(), tx);
        }
        let record = Record::for_msg(&self.controller_id, &self.agent_id, &request).encode();
        if self.outgoing.send(record).await.is_err() {
            self.forget(&msg_id);
            return Err(ControllerError::Closed);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ControllerError::Closed),
            Err(_) => {
                self.forget(&msg_id);
                Err(ControllerError::Timeout {
                    msg_id,
                    timeout: self.timeout,
                })
            }
        }
    }

    /// The agent's Endpoint ID.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    fn forget(&self, msg_id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(msg_id);
    }
}

impl Drop for ControllerClient {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The dispatcher task's state.
struct Dispatcher {
    controller_id: String,
    agent_id: String,
    pending: Pending,
    outgoing: mpsc::Sender<Vec<u8>>,
    events: mpsc::Sender<AgentEvent>,
}

/// Routes every Record that arrives until the transport ends; then the waiting requests fail
/// with [`ControllerError::Closed`] as their senders are dropped.
async fn dispatch(state: Dispatcher, mut incoming: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = incoming.recv().await {
        state.route(&bytes).await;
    }
    state
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

impl Dispatcher {
    async fn route(&self, bytes: &[u8]) {
        match usp_codec::record::classify(bytes, &self.controller_id) {
            Inbound::Msg { from_id, msg } if from_id == self.agent_id => self.on_msg(msg).await,
            Inbound::Msg { from_id, .. } => {
                tracing::warn!(%from_id, "message from an unexpected endpoint dropped");
            }
            Inbound::Control(record) => self.on_control(record),
            Inbound::Reject { reply } => {
                tracing::warn!(to = %reply.to_id, "malformed record from the agent dropped");
            }
            Inbound::Drop(reason) => tracing::warn!(%reason, "record dropped"),
        }
    }

    async fn on_msg(&self, msg: usp::Msg) {
        let Some(msg_id) = msg::msg_id(&msg).map(str::to_string) else {
            return;
        };
        let notify = match msg.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
            Some(MsgBody::Request(usp::Request {
                req_type: Some(ReqType::Notify(notify)),
            })) => notify.clone(),
            Some(MsgBody::Request(_)) => {
                tracing::warn!(%msg_id, "request from the agent that is not a Notify dropped");
                return;
            }
            _ => {
                let waiter = self
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&msg_id);
                match waiter {
                    // The requester may have timed out in the meantime; nothing to do then.
                    Some(tx) => drop(tx.send(msg)),
                    None => tracing::warn!(%msg_id, "answer to no pending request dropped"),
                }
                return;
            }
        };
        if notify.send_resp {
            let resp = msg::response(
                &msg_id,
                RespType::NotifyResp(usp::NotifyResp {
                    subscription_id: notify.subscription_id.clone(),
                }),
            );
            let record = Record::for_msg(&self.controller_id, &self.agent_id, &resp).encode();
            if self.outgoing.send(record).await.is_err() {
                return;
            }
        }
        self.emit(AgentEvent::Notify(notify));
    }

    fn on_control(&self, record: Record) {
        if record.from_id != self.agent_id {
            tracing::warn!(from_id = %record.from_id, "record from an unexpected endpoint dropped");
            return;
        }
        match record.body {
            RecordBody::Disconnect {
                reason,
                reason_code,
            } => self.emit(AgentEvent::Disconnect {
                reason,
                code: reason_code,
            }),
            body => self.emit(AgentEvent::Connect(body)),
        }
    }

    fn emit(&self, event: AgentEvent) {
        if self.events.try_send(event).is_err() {
            tracing::debug!("agent event dropped: the reader is slow or gone");
        }
    }
}
