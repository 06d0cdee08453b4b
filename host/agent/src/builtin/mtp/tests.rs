//! The MTP rows end to end: the file seeded, read back, changed by a Controller, and the
//! status values following the links.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
use std::sync::Arc;

use usp_mtp::{LinkInfo, MqttVersion, MtpConfig, TransportConfig, UdsConfig, UdsMode};

use super::seed::{values, yes_no};
use super::settings::{Row, from_row};
use super::*;
use crate::builtin::local_agent;

const FILE: &str = r#"
    [[mtp]]
    name = "broker"
    protocol = "mqtt"
    broker_address = "127.0.0.1"
    broker_port = 1884
    response_topic = "usp/agent"
    subscriptions = ["usp/extra"]
    [[mtp.controllers]]
    endpoint_id = "self::ctrl"
    topic = "usp/ctrl"

    [[mtp]]
    name = "ws"
    protocol = "websocket-server"
    port = 8080
    keep_alive_secs = 0

    [[mtp]]
    name = "uds"
    protocol = "uds"
    path = "/run/usp.sock"

    [[mtp]]
    name = "stomp"
    protocol = "stomp"
    host = "broker.example"
    destination = "agent"
    [mtp.tls]

    [[mtp]]
    name = "to-ctrl"
    protocol = "websocket-client"
    host = "ctrl.example"
    port = 443
    controller_endpoint_id = "self::ctrl"
"#;

fn file() -> Vec<MtpConfig> {
    toml::from_str::<crate::config::Config>(FILE).unwrap().mtp
}

async fn seeded() -> MemoryProvider {
    let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
    seed(&tables, &file()).await;
    tables
}

fn transport<'a>(mtps: &'a [MtpConfig], name: &str) -> &'a TransportConfig {
    &mtps.iter().find(|mtp| mtp.name == name).unwrap().transport
}

#[tokio::test]
async fn the_file_written_into_the_tables_reads_back_as_the_file() {
    let tables = seeded().await;
    assert_eq!(
        tables
            .value("Device.LocalAgent.MTP.1.MQTT.Reference")
            .as_deref(),
        Some("Device.MQTT.Client.1")
    );
    assert_eq!(
        tables.value("Device.MQTT.Client.1.BrokerPort").as_deref(),
        Some("1884")
    );
    assert_eq!(
        tables
            .value("Device.UnixDomainSockets.UnixDomainSocket.1.Path")
            .as_deref(),
        Some("/run/usp.sock")
    );
    let mut expected = file();
    // TR-181 cannot say "no keep-alive": the default applies.
    if let TransportConfig::WebSocketServer(ws) = &mut expected[1].transport {
        ws.keep_alive_secs = 60;
    }
    assert_eq!(settings(&tables, &file()).await, expected);
}

#[tokio::test]
async fn seeding_again_updates_the_rows_in_place() {
    let tables = seeded().await;
    let mut changed = file();
    if let TransportConfig::Mqtt(mqtt) = &mut changed[0].transport {
        mqtt.broker_port = 1999;
        mqtt.subscriptions = vec!["a".into(), "b".into()];
    }
    seed(&tables, &changed).await;
    assert_eq!(tables.instances(MQTT_CLIENT_TABLE).await.unwrap(), vec![1]);
    assert_eq!(tables.instances(MTP_TABLE).await.unwrap().len(), 4);
    let mtps = settings(&tables, &file()).await;
    let TransportConfig::Mqtt(mqtt) = transport(&mtps, "broker") else {
        panic!("not MQTT");
    };
    assert_eq!(mqtt.broker_port, 1999);
    assert_eq!(mqtt.subscriptions, vec!["a".to_string(), "b".to_string()]);
}

#[tokio::test]
async fn controller_changes_to_the_rows_are_what_runs() {
    let tables = seeded().await;
    tables
        .set_value("Device.MQTT.Client.1.BrokerAddress", "10.0.0.1")
        .unwrap();
    tables
        .set_value("Device.MQTT.Client.1.ProtocolVersion", "3.1.1")
        .unwrap();
    tables
        .set_value("Device.LocalAgent.MTP.2.WebSocket.Port", "9090")
        .unwrap();
    tables
        .set_value("Device.LocalAgent.MTP.3.Enable", "false")
        .unwrap();
    tables
        .set_value("Device.STOMP.Connection.1.EnableEncryption", "false")
        .unwrap();
    let mtps = settings(&tables, &file()).await;
    let TransportConfig::Mqtt(mqtt) = transport(&mtps, "broker") else {
        panic!("not MQTT");
    };
    assert_eq!(mqtt.broker_address, "10.0.0.1");
    assert_eq!(mqtt.protocol_version, MqttVersion::V3_1_1);
    assert_eq!(
        mqtt.controllers.len(),
        1,
        "controllers still come from the file"
    );
    let TransportConfig::WebSocketServer(ws) = transport(&mtps, "ws") else {
        panic!("not WebSocket");
    };
    assert_eq!(ws.port, 9090);
    assert!(!mtps.iter().find(|mtp| mtp.name == "uds").unwrap().enable);
    let TransportConfig::Stomp(stomp) = transport(&mtps, "stomp") else {
        panic!("not STOMP");
    };
    assert_eq!(stomp.tls, None);
    assert!(
        matches!(
            transport(&mtps, "to-ctrl"),
            TransportConfig::WebSocketClient(_)
        ),
        "WebSocket clients run from the file"
    );
}

#[tokio::test]
async fn publish_qos_is_seeded_as_0_and_a_controller_setting_1_or_2_is_what_runs() {
    let tables = seeded().await;
    // obuspa's default: a QoS 0 answer draws no PUBACK for a stock broker to hold the next
    // request behind (issue 11).
    assert_eq!(
        tables
            .value("Device.LocalAgent.MTP.1.MQTT.PublishQoS")
            .as_deref(),
        Some("0")
    );
    for qos in [1, 2] {
        tables
            .set_value("Device.LocalAgent.MTP.1.MQTT.PublishQoS", &qos.to_string())
            .unwrap();
        let mtps = settings(&tables, &file()).await;
        let TransportConfig::Mqtt(mqtt) = transport(&mtps, "broker") else {
            panic!("not MQTT");
        };
        assert_eq!(mqtt.publish_qos, qos);
    }
}

#[tokio::test]
async fn a_row_added_by_a_controller_runs_with_default_settings() {
    let tables = seeded().await;
    let socket = values(&[("Path", "/tmp/other.sock".to_string())]);
    tables.add_instance(UDS_TABLE, &socket).unwrap();
    let row = values(&[
        ("Alias", "extra".to_string()),
        ("Enable", yes_no(true)),
        ("Protocol", "UDS".to_string()),
        (
            "UDS.UnixDomainSocketRef",
            "Device.UnixDomainSockets.UnixDomainSocket.2".to_string(),
        ),
    ]);
    tables.add_instance(MTP_TABLE, &row).unwrap();
    let mtps = settings(&tables, &file()).await;
    assert_eq!(
        transport(&mtps, "extra"),
        &TransportConfig::Uds(UdsConfig {
            path: "/tmp/other.sock".into(),
            mode: UdsMode::Listen
        })
    );
}

#[tokio::test]
async fn a_row_that_cannot_run_says_why_and_shows_error() {
    let tables = seeded().await;
    tables
        .set_value(
            "Device.LocalAgent.MTP.1.MQTT.Reference",
            "Device.MQTT.Client.7",
        )
        .unwrap();
    tables
        .set_value("Device.LocalAgent.MTP.3.Protocol", "CoAP")
        .unwrap();
    let mtps = settings(&tables, &file()).await;
    // The file's settings run instead, so the agent keeps a way in.
    assert_eq!(transport(&mtps, "broker"), &file()[0].transport);
    assert_eq!(
        tables.value("Device.LocalAgent.MTP.1.Status").as_deref(),
        Some("Error")
    );
    let row = Row {
        tables: &tables,
        row: "Device.LocalAgent.MTP.3.".into(),
    };
    assert_eq!(
        from_row(&row, None).await.unwrap_err().to_string(),
        "Device.LocalAgent.MTP.3.Protocol \"CoAP\" is not one of MQTT, STOMP, WebSocket, UDS"
    );
}

#[tokio::test]
async fn link_events_show_in_the_status_values() {
    let tables = seeded().await;
    let info = LinkInfo {
        reply_to: Some("discovered/topic".into()),
        ..LinkInfo::default()
    };
    show_link(&tables, "broker", Some(&info)).await;
    assert_eq!(
        tables.value("Device.LocalAgent.MTP.1.Status").as_deref(),
        Some("Up")
    );
    assert_eq!(
        tables.value("Device.MQTT.Client.1.Status").as_deref(),
        Some("Connected")
    );
    assert_eq!(
        tables
            .value("Device.LocalAgent.MTP.1.MQTT.ResponseTopicDiscovered")
            .as_deref(),
        Some("discovered/topic")
    );
    show_link(&tables, "broker", None).await;
    assert_eq!(
        tables.value("Device.LocalAgent.MTP.1.Status").as_deref(),
        Some("Down")
    );
}

#[test]
fn status_values_are_not_configuration() {
    assert!(is_live_status("Device.MQTT.Client.1.Status"));
    assert!(!is_live_status("Device.LocalAgent.Controller.1.Status"));
    assert!(touches("Device.MQTT.Client.1.BrokerPort"));
    assert!(touches("Device.LocalAgent.MTP.2."));
    assert!(!touches("Device.LocalAgent.MTP.2.Status"));
    assert!(!touches(
        "Device.LocalAgent.MTP.1.MQTT.ResponseTopicDiscovered"
    ));
    assert!(!touches("Device.LocalAgent.Controller.1.Enable"));
}
