//! WebSocket MTP over real sockets: server and client roles, `v1.usp`, `eid=`, WebSocketConnect,
//! fragmented input, 1003 on text or garbage, TLS with client certificates, reconnects.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use usp_codec::usp_proto::usp_record::record::RecordType;
use usp_mtp::{
    ControllerTarget, MtpConfig, MtpEvent, MtpSettings, Mtps, PeerAuth, TlsConfig, TransportConfig,
    WsClientConfig, WsServerConfig,
};

use crate::support::{self, AGENT, CONTROLLER};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server(tls: Option<TlsConfig>) -> (Mtps, mpsc::Receiver<MtpEvent>, String) {
    support::init_tracing();
    let (tx, mut rx) = mpsc::channel(64);
    let mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 4096,
            mtps: vec![MtpConfig {
                name: "ws".into(),
                enable: true,
                transport: TransportConfig::WebSocketServer(WsServerConfig {
                    bind: "127.0.0.1".into(),
                    port: 0,
                    path: "/usp".into(),
                    tls,
                    keep_alive_secs: 1,
                }),
            }],
        },
        tx,
    );
    let addr = support::wait_for(&mut rx, "listening", |e| match e {
        MtpEvent::Up { info, .. } => info.listening.clone(),
        _ => None,
    })
    .await;
    (mtps, rx, addr)
}

async fn connect(addr: &str, eid: &str) -> Ws {
    let mut req = format!("ws://{addr}/usp?eid={eid}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("v1.usp"));
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "v1.usp"
    );
    ws
}

/// Next binary message, skipping Pings; `None` on close.
async fn next_binary<S>(ws: &mut WebSocketStream<S>) -> Option<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(support::EVENT_TIMEOUT, ws.next())
            .await
            .ok()??
            .ok()?;
        match msg {
            Message::Binary(b) => return Some(b.to_vec()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(support::EVENT_TIMEOUT, ws.next())
            .await
            .ok()??
        {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn is_ws_connect(bytes: &[u8], to: &str) -> bool {
    let r = support::decode(bytes);
    matches!(r.record_type, Some(RecordType::WebsocketConnect(_)))
        && r.to_id == to
        && r.from_id == AGENT
}

#[tokio::test]
async fn ws_server_sends_connect_record_answers_and_notifies() {
    let (mtps, mut rx, addr) = server(None).await;
    let mut ws = connect(&addr, CONTROLLER).await;
    assert!(is_ws_connect(
        &next_binary(&mut ws).await.unwrap(),
        CONTROLLER
    ));

    let req = support::record(CONTROLLER, AGENT, b"get");
    ws.send(Message::Binary(req.clone().into())).await.unwrap();
    let inbound = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(inbound.bytes, req);
    assert_eq!(inbound.peer, PeerAuth::None);
    let resp = support::record(AGENT, CONTROLLER, b"resp");
    mtps.send(&inbound.reply, resp.clone()).await.unwrap();
    assert_eq!(next_binary(&mut ws).await.unwrap(), resp);

    let target = ControllerTarget::WebSocket {
        mtp: "ws".into(),
        endpoint_id: CONTROLLER.into(),
    };
    let notify = support::record(AGENT, CONTROLLER, b"notify");
    mtps.send_to_controller(&target, notify.clone())
        .await
        .unwrap();
    assert_eq!(next_binary(&mut ws).await.unwrap(), notify);

    mtps.shutdown().await;
    let bye = next_binary(&mut ws).await.unwrap();
    assert!(matches!(
        support::decode(&bye).record_type,
        Some(RecordType::Disconnect(_))
    ));
}

#[tokio::test]
async fn ws_server_reassembles_fragmented_messages_and_pings() {
    let (_mtps, mut rx, addr) = server(None).await;
    let mut ws = connect(&addr, CONTROLLER).await;
    next_binary(&mut ws).await.unwrap();
    let req = support::record(CONTROLLER, AGENT, &[5u8; 300]);
    let (a, b) = req.split_at(100);
    ws.send(Message::Frame(Frame::message(
        a.to_vec(),
        OpCode::Data(Data::Binary),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        b.to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let got = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.bytes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, req);
    // keep_alive_secs = 1: a Ping arrives without anything else happening.
    let ping = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = ws.next().await {
                return true;
            }
        }
    })
    .await;
    assert_eq!(ping, Ok(true));
    ws.send(Message::Pong(Default::default())).await.unwrap();
}

#[tokio::test]
async fn ws_text_frame_or_garbage_closes_with_1003() {
    let (_mtps, _rx, addr) = server(None).await;
    let mut ws = connect(&addr, CONTROLLER).await;
    next_binary(&mut ws).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));

    let mut ws = connect(&addr, CONTROLLER).await;
    next_binary(&mut ws).await.unwrap();
    ws.send(Message::Binary(vec![0xff, 0xfe, 0x01].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Unsupported));
}

#[tokio::test]
async fn ws_oversize_record_is_dropped_and_session_survives() {
    let (_mtps, mut rx, addr) = server(None).await;
    let mut ws = connect(&addr, CONTROLLER).await;
    next_binary(&mut ws).await.unwrap();
    ws.send(Message::Binary(
        support::record(CONTROLLER, AGENT, &[1u8; 5000]).into(),
    ))
    .await
    .unwrap();
    let small = support::record(CONTROLLER, AGENT, b"small");
    ws.send(Message::Binary(small.clone().into()))
        .await
        .unwrap();
    let got = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.bytes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, small);
}

#[tokio::test]
async fn ws_server_refuses_missing_subprotocol_or_eid() {
    let (_mtps, _rx, addr) = server(None).await;
    let req = format!("ws://{addr}/usp?eid=x")
        .into_client_request()
        .unwrap();
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "no v1.usp offered"
    );
    let mut req = format!("ws://{addr}/usp").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("v1.usp"));
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "no eid"
    );
}

#[tokio::test]
async fn ws_second_session_from_same_peer_closes_the_first() {
    let (_mtps, _rx, addr) = server(None).await;
    let mut first = connect(&addr, CONTROLLER).await;
    next_binary(&mut first).await.unwrap();
    let mut second = connect(&addr, CONTROLLER).await;
    next_binary(&mut second).await.unwrap();
    let bye = next_binary(&mut first).await.unwrap();
    assert!(matches!(
        support::decode(&bye).record_type,
        Some(RecordType::Disconnect(_))
    ));
    assert_eq!(next_binary(&mut first).await, None);
}

#[tokio::test]
async fn wss_server_requires_and_reports_client_certificate() {
    let certs = support::Certs::new();
    certs.issue("controller", &[], Some(CONTROLLER));
    let (_mtps, mut rx, addr) = server(Some(certs.server(true))).await;
    let port = addr.rsplit(':').next().unwrap().to_string();
    let mut ws = wss_connect(&addr, &port, &certs.client(Some("controller")))
        .await
        .unwrap();
    ws.send(Message::Binary(
        support::record(CONTROLLER, AGENT, b"x").into(),
    ))
    .await
    .unwrap();
    let peer = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.peer.clone()),
        _ => None,
    })
    .await;
    let PeerAuth::Endpoint(cert) = peer else {
        panic!("no peer certificate: {peer:?}")
    };
    assert!(cert.names_endpoint(CONTROLLER));
    assert!(
        !cert.names_endpoint("proto::impostor"),
        "R-SEC.0a: another from_id must not match"
    );

    // Without a client certificate the session never opens (R-MTP.1).
    assert!(
        wss_connect(&addr, &port, &certs.client(None))
            .await
            .is_err()
    );
}

/// Opens `wss://localhost:<port>/usp?eid=<controller>` with the given TLS settings.
async fn wss_connect(
    addr: &str,
    port: &str,
    tls: &TlsConfig,
) -> Result<WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>, String> {
    let config = usp_mtp::tls::client_config(tls).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = usp_mtp::tls::server_name(tls, "localhost").map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let mut req = format!("wss://localhost:{port}/usp?eid={CONTROLLER}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("v1.usp"));
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 reports a refused client certificate only on the first read.
    match tokio::time::timeout(support::EVENT_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => {
            assert!(is_ws_connect(&b, CONTROLLER));
            Ok(ws)
        }
        other => Err(format!("session did not open: {other:?}")),
    }
}

/// A controller-side WebSocket server accepting one session; checks `eid` and `v1.usp`.
#[allow(
    clippy::result_large_err,
    reason = "the callback's signature is tungstenite's"
)]
async fn accept_agent(listener: &tokio::net::TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = tokio::time::timeout(support::EVENT_TIMEOUT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
        assert_eq!(req.uri().query(), Some("eid=proto::agent"));
        assert_eq!(
            req.headers().get("sec-websocket-protocol").unwrap(),
            "v1.usp"
        );
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("v1.usp"));
        Ok(resp)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn ws_client_connects_sends_connect_record_and_reconnects() {
    support::init_tracing();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::channel(64);
    let mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 4096,
            mtps: vec![MtpConfig {
                name: "to-controller".into(),
                enable: true,
                transport: TransportConfig::WebSocketClient(WsClientConfig {
                    host: "127.0.0.1".into(),
                    port,
                    path: "/usp".into(),
                    tls: None,
                    controller_endpoint_id: CONTROLLER.into(),
                    keep_alive_secs: 60,
                    session_retry_minimum_wait_interval: 1,
                    session_retry_interval_multiplier: 1000,
                }),
            }],
        },
        tx,
    );
    let mut ws = accept_agent(&listener).await;
    assert!(is_ws_connect(
        &next_binary(&mut ws).await.unwrap(),
        CONTROLLER
    ));
    support::wait_for(&mut rx, "up", |e| {
        matches!(e, MtpEvent::Up { .. }).then_some(())
    })
    .await;
    let target = ControllerTarget::WebSocket {
        mtp: "to-controller".into(),
        endpoint_id: CONTROLLER.into(),
    };
    let notify = support::record(AGENT, CONTROLLER, b"boot");
    mtps.send_to_controller(&target, notify.clone())
        .await
        .unwrap();
    assert_eq!(next_binary(&mut ws).await.unwrap(), notify);

    drop(ws);
    support::wait_for(&mut rx, "down", |e| {
        matches!(e, MtpEvent::Down { .. }).then_some(())
    })
    .await;
    let mut ws = accept_agent(&listener).await;
    assert!(
        is_ws_connect(&next_binary(&mut ws).await.unwrap(), CONTROLLER),
        "Connect record re-sent"
    );
    mtps.shutdown().await;
    let bye = next_binary(&mut ws).await.unwrap();
    assert!(matches!(
        support::decode(&bye).record_type,
        Some(RecordType::Disconnect(_))
    ));
}

#[tokio::test]
async fn wss_client_verifies_the_controller_and_reports_its_certificate() {
    support::init_tracing();
    let certs = support::Certs::new();
    certs.issue("ctrl-server", &["localhost"], Some(CONTROLLER));
    let server_tls = TlsConfig {
        ca_file: None,
        cert_file: Some(certs.path("ctrl-server.pem")),
        key_file: Some(certs.path("ctrl-server.key")),
        server_name: None,
    };
    let acceptor =
        tokio_rustls::TlsAcceptor::from(usp_mtp::tls::server_config(&server_tls).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::channel(64);
    let mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 4096,
            mtps: vec![MtpConfig {
                name: "wss".into(),
                enable: true,
                transport: TransportConfig::WebSocketClient(WsClientConfig {
                    host: "127.0.0.1".into(),
                    port,
                    path: "/usp".into(),
                    tls: Some(certs.client(None)),
                    controller_endpoint_id: CONTROLLER.into(),
                    keep_alive_secs: 60,
                    session_retry_minimum_wait_interval: 1,
                    session_retry_interval_multiplier: 1000,
                }),
            }],
        },
        tx,
    );
    let (tcp, _) = tokio::time::timeout(support::EVENT_TIMEOUT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let tls = acceptor.accept(tcp).await.unwrap();
    let mut ws = tokio_tungstenite::accept_hdr_async(tls, accept_usp)
        .await
        .unwrap();
    assert!(is_ws_connect(
        &next_binary(&mut ws).await.unwrap(),
        CONTROLLER
    ));
    ws.send(Message::Binary(
        support::record(CONTROLLER, AGENT, b"req").into(),
    ))
    .await
    .unwrap();
    let inbound = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    let PeerAuth::Endpoint(cert) = &inbound.peer else {
        panic!("no controller certificate: {:?}", inbound.peer)
    };
    assert!(cert.names_endpoint(CONTROLLER));
    mtps.send(&inbound.reply, b"resp".to_vec()).await.unwrap();
    assert_eq!(next_binary(&mut ws).await.unwrap(), b"resp");
}

#[tokio::test]
async fn wss_client_refuses_an_untrusted_controller() {
    support::init_tracing();
    let trusted = support::Certs::new();
    let other = support::Certs::new();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(usp_mtp::tls::server_config(&other.server(false)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::channel(64);
    let _mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 4096,
            mtps: vec![MtpConfig {
                name: "wss".into(),
                enable: true,
                transport: TransportConfig::WebSocketClient(WsClientConfig {
                    host: "127.0.0.1".into(),
                    port,
                    path: "/usp".into(),
                    tls: Some(trusted.client(None)),
                    controller_endpoint_id: CONTROLLER.into(),
                    keep_alive_secs: 60,
                    session_retry_minimum_wait_interval: 1,
                    session_retry_interval_multiplier: 1000,
                }),
            }],
        },
        tx,
    );
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.is_err()
    });
    let reason = support::wait_for(&mut rx, "down", |e| match e {
        MtpEvent::Down { reason, .. } => Some(reason.clone()),
        MtpEvent::Up { .. } => panic!("session with an untrusted controller"),
        _ => None,
    })
    .await;
    assert!(reason.contains("TLS"), "{reason}");
    assert!(server.await.unwrap(), "the server saw the handshake fail");
}

/// A controller's handshake callback: accepts and echoes `v1.usp`.
#[allow(
    clippy::result_large_err,
    reason = "the callback's signature is tungstenite's"
)]
fn accept_usp(_: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    resp.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("v1.usp"));
    Ok(resp)
}

#[tokio::test]
async fn ws_server_answers_the_bbf_usp_protocol_extension() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_mtps, _rx, addr) = server(None).await;
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /usp?eid={CONTROLLER} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v1.usp\r\n\
         Sec-WebSocket-Extensions: bbf-usp-protocol; eid=\"{CONTROLLER}\"\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(support::EVENT_TIMEOUT, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "connection closed during the handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-extensions: bbf-usp-protocol; eid=\"proto::agent\""),
        "{head}"
    );
}
