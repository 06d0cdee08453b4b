//! MQTT MTP against a real mosquitto: 5.0 and 3.1.1, TLS, reply-to handling (a request without
//! one is answered on its controller's topic, from the data model's Controller rows or the
//! config file; a 3.1.1 PUBLISH without one from a sender with no topic is a version mismatch,
//! R-MQTT.26a), MQTTConnect,
//! broker down at start, broker restarted mid-run, an unreachable second client, reconfiguration,
//! malformed payloads. The controller side is a plain rumqttc client.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use usp_codec::usp_proto::usp_record::mqtt_connect_record::MqttVersion as WireVersion;
use usp_codec::usp_proto::usp_record::record::RecordType;
use usp_mtp::{
    ControllerDirectory, ControllerTarget, MqttConfig, MqttController, MqttControllerRow,
    MqttVersion, MtpConfig, MtpEvent, MtpSettings, Mtps, PeerAuth, TlsConfig, TransportConfig,
};

use usp_testkit::Mosquitto;

use crate::support::{self, AGENT, CONTROLLER};

const AGENT_TOPIC: &str = "usp/agent";
const CONTROLLER_TOPIC: &str = "usp/controller";

/// A received PUBLISH as the controller saw it.
#[derive(Debug, Clone)]
struct Got {
    topic: String,
    payload: Vec<u8>,
    response_topic: Option<String>,
    content_type: Option<String>,
}

/// A controller's MQTT 5 client: a task polls rumqttc and forwards PUBLISH and SUBACK.
struct Ctl5 {
    client: AsyncClient,
    rx: mpsc::Receiver<Option<Got>>,
}

impl Ctl5 {
    async fn connect(port: u16, id: &str, filters: &[&str]) -> Ctl5 {
        Self::connect_with(port, id, filters, None).await
    }

    async fn connect_with(port: u16, id: &str, filters: &[&str], tls: Option<&TlsConfig>) -> Ctl5 {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        if let Some(t) = tls {
            let config = usp_mtp::tls::client_config(t).unwrap();
            opts.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config),
            ));
        }
        let (client, mut lp) = AsyncClient::new(opts, 16);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let ev = match lp.poll().await {
                    Ok(ev) => ev,
                    Err(_) => return,
                };
                let out = match ev {
                    Event::Incoming(Packet::Publish(p)) => {
                        let props = p.properties.unwrap_or_default();
                        Some(Got {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            response_topic: props.response_topic,
                            content_type: props.content_type,
                        })
                    }
                    Event::Incoming(Packet::SubAck(_)) => None,
                    _ => continue,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        let mut ctl = Ctl5 { client, rx };
        ctl.client
            .subscribe_many(filters.iter().map(|f| Filter::new(*f, QoS::AtLeastOnce)))
            .await
            .unwrap();
        let ack = tokio::time::timeout(support::EVENT_TIMEOUT, ctl.rx.recv())
            .await
            .unwrap();
        assert!(matches!(ack, Some(None)), "SUBACK expected first");
        ctl
    }

    async fn next(&mut self) -> Got {
        loop {
            match tokio::time::timeout(support::EVENT_TIMEOUT, self.rx.recv()).await {
                Ok(Some(Some(got))) => return got,
                Ok(Some(None)) => {}
                other => panic!("no PUBLISH arrived: {other:?}"),
            }
        }
    }

    /// A PUBLISH with no properties at all, as some controllers send.
    async fn publish_bare(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, Bytes::from(payload))
            .await
            .unwrap();
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>, response_topic: Option<&str>) {
        let props = PublishProperties {
            response_topic: response_topic.map(str::to_string),
            content_type: Some("usp.msg".into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, Bytes::from(payload), props)
            .await
            .unwrap();
    }
}

fn mqtt(port: u16, version: MqttVersion, tls: Option<TlsConfig>) -> MqttConfig {
    MqttConfig {
        broker_address: "127.0.0.1".into(),
        broker_port: port,
        protocol_version: version,
        tls,
        client_id: String::new(),
        username: None,
        password: None,
        keep_alive_secs: 30,
        connect_retry_time: 1,
        connect_retry_interval_multiplier: 1000,
        connect_retry_max_interval: 2,
        subscriptions: vec![],
        response_topic: Some(AGENT_TOPIC.into()),
        publish_qos: 1,
        controllers: vec![MqttController {
            endpoint_id: CONTROLLER.into(),
            topic: CONTROLLER_TOPIC.into(),
        }],
    }
}

fn settings(mtps: Vec<(&str, MqttConfig)>) -> MtpSettings {
    MtpSettings {
        endpoint_id: AGENT.into(),
        max_record_size: 64 * 1024,
        mtps: mtps
            .into_iter()
            .map(|(name, c)| MtpConfig {
                name: name.into(),
                enable: true,
                transport: TransportConfig::Mqtt(c),
            })
            .collect(),
    }
}

fn start(s: MtpSettings) -> (Mtps, mpsc::Receiver<MtpEvent>) {
    support::init_tracing();
    let (tx, rx) = mpsc::channel(256);
    (Mtps::start(s, tx), rx)
}

async fn up(rx: &mut mpsc::Receiver<MtpEvent>, name: &str) -> usp_mtp::LinkInfo {
    support::wait_for(rx, "MQTT up", |e| match e {
        MtpEvent::Up { mtp, info } if mtp == name => Some(info.clone()),
        _ => None,
    })
    .await
}

async fn record(rx: &mut mpsc::Receiver<MtpEvent>) -> usp_mtp::InboundRecord {
    support::wait_for(rx, "record", |e| match e {
        MtpEvent::Record(r) => Some(r.clone()),
        _ => None,
    })
    .await
}

fn assert_mqtt_connect(bytes: &[u8], version: WireVersion) {
    let r = support::decode(bytes);
    assert_eq!((r.from_id.as_str(), r.to_id.as_str()), (AGENT, CONTROLLER));
    let Some(RecordType::MqttConnect(c)) = r.record_type else {
        panic!("not MQTTConnect: {:?}", r.record_type)
    };
    assert_eq!(c.version, version as i32);
    assert_eq!(c.subscribed_topic, AGENT_TOPIC);
}

#[tokio::test]
async fn mqtt5_connect_record_request_reply_and_notify() {
    let broker = Mosquitto::start().await.expect("mosquitto");
    let mut ctl = Ctl5::connect(broker.port, "ctl5", &[CONTROLLER_TOPIC, "ctl/replies"]).await;
    let (mtps, mut rx) = start(settings(vec![(
        "mqtt",
        mqtt(broker.port, MqttVersion::V5, None),
    )]));
    let info = up(&mut rx, "mqtt").await;
    assert_eq!(info.reply_to.as_deref(), Some(AGENT_TOPIC));
    assert!(
        info.client_id.is_some_and(|id| !id.is_empty()),
        "broker-assigned ClientId kept"
    );

    let connect = ctl.next().await;
    assert_eq!(connect.topic, CONTROLLER_TOPIC);
    assert_eq!(connect.content_type.as_deref(), Some("usp.msg"));
    assert_eq!(connect.response_topic.as_deref(), Some(AGENT_TOPIC));
    assert_mqtt_connect(&connect.payload, WireVersion::V5);

    // The agent subscribed before it published, so a request right now is delivered.
    let req = support::record(CONTROLLER, AGENT, b"get");
    ctl.publish(AGENT_TOPIC, req.clone(), Some("ctl/replies"))
        .await;
    let inbound = record(&mut rx).await;
    assert_eq!(inbound.bytes, req);
    assert_eq!(inbound.peer, PeerAuth::None);
    let resp = support::record(AGENT, CONTROLLER, b"resp");
    mtps.send(&inbound.reply, resp.clone()).await.unwrap();
    let got = ctl.next().await;
    assert_eq!((got.topic.as_str(), got.payload), ("ctl/replies", resp));
    assert_eq!(got.response_topic.as_deref(), Some(AGENT_TOPIC));

    // A request without Response Topic is answered on the controller's configured topic.
    ctl.publish(
        AGENT_TOPIC,
        support::record(CONTROLLER, AGENT, b"bare"),
        None,
    )
    .await;
    let inbound = record(&mut rx).await;
    mtps.send(&inbound.reply, b"r2".to_vec()).await.unwrap();
    assert_eq!(ctl.next().await.topic, CONTROLLER_TOPIC);

    let target = ControllerTarget::Mqtt {
        mtp: "mqtt".into(),
        topic: CONTROLLER_TOPIC.into(),
    };
    mtps.send_to_controller(&target, b"notify".to_vec())
        .await
        .unwrap();
    assert_eq!(ctl.next().await.payload, b"notify");

    mtps.shutdown().await;
    let bye = support::decode(&ctl.next().await.payload);
    assert!(
        matches!(bye.record_type, Some(RecordType::Disconnect(_))),
        "R-MTP.7"
    );
}

#[tokio::test]
async fn mqtt311_uses_reply_to_topic_suffix() {
    let broker = Mosquitto::start().await.expect("mosquitto");
    let mut ctl = Ctl5::connect(broker.port, "ctl311", &["usp/controller/#"]).await;
    let (mtps, mut rx) = start(settings(vec![(
        "mqtt",
        mqtt(broker.port, MqttVersion::V3_1_1, None),
    )]));
    let info = up(&mut rx, "mqtt").await;
    assert_eq!(
        info.client_id.as_deref(),
        Some(AGENT),
        "3.1.1 uses the Endpoint ID as ClientId"
    );
    let connect = ctl.next().await;
    assert_eq!(connect.topic, "usp/controller/reply-to=usp%2Fagent");
    assert_mqtt_connect(&connect.payload, WireVersion::V311);

    let req = support::record(CONTROLLER, AGENT, b"get");
    ctl.publish(
        "usp/agent/reply-to=usp%2Fcontroller%2Finbox",
        req.clone(),
        None,
    )
    .await;
    let inbound = record(&mut rx).await;
    assert_eq!(inbound.bytes, req);
    mtps.send(&inbound.reply, b"resp".to_vec()).await.unwrap();
    let got = ctl.next().await;
    assert_eq!(got.topic, "usp/controller/inbox/reply-to=usp%2Fagent");
    assert_eq!(got.payload, b"resp");
}

/// A controller like usp-js: known only from the data model's Controller rows, it publishes
/// without Response Topic (5.0) or `/reply-to=` suffix (3.1.1).
#[tokio::test]
async fn requests_without_reply_to_are_answered_on_the_data_model_topic_which_may_change_live() {
    const DM_CONTROLLER: &str = "proto::dm-controller";
    let broker = Mosquitto::start().await.expect("mosquitto");
    for version in [MqttVersion::V5, MqttVersion::V3_1_1] {
        let mut ctl = Ctl5::connect(broker.port, "ctl-dm", &["dm/#"]).await;
        let directory = ControllerDirectory::new();
        directory.replace(vec![
            MqttControllerRow {
                endpoint_id: DM_CONTROLLER.into(),
                topic: "dm/pinned-elsewhere".into(),
                agent_mtp: Some("other".into()),
            },
            MqttControllerRow {
                endpoint_id: DM_CONTROLLER.into(),
                topic: "dm/first".into(),
                agent_mtp: None,
            },
        ]);
        support::init_tracing();
        let (tx, mut rx) = mpsc::channel(256);
        let mtps = Mtps::start_with_controllers(
            settings(vec![("mqtt", mqtt(broker.port, version, None))]),
            tx,
            directory.clone(),
        );
        up(&mut rx, "mqtt").await;
        let connect = ctl.next().await;
        assert!(
            connect.topic.starts_with("dm/first"),
            "{version:?}: MQTTConnect goes to the data model's topic, got {}",
            connect.topic
        );
        assert_eq!(support::decode(&connect.payload).to_id, DM_CONTROLLER);

        ctl.publish_bare(AGENT_TOPIC, support::record(DM_CONTROLLER, AGENT, b"q1"))
            .await;
        let inbound = record(&mut rx).await;
        mtps.send(&inbound.reply, b"a1".to_vec()).await.unwrap();
        let got = ctl.next().await;
        assert!(
            got.topic.starts_with("dm/first"),
            "{version:?}: {}",
            got.topic
        );
        assert_eq!(got.payload, b"a1");

        // A Controller sets a new MQTT.Topic: the next answer goes there, same connection.
        directory.replace(vec![MqttControllerRow {
            endpoint_id: DM_CONTROLLER.into(),
            topic: "dm/second".into(),
            agent_mtp: Some("mqtt".into()),
        }]);
        ctl.publish_bare(AGENT_TOPIC, support::record(DM_CONTROLLER, AGENT, b"q2"))
            .await;
        let inbound = record(&mut rx).await;
        mtps.send(&inbound.reply, b"a2".to_vec()).await.unwrap();
        let got = ctl.next().await;
        assert!(
            got.topic.starts_with("dm/second"),
            "{version:?}: {}",
            got.topic
        );
        assert_eq!(got.payload, b"a2");
        mtps.shutdown().await;
        let bye = ctl.next().await;
        assert!(
            bye.topic.starts_with("dm/second"),
            "{version:?}: Disconnect to {}",
            bye.topic
        );
    }
}

#[tokio::test]
async fn mqtt_over_tls_both_versions() {
    let certs = support::Certs::new();
    let broker = Mosquitto::start_tls(
        &certs.path("ca.pem"),
        &certs.path("server.pem"),
        &certs.path("server.key"),
    )
    .await
    .expect("mosquitto");
    let tls = certs.client(None);
    for (i, version) in [MqttVersion::V5, MqttVersion::V3_1_1]
        .into_iter()
        .enumerate()
    {
        let reply_topic = format!("ctl/tls-{i}");
        let filter = format!("{reply_topic}/#");
        let mut ctl =
            Ctl5::connect_with(broker.port, &format!("ctl-tls-{i}"), &[&filter], Some(&tls)).await;
        let name = format!("tls-{i}");
        let (mtps, mut rx) = start(settings(vec![(
            &name,
            mqtt(broker.port, version, Some(tls.clone())),
        )]));
        up(&mut rx, &name).await;
        let topic = match version {
            MqttVersion::V5 => AGENT_TOPIC.to_string(),
            MqttVersion::V3_1_1 => {
                format!("{AGENT_TOPIC}/reply-to={}", reply_topic.replace('/', "%2F"))
            }
        };
        ctl.publish(
            &topic,
            support::record(CONTROLLER, AGENT, b"tls"),
            Some(&reply_topic),
        )
        .await;
        let inbound = record(&mut rx).await;
        let PeerAuth::Broker(cert) = &inbound.peer else {
            panic!("{version:?}: no broker certificate: {:?}", inbound.peer)
        };
        assert!(
            cert.identities.iter().any(|id| id == "localhost"),
            "{:?}",
            cert.identities
        );
        mtps.send(&inbound.reply, b"over tls".to_vec())
            .await
            .unwrap();
        assert_eq!(ctl.next().await.payload, b"over tls");
        mtps.shutdown().await;
    }
    // A client that does not trust the broker's CA never comes up.
    let other = support::Certs::new();
    let (_mtps, mut rx) = start(settings(vec![(
        "untrusted",
        mqtt(broker.port, MqttVersion::V5, Some(other.client(None))),
    )]));
    let reason = support::wait_for(&mut rx, "down", |e| match e {
        MtpEvent::Down { reason, .. } => Some(reason.clone()),
        MtpEvent::Up { .. } => panic!("connected to an untrusted broker"),
        _ => None,
    })
    .await;
    assert!(
        reason.to_lowercase().contains("certificate") || reason.to_lowercase().contains("tls"),
        "{reason}"
    );
}

#[tokio::test]
async fn mqtt_broker_down_at_start_then_up() {
    let port = support::free_port();
    let (_mtps, mut rx) = start(settings(vec![("mqtt", mqtt(port, MqttVersion::V5, None))]));
    support::wait_for(&mut rx, "down", |e| {
        matches!(e, MtpEvent::Down { .. }).then_some(())
    })
    .await;
    let mut broker = Mosquitto::configure(port).expect("mosquitto configuration");
    broker.launch().await.expect("mosquitto");
    up(&mut rx, "mqtt").await;
}

#[tokio::test]
async fn mqtt_broker_restart_reconnects_and_resends_connect_record() {
    let mut broker = Mosquitto::start().await.expect("mosquitto");
    let mut cfg = mqtt(broker.port, MqttVersion::V5, None);
    // Waits of exactly 5 s leave the controller time to subscribe after the restart.
    cfg.connect_retry_time = 5;
    cfg.connect_retry_max_interval = 5;
    let (mtps, mut rx) = start(settings(vec![("mqtt", cfg)]));
    up(&mut rx, "mqtt").await;

    broker.kill().await.expect("kill mosquitto");
    support::wait_for(&mut rx, "down", |e| {
        matches!(e, MtpEvent::Down { .. }).then_some(())
    })
    .await;
    broker.launch().await.expect("restart mosquitto");
    let mut ctl = Ctl5::connect(broker.port, "ctl-r", &[CONTROLLER_TOPIC, "ctl/replies"]).await;
    up(&mut rx, "mqtt").await;
    assert_mqtt_connect(&ctl.next().await.payload, WireVersion::V5);

    ctl.publish(
        AGENT_TOPIC,
        support::record(CONTROLLER, AGENT, b"again"),
        Some("ctl/replies"),
    )
    .await;
    let inbound = record(&mut rx).await;
    mtps.send(&inbound.reply, b"served".to_vec()).await.unwrap();
    assert_eq!(ctl.next().await.payload, b"served");
}

#[tokio::test]
async fn unreachable_second_client_does_not_disturb_the_first() {
    let broker = Mosquitto::start().await.expect("mosquitto");
    let mut ctl = Ctl5::connect(broker.port, "ctl-2", &[CONTROLLER_TOPIC, "ctl/replies"]).await;
    let dead = mqtt(support::free_port(), MqttVersion::V5, None);
    let (mtps, mut rx) = start(settings(vec![
        ("dead", dead),
        ("good", mqtt(broker.port, MqttVersion::V5, None)),
    ]));
    up(&mut rx, "good").await;
    ctl.next().await;
    for i in 0..3u8 {
        ctl.publish(
            AGENT_TOPIC,
            support::record(CONTROLLER, AGENT, &[i]),
            Some("ctl/replies"),
        )
        .await;
        let inbound = record(&mut rx).await;
        assert_eq!(inbound.reply.mtp(), "good");
        mtps.send(&inbound.reply, vec![i]).await.unwrap();
        assert_eq!(ctl.next().await.payload, vec![i]);
    }
}

#[tokio::test]
async fn update_moves_the_client_to_a_new_broker() {
    let a = Mosquitto::start().await.expect("mosquitto");
    let b = Mosquitto::start().await.expect("mosquitto");
    let mut ctl_a = Ctl5::connect(a.port, "ctl-a", &[CONTROLLER_TOPIC]).await;
    let mut ctl_b = Ctl5::connect(b.port, "ctl-b", &[CONTROLLER_TOPIC]).await;
    let (mtps, mut rx) = start(settings(vec![(
        "mqtt",
        mqtt(a.port, MqttVersion::V5, None),
    )]));
    up(&mut rx, "mqtt").await;
    ctl_a.next().await;

    mtps.update(settings(vec![(
        "mqtt",
        mqtt(b.port, MqttVersion::V5, None),
    )]))
    .await;
    let bye = support::decode(&ctl_a.next().await.payload);
    assert!(matches!(bye.record_type, Some(RecordType::Disconnect(_))));
    up(&mut rx, "mqtt").await;
    assert_mqtt_connect(&ctl_b.next().await.payload, WireVersion::V5);
    assert_eq!(mtps.running().await, vec!["mqtt"]);

    // Unchanged settings keep the connection: no new Connect record.
    mtps.update(settings(vec![(
        "mqtt",
        mqtt(b.port, MqttVersion::V5, None),
    )]))
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), ctl_b.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mqtt_malformed_and_oversize_payloads_are_dropped() {
    let broker = Mosquitto::start().await.expect("mosquitto");
    for version in [MqttVersion::V5, MqttVersion::V3_1_1] {
        let mut ctl = Ctl5::connect(broker.port, "ctl-m", &["usp/controller/#"]).await;
        let (mtps, mut rx) = start(settings(vec![("mqtt", mqtt(broker.port, version, None))]));
        up(&mut rx, "mqtt").await;
        ctl.next().await;
        // No Content Type, no Response Topic: still taken as a Record.
        ctl.publish_bare(AGENT_TOPIC, b"\xff\xff garbage".to_vec())
            .await;
        ctl.publish_bare(
            AGENT_TOPIC,
            support::record(CONTROLLER, AGENT, &vec![0u8; 70 * 1024]),
        )
        .await;
        let good = support::record(CONTROLLER, AGENT, b"good");
        let good_topic = match version {
            MqttVersion::V5 => AGENT_TOPIC.to_string(),
            MqttVersion::V3_1_1 => {
                // R-MQTT.26a: without a reply-to, from a sender the agent has no topic for, a
                // 3.1.1 PUBLISH is a version mismatch and is dropped even though it holds a
                // valid Record.
                ctl.publish_bare(
                    AGENT_TOPIC,
                    support::record("proto::stranger", AGENT, b"bare"),
                )
                .await;
                format!("{AGENT_TOPIC}/reply-to=usp%2Fcontroller")
            }
        };
        ctl.publish_bare(&good_topic, good.clone()).await;
        let got = support::wait_for(&mut rx, "record", |e| match e {
            MtpEvent::Record(r) => Some(r.bytes.clone()),
            MtpEvent::Down { reason, .. } => panic!("{version:?}: connection lost: {reason}"),
            _ => None,
        })
        .await;
        assert_eq!(got, good, "{version:?}: only the valid record is delivered");
        mtps.shutdown().await;
    }
}

#[tokio::test]
async fn mqtt_username_and_password_are_sent() {
    let broker = Mosquitto::start_with_login("agent", "s3cret")
        .await
        .expect("mosquitto");
    let mut good = mqtt(broker.port, MqttVersion::V5, None);
    good.username = Some("agent".into());
    good.password = Some("s3cret".into());
    let mut bad = mqtt(broker.port, MqttVersion::V3_1_1, None);
    bad.username = Some("agent".into());
    bad.password = Some("wrong".into());
    let (_mtps, mut rx) = start(settings(vec![("good", good), ("bad", bad)]));
    up(&mut rx, "good").await;
    let reason = support::wait_for(&mut rx, "refusal", |e| match e {
        MtpEvent::Down { mtp, reason } if mtp == "bad" => Some(reason.clone()),
        MtpEvent::Up { mtp, .. } if mtp == "bad" => panic!("wrong password accepted"),
        _ => None,
    })
    .await;
    assert!(reason.contains("refused"), "{reason}");
}
