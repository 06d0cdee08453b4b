//! The STOMP 1.2 MTP (`Device.STOMP.Connection.{i}.` with `LocalAgent.MTP.{i}.STOMP.`): a
//! small client over TCP or TLS driving the [`session`] state machine with the [`frame`] codec,
//! sending heart-beats, and reconnecting with the `ServerRetry*` backoff.
//!
//! Layout:
//! - [`frame`]: frame encoding and decoding, no I/O.
//! - [`session`]: connect, subscribe, send and receive rules, no I/O.

pub mod frame;
pub mod session;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::StompConfig;
use crate::event::{Dest, LinkInfo, PeerAuth};
use crate::link::{Ctx, Outbound};
use crate::tls;
use frame::{Frame, Parsed};
use session::{Action, Session};

/// Records kept while the connection is down; older ones are dropped first.
const PENDING_LIMIT: usize = 256;

/// Connecting (TCP, TLS and CONNECTED) must finish within this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Headroom over `max_record_size` before the decoder refuses a body outright.
const BODY_SLACK: usize = 4096;

/// Any stream the client can run over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How one connection ended.
enum Ended {
    Shutdown,
    Failed { reason: String, was_up: bool },
}

/// Runs one STOMP MTP until `shutdown` is cancelled.
pub(crate) async fn run(
    cfg: StompConfig,
    ctx: Ctx,
    mut outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.retry_policy());
    let mut pending = VecDeque::new();
    let connector = match cfg.tls.as_ref().map(tls::client_config).transpose() {
        Ok(c) => c.map(TlsConnector::from),
        Err(err) => {
            ctx.down(format!("TLS configuration: {err}")).await;
            shutdown.cancelled().await;
            return;
        }
    };
    loop {
        match connection(
            &cfg,
            &ctx,
            connector.clone(),
            &mut outbound,
            &mut pending,
            &shutdown,
        )
        .await
        {
            Ended::Shutdown => return,
            Ended::Failed { reason, was_up } => {
                if was_up {
                    backoff.reset();
                }
                tracing::info!(mtp = %ctx.name, %reason, "STOMP connection lost");
                ctx.down(reason).await;
            }
        }
        let wait = tokio::time::sleep(backoff.next_wait());
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
        tracing::warn!(mtp = %ctx.name, "STOMP not connected: oldest queued record dropped");
    }
    pending.push_back(out);
}

async fn open(
    cfg: &StompConfig,
    connector: Option<TlsConnector>,
) -> Result<(Box<dyn Io>, PeerAuth), String> {
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", cfg.host, cfg.port))?;
    let _ = tcp.set_nodelay(true);
    match (connector, &cfg.tls) {
        (Some(connector), Some(t)) => {
            let name = tls::server_name(t, &cfg.host).map_err(|e| e.to_string())?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .filter(|chain| !chain.is_empty())
                .map(|chain| PeerAuth::Broker(tls::peer_certificate(chain)))
                .unwrap_or(PeerAuth::None);
            Ok((Box::new(stream), peer))
        }
        _ => Ok((Box::new(tcp), PeerAuth::None)),
    }
}

async fn connection(
    cfg: &StompConfig,
    ctx: &Ctx,
    connector: Option<TlsConnector>,
    outbound: &mut mpsc::Receiver<Outbound>,
    pending: &mut VecDeque<Outbound>,
    shutdown: &CancellationToken,
) -> Ended {
    let failed = |reason: String, was_up: bool| Ended::Failed { reason, was_up };
    let opened = tokio::select! {
        _ = shutdown.cancelled() => return Ended::Shutdown,
        r = tokio::time::timeout(CONNECT_TIMEOUT, open(cfg, connector)) => r,
    };
    let (mut io, peer) = match opened {
        Ok(Ok(pair)) => pair,
        Ok(Err(reason)) => return failed(reason, false),
        Err(_) => return failed("connect timed out".to_string(), false),
    };
    let mut session = Session::new(cfg, &ctx.endpoint_id);
    if let Err(err) = io.write_all(&session.connect_frame().encode()).await {
        return failed(format!("write: {err}"), false);
    }
    let mut buf = BytesMut::with_capacity(8192);
    let connect_deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut last_sent = Instant::now();
    let mut last_heard = Instant::now();
    let mut queue: Vec<Frame> = Vec::new();
    loop {
        for f in queue.drain(..) {
            if let Err(err) = io.write_all(&f.encode()).await {
                return failed(format!("write: {err}"), session.ready());
            }
            last_sent = Instant::now();
        }
        let send_at = session.send_every().map(|d| last_sent + d);
        // A silent broker is dead after twice its heart-beat interval (STOMP allows slack).
        let silent_at = session.expect_every().map(|d| last_heard + d * 2);
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    for f in session.goodbye() {
                        io.write_all(&f.encode()).await?;
                    }
                    io.shutdown().await
                }).await;
                return Ended::Shutdown;
            }
            _ = tokio::time::sleep_until(connect_deadline), if session.destination().is_none() => {
                return failed("no CONNECTED frame in time".to_string(), false);
            }
            _ = tokio::time::sleep_until(send_at.unwrap_or(last_sent)), if send_at.is_some() => {
                if let Err(err) = io.write_all(b"\n").await {
                    return failed(format!("write: {err}"), session.ready());
                }
                last_sent = Instant::now();
            }
            _ = tokio::time::sleep_until(silent_at.unwrap_or(last_heard)), if silent_at.is_some() => {
                return failed("broker heart-beat missed".to_string(), session.ready());
            }
            Some(out) = outbound.recv() => {
                if session.ready() {
                    if let Some(f) = send_frame(&session, ctx, out) {
                        queue.push(f);
                    }
                } else {
                    keep(pending, out, ctx);
                }
            }
            read = io.read_buf(&mut buf) => {
                match read {
                    Ok(0) => return failed("broker closed the connection".to_string(), session.ready()),
                    Err(err) => return failed(format!("read: {err}"), session.ready()),
                    Ok(_) => last_heard = Instant::now(),
                }
                loop {
                    let parsed = match frame::decode(&mut buf, ctx.max_record_size + BODY_SLACK) {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(err) => return failed(format!("malformed frame from broker: {err}"), session.ready()),
                    };
                    let Parsed::Frame(f) = parsed else { continue };
                    let actions = match session.handle_incoming(f) {
                        Ok(a) => a,
                        Err(err) => return failed(err.to_string(), session.ready()),
                    };
                    for action in actions {
                        match action {
                            Action::Send(f) => queue.push(f),
                            Action::Ready => {
                                ctx.up(LinkInfo {
                                    reply_to: session.destination().map(str::to_string),
                                    destination_from_server: session.destination_from_server().map(str::to_string),
                                    ..LinkInfo::default()
                                }).await;
                                while let Some(out) = pending.pop_front() {
                                    if let Some(f) = send_frame(&session, ctx, out) {
                                        queue.push(f);
                                    }
                                }
                            }
                            Action::Deliver { bytes, reply_to } => {
                                if ctx.deliver(bytes, Dest::Destination(reply_to), peer.clone()).await.is_err() {
                                    tracing::info!(mtp = %ctx.name, "STOMP MESSAGE dropped");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn send_frame(session: &Session, ctx: &Ctx, out: Outbound) -> Option<Frame> {
    match out.dest {
        Dest::Destination(d) if !d.is_empty() => Some(session.send_frame(&d, out.bytes)),
        Dest::Destination(_) => {
            tracing::warn!(mtp = %ctx.name, "request had no reply-to-dest and no controller matches; response dropped");
            None
        }
        other => {
            tracing::warn!(mtp = %ctx.name, dest = ?other, "not a STOMP destination; dropped");
            None
        }
    }
}
