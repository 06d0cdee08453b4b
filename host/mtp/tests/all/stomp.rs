//! STOMP MTP against a real RabbitMQ with its STOMP plugin: broker down at start, STOMPConnect,
//! request/reply via `reply-to-dest`, notifications, malformed bodies, broker killed and
//! restarted, Disconnect on shutdown. The controller side is a hand-written STOMP client
//! independent of the crate's codec.

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use usp_codec::usp_proto::usp_record::record::RecordType;
use usp_mtp::{
    ControllerTarget, MtpConfig, MtpEvent, MtpSettings, Mtps, PeerAuth, StompConfig,
    StompController, TransportConfig,
};

use usp_testkit::Rabbit;

use crate::support::{self, AGENT, CONTROLLER};

const AGENT_DEST: &str = "/queue/usp-agent";
const CONTROLLER_DEST: &str = "/queue/usp-controller";
const AGENT_TLS_DEST: &str = "/queue/usp-agent-tls";

#[derive(Debug)]
struct StompFrame {
    command: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// The controller: a minimal STOMP 1.2 client.
struct Ctl {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Ctl {
    async fn connect(port: u16) -> Ctl {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut ctl = Ctl {
            stream,
            buf: Vec::new(),
        };
        ctl.write(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("host", "/"),
                ("login", "guest"),
                ("passcode", "guest"),
                ("heart-beat", "0,0"),
            ],
            b"",
        )
        .await;
        assert_eq!(ctl.next().await.command, "CONNECTED");
        ctl.write(
            "SUBSCRIBE",
            &[
                ("id", "1"),
                ("destination", CONTROLLER_DEST),
                ("ack", "auto"),
                ("receipt", "r1"),
            ],
            b"",
        )
        .await;
        assert_eq!(ctl.next().await.command, "RECEIPT");
        ctl
    }

    async fn write(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut out = format!("{command}\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}:{v}\n"));
        }
        if !body.is_empty() {
            out.push_str(&format!("content-length:{}\n", body.len()));
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes.push(0);
        self.stream.write_all(&bytes).await.unwrap();
    }

    async fn send(&mut self, body: &[u8], reply_to: Option<&str>) {
        let mut headers = vec![
            ("destination", AGENT_DEST),
            ("content-type", "application/vnd.bbf.usp.msg"),
        ];
        if let Some(r) = reply_to {
            headers.push(("reply-to-dest", r));
        }
        self.write("SEND", &headers, body).await;
    }

    fn parse(&mut self) -> Option<StompFrame> {
        while self.buf.first().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.buf.remove(0);
        }
        let head_end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let command = lines.next()?.to_string();
        let mut headers = HashMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                headers
                    .entry(k.to_string())
                    .or_insert_with(|| v.to_string());
            }
        }
        let start = head_end + 2;
        let len = match headers.get("content-length") {
            Some(l) => l.parse::<usize>().unwrap(),
            None => self.buf[start..].iter().position(|b| *b == 0)?,
        };
        if self.buf.len() < start + len + 1 {
            return None;
        }
        let body = self.buf[start..start + len].to_vec();
        self.buf.drain(..start + len + 1);
        Some(StompFrame {
            command,
            headers,
            body,
        })
    }

    async fn next(&mut self) -> StompFrame {
        loop {
            if let Some(f) = self.parse() {
                return f;
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(support::EVENT_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .expect("STOMP frame in time")
                .unwrap();
            assert!(n > 0, "broker closed the controller connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Next MESSAGE frame.
    async fn message(&mut self) -> StompFrame {
        loop {
            let f = self.next().await;
            if f.command == "MESSAGE" {
                return f;
            }
        }
    }
}

fn stomp(port: u16) -> StompConfig {
    StompConfig {
        host: "127.0.0.1".into(),
        port,
        username: Some("guest".into()),
        password: Some("guest".into()),
        virtual_host: Some("/".into()),
        enable_heartbeats: true,
        outgoing_heartbeat: 2000,
        incoming_heartbeat: 2000,
        tls: None,
        destination: Some(AGENT_DEST.into()),
        server_retry_initial_interval: 1,
        server_retry_interval_multiplier: 1000,
        server_retry_max_interval: 2,
        controllers: vec![StompController {
            endpoint_id: CONTROLLER.into(),
            destination: CONTROLLER_DEST.into(),
        }],
    }
}

fn assert_stomp_connect(f: &StompFrame) {
    assert_eq!(
        f.headers.get("reply-to-dest").map(String::as_str),
        Some(AGENT_DEST)
    );
    assert_eq!(
        f.headers.get("content-type").map(String::as_str),
        Some("application/vnd.bbf.usp.msg")
    );
    let r = support::decode(&f.body);
    let Some(RecordType::StompConnect(c)) = r.record_type else {
        panic!("not STOMPConnect: {:?}", r.record_type)
    };
    assert_eq!(c.subscribed_destination, AGENT_DEST);
    assert_eq!((r.from_id.as_str(), r.to_id.as_str()), (AGENT, CONTROLLER));
}

/// Waits until both MTPs are up; returns the plain one's link info.
async fn up_all(rx: &mut mpsc::Receiver<MtpEvent>) -> usp_mtp::LinkInfo {
    let mut plain = None;
    let mut tls = false;
    while plain.is_none() || !tls {
        let (name, info) = support::wait_for(rx, "STOMP up", |e| match e {
            MtpEvent::Up { mtp, info } => Some((mtp.clone(), info.clone())),
            _ => None,
        })
        .await;
        match name.as_str() {
            "stomp" => plain = Some(info),
            "stomp-tls" => tls = true,
            other => panic!("{other} came up"),
        }
    }
    plain.unwrap()
}

async fn down(rx: &mut mpsc::Receiver<MtpEvent>, name: &str) {
    support::wait_for(rx, "STOMP down", |e| {
        matches!(e, MtpEvent::Down { mtp, .. } if mtp == name).then_some(())
    })
    .await;
}

async fn record(rx: &mut mpsc::Receiver<MtpEvent>) -> usp_mtp::InboundRecord {
    support::wait_for(rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn stomp_against_rabbitmq_from_cold_start_through_restart() {
    support::init_tracing();
    let certs = support::Certs::new();
    let server_files = ["ca.pem", "server.pem", "server.key"].map(|f| certs.path(f));
    let rabbit = Rabbit::prepare(Some(server_files.each_ref().map(PathBuf::as_path)))
        .await
        .expect("prepare RabbitMQ");
    let port = rabbit.stomp_port;
    let mut over_tls = stomp(rabbit.stomp_tls_port.unwrap());
    over_tls.tls = Some(certs.client(None));
    over_tls.destination = Some(AGENT_TLS_DEST.into());
    over_tls.controllers.clear();
    let mut bad_login = stomp(port);
    bad_login.password = Some("wrong".into());
    bad_login.controllers.clear();
    let (tx, mut rx) = mpsc::channel(256);
    let mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 64 * 1024,
            mtps: vec![
                MtpConfig {
                    name: "stomp".into(),
                    enable: true,
                    transport: TransportConfig::Stomp(stomp(port)),
                },
                MtpConfig {
                    name: "stomp-tls".into(),
                    enable: true,
                    transport: TransportConfig::Stomp(over_tls),
                },
                MtpConfig {
                    name: "stomp-bad-login".into(),
                    enable: true,
                    transport: TransportConfig::Stomp(bad_login),
                },
            ],
        },
        tx,
    );
    // Broker down at start: the MTP reports it and keeps retrying.
    down(&mut rx, "stomp").await;
    let mut rabbit = rabbit;
    rabbit.launch().await.expect("start RabbitMQ");
    let info = up_all(&mut rx).await;
    assert_eq!(info.reply_to.as_deref(), Some(AGENT_DEST));
    // The broker's ERROR frame (bad login) ends that connection; the others are unaffected.
    support::wait_for(
        &mut rx,
        "bad login refused by an ERROR frame",
        |e| match e {
            MtpEvent::Down { mtp, reason } if mtp == "stomp-bad-login" => {
                reason.contains("broker error").then_some(())
            }
            MtpEvent::Up { mtp, .. } if mtp == "stomp-bad-login" => {
                panic!("wrong password accepted")
            }
            _ => None,
        },
    )
    .await;

    let mut ctl = Ctl::connect(port).await;
    assert_stomp_connect(&ctl.message().await);

    let req = support::record(CONTROLLER, AGENT, b"get");
    ctl.send(&req, Some(CONTROLLER_DEST)).await;
    let inbound = record(&mut rx).await;
    assert_eq!(inbound.bytes, req);
    let resp = support::record(AGENT, CONTROLLER, b"resp");
    mtps.send(&inbound.reply, resp.clone()).await.unwrap();
    assert_eq!(ctl.message().await.body, resp);

    // The same over TLS; the broker's certificate comes with the Record.
    ctl.write(
        "SEND",
        &[
            ("destination", AGENT_TLS_DEST),
            ("reply-to-dest", CONTROLLER_DEST),
        ],
        &req,
    )
    .await;
    let inbound = record(&mut rx).await;
    assert_eq!(inbound.reply.mtp(), "stomp-tls");
    let PeerAuth::Broker(cert) = &inbound.peer else {
        panic!("no broker certificate: {:?}", inbound.peer)
    };
    assert!(cert.identities.iter().any(|i| i == "localhost"));
    mtps.send(&inbound.reply, b"tls".to_vec()).await.unwrap();
    assert_eq!(ctl.message().await.body, b"tls");

    // Malformed and oversize bodies are dropped; the connection keeps serving.
    ctl.send(b"\xff\xfe not a record", Some(CONTROLLER_DEST))
        .await;
    ctl.send(
        &support::record(CONTROLLER, AGENT, &vec![1u8; 66 * 1024]),
        Some(CONTROLLER_DEST),
    )
    .await;
    let good = support::record(CONTROLLER, AGENT, b"good");
    ctl.send(&good, None).await;
    let inbound = record(&mut rx).await;
    assert_eq!(inbound.bytes, good);
    // No reply-to-dest: answered on the controller's configured destination.
    mtps.send(&inbound.reply, b"r2".to_vec()).await.unwrap();
    assert_eq!(ctl.message().await.body, b"r2");

    let target = ControllerTarget::Stomp {
        mtp: "stomp".into(),
        destination: CONTROLLER_DEST.into(),
    };
    mtps.send_to_controller(&target, b"notify".to_vec())
        .await
        .unwrap();
    assert_eq!(ctl.message().await.body, b"notify");

    // Broker killed and restarted: the MTP reconnects and re-sends STOMPConnect.
    let rabbit = tokio::task::spawn_blocking(move || {
        let mut rabbit = rabbit;
        rabbit.kill();
        rabbit
    })
    .await
    .unwrap();
    down(&mut rx, "stomp").await;
    let mut rabbit = rabbit;
    rabbit.launch().await.expect("start RabbitMQ");
    up_all(&mut rx).await;
    let mut ctl = Ctl::connect(port).await;
    assert_stomp_connect(&ctl.message().await);
    ctl.send(
        &support::record(CONTROLLER, AGENT, b"again"),
        Some(CONTROLLER_DEST),
    )
    .await;
    let inbound = record(&mut rx).await;
    mtps.send(&inbound.reply, b"served".to_vec()).await.unwrap();
    assert_eq!(ctl.message().await.body, b"served");

    mtps.shutdown().await;
    let bye = support::decode(&ctl.message().await.body);
    assert!(
        matches!(bye.record_type, Some(RecordType::Disconnect(_))),
        "R-MTP.7"
    );
    tokio::task::spawn_blocking(move || drop(rabbit))
        .await
        .unwrap();
}
