//! The UDS MTP handshake and per-connection rules as a state machine with no I/O: the client
//! sends its Endpoint ID first, the server answers with its own, Records before that are
//! ignored, a bad handshake or frame gets a Type-2 error and the connection closes, a received
//! Type-2 closes it, and once the handshake is done the agent sends a UDSConnect Record.

use crate::records::{self, ConnectKind};
use crate::uds::frame::{FrameError, Tlv};

/// Which side of the socket this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Connected to the peer's socket; speaks first.
    Client,
    /// Accepted the connection; answers the handshake.
    Server,
}

/// What the event loop must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write this TLV as a frame.
    Send(Tlv),
    /// Hand this Record to the agent.
    Deliver(Vec<u8>),
    /// The handshake finished with this peer.
    Established(String),
    /// Close the connection, for this reason.
    Close(String),
}

/// One connection's protocol state.
#[derive(Debug)]
pub(crate) struct Session {
    role: Role,
    own_id: String,
    peer: Option<String>,
}

impl Session {
    pub(crate) fn new(role: Role, own_id: &str) -> Self {
        Session {
            role,
            own_id: own_id.to_string(),
            peer: None,
        }
    }

    /// The peer's Endpoint ID once the handshake is done.
    pub(crate) fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    /// What to send as soon as the connection exists.
    pub(crate) fn start(&self) -> Vec<Action> {
        match self.role {
            Role::Client => vec![Action::Send(Tlv::Handshake(self.own_id.clone()))],
            Role::Server => Vec::new(),
        }
    }

    pub(crate) fn handle_incoming(&mut self, tlv: Tlv) -> Vec<Action> {
        match tlv {
            Tlv::Handshake(id) if self.peer.is_some() => {
                tracing::debug!(peer = %id, "ignoring repeated UDS handshake");
                Vec::new()
            }
            Tlv::Handshake(id) => self.handshake(id),
            Tlv::Record(bytes) if self.peer.is_some() => vec![Action::Deliver(bytes)],
            Tlv::Record(_) => {
                tracing::debug!("ignoring UDS record received before the handshake");
                Vec::new()
            }
            Tlv::Error(text) => vec![Action::Close(format!("peer reported error: {text}"))],
            Tlv::Unknown(kind) => {
                tracing::debug!(kind, "ignoring UDS TLV of unknown type");
                Vec::new()
            }
        }
    }

    /// The reply to a frame that cannot be parsed: Type-2, then close.
    pub(crate) fn handle_frame_error(&mut self, err: &FrameError) -> Vec<Action> {
        self.fail(err.to_string())
    }

    /// The reply to a Record the agent must not see (unextractable or too large).
    pub(crate) fn reject_record(&mut self, why: &str) -> Vec<Action> {
        self.fail(why.to_string())
    }

    fn handshake(&mut self, id: String) -> Vec<Action> {
        if id.is_empty() || id.len() > 512 {
            return self.fail("invalid handshake: bad endpoint id".to_string());
        }
        // R-ARC.2: endpoints sharing an ID never talk to each other.
        if id == self.own_id {
            return self.fail("invalid handshake: endpoint id is our own".to_string());
        }
        let mut actions = Vec::new();
        if self.role == Role::Server {
            actions.push(Action::Send(Tlv::Handshake(self.own_id.clone())));
        }
        actions.push(Action::Send(Tlv::Record(records::connect(
            &ConnectKind::Uds,
            &self.own_id,
            &id,
        ))));
        actions.push(Action::Established(id.clone()));
        self.peer = Some(id);
        actions
    }

    fn fail(&mut self, text: String) -> Vec<Action> {
        vec![Action::Send(Tlv::Error(text.clone())), Action::Close(text)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_uds_connect(action: &Action) -> bool {
        matches!(action, Action::Send(Tlv::Record(b)) if b == &records::connect(&ConnectKind::Uds, "proto::a", "proto::c"))
    }

    #[test]
    fn client_speaks_first_and_sends_uds_connect_after_the_answer() {
        let mut s = Session::new(Role::Client, "proto::a");
        assert_eq!(
            s.start(),
            vec![Action::Send(Tlv::Handshake("proto::a".into()))]
        );
        let actions = s.handle_incoming(Tlv::Handshake("proto::c".into()));
        assert!(is_uds_connect(&actions[0]));
        assert_eq!(actions[1], Action::Established("proto::c".into()));
        assert_eq!(s.peer(), Some("proto::c"));
    }

    #[test]
    fn server_answers_handshake_then_sends_uds_connect() {
        let mut s = Session::new(Role::Server, "proto::a");
        assert!(s.start().is_empty());
        let actions = s.handle_incoming(Tlv::Handshake("proto::c".into()));
        assert_eq!(actions[0], Action::Send(Tlv::Handshake("proto::a".into())));
        assert!(is_uds_connect(&actions[1]));
        assert_eq!(actions[2], Action::Established("proto::c".into()));
    }

    #[test]
    fn records_before_handshake_are_ignored() {
        let mut s = Session::new(Role::Server, "proto::a");
        assert!(s.handle_incoming(Tlv::Record(vec![1])).is_empty());
        s.handle_incoming(Tlv::Handshake("proto::c".into()));
        assert_eq!(
            s.handle_incoming(Tlv::Record(vec![1])),
            vec![Action::Deliver(vec![1])]
        );
    }

    #[test]
    fn empty_or_own_endpoint_id_fails_the_handshake() {
        for bad in ["", "proto::a"] {
            let mut s = Session::new(Role::Server, "proto::a");
            let actions = s.handle_incoming(Tlv::Handshake(bad.into()));
            assert!(matches!(actions[0], Action::Send(Tlv::Error(_))), "{bad:?}");
            assert!(matches!(actions[1], Action::Close(_)));
            assert_eq!(s.peer(), None);
        }
    }

    #[test]
    fn received_error_closes_without_answer() {
        let mut s = Session::new(Role::Client, "proto::a");
        let actions = s.handle_incoming(Tlv::Error("nope".into()));
        assert_eq!(actions.len(), 1);
        assert!(matches!(&actions[0], Action::Close(r) if r.contains("nope")));
    }

    #[test]
    fn bad_frame_gets_type_2_then_close() {
        let mut s = Session::new(Role::Server, "proto::a");
        let actions = s.handle_frame_error(&FrameError::BadSync);
        assert!(matches!(actions[0], Action::Send(Tlv::Error(_))));
        assert!(matches!(actions[1], Action::Close(_)));
    }

    #[test]
    fn unknown_tlvs_and_repeated_handshakes_are_ignored() {
        let mut s = Session::new(Role::Server, "proto::a");
        assert!(s.handle_incoming(Tlv::Unknown(42)).is_empty());
        s.handle_incoming(Tlv::Handshake("proto::c".into()));
        assert!(
            s.handle_incoming(Tlv::Handshake("proto::x".into()))
                .is_empty()
        );
        assert_eq!(s.peer(), Some("proto::c"));
    }
}
