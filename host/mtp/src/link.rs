//! What every transport task shares: its context (name, own Endpoint ID, record size limit,
//! event channel), the outbound message type, and the table of live sessions that server-side
//! MTPs (WebSocket server, UDS) route replies and notifications through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::directory::ControllerDirectory;
use crate::event::{Dest, InboundRecord, LinkInfo, MtpEvent, PeerAuth, ReplyPath};
use crate::records;

/// One Record to send, and where inside the MTP it goes.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) dest: Dest,
    pub(crate) bytes: Vec<u8>,
}

/// Why received bytes were not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Larger than `max_record_size`.
    TooLarge,
    /// Not a Record.
    Unextractable,
}

/// The per-MTP context handed to a transport task.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) name: Arc<str>,
    pub(crate) endpoint_id: String,
    pub(crate) max_record_size: usize,
    /// The Controllers' topics from the agent's data model (read by the MQTT MTP).
    pub(crate) controllers: ControllerDirectory,
    events: mpsc::Sender<MtpEvent>,
}

impl Ctx {
    pub(crate) fn new(
        name: &str,
        endpoint_id: &str,
        max_record_size: usize,
        events: mpsc::Sender<MtpEvent>,
    ) -> Self {
        Ctx {
            name: name.into(),
            endpoint_id: endpoint_id.to_string(),
            max_record_size,
            controllers: ControllerDirectory::default(),
            events,
        }
    }

    /// The same context reading `controllers`.
    pub(crate) fn with_controllers(mut self, controllers: ControllerDirectory) -> Self {
        self.controllers = controllers;
        self
    }

    /// Checks and forwards a received Record; the caller applies the MTP's rule for rejects.
    pub(crate) async fn deliver(
        &self,
        bytes: Vec<u8>,
        dest: Dest,
        peer: PeerAuth,
    ) -> Result<(), Rejected> {
        if bytes.len() > self.max_record_size {
            tracing::warn!(mtp = %self.name, size = bytes.len(), max = self.max_record_size,
                "dropping oversize record");
            return Err(Rejected::TooLarge);
        }
        if !records::is_extractable(&bytes) {
            tracing::warn!(mtp = %self.name, size = bytes.len(), "dropping unextractable record");
            return Err(Rejected::Unextractable);
        }
        let reply = ReplyPath {
            mtp: self.name.clone(),
            dest,
        };
        self.emit(MtpEvent::Record(InboundRecord { bytes, reply, peer }))
            .await;
        Ok(())
    }

    /// Sends an event; a closed channel means the agent is going away, which the shutdown
    /// signal will tell the task anyway.
    pub(crate) async fn emit(&self, event: MtpEvent) {
        if self.events.send(event).await.is_err() {
            tracing::debug!(mtp = %self.name, "event receiver gone");
        }
    }

    pub(crate) async fn up(&self, info: LinkInfo) {
        self.emit(MtpEvent::Up {
            mtp: self.name.to_string(),
            info,
        })
        .await;
    }

    pub(crate) async fn down(&self, reason: impl Into<String>) {
        self.emit(MtpEvent::Down {
            mtp: self.name.to_string(),
            reason: reason.into(),
        })
        .await;
    }
}

/// A live session of a server-side MTP.
#[derive(Debug)]
struct Session {
    endpoint_id: Option<String>,
    tx: mpsc::Sender<Vec<u8>>,
    close: CancellationToken,
}

/// Live sessions by id and by peer Endpoint ID. A plain mutex because connection tasks insert
/// and remove themselves while the MTP task routes outbound Records; no lock is held across an
/// await.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sessions {
    inner: Arc<Mutex<HashMap<u64, Session>>>,
}

impl Sessions {
    /// Registers session `id`; cancelling `close` ends it.
    pub(crate) fn insert(&self, id: u64, tx: mpsc::Sender<Vec<u8>>, close: CancellationToken) {
        self.lock().insert(
            id,
            Session {
                endpoint_id: None,
                tx,
                close,
            },
        );
    }

    /// Names the peer of session `id` and closes older sessions with the same peer: at most one
    /// session per pair of endpoints (R-WS.4). Returns how many were closed.
    pub(crate) fn identify(&self, id: u64, endpoint_id: &str) -> usize {
        let mut map = self.lock();
        if let Some(s) = map.get_mut(&id) {
            s.endpoint_id = Some(endpoint_id.to_string());
        }
        let older: Vec<&Session> = map
            .iter()
            .filter(|(other, s)| **other != id && s.endpoint_id.as_deref() == Some(endpoint_id))
            .map(|(_, s)| s)
            .collect();
        for s in &older {
            s.close.cancel();
        }
        older.len()
    }

    pub(crate) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// The sender of session `id`, or of the newest session whose peer is `endpoint_id`.
    pub(crate) fn sender(
        &self,
        id: Option<u64>,
        endpoint_id: Option<&str>,
    ) -> Option<mpsc::Sender<Vec<u8>>> {
        let map = self.lock();
        match (id, endpoint_id) {
            (Some(id), _) => map.get(&id).map(|s| s.tx.clone()),
            (None, Some(eid)) => map
                .iter()
                .filter(|(_, s)| s.endpoint_id.as_deref() == Some(eid))
                .max_by_key(|(id, _)| **id)
                .map(|(_, s)| s.tx.clone()),
            (None, None) => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Session>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_session_of_a_peer_closes_the_first() {
        let s = Sessions::default();
        let (a, _ra) = mpsc::channel(1);
        let (b, mut rb) = mpsc::channel(1);
        let first = CancellationToken::new();
        s.insert(1, a, first.clone());
        s.insert(2, b, CancellationToken::new());
        assert_eq!(s.identify(1, "proto::c"), 0);
        assert_eq!(s.identify(2, "proto::c"), 1);
        assert!(first.is_cancelled());
        let tx = s.sender(None, Some("proto::c")).unwrap();
        tx.try_send(vec![7]).unwrap();
        assert_eq!(rb.try_recv().unwrap(), vec![7]);
        s.remove(2);
        assert!(s.sender(Some(2), None).is_none());
    }

    #[tokio::test]
    async fn oversize_and_garbage_records_are_rejected() {
        let (tx, mut rx) = mpsc::channel(4);
        let ctx = Ctx::new("m", "proto::a", 16, tx);
        let dest = Dest::UdsConnection(1);
        assert_eq!(
            ctx.deliver(vec![0; 17], dest.clone(), PeerAuth::None).await,
            Err(Rejected::TooLarge)
        );
        assert_eq!(
            ctx.deliver(vec![0xff; 4], dest.clone(), PeerAuth::None)
                .await,
            Err(Rejected::Unextractable)
        );
        let good = records::connect(&records::ConnectKind::Uds, "a", "b");
        let ctx = Ctx::new("m", "proto::a", 1024, ctx.events.clone());
        ctx.deliver(good.clone(), dest, PeerAuth::None)
            .await
            .unwrap();
        let Some(MtpEvent::Record(r)) = rx.recv().await else {
            panic!("no record")
        };
        assert_eq!(r.bytes, good);
        assert_eq!(r.reply.mtp(), "m");
    }
}
