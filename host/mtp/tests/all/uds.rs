//! UDS MTP over a real socket: handshake, UDSConnect, replies, notifications, Type-2 errors.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use usp_codec::usp_proto::usp_record::record::RecordType;
use usp_mtp::{
    ControllerTarget, MtpConfig, MtpEvent, MtpSettings, Mtps, TransportConfig, UdsConfig, UdsMode,
};

use crate::support::{self, AGENT, CONTROLLER};

fn frame(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_slice(b"_USP");
    out.put_u32(5 + value.len() as u32);
    out.put_u8(kind);
    out.put_u32(value.len() as u32);
    out.put_slice(value);
    out
}

/// Reads one frame with a single TLV; `None` when the peer closed.
async fn read_tlv(s: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 8];
    tokio::time::timeout(support::EVENT_TIMEOUT, s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    assert_eq!(&head[..4], b"_USP");
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    let mut b = BytesMut::from(&body[..]);
    let kind = b.get_u8();
    let vlen = b.get_u32() as usize;
    Some((kind, b[..vlen].to_vec()))
}

async fn start(
    max: usize,
) -> (
    Mtps,
    mpsc::Receiver<MtpEvent>,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let (tx, mut rx) = mpsc::channel(64);
    let mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: max,
            mtps: vec![MtpConfig {
                name: "uds".into(),
                enable: true,
                transport: TransportConfig::Uds(UdsConfig {
                    path: path.clone(),
                    mode: UdsMode::Listen,
                }),
            }],
        },
        tx,
    );
    support::wait_for(&mut rx, "listening", |e| {
        matches!(e, MtpEvent::Up { .. }).then_some(())
    })
    .await;
    (mtps, rx, path, dir)
}

async fn handshake(path: &std::path::Path) -> UnixStream {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(&frame(1, CONTROLLER.as_bytes())).await.unwrap();
    assert_eq!(read_tlv(&mut s).await, Some((1, AGENT.as_bytes().to_vec())));
    let (kind, rec) = read_tlv(&mut s).await.unwrap();
    assert_eq!(kind, 3);
    let rec = support::decode(&rec);
    assert!(matches!(rec.record_type, Some(RecordType::UdsConnect(_))));
    assert_eq!(
        (rec.from_id.as_str(), rec.to_id.as_str()),
        (AGENT, CONTROLLER)
    );
    s
}

#[tokio::test]
async fn uds_handshake_request_reply_notify_and_disconnect_on_shutdown() {
    let (mtps, mut rx, path, _dir) = start(1 << 20).await;
    let mut s = handshake(&path).await;
    support::wait_for(&mut rx, "peer", |e| {
        matches!(e, MtpEvent::PeerConnected { endpoint_id, .. } if endpoint_id == CONTROLLER)
            .then_some(())
    })
    .await;

    let req = support::record(CONTROLLER, AGENT, b"get");
    s.write_all(&frame(3, &req)).await.unwrap();
    let inbound = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(inbound.bytes, req);
    let resp = support::record(AGENT, CONTROLLER, b"resp");
    mtps.send(&inbound.reply, resp.clone()).await.unwrap();
    assert_eq!(read_tlv(&mut s).await, Some((3, resp)));

    let notify = support::record(AGENT, CONTROLLER, b"notify");
    let target = ControllerTarget::Uds {
        mtp: "uds".into(),
        endpoint_id: CONTROLLER.into(),
    };
    mtps.send_to_controller(&target, notify.clone())
        .await
        .unwrap();
    assert_eq!(read_tlv(&mut s).await, Some((3, notify)));

    mtps.shutdown().await;
    let (kind, bye) = read_tlv(&mut s).await.unwrap();
    assert_eq!(kind, 3);
    assert!(matches!(
        support::decode(&bye).record_type,
        Some(RecordType::Disconnect(_))
    ));
    assert_eq!(
        read_tlv(&mut s).await,
        None,
        "connection closes after Disconnect"
    );
}

#[tokio::test]
async fn uds_records_before_handshake_are_ignored() {
    let (_mtps, mut rx, path, _dir) = start(1 << 20).await;
    let mut s = UnixStream::connect(&path).await.unwrap();
    s.write_all(&frame(3, &support::record(CONTROLLER, AGENT, b"early")))
        .await
        .unwrap();
    s.write_all(&frame(1, CONTROLLER.as_bytes())).await.unwrap();
    assert_eq!(read_tlv(&mut s).await.map(|t| t.0), Some(1));
    let late = support::record(CONTROLLER, AGENT, b"late");
    s.write_all(&frame(3, &late)).await.unwrap();
    let got = support::wait_for(&mut rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.bytes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, late, "the early record must not be delivered");
}

#[tokio::test]
async fn uds_unextractable_record_gets_type_2_and_close() {
    let (_mtps, _rx, path, _dir) = start(1 << 20).await;
    let mut s = handshake(&path).await;
    s.write_all(&frame(3, b"\xff\xff not a record"))
        .await
        .unwrap();
    let (kind, _) = read_tlv(&mut s).await.unwrap();
    assert_eq!(kind, 2);
    assert_eq!(read_tlv(&mut s).await, None);
}

#[tokio::test]
async fn uds_bad_sync_and_oversize_frames_get_type_2_and_close() {
    let (_mtps, _rx, path, _dir) = start(1024).await;
    let mut s = handshake(&path).await;
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(read_tlv(&mut s).await.map(|t| t.0), Some(2));
    assert_eq!(read_tlv(&mut s).await, None);

    let mut s = handshake(&path).await;
    let big = support::record(CONTROLLER, AGENT, &vec![7u8; 1500]);
    s.write_all(&frame(3, &big)).await.unwrap();
    assert_eq!(
        read_tlv(&mut s).await.map(|t| t.0),
        Some(2),
        "oversize record rejected"
    );
    assert_eq!(read_tlv(&mut s).await, None);
}

#[tokio::test]
async fn uds_client_mode_connects_handshakes_and_reconnects() {
    support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("controller.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let _mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 1 << 20,
            mtps: vec![MtpConfig {
                name: "uds-client".into(),
                enable: true,
                transport: TransportConfig::Uds(UdsConfig {
                    path: path.clone(),
                    mode: UdsMode::Connect,
                }),
            }],
        },
        tx,
    );
    for round in 0..2 {
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            read_tlv(&mut s).await,
            Some((1, AGENT.as_bytes().to_vec())),
            "round {round}"
        );
        s.write_all(&frame(1, CONTROLLER.as_bytes())).await.unwrap();
        let (kind, rec) = read_tlv(&mut s).await.unwrap();
        assert_eq!(kind, 3);
        assert!(matches!(
            support::decode(&rec).record_type,
            Some(RecordType::UdsConnect(_))
        ));
        support::wait_for(&mut rx, "up", |e| {
            matches!(e, MtpEvent::Up { .. }).then_some(())
        })
        .await;
        drop(s);
        support::wait_for(&mut rx, "down", |e| {
            matches!(e, MtpEvent::Down { .. }).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn uds_does_not_delete_a_regular_file_at_its_path() {
    support::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious");
    std::fs::write(&path, b"keep me").unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let mtps = Mtps::start(
        MtpSettings {
            endpoint_id: AGENT.into(),
            max_record_size: 1024,
            mtps: vec![MtpConfig {
                name: "uds".into(),
                enable: true,
                transport: TransportConfig::Uds(UdsConfig {
                    path: path.clone(),
                    mode: UdsMode::Listen,
                }),
            }],
        },
        tx,
    );
    let reason = support::wait_for(&mut rx, "down", |e| match e {
        MtpEvent::Down { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("cannot listen"), "{reason}");
    mtps.shutdown().await;
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}
