//! The Unix domain socket MTP (USP 1.3): listens on, or connects to, a socket path; each
//! connection runs the [`session`] state machine over the [`frame`] codec. A connection task
//! per peer; the MTP task accepts (or reconnects) and routes outbound Records.
//!
//! Layout:
//! - [`frame`]: the `_USP` header and TLV codec.
//! - [`session`]: handshake and per-connection rules, no I/O.

pub(crate) mod frame;
pub(crate) mod session;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, RetryPolicy};
use crate::config::{UdsConfig, UdsMode};
use crate::event::{Dest, LinkInfo, MtpEvent, PeerAuth};
use crate::link::{Ctx, Outbound, Sessions};
use crate::records;
use frame::Tlv;
use session::{Action, Role, Session};

/// R-UDS: a client drops the connection when the server does not answer its handshake in time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Records queued per connection before the MTP task waits for the socket.
const SESSION_QUEUE: usize = 64;

/// Bytes a frame may hold beyond the Record itself (header, TLV headers, a handshake).
const FRAME_OVERHEAD: usize = 1024;

/// Runs one UDS MTP until `shutdown` is cancelled.
pub(crate) async fn run(
    cfg: UdsConfig,
    ctx: Ctx,
    outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    match cfg.mode {
        UdsMode::Listen => listen(&cfg.path, ctx, outbound, shutdown).await,
        UdsMode::Connect => connect(&cfg.path, ctx, outbound, shutdown).await,
    }
}

fn route(sessions: &Sessions, ctx: &Ctx, out: Outbound) {
    let sender = match &out.dest {
        Dest::UdsConnection(id) => sessions.sender(Some(*id), None),
        Dest::UdsPeer(eid) => sessions.sender(None, Some(eid)),
        other => {
            tracing::warn!(mtp = %ctx.name, dest = ?other, "not a UDS destination; dropped");
            return;
        }
    };
    match sender {
        Some(tx) => {
            if tx.try_send(out.bytes).is_err() {
                tracing::warn!(mtp = %ctx.name, dest = ?out.dest, "UDS session busy or gone; record dropped");
            }
        }
        None => tracing::warn!(mtp = %ctx.name, dest = ?out.dest, "no UDS session; record dropped"),
    }
}

async fn listen(
    path: &Path,
    ctx: Ctx,
    mut outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(RetryPolicy::UDS);
    let listener = loop {
        // A socket left by a previous run would make bind fail; anything else at the path is
        // not ours to delete, and bind reports it.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(path);
        }
        match UnixListener::bind(path) {
            Ok(l) => break l,
            Err(err) => {
                ctx.down(format!("cannot listen on {}: {err}", path.display()))
                    .await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_wait()) => {}
                }
            }
        }
    };
    ctx.up(LinkInfo {
        listening: Some(path.display().to_string()),
        ..LinkInfo::default()
    })
    .await;
    let sessions = Sessions::default();
    let sessions_stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    next_id += 1;
                    tasks.spawn(serve(stream, Role::Server, ctx.clone(), next_id, sessions.clone(), sessions_stop.child_token()));
                }
                Err(err) => tracing::warn!(mtp = %ctx.name, %err, "UDS accept failed"),
            },
            Some(out) = outbound.recv() => route(&sessions, &ctx, out),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // As for the WebSocket server: what was handed over before the stop still goes out.
    while let Ok(out) = outbound.try_recv() {
        route(&sessions, &ctx, out);
    }
    sessions_stop.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = std::fs::remove_file(path);
}

async fn connect(
    path: &Path,
    ctx: Ctx,
    mut outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    let sessions = Sessions::default();
    let mut backoff = Backoff::new(RetryPolicy::UDS);
    let mut next_id = 0u64;
    loop {
        let conn = match UnixStream::connect(path).await {
            Ok(stream) => {
                next_id += 1;
                Some(tokio::spawn(serve(
                    stream,
                    Role::Client,
                    ctx.clone(),
                    next_id,
                    sessions.clone(),
                    shutdown.child_token(),
                )))
            }
            Err(err) => {
                ctx.down(format!("cannot connect to {}: {err}", path.display()))
                    .await;
                None
            }
        };
        if let Some(mut conn) = conn {
            loop {
                tokio::select! {
                    done = &mut conn => {
                        if matches!(done, Ok(true)) {
                            backoff.reset();
                        }
                        break;
                    }
                    Some(out) = outbound.recv() => route(&sessions, &ctx, out),
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            ctx.down("connection closed").await;
        }
        let wait = tokio::time::sleep(backoff.next_wait());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut wait => break,
                Some(out) = outbound.recv() => route(&sessions, &ctx, out),
            }
        }
    }
}

/// Serves one connection until it closes or `shutdown` fires; returns whether the handshake
/// completed.
async fn serve(
    mut stream: UnixStream,
    role: Role,
    ctx: Ctx,
    id: u64,
    sessions: Sessions,
    shutdown: CancellationToken,
) -> bool {
    let (tx, mut rx) = mpsc::channel(SESSION_QUEUE);
    sessions.insert(id, tx, shutdown.clone());
    let mut session = Session::new(role, &ctx.endpoint_id);
    let mut buf = BytesMut::with_capacity(8192);
    let deadline = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(deadline);
    let mut pending = session.start();
    let mut established = false;
    'conn: loop {
        for action in std::mem::take(&mut pending) {
            match action {
                Action::Send(tlv) => {
                    if let Err(err) = stream.write_all(&frame::encode(&tlv)).await {
                        tracing::debug!(mtp = %ctx.name, %err, "UDS write failed");
                        break 'conn;
                    }
                }
                Action::Deliver(bytes) => {
                    if let Err(why) = ctx
                        .deliver(bytes, Dest::UdsConnection(id), PeerAuth::None)
                        .await
                    {
                        pending.extend(session.reject_record(&format!("record rejected: {why:?}")));
                    }
                }
                Action::Established(peer) => {
                    established = true;
                    let replaced = sessions.identify(id, &peer);
                    if replaced > 0 {
                        tracing::info!(mtp = %ctx.name, %peer, replaced, "peer reconnected; closing its older connection");
                    }
                    if role == Role::Client {
                        ctx.up(LinkInfo::default()).await;
                    }
                    ctx.emit(MtpEvent::PeerConnected {
                        mtp: ctx.name.to_string(),
                        endpoint_id: peer,
                    })
                    .await;
                }
                Action::Close(reason) => {
                    tracing::info!(mtp = %ctx.name, %reason, "closing UDS connection");
                    break 'conn;
                }
            }
        }
        if !pending.is_empty() {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                while let Ok(bytes) = rx.try_recv() {
                    if stream.write_all(&frame::encode(&Tlv::Record(bytes))).await.is_err() {
                        break;
                    }
                }
                if let Some(peer) = session.peer() {
                    let bye = records::disconnect(&ctx.endpoint_id, peer, "MTP stopped");
                    let _ = stream.write_all(&frame::encode(&Tlv::Record(bye))).await;
                }
                break;
            }
            _ = &mut deadline, if role == Role::Client && session.peer().is_none() => {
                tracing::warn!(mtp = %ctx.name, "UDS handshake not answered in time");
                break;
            }
            Some(bytes) = rx.recv() => {
                if let Err(err) = stream.write_all(&frame::encode(&Tlv::Record(bytes))).await {
                    tracing::debug!(mtp = %ctx.name, %err, "UDS write failed");
                    break;
                }
            }
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => loop {
                    match frame::decode(&mut buf, ctx.max_record_size + FRAME_OVERHEAD) {
                        Ok(Some(tlvs)) => {
                            for tlv in tlvs {
                                pending.extend(session.handle_incoming(tlv));
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(mtp = %ctx.name, %err, "bad UDS frame");
                            pending.extend(session.handle_frame_error(&err));
                            buf.clear();
                            break;
                        }
                    }
                },
            },
        }
    }
    let _ = stream.shutdown().await;
    sessions.remove(id);
    if let Some(peer) = session.peer() {
        ctx.emit(MtpEvent::PeerDisconnected {
            mtp: ctx.name.to_string(),
            endpoint_id: peer.to_string(),
        })
        .await;
    }
    established
}
