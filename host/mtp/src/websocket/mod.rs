//! The WebSocket MTP: the agent as server (`LocalAgent.MTP.{i}.WebSocket.`) and as client of one
//! controller (`Controller.{i}.MTP.{j}.WebSocket.`). Records travel in single binary frames
//! (R-WS.14/14a); fragmented messages are reassembled by tungstenite (R-WS.14b); a text frame or
//! an unextractable Record closes the session with 1003 (R-WS.16); the agent Pings every
//! keep-alive interval (R-WS.17) and sends a WebSocketConnect Record once the session is up.
//!
//! Layout:
//! - [`handshake`]: URL, `eid=` and subprotocol rules, no I/O.

pub mod handshake;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{WsClientConfig, WsServerConfig};
use crate::event::{Dest, LinkInfo, MtpEvent, PeerAuth};
use crate::link::{Ctx, Outbound, Rejected, Sessions};
use crate::records::{self, ConnectKind};
use crate::tls;
use handshake::{HandshakeError, SUBPROTOCOL};

/// Records queued per session before the MTP task drops new ones.
const SESSION_QUEUE: usize = 64;

/// A peer must finish the TLS and WebSocket handshakes within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages above this multiple of the record limit are refused by tungstenite (the session
/// fails) rather than buffered and dropped, so a peer cannot make us hold unbounded data.
const HARD_LIMIT_FACTOR: usize = 4;

/// How much tungstenite reads per call. Its default (128 KiB) is zero-filled before every read,
/// which cost more CPU than the rest of a small request's handling; Records are mostly small.
const READ_CHUNK: usize = 8 * 1024;

fn ws_config(ctx: &Ctx) -> WebSocketConfig {
    let hard = ctx
        .max_record_size
        .saturating_mul(HARD_LIMIT_FACTOR)
        .max(64 * 1024);
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard))
}

fn route(sessions: &Sessions, ctx: &Ctx, out: Outbound) {
    let sender = match &out.dest {
        Dest::WsSession(id) => sessions.sender(Some(*id), None),
        Dest::WsPeer(eid) => sessions.sender(None, Some(eid)),
        other => {
            tracing::warn!(mtp = %ctx.name, dest = ?other, "not a WebSocket destination; dropped");
            return;
        }
    };
    match sender {
        Some(tx) => {
            if tx.try_send(out.bytes).is_err() {
                tracing::warn!(mtp = %ctx.name, dest = ?out.dest, "WebSocket session busy or gone; record dropped");
            }
        }
        None => {
            tracing::warn!(mtp = %ctx.name, dest = ?out.dest, "no WebSocket session; record dropped")
        }
    }
}

/// Runs a WebSocket server MTP until `shutdown` is cancelled.
pub(crate) async fn run_server(
    cfg: WsServerConfig,
    ctx: Ctx,
    mut outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    let acceptor = match cfg.tls.as_ref().map(tls::server_config).transpose() {
        Ok(c) => c.map(TlsAcceptor::from),
        Err(err) => {
            ctx.down(format!("TLS configuration: {err}")).await;
            shutdown.cancelled().await;
            return;
        }
    };
    let listener = match TcpListener::bind((cfg.bind.as_str(), cfg.port)).await {
        Ok(l) => l,
        Err(err) => {
            ctx.down(format!("cannot listen on {}:{}: {err}", cfg.bind, cfg.port))
                .await;
            shutdown.cancelled().await;
            return;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).ok();
    ctx.up(LinkInfo {
        listening: local,
        ..LinkInfo::default()
    })
    .await;
    let sessions = Sessions::default();
    let sessions_stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let cfg = Arc::new(cfg);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    next_id += 1;
                    tasks.spawn(accept(stream, addr, cfg.clone(), acceptor.clone(), ctx.clone(), next_id, sessions.clone(), sessions_stop.child_token()));
                }
                Err(err) => tracing::warn!(mtp = %ctx.name, %err, "WebSocket accept failed"),
            },
            Some(out) = outbound.recv() => route(&sessions, &ctx, out),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Records handed over before the stop (the answer to the Set that reconfigured this MTP)
    // reach their sessions, and the sessions send them before their Disconnect Record.
    while let Ok(out) = outbound.try_recv() {
        route(&sessions, &ctx, out);
    }
    sessions_stop.cancel();
    while tasks.join_next().await.is_some() {}
}

#[allow(
    clippy::too_many_arguments,
    reason = "one accepted connection's full context"
)]
async fn accept(
    stream: TcpStream,
    addr: SocketAddr,
    cfg: Arc<WsServerConfig>,
    acceptor: Option<TlsAcceptor>,
    ctx: Ctx,
    id: u64,
    sessions: Sessions,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let keep_alive = cfg.keep_alive_secs;
    match acceptor {
        None => {
            let opened =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade(stream, &cfg.path, &ctx)).await;
            if let Ok(Some((ws, eid))) = opened {
                session(
                    ws,
                    eid,
                    PeerAuth::None,
                    keep_alive,
                    false,
                    ctx,
                    id,
                    sessions,
                    shutdown,
                )
                .await;
            }
        }
        Some(acceptor) => {
            let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                let tls = acceptor
                    .accept(stream)
                    .await
                    .map_err(|err| {
                        tracing::info!(mtp = %ctx.name, %addr, %err, "TLS handshake failed");
                    })
                    .ok()?;
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .filter(|chain| !chain.is_empty())
                    .map(|chain| PeerAuth::Endpoint(tls::peer_certificate(chain)))
                    .unwrap_or(PeerAuth::None);
                let (ws, eid) = upgrade(tls, &cfg.path, &ctx).await?;
                Some((ws, eid, peer))
            })
            .await;
            if let Ok(Some((ws, eid, peer))) = opened {
                session(
                    ws, eid, peer, keep_alive, false, ctx, id, sessions, shutdown,
                )
                .await;
            }
        }
    }
}

/// The server half of the WebSocket handshake; `None` when refused.
#[allow(
    clippy::result_large_err,
    reason = "the callback's signature is tungstenite's"
)]
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    path: &str,
    ctx: &Ctx,
) -> Option<(WebSocketStream<S>, String)> {
    let mut eid = None;
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let protocols = req
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        match handshake::check_request(path, req.uri().path(), req.uri().query(), protocols) {
            Ok(id) => {
                eid = Some(id);
                resp.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static(SUBPROTOCOL),
                );
                let offered = req
                    .headers()
                    .get("sec-websocket-extensions")
                    .and_then(|v| v.to_str().ok());
                if let Some(answer) = handshake::extension_answer(offered, &ctx.endpoint_id)
                    .and_then(|a| HeaderValue::from_str(&a).ok())
                {
                    resp.headers_mut()
                        .insert("sec-websocket-extensions", answer);
                }
                Ok(resp)
            }
            Err(err) => {
                let status = match err {
                    HandshakeError::WrongPath(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                let mut refusal = ErrorResponse::new(Some(err.to_string()));
                *refusal.status_mut() = status;
                Err(refusal)
            }
        }
    };
    match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config(ctx)))
        .await
    {
        Ok(ws) => eid.map(|e| (ws, e)),
        Err(err) => {
            tracing::info!(mtp = %ctx.name, %err, "WebSocket handshake refused");
            None
        }
    }
}

/// Runs a WebSocket client MTP: connects to the controller, keeps the session, reconnects with
/// the `SessionRetry*` backoff (R-WS.19..21) until `shutdown` is cancelled.
pub(crate) async fn run_client(
    cfg: WsClientConfig,
    ctx: Ctx,
    mut outbound: mpsc::Receiver<Outbound>,
    shutdown: CancellationToken,
) {
    let sessions = Sessions::default();
    let mut backoff = Backoff::new(cfg.retry_policy());
    let mut next_id = 0u64;
    let connector = match cfg.tls.as_ref().map(tls::client_config).transpose() {
        Ok(c) => c.map(TlsConnector::from),
        Err(err) => {
            ctx.down(format!("TLS configuration: {err}")).await;
            shutdown.cancelled().await;
            return;
        }
    };
    loop {
        next_id += 1;
        let session_stop = shutdown.child_token();
        let attempt = connect_once(
            &cfg,
            connector.clone(),
            ctx.clone(),
            next_id,
            sessions.clone(),
            session_stop.clone(),
        );
        tokio::pin!(attempt);
        let outcome = loop {
            tokio::select! {
                outcome = &mut attempt => break outcome,
                Some(out) = outbound.recv() => route(&sessions, &ctx, out),
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        match outcome {
            Ok(()) => {
                backoff.reset();
                ctx.down("session closed").await;
            }
            Err(reason) => ctx.down(reason).await,
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

/// One connection attempt and, when it succeeds, the whole session. `Ok` once a session was up.
async fn connect_once(
    cfg: &WsClientConfig,
    connector: Option<TlsConnector>,
    ctx: Ctx,
    id: u64,
    sessions: Sessions,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let url = handshake::client_url(
        &cfg.host,
        cfg.port,
        &cfg.path,
        connector.is_some(),
        &ctx.endpoint_id,
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| format!("bad controller URL {url}: {err}"))?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let stream = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        s = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect((cfg.host.as_str(), cfg.port))) => s
            .map_err(|_| format!("connect to {url} timed out"))?
            .map_err(|err| format!("connect to {url}: {err}"))?,
    };
    let _ = stream.set_nodelay(true);
    let eid = cfg.controller_endpoint_id.clone();
    let keep_alive = cfg.keep_alive_secs;
    match connector {
        None => {
            let ws = client_handshake(request, stream, &ctx).await?;
            session(
                ws,
                eid,
                PeerAuth::None,
                keep_alive,
                true,
                ctx,
                id,
                sessions,
                shutdown,
            )
            .await;
        }
        Some(connector) => {
            let name = cfg
                .tls
                .as_ref()
                .map(|t| tls::server_name(t, &cfg.host))
                .transpose()
                .map_err(|err| err.to_string())?
                .ok_or("TLS without settings")?;
            let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
                .await
                .map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|err| format!("TLS handshake with {url}: {err}"))?;
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .filter(|chain| !chain.is_empty())
                .map(|chain| PeerAuth::Endpoint(tls::peer_certificate(chain)))
                .unwrap_or(PeerAuth::None);
            let ws = client_handshake(request, tls, &ctx).await?;
            session(ws, eid, peer, keep_alive, true, ctx, id, sessions, shutdown).await;
        }
    }
    Ok(())
}

async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    request: Request,
    stream: S,
    ctx: &Ctx,
) -> Result<WebSocketStream<S>, String> {
    let (ws, response) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config(ctx))),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out".to_string())?
    .map_err(|err| format!("WebSocket handshake: {err}"))?;
    let accepted = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok());
    // R-WS.12: a server that does not echo v1.usp is not a USP endpoint.
    if accepted.map(str::trim) != Some(SUBPROTOCOL) {
        let mut ws = ws;
        let _ = ws.close(None).await;
        return Err("server did not accept subprotocol v1.usp".to_string());
    }
    Ok(ws)
}

/// Drives one open session until it closes or `shutdown` fires.
#[allow(clippy::too_many_arguments, reason = "one session's full context")]
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    peer_eid: String,
    peer: PeerAuth,
    keep_alive_secs: u32,
    client: bool,
    ctx: Ctx,
    id: u64,
    sessions: Sessions,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel(SESSION_QUEUE);
    sessions.insert(id, tx, shutdown.clone());
    let replaced = sessions.identify(id, &peer_eid);
    if replaced > 0 {
        tracing::info!(mtp = %ctx.name, peer = %peer_eid, "closing the older session with this peer (R-WS.4)");
    }
    let connect = records::connect(&ConnectKind::WebSocket, &ctx.endpoint_id, &peer_eid);
    if ws.send(Message::Binary(connect.into())).await.is_err() {
        sessions.remove(id);
        return;
    }
    ctx.emit(MtpEvent::PeerConnected {
        mtp: ctx.name.to_string(),
        endpoint_id: peer_eid.clone(),
    })
    .await;
    if client {
        ctx.up(LinkInfo::default()).await;
    }
    let period = Duration::from_secs(u64::from(keep_alive_secs.max(1)));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                while let Ok(bytes) = rx.try_recv() {
                    if ws.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                let bye = records::disconnect(&ctx.endpoint_id, &peer_eid, "MTP stopped");
                let _ = ws.send(Message::Binary(bye.into())).await;
                let _ = ws.close(None).await;
                break;
            }
            _ = ping.tick(), if keep_alive_secs > 0 => {
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            Some(bytes) = rx.recv() => {
                if ws.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    match ctx.deliver(bytes.to_vec(), Dest::WsSession(id), peer.clone()).await {
                        Ok(()) | Err(Rejected::TooLarge) => {}
                        Err(Rejected::Unextractable) => {
                            close_unsupported(&mut ws, "unextractable record").await;
                            break;
                        }
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    tracing::warn!(mtp = %ctx.name, "text frame received; closing with 1003");
                    close_unsupported(&mut ws, "records travel in binary frames").await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::info!(mtp = %ctx.name, %err, "WebSocket session failed");
                    break;
                }
            },
        }
    }
    sessions.remove(id);
    ctx.emit(MtpEvent::PeerDisconnected {
        mtp: ctx.name.to_string(),
        endpoint_id: peer_eid,
    })
    .await;
}

/// R-WS.16: close with status 1003.
async fn close_unsupported<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    reason: &str,
) {
    let frame = CloseFrame {
        code: CloseCode::Unsupported,
        reason: reason.into(),
    };
    let _ = ws.close(Some(frame)).await;
}
