//! The controller side of the MTPs: a [`ControllerClient`] that reaches one agent over
//! WebSocket, MQTT or STOMP, sends requests, matches each answer to its request by msg_id (so many
//! requests can be in flight), and hands agent-originated Notify messages and Connect records to
//! the caller. It is what `usp-bench` and `uspctl`'s remote mode talk through.
//!
//! Each transport is a task that moves Record bytes both ways over two channels; the
//! dispatcher task in this module decodes what arrives and routes it. Nothing here interprets a
//! response beyond its msg_id.
//!
//! Layout:
//! - [`mqtt`]: MQTT 5.0 / 3.1.1 through a broker (Response Topic or `/reply-to=`), over
//!   usp-mtp's MQTT adapter.
//! - [`stomp`]: STOMP 1.2 through a broker (`endpoint-id`, `reply-to-dest`).
//! - [`websocket`]: a WebSocket client session (`v1.usp`, `eid=` in the URI, binary frames).

pub mod mqtt;
pub mod stomp;
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

pub use mqtt::{MqttEndpoint, MqttLinkError, MqttVersion};
pub use stomp::{StompEndpoint, StompLinkError};
pub use websocket::{WsEndpoint, WsError};

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
    /// STOMP through a broker.
    Stomp(StompEndpoint),
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
        /// What failed (not a `source`: the message already says it).
        reason: LinkError,
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

/// What failed on the transport, per MTP.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The WebSocket session.
    #[error(transparent)]
    WebSocket(#[from] WsError),
    /// The MQTT connection.
    #[error(transparent)]
    Mqtt(#[from] MqttLinkError),
    /// The STOMP connection.
    #[error(transparent)]
    Stomp(#[from] StompLinkError),
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
    /// Opens the session (for MQTT and STOMP: connected and subscribed) and returns the client with the
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
            Endpoint::Stomp(st) => {
                stomp::open(st, &options.controller_id, outgoing_rx, incoming_tx).await?
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    //! The client against the crate's own agent-side WebSocket server MTP over real sockets. The
    //! agent's message handling is a labelled stand-in (`responder`): it answers Gets in whatever
    //! order the test asks, which the real agent never does, so out-of-order matching is tested.

    use super::*;
    use usp_codec::usp_proto::usp::{get_resp, notify::Notification};
    use usp_mtp::{
        InboundRecord, MtpConfig, MtpEvent, MtpSettings, Mtps, TransportConfig, WsServerConfig,
    };

    const AGENT: &str = "proto::agent";
    const CONTROLLER: &str = "proto::controller";

    /// Starts a WebSocket server MTP on a free port; returns it, its events and its URL.
    async fn agent_side() -> (Mtps, mpsc::Receiver<MtpEvent>, String) {
        let (tx, mut events) = mpsc::channel(64);
        let mtps = Mtps::start(
            MtpSettings {
                endpoint_id: AGENT.to_string(),
                max_record_size: 1 << 20,
                mtps: vec![MtpConfig {
                    name: "ws".to_string(),
                    enable: true,
                    transport: TransportConfig::WebSocketServer(WsServerConfig {
                        bind: "127.0.0.1".to_string(),
                        port: 0,
                        path: "/usp".to_string(),
                        tls: None,
                        keep_alive_secs: 0,
                    }),
                }],
            },
            tx,
        );
        loop {
            if let Some(MtpEvent::Up { info, .. }) = events.recv().await
                && let Some(addr) = info.listening
            {
                return (mtps, events, format!("ws://{addr}/usp"));
            }
        }
    }

    async fn next_record(events: &mut mpsc::Receiver<MtpEvent>) -> InboundRecord {
        loop {
            if let Some(MtpEvent::Record(record)) = events.recv().await {
                return record;
            }
        }
    }

    fn get_resp_for(request: &usp::Msg) -> usp::Msg {
        let Some(MsgBody::Request(usp::Request {
            req_type: Some(ReqType::Get(get)),
        })) = request.body.as_ref().and_then(|b| b.msg_body.clone())
        else {
            panic!("not a Get: {request:?}");
        };
        msg::response(
            msg::msg_id(request).unwrap(),
            RespType::GetResp(usp::GetResp {
                req_path_results: vec![get_resp::RequestedPathResult {
                    requested_path: get.param_paths[0].clone(),
                    ..Default::default()
                }],
            }),
        )
    }

    fn answered_path(answer: &usp::Msg) -> String {
        match answer.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
            Some(MsgBody::Response(usp::Response {
                resp_type: Some(RespType::GetResp(resp)),
            })) => resp.req_path_results[0].requested_path.clone(),
            other => panic!("not a GetResp: {other:?}"),
        }
    }

    async fn client(
        url: &str,
        timeout: Duration,
    ) -> (ControllerClient, mpsc::Receiver<AgentEvent>) {
        let mut options = ControllerOptions::new(
            CONTROLLER,
            AGENT,
            Endpoint::WebSocket(WsEndpoint {
                url: url.to_string(),
            }),
        );
        options.timeout = timeout;
        ControllerClient::connect(options).await.unwrap()
    }

    #[tokio::test]
    async fn answers_arriving_out_of_order_reach_their_requests() {
        let (mtps, mut agent_events, url) = agent_side().await;
        let (client, _events) = client(&url, Duration::from_secs(10)).await;
        let client = Arc::new(client);
        // The test keeps its own handle: dropping the last one would stop the server before
        // the queued answers are written.
        let server = mtps.clone();
        let responder = tokio::spawn(async move {
            let mut received = Vec::new();
            for _ in 0..4 {
                let record = next_record(&mut agent_events).await;
                let msg = Record::decode(&record.bytes).unwrap().msg().unwrap();
                received.push((record.reply, msg));
            }
            // Answer the last request first.
            for (reply, request) in received.into_iter().rev() {
                let answer = Record::for_msg(AGENT, CONTROLLER, &get_resp_for(&request));
                server.send(&reply, answer.encode()).await.unwrap();
            }
        });
        let requests = (0..4).map(|i| {
            let client = client.clone();
            async move {
                let path = format!("Device.Test.{i}.");
                let answer = client
                    .request(ReqType::Get(usp::Get {
                        param_paths: vec![path.clone()],
                        max_depth: 0,
                    }))
                    .await
                    .unwrap();
                (path, answered_path(&answer))
            }
        });
        for (asked, answered) in futures::future::join_all(requests).await {
            assert_eq!(asked, answered);
        }
        responder.await.unwrap();
        drop(mtps);
    }

    #[tokio::test]
    async fn connect_record_and_notify_reach_the_event_stream_and_notify_is_answered() {
        let (mtps, mut agent_events, url) = agent_side().await;
        let (client, mut events) = client(&url, Duration::from_secs(10)).await;
        assert_eq!(
            events.recv().await,
            Some(AgentEvent::Connect(RecordBody::WebSocketConnect))
        );
        // A request gives the stand-in agent a way back to the controller.
        let probe = tokio::spawn(async move {
            client
                .request(ReqType::Get(usp::Get {
                    param_paths: vec!["Device.".into()],
                    max_depth: 0,
                }))
                .await
        });
        let record = next_record(&mut agent_events).await;
        let notify = usp::Notify {
            subscription_id: "sub-1".to_string(),
            send_resp: true,
            notification: Some(Notification::ValueChange(usp::notify::ValueChange {
                param_path: "Device.X.Y".to_string(),
                param_value: "7".to_string(),
            })),
        };
        let notify_msg = msg::request("n-1", ReqType::Notify(notify.clone()));
        mtps.send(
            &record.reply,
            Record::for_msg(AGENT, CONTROLLER, &notify_msg).encode(),
        )
        .await
        .unwrap();
        assert_eq!(events.recv().await, Some(AgentEvent::Notify(notify)));
        let resp = next_record(&mut agent_events).await;
        let resp = Record::decode(&resp.bytes).unwrap().msg().unwrap();
        assert_eq!(msg::msg_id(&resp), Some("n-1"));
        assert!(matches!(
            resp.body.and_then(|b| b.msg_body),
            Some(MsgBody::Response(usp::Response {
                resp_type: Some(RespType::NotifyResp(usp::NotifyResp { subscription_id }))
            })) if subscription_id == "sub-1"
        ));
        probe.abort();
    }

    #[tokio::test]
    async fn unanswered_request_times_out_and_its_msg_id_is_free_again() {
        let (_mtps, _agent_events, url) = agent_side().await;
        let (client, _events) = client(&url, Duration::from_millis(200)).await;
        let request = msg::request(
            "same-id",
            ReqType::Get(usp::Get {
                param_paths: vec!["Device.".into()],
                max_depth: 0,
            }),
        );
        for _ in 0..2 {
            assert!(matches!(
                client.send(request.clone()).await,
                Err(ControllerError::Timeout { .. })
            ));
        }
    }

    #[tokio::test]
    async fn server_without_usp_subprotocol_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A plain WebSocket server that negotiates no subprotocol (labelled stand-in: not USP).
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ws = tokio_tungstenite::accept_async(tcp).await;
        });
        let mut options = ControllerOptions::new(
            CONTROLLER,
            AGENT,
            Endpoint::WebSocket(WsEndpoint {
                url: format!("ws://{addr}/usp"),
            }),
        );
        options.timeout = Duration::from_secs(5);
        let err = ControllerClient::connect(options).await.unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains("subprotocol"),
            "{err}"
        );
    }
}
