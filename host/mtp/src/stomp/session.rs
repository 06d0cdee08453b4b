//! The STOMP 1.2 client session as a state machine with no I/O: the `STOMP` connect frame
//! (R-STOMP.2: `endpoint-id`, `login`/`passcode`, `host`, `heart-beat`), heart-beat negotiation,
//! destination discovery from `subscribe-dest` (R-STOMP.14..16), SUBSCRIBE and its receipt, the
//! STOMPConnect Record, SEND frames with `reply-to-dest`, and where MESSAGE frames are answered.

use std::time::Duration;

use crate::config::StompConfig;
use crate::records::{self, ConnectKind};
use crate::stomp::frame::Frame;

/// The content type of a USP Record in a SEND frame.
pub const CONTENT_TYPE: &str = "application/vnd.bbf.usp.msg";

/// The receipt id asked for on SUBSCRIBE, so publishing starts only once subscribed.
const SUBSCRIBE_RECEIPT: &str = "usp-subscribe";

/// Why the session cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StompError {
    /// The broker sent an ERROR frame.
    #[error("broker error: {0}")]
    Server(String),
    /// Neither `subscribe-dest` nor a configured destination (R-STOMP.16).
    #[error("no destination: the broker sent no subscribe-dest and none is configured")]
    NoDestination,
    /// A frame that makes no sense in the current state.
    #[error("unexpected {0} frame")]
    Unexpected(String),
}

/// What the event loop must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this frame.
    Send(Frame),
    /// Subscribed: the link is up.
    Ready,
    /// Hand a Record to the agent, answering to `reply_to` (empty when unknown).
    Deliver {
        /// The Record.
        bytes: Vec<u8>,
        /// The `reply-to-dest` header.
        reply_to: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Connecting,
    Subscribing,
    Ready,
}

/// One STOMP connection's protocol state.
#[derive(Debug)]
pub struct Session {
    own_id: String,
    cfg: StompConfig,
    state: State,
    destination: Option<String>,
    from_server: Option<String>,
    send_every: Option<Duration>,
    expect_every: Option<Duration>,
}

impl Session {
    /// A session that has sent nothing yet, for the endpoint `own_id`.
    pub fn new(cfg: &StompConfig, own_id: &str) -> Self {
        Session {
            own_id: own_id.to_string(),
            cfg: cfg.clone(),
            state: State::Connecting,
            destination: None,
            from_server: None,
            send_every: None,
            expect_every: None,
        }
    }

    fn heartbeats(&self) -> (u32, u32) {
        if self.cfg.enable_heartbeats {
            (self.cfg.outgoing_heartbeat, self.cfg.incoming_heartbeat)
        } else {
            (0, 0)
        }
    }

    /// The frame that opens the session.
    pub fn connect_frame(&self) -> Frame {
        let (out, inc) = self.heartbeats();
        let host = self
            .cfg
            .virtual_host
            .clone()
            .unwrap_or_else(|| self.cfg.host.clone());
        let mut f = Frame::new("STOMP")
            .header("accept-version", "1.2")
            .header("host", host)
            .header("endpoint-id", self.own_id.clone())
            .header("heart-beat", format!("{out},{inc}"));
        if let Some(login) = &self.cfg.username {
            f = f
                .header("login", login.clone())
                .header("passcode", self.cfg.password.clone().unwrap_or_default());
        }
        f
    }

    /// How often we must send a heart-beat, once CONNECTED arrived.
    pub fn send_every(&self) -> Option<Duration> {
        self.send_every
    }

    /// How long the broker may stay silent, once CONNECTED arrived.
    pub fn expect_every(&self) -> Option<Duration> {
        self.expect_every
    }

    /// The destination the agent subscribed to and announces as `reply-to-dest`.
    pub fn destination(&self) -> Option<&str> {
        self.destination.as_deref()
    }

    /// The `subscribe-dest` header the broker sent (`DestinationFromServer`).
    pub fn destination_from_server(&self) -> Option<&str> {
        self.from_server.as_deref()
    }

    /// Subscribed, so Records may be sent.
    pub fn ready(&self) -> bool {
        self.state == State::Ready
    }

    /// The actions a frame from the broker calls for; an ERROR frame or a frame the state does
    /// not allow is an error and ends the connection.
    pub fn handle_incoming(&mut self, frame: Frame) -> Result<Vec<Action>, StompError> {
        match (frame.command.as_str(), &self.state) {
            ("ERROR", _) => Err(StompError::Server(
                frame
                    .get("message")
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&frame.body).into_owned()),
            )),
            ("CONNECTED", State::Connecting) => self.connected(&frame),
            ("RECEIPT", State::Subscribing)
                if frame.get("receipt-id") == Some(SUBSCRIBE_RECEIPT) =>
            {
                self.state = State::Ready;
                let dest = self.destination.clone().unwrap_or_default();
                let mut actions: Vec<Action> = self
                    .cfg
                    .controllers
                    .iter()
                    .map(|c| {
                        let record = records::connect(
                            &ConnectKind::Stomp {
                                subscribed_destination: dest.clone(),
                            },
                            &self.own_id,
                            &c.endpoint_id,
                        );
                        Action::Send(self.send_frame(&c.destination, record))
                    })
                    .collect();
                actions.push(Action::Ready);
                Ok(actions)
            }
            ("MESSAGE", State::Subscribing | State::Ready) => {
                let from = records::from_id(&frame.body);
                let reply_to = frame
                    .get("reply-to-dest")
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .or_else(|| {
                        from.and_then(|id| {
                            self.cfg
                                .controllers
                                .iter()
                                .find(|c| c.endpoint_id == id)
                                .map(|c| c.destination.clone())
                        })
                    })
                    .unwrap_or_default();
                Ok(vec![Action::Deliver {
                    bytes: frame.body,
                    reply_to,
                }])
            }
            ("RECEIPT", _) => Ok(Vec::new()),
            (other, _) => Err(StompError::Unexpected(other.to_string())),
        }
    }

    fn connected(&mut self, frame: &Frame) -> Result<Vec<Action>, StompError> {
        let (cx, cy) = self.heartbeats();
        let (sx, sy) = frame
            .get("heart-beat")
            .and_then(|h| h.split_once(','))
            .map(|(a, b)| {
                (
                    a.trim().parse().unwrap_or(0u32),
                    b.trim().parse().unwrap_or(0u32),
                )
            })
            .unwrap_or((0, 0));
        // STOMP 1.2 heart-beat negotiation: each direction uses the larger of the two wishes,
        // or none when either side cannot.
        let every =
            |a: u32, b: u32| (a != 0 && b != 0).then(|| Duration::from_millis(u64::from(a.max(b))));
        self.send_every = every(cx, sy);
        self.expect_every = every(cy, sx);
        self.from_server = frame
            .get("subscribe-dest")
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        self.destination = self
            .from_server
            .clone()
            .or_else(|| self.cfg.destination.clone().filter(|d| !d.is_empty()));
        let Some(dest) = self.destination.clone() else {
            return Err(StompError::NoDestination);
        };
        self.state = State::Subscribing;
        Ok(vec![Action::Send(
            Frame::new("SUBSCRIBE")
                .header("id", "0")
                .header("destination", dest)
                .header("ack", "auto")
                .header("receipt", SUBSCRIBE_RECEIPT),
        )])
    }

    /// A SEND frame carrying a Record to `destination`.
    pub fn send_frame(&self, destination: &str, record: Vec<u8>) -> Frame {
        let mut f = Frame::new("SEND")
            .header("destination", destination)
            .header("content-type", CONTENT_TYPE);
        if let Some(dest) = &self.destination {
            f = f.header("reply-to-dest", dest.clone());
        }
        f.header("content-length", record.len().to_string())
            .body(record)
    }

    /// R-MTP.7: Disconnect Records to every controller, then DISCONNECT.
    pub fn goodbye(&self) -> Vec<Frame> {
        let mut frames = Vec::new();
        if self.ready() {
            for c in &self.cfg.controllers {
                let bye = records::disconnect(&self.own_id, &c.endpoint_id, "MTP stopped");
                frames.push(self.send_frame(&c.destination, bye));
            }
        }
        frames.push(Frame::new("DISCONNECT"));
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StompController;

    fn cfg() -> StompConfig {
        StompConfig {
            host: "broker".into(),
            port: 61613,
            username: Some("guest".into()),
            password: Some("pw".into()),
            virtual_host: None,
            enable_heartbeats: true,
            outgoing_heartbeat: 10_000,
            incoming_heartbeat: 20_000,
            tls: None,
            destination: Some("/queue/agent".into()),
            server_retry_initial_interval: 60,
            server_retry_interval_multiplier: 2000,
            server_retry_max_interval: 30720,
            controllers: vec![StompController {
                endpoint_id: "proto::c".into(),
                destination: "/queue/c".into(),
            }],
        }
    }

    fn connected(headers: &[(&str, &str)]) -> Frame {
        headers.iter().fold(
            Frame::new("CONNECTED").header("version", "1.2"),
            |f, (k, v)| f.header(k, *v),
        )
    }

    #[test]
    fn connect_frame_carries_endpoint_login_and_heartbeats() {
        let s = Session::new(&cfg(), "proto::a");
        let f = s.connect_frame();
        assert_eq!(f.command, "STOMP");
        assert_eq!(f.get("endpoint-id"), Some("proto::a"));
        assert_eq!(f.get("login"), Some("guest"));
        assert_eq!(f.get("passcode"), Some("pw"));
        assert_eq!(f.get("host"), Some("broker"));
        assert_eq!(f.get("heart-beat"), Some("10000,20000"));
    }

    #[test]
    fn disabled_heartbeats_send_zero() {
        let mut c = cfg();
        c.enable_heartbeats = false;
        assert_eq!(
            Session::new(&c, "a").connect_frame().get("heart-beat"),
            Some("0,0")
        );
    }

    #[test]
    fn heartbeats_negotiate_to_the_larger_wish() {
        let mut s = Session::new(&cfg(), "proto::a");
        s.handle_incoming(connected(&[("heart-beat", "5000,15000")]))
            .unwrap();
        assert_eq!(s.send_every(), Some(Duration::from_millis(15_000)));
        assert_eq!(s.expect_every(), Some(Duration::from_millis(20_000)));
        let mut s = Session::new(&cfg(), "proto::a");
        s.handle_incoming(connected(&[("heart-beat", "0,0")]))
            .unwrap();
        assert_eq!((s.send_every(), s.expect_every()), (None, None));
    }

    #[test]
    fn subscribe_dest_from_server_wins_over_configuration() {
        let mut s = Session::new(&cfg(), "proto::a");
        let actions = s
            .handle_incoming(connected(&[("subscribe-dest", "/queue/from-server")]))
            .unwrap();
        let Action::Send(sub) = &actions[0] else {
            panic!("no SUBSCRIBE")
        };
        assert_eq!(sub.command, "SUBSCRIBE");
        assert_eq!(sub.get("destination"), Some("/queue/from-server"));
        assert_eq!(sub.get("ack"), Some("auto"));
        assert_eq!(s.destination_from_server(), Some("/queue/from-server"));
    }

    #[test]
    fn no_destination_anywhere_is_an_error() {
        let mut c = cfg();
        c.destination = None;
        let mut s = Session::new(&c, "proto::a");
        assert_eq!(
            s.handle_incoming(connected(&[])),
            Err(StompError::NoDestination)
        );
    }

    #[test]
    fn receipt_of_subscribe_sends_stomp_connect_then_ready() {
        let mut s = Session::new(&cfg(), "proto::a");
        s.handle_incoming(connected(&[])).unwrap();
        assert!(!s.ready());
        let actions = s
            .handle_incoming(Frame::new("RECEIPT").header("receipt-id", SUBSCRIBE_RECEIPT))
            .unwrap();
        let Action::Send(send) = &actions[0] else {
            panic!("no SEND")
        };
        assert_eq!(send.get("destination"), Some("/queue/c"));
        assert_eq!(send.get("reply-to-dest"), Some("/queue/agent"));
        assert_eq!(send.get("content-type"), Some(CONTENT_TYPE));
        assert_eq!(actions[1], Action::Ready);
        assert!(s.ready());
    }

    #[test]
    fn message_is_answered_on_reply_to_dest_or_the_controller_destination() {
        let mut s = Session::new(&cfg(), "proto::a");
        s.handle_incoming(connected(&[])).unwrap();
        let record = records::connect(&ConnectKind::Uds, "proto::c", "proto::a");
        let with = Frame::new("MESSAGE")
            .header("reply-to-dest", "/queue/x")
            .body(record.clone());
        assert_eq!(
            s.handle_incoming(with).unwrap(),
            vec![Action::Deliver {
                bytes: record.clone(),
                reply_to: "/queue/x".into()
            }]
        );
        let without = Frame::new("MESSAGE").body(record.clone());
        assert_eq!(
            s.handle_incoming(without).unwrap(),
            vec![Action::Deliver {
                bytes: record,
                reply_to: "/queue/c".into()
            }]
        );
    }

    #[test]
    fn error_frame_ends_the_session() {
        let mut s = Session::new(&cfg(), "proto::a");
        assert_eq!(
            s.handle_incoming(Frame::new("ERROR").header("message", "bad login")),
            Err(StompError::Server("bad login".into()))
        );
    }

    #[test]
    fn goodbye_sends_disconnect_records_only_when_ready() {
        let mut s = Session::new(&cfg(), "proto::a");
        assert_eq!(s.goodbye().len(), 1);
        s.handle_incoming(connected(&[])).unwrap();
        s.handle_incoming(Frame::new("RECEIPT").header("receipt-id", SUBSCRIBE_RECEIPT))
            .unwrap();
        let frames = s.goodbye();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].command, "SEND");
        assert_eq!(frames[1].command, "DISCONNECT");
    }
}
