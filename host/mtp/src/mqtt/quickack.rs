//! Immediate TCP ACKs on the MQTT connection (Linux `TCP_QUICKACK`), for the socket rumqttc
//! owns.
//!
//! Why: after a PUBLISH at QoS 1 the broker sends its PUBACK and, right after, the next PUBLISH
//! for us on the same socket. A stock mosquitto leaves Nagle's algorithm on, so that second small
//! segment waits until our kernel ACKs the PUBACK; having nothing to send after a PUBACK, our
//! kernel ACKs only when its delayed-ACK timer fires (about 40 ms). Setting `TCP_QUICKACK` while
//! an ACK is pending sends it at once; Linux clears the option again as soon as the connection
//! looks interactive, so it is set anew after every packet that we do not answer (PUBACK,
//! PUBCOMP, PINGRESP). Packets we answer need nothing: the answer carries the ACK.
//!
//! How: rumqttc 0.25.1 creates, connects and keeps the socket itself: it has no connector hook,
//! and its `Network` and the event loop's socket are private, so no wrapped stream can be put in.
//! The socket is therefore found from outside: the socket descriptors listed in
//! `/proc/self/fd` before the connection began are compared with those after its CONNACK; the
//! one new TCP socket whose peer port is the broker's is duplicated with `pidfd_getfd` (on our
//! own process, which needs no privilege; Linux 5.6 or later), and the option is set through
//! that duplicate. When this cannot be done (no `/proc`, an older kernel, or more than one new
//! socket to that port, as when another client of this process connected at the same moment),
//! the connection works as before, without quick ACKs.
//!
//! The duplicate keeps the socket open: a [`QuickAck`] must be dropped together with the event
//! loop whose socket it holds ([`super::adapter::Loop`] holds both, and drops the duplicate as
//! soon as its connection fails).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::net::{SocketType, getpeername, sockopt};
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// Why quick ACKs are not available on a connection.
#[derive(Debug, thiserror::Error)]
pub enum QuickAckError {
    /// `/proc/self/fd` could not be listed.
    #[error("listing /proc/self/fd: {0}")]
    ListFds(#[source] std::io::Error),
    /// `pidfd_open` on our own process failed (kernel older than 5.3, or a seccomp filter).
    #[error("pidfd_open on this process: {0}")]
    PidfdOpen(#[source] rustix::io::Errno),
    /// No TCP socket to the broker's port appeared while connecting.
    #[error("no new TCP socket to port {0}")]
    NotFound(u16),
    /// Several did: which one is the MQTT connection cannot be told.
    #[error("{count} new TCP sockets to port {port}: the MQTT one cannot be told apart")]
    Ambiguous {
        /// How many candidates there were.
        count: usize,
        /// The broker's port.
        port: u16,
    },
    /// `setsockopt(TCP_QUICKACK)` failed.
    #[error("setting TCP_QUICKACK: {0}")]
    SetOption(#[source] rustix::io::Errno),
}

/// The process's socket descriptors at one moment: (descriptor, `socket:[inode]`), so that a
/// descriptor number reused for a new socket counts as new.
#[derive(Debug, Default)]
pub struct FdSnapshot(HashSet<(i32, String)>);

impl FdSnapshot {
    /// The sockets open now. Taken before a connection starts; an empty snapshot when `/proc` is
    /// unreadable (then [`QuickAck::find`] fails the same way).
    pub fn take() -> Self {
        FdSnapshot(sockets().unwrap_or_default().into_iter().collect())
    }
}

/// Every socket descriptor of this process.
fn sockets() -> Result<Vec<(i32, String)>, QuickAckError> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(QuickAckError::ListFds)?;
    let mut found = Vec::new();
    for entry in dir {
        // A descriptor closed while the directory is read is simply not there.
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if target.starts_with("socket:") {
            found.push((fd, target.into_owned()));
        }
    }
    Ok(found)
}

/// A TCP stream socket whose peer is on `port`.
fn is_tcp_to(fd: &OwnedFd, port: u16) -> bool {
    if !matches!(sockopt::socket_type(fd), Ok(t) if t == SocketType::STREAM) {
        return false;
    }
    match getpeername(fd) {
        Ok(Some(peer)) => SocketAddr::try_from(peer).is_ok_and(|addr| addr.port() == port),
        _ => false,
    }
}

/// A duplicate of the MQTT connection's socket, to set `TCP_QUICKACK` on.
#[derive(Debug)]
pub struct QuickAck {
    socket: OwnedFd,
}

impl QuickAck {
    /// The one TCP socket to `broker_port` opened since `before` was taken. Call it once the
    /// CONNACK has arrived: the socket then exists and its owner still holds it.
    pub fn find(before: &FdSnapshot, broker_port: u16) -> Result<Self, QuickAckError> {
        let pidfd = pidfd_open(getpid(), PidfdFlags::empty()).map_err(QuickAckError::PidfdOpen)?;
        let mut candidates = Vec::new();
        for socket in sockets()? {
            if before.0.contains(&socket) {
                continue;
            }
            // Closed since it was listed (another task's socket): nothing to look at.
            let Ok(dup) = pidfd_getfd(&pidfd, socket.0, PidfdGetfdFlags::empty()) else {
                continue;
            };
            if is_tcp_to(&dup, broker_port) {
                candidates.push(dup);
            }
        }
        match candidates.len() {
            // Any other duplicate is dropped here, closing only the duplicate.
            1 => candidates
                .pop()
                .map(|socket| QuickAck { socket })
                .ok_or(QuickAckError::NotFound(broker_port)),
            0 => Err(QuickAckError::NotFound(broker_port)),
            count => Err(QuickAckError::Ambiguous {
                count,
                port: broker_port,
            }),
        }
    }

    /// Sends a pending ACK now and leaves the socket in quick-ACK mode until Linux leaves it
    /// again; called after each packet that we do not answer.
    pub fn rearm(&self) -> Result<(), QuickAckError> {
        sockopt::set_tcp_quickack(&self.socket, true).map_err(QuickAckError::SetOption)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_the_one_tcp_socket_opened_after_the_snapshot_and_sets_quickack_on_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = FdSnapshot::take();
        let _stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let quick = QuickAck::find(&before, port).unwrap();
        quick.rearm().unwrap();
        // The duplicate is the client end: its peer is the accepted socket's local end.
        let peer = SocketAddr::try_from(getpeername(&quick.socket).unwrap().unwrap()).unwrap();
        assert_eq!(peer, accepted.local_addr().unwrap());
    }

    #[tokio::test]
    async fn sockets_open_before_the_snapshot_are_not_taken() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let before = FdSnapshot::take();
        assert!(matches!(
            QuickAck::find(&before, port),
            Err(QuickAckError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn two_new_sockets_to_the_port_are_ambiguous() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = FdSnapshot::take();
        let _a = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _b = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        assert!(matches!(
            QuickAck::find(&before, port),
            Err(QuickAckError::Ambiguous { count: 2, .. })
        ));
    }
}
