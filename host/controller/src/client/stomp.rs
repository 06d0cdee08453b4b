//! A controller's STOMP 1.2 connection through a broker, driven by the agent MTP's own
//! [`Session`] state machine and frame codec: the `STOMP` frame carries our `endpoint-id`
//! (R-STOMP.2), we SUBSCRIBE to our own destination (or the broker's `subscribe-dest`) and wait
//! for its receipt before sending, and each Record goes in a SEND frame to the agent's
//! destination with `content-type: application/vnd.bbf.usp.msg` and `reply-to-dest` naming the
//! destination we subscribed to. Heart-beats are negotiated and kept. A lost connection is
//! re-opened every `RECONNECT_WAIT` for at most `RECONNECT_LIMIT`; Records wait (bounded by
//! the channel) meanwhile, and when the limit passes the session ends and requests fail.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ControllerError;
use usp_mtp::config::StompConfig;
use usp_mtp::stomp::frame::{self, Frame, FrameError, Parsed};
use usp_mtp::stomp::session::{Action, Session, StompError};

/// How long TCP, CONNECTED and the SUBSCRIBE receipt may take together.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between reconnect attempts, so a dead broker does not become a busy loop.
const RECONNECT_WAIT: Duration = Duration::from_millis(200);

/// How long a lost connection is retried before the session gives up (a RabbitMQ restart
/// takes well under this).
const RECONNECT_LIMIT: Duration = Duration::from_secs(60);

/// Heart-beat interval offered in both directions, in milliseconds.
const HEARTBEAT_MS: u32 = 10_000;

/// The largest frame body accepted; a whole-tree GetResp is far below it.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a STOMP connection could not be opened, or ended.
#[derive(Debug, thiserror::Error)]
pub enum StompLinkError {
    /// TCP to the broker failed.
    #[error("{0}")]
    Connect(#[source] std::io::Error),
    /// CONNECTED and the SUBSCRIBE receipt did not come in time.
    #[error("not subscribed within {0:?}")]
    OpenTimeout(Duration),
    /// Writing to the broker failed.
    #[error("write: {0}")]
    Write(#[source] std::io::Error),
    /// Reading from the broker failed.
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
    /// What the broker sent is not a STOMP frame.
    #[error("malformed frame from the broker: {0}")]
    Frame(#[source] FrameError),
    /// The broker sent ERROR or a frame out of turn.
    #[error("{0}")]
    Protocol(#[from] StompError),
    /// Sending a heart-beat failed.
    #[error("{0}")]
    Heartbeat(#[source] std::io::Error),
    /// The broker stayed silent for twice its heart-beat interval.
    #[error("broker heart-beat missed")]
    HeartbeatMissed,
}

/// Where the broker is and which destinations the two endpoints use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StompEndpoint {
    /// Broker host name or address.
    pub host: String,
    /// Broker STOMP port.
    pub port: u16,
    /// The destination the agent subscribed to (`LocalAgent.MTP.{i}.STOMP.Destination`).
    pub agent_dest: String,
    /// Our own destination: we subscribe to it and name it in `reply-to-dest`. A broker's
    /// `subscribe-dest` in CONNECTED replaces it (R-STOMP.14).
    pub own_dest: String,
    /// The `login` header; none sends no credentials.
    pub login: Option<String>,
    /// The `passcode` header (with `login`).
    pub passcode: Option<String>,
    /// The `host` header (the broker's virtual host).
    pub virtual_host: String,
}

impl StompEndpoint {
    /// An endpoint on virtual host `/` (RabbitMQ's default) without credentials.
    pub fn new(host: &str, port: u16, agent_dest: &str, own_dest: &str) -> Self {
        StompEndpoint {
            host: host.to_string(),
            port,
            agent_dest: agent_dest.to_string(),
            own_dest: own_dest.to_string(),
            login: None,
            passcode: None,
            virtual_host: "/".to_string(),
        }
    }

    fn target(&self) -> String {
        format!("stomp://{}:{}", self.host, self.port)
    }

    /// The settings the shared [`Session`] reads: credentials, virtual host, heart-beats and
    /// our destination. There are no controllers to greet, so no STOMPConnect Record is sent.
    fn session_config(&self) -> StompConfig {
        StompConfig {
            host: self.host.clone(),
            port: self.port,
            username: self.login.clone(),
            password: self.passcode.clone(),
            virtual_host: Some(self.virtual_host.clone()),
            enable_heartbeats: true,
            outgoing_heartbeat: HEARTBEAT_MS,
            incoming_heartbeat: HEARTBEAT_MS,
            tls: None,
            destination: Some(self.own_dest.clone()),
            server_retry_initial_interval: 0,
            server_retry_interval_multiplier: 1000,
            server_retry_max_interval: 0,
            controllers: Vec::new(),
        }
    }
}

/// Opens the connection, subscribes, and returns once the broker confirmed the subscription.
pub(super) async fn open(
    endpoint: &StompEndpoint,
    controller_id: &str,
    outgoing: mpsc::Receiver<Vec<u8>>,
    incoming: mpsc::Sender<Bytes>,
) -> Result<JoinHandle<()>, ControllerError> {
    let connection = Connection::open_bounded(endpoint, controller_id)
        .await
        .map_err(|reason| ControllerError::Connect {
            target: endpoint.target(),
            reason: reason.into(),
        })?;
    Ok(tokio::spawn(run(
        endpoint.clone(),
        controller_id.to_string(),
        connection,
        outgoing,
        incoming,
    )))
}

/// Why [`Connection::serve`] returned.
enum Ended {
    /// The client or the dispatcher is gone: nothing more to do.
    Closed,
    /// The broker connection failed.
    Lost(StompLinkError),
}

/// The connection task: serves one connection after another until the client goes away or
/// reconnecting fails for [`RECONNECT_LIMIT`].
async fn run(
    endpoint: StompEndpoint,
    controller_id: String,
    mut connection: Connection,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    incoming: mpsc::Sender<Bytes>,
) {
    loop {
        let reason = match connection.serve(&mut outgoing, &incoming).await {
            Ended::Closed => return,
            Ended::Lost(reason) => reason,
        };
        tracing::warn!(%reason, "STOMP connection lost; reconnecting");
        let give_up = Instant::now() + RECONNECT_LIMIT;
        connection = loop {
            tokio::time::sleep(RECONNECT_WAIT).await;
            match Connection::open_bounded(&endpoint, &controller_id).await {
                Ok(next) => break next,
                Err(reason) if Instant::now() >= give_up => {
                    tracing::warn!(%reason, limit = ?RECONNECT_LIMIT, "STOMP broker unreachable; session closed");
                    return;
                }
                Err(reason) => tracing::debug!(%reason, "STOMP reconnect failed"),
            }
        };
    }
}

/// One subscribed broker connection.
struct Connection {
    io: TcpStream,
    session: Session,
    buf: BytesMut,
    destination: String,
    last_sent: Instant,
    last_heard: Instant,
    /// MESSAGE bodies that arrived before the SUBSCRIBE receipt.
    early: Vec<Vec<u8>>,
}

impl Connection {
    async fn open_bounded(
        endpoint: &StompEndpoint,
        controller_id: &str,
    ) -> Result<Self, StompLinkError> {
        tokio::time::timeout(OPEN_TIMEOUT, Self::open(endpoint, controller_id))
            .await
            .map_err(|_| StompLinkError::OpenTimeout(OPEN_TIMEOUT))?
    }

    /// TCP, the `STOMP` frame, CONNECTED, SUBSCRIBE and its receipt.
    async fn open(endpoint: &StompEndpoint, controller_id: &str) -> Result<Self, StompLinkError> {
        let io = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(StompLinkError::Connect)?;
        // Small Records in both directions: Nagle's algorithm would only add latency.
        io.set_nodelay(true).map_err(StompLinkError::Connect)?;
        let session = Session::new(&endpoint.session_config(), controller_id);
        let mut connection = Connection {
            io,
            buf: BytesMut::with_capacity(8192),
            destination: endpoint.agent_dest.clone(),
            last_sent: Instant::now(),
            last_heard: Instant::now(),
            early: Vec::new(),
            session,
        };
        let connect = connection.session.connect_frame();
        connection.write(&connect).await?;
        while !connection.session.ready() {
            connection.read().await?;
            while let Some(frame) = connection.next_frame()? {
                for action in connection.session.handle_incoming(frame)? {
                    match action {
                        Action::Send(frame) => connection.write(&frame).await?,
                        Action::Deliver { bytes, .. } => connection.early.push(bytes),
                        Action::Ready => {}
                    }
                }
            }
        }
        Ok(connection)
    }

    /// Moves Records both ways and keeps heart-beats until the connection or a channel ends.
    async fn serve(
        &mut self,
        outgoing: &mut mpsc::Receiver<Vec<u8>>,
        incoming: &mpsc::Sender<Bytes>,
    ) -> Ended {
        for bytes in std::mem::take(&mut self.early) {
            if incoming.send(bytes.into()).await.is_err() {
                return Ended::Closed;
            }
        }
        loop {
            let send_at = self
                .session
                .send_every()
                .map(|every| self.last_sent + every);
            // STOMP allows slack: a broker is dead only after twice its interval.
            let silent_at = self
                .session
                .expect_every()
                .map(|every| self.last_heard + every * 2);
            let (beat, silent) = (
                send_at.unwrap_or(self.last_sent),
                silent_at.unwrap_or(self.last_heard),
            );
            tokio::select! {
                record = outgoing.recv() => {
                    let Some(record) = record else { return Ended::Closed };
                    let send = self.session.send_frame(&self.destination, record);
                    if let Err(reason) = self.write(&send).await {
                        return Ended::Lost(reason);
                    }
                }
                read = self.read() => {
                    if let Err(reason) = read {
                        return Ended::Lost(reason);
                    }
                    loop {
                        let frame = match self.next_frame() {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(reason) => return Ended::Lost(reason),
                        };
                        let actions = match self.session.handle_incoming(frame) {
                            Ok(actions) => actions,
                            Err(err) => return Ended::Lost(err.into()),
                        };
                        for action in actions {
                            match action {
                                Action::Deliver { bytes, .. } => {
                                    if incoming.send(bytes.into()).await.is_err() {
                                        return Ended::Closed;
                                    }
                                }
                                Action::Send(frame) => {
                                    if let Err(reason) = self.write(&frame).await {
                                        return Ended::Lost(reason);
                                    }
                                }
                                Action::Ready => {}
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(beat), if send_at.is_some() => {
                    if let Err(err) = self.io.write_all(b"\n").await {
                        return Ended::Lost(StompLinkError::Heartbeat(err));
                    }
                    self.last_sent = Instant::now();
                }
                _ = tokio::time::sleep_until(silent), if silent_at.is_some() => {
                    return Ended::Lost(StompLinkError::HeartbeatMissed);
                }
            }
        }
    }

    async fn write(&mut self, frame: &Frame) -> Result<(), StompLinkError> {
        self.io
            .write_all(&frame.encode())
            .await
            .map_err(StompLinkError::Write)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Reads what the broker sent into the buffer.
    async fn read(&mut self) -> Result<(), StompLinkError> {
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Err(StompLinkError::Closed),
            Ok(_) => {
                self.last_heard = Instant::now();
                Ok(())
            }
            Err(err) => Err(StompLinkError::Read(err)),
        }
    }

    /// The next whole frame in the buffer, skipping heart-beats.
    fn next_frame(&mut self) -> Result<Option<Frame>, StompLinkError> {
        loop {
            match frame::decode(&mut self.buf, MAX_BODY) {
                Ok(Some(Parsed::Frame(frame))) => return Ok(Some(frame)),
                Ok(Some(Parsed::Heartbeat)) => {}
                Ok(None) => return Ok(None),
                Err(err) => return Err(StompLinkError::Frame(err)),
            }
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
    use usp_mtp::stomp::session::CONTENT_TYPE;

    #[test]
    fn connect_frame_names_the_controller_and_the_virtual_host() {
        let mut endpoint = StompEndpoint::new("127.0.0.1", 61613, "/queue/a", "/queue/c");
        endpoint.login = Some("guest".to_string());
        endpoint.passcode = Some("pw".to_string());
        let frame = Session::new(&endpoint.session_config(), "proto::c").connect_frame();
        assert_eq!(frame.command, "STOMP");
        assert_eq!(frame.get("endpoint-id"), Some("proto::c"));
        assert_eq!(frame.get("host"), Some("/"));
        assert_eq!(frame.get("login"), Some("guest"));
        assert_eq!(frame.get("passcode"), Some("pw"));
    }

    #[test]
    fn send_goes_to_the_agent_with_usp_content_type_and_our_destination_as_reply_to() {
        let endpoint = StompEndpoint::new("127.0.0.1", 61613, "/queue/a", "/queue/c");
        let mut session = Session::new(&endpoint.session_config(), "proto::c");
        session
            .handle_incoming(Frame::new("CONNECTED").header("version", "1.2"))
            .unwrap();
        let send = session.send_frame(&endpoint.agent_dest, vec![1, 2, 3]);
        assert_eq!(send.command, "SEND");
        assert_eq!(send.get("destination"), Some("/queue/a"));
        assert_eq!(send.get("content-type"), Some(CONTENT_TYPE));
        assert_eq!(send.get("reply-to-dest"), Some("/queue/c"));
        assert_eq!(send.get("content-length"), Some("3"));
    }

    #[tokio::test]
    async fn unreachable_broker_fails_to_open_with_its_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (_tx, outgoing) = mpsc::channel(1);
        let (incoming, _rx) = mpsc::channel(1);
        let endpoint = StompEndpoint::new("127.0.0.1", port, "/queue/a", "/queue/c");
        let err = open(&endpoint, "proto::c", outgoing, incoming)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("stomp://127.0.0.1:{port}")),
            "{err}"
        );
    }
}
