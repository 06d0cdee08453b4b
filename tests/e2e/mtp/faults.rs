//! Bad input on every MTP: unextractable Records (WebSocket close 1003, R-WS.16; UDS Error TLV;
//! MQTT drop, R-MTP.5), Records above `agent.max_record_size`, a wrong `to_id` (R-E2E.1), a
//! `from_id` that is not a Controller, and an extractable Record with a bad field (an Error
//! back, R-MTP.5). After each, the agent must still be running and serving.
//!
//! "Dropped" is proven without waiting for nothing to happen: the agent handles the Records of
//! one link in order, so when the answer to a later good request arrives first, the dropped
//! one was never going to be answered.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use usp_codec::UspErrorCode;

use super::expect;
use super::harness::{
    AGENT_ID, AGENT_TOPIC_V5, Agent, CONTROLLER, Mosquitto, MqttMtp, STRANGER, Setup, bounded,
};
use super::peer::{
    Link, MqttLink, TLV_RECORD, UdsLink, WsLink, bad_field_record, get_record, recv_msg, uds_frame,
};

const PATH: &str = "Device.LocalAgent.EndpointID";
const RAW_TOPIC: &str = "usp/controller/e2e-raw";
const GARBAGE: &[u8] = b"\xff\xff\xff\xff this is not a USP Record";

/// Sends on one link: a Get for another endpoint, a Get from an endpoint that is not a
/// Controller, a Record with an unknown `payload_security`, and a good Get. The first two must
/// be dropped, the third answered with an Error (R-MTP.5), the fourth with a GetResp.
async fn misaddressed_and_unknown_senders_are_dropped(link: &mut impl Link) -> anyhow::Result<()> {
    link.send(get_record(
        CONTROLLER,
        "proto::someone-else",
        "wrong-to",
        PATH,
    ))
    .await?;
    link.send(get_record(STRANGER, AGENT_ID, "stranger", PATH))
        .await?;
    link.send(bad_field_record(CONTROLLER, "bad-field")).await?;
    link.send(get_record(CONTROLLER, AGENT_ID, "good", PATH))
        .await?;
    let (to, first) = recv_msg(link).await?;
    assert_eq!(to, CONTROLLER);
    expect::error(&first, "bad-field", UspErrorCode::InvalidRecordValue.code())?;
    let (to, second) = recv_msg(link).await?;
    assert_eq!(to, CONTROLLER);
    assert_eq!(expect::param(&second, "good", "EndpointID")?, AGENT_ID);
    Ok(())
}

/// A good Get on `link` is answered.
async fn serves(link: &mut impl Link, msg_id: &str) -> anyhow::Result<()> {
    link.send(get_record(CONTROLLER, AGENT_ID, msg_id, PATH))
        .await?;
    let (_, answer) = recv_msg(link).await?;
    assert_eq!(expect::param(&answer, msg_id, "EndpointID")?, AGENT_ID);
    Ok(())
}

/// A Get whose path makes the Record about `size` bytes.
fn big_get(msg_id: &str, size: usize) -> Vec<u8> {
    let path = format!("Device.LocalAgent.{}", "X".repeat(size));
    get_record(CONTROLLER, AGENT_ID, msg_id, &path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_drops_wrong_to_id_and_unknown_from_id_and_reports_bad_fields() {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        misaddressed_and_unknown_senders_are_dropped(&mut link).await?;
        assert!(
            agent
                .log()
                .contains("not an enabled Device.LocalAgent.Controller")
        );
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uds_drops_wrong_to_id_and_unknown_from_id_and_reports_bad_fields() {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let mut link = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        misaddressed_and_unknown_senders_are_dropped(&mut link).await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_drops_wrong_to_id_and_unknown_from_id_and_reports_bad_fields() {
    bounded(async {
        let broker = Mosquitto::start().await?;
        let mut agent = Agent::start(Setup {
            mqtt: vec![MqttMtp::v5(broker.port)],
            ..Setup::default()
        })
        .await?;
        let mut link = MqttLink::connect(broker.port, AGENT_TOPIC_V5, RAW_TOPIC).await?;
        // The agent subscribes after it starts; until then its topic has no subscriber.
        wait_served_over_mqtt(&mut link).await?;
        misaddressed_and_unknown_senders_are_dropped(&mut link).await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_from_id_is_served_when_the_config_serves_untrusted() {
    bounded(async {
        let mut agent = Agent::start(Setup {
            serve_untrusted: true,
            ..Setup::default()
        })
        .await?;
        let mut link = WsLink::connect(agent.ws_port, STRANGER, None).await?;
        link.send(get_record(STRANGER, AGENT_ID, "stranger", PATH))
            .await?;
        let (to, answer) = recv_msg(&mut link).await?;
        assert_eq!(to, STRANGER);
        assert_eq!(super::peer::msg_id(&answer), "stranger");
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_websocket_records_close_the_session_with_1003() {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        link.send(GARBAGE.to_vec()).await?;
        assert_eq!(link.close_code().await?, Some(CloseCode::Unsupported));
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        link.send_text("a Record in a text frame").await?;
        assert_eq!(link.close_code().await?, Some(CloseCode::Unsupported));
        agent.check_running()?;
        let mut link = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        serves(&mut link, "after-garbage").await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uds_records_and_frames_get_an_error_tlv_and_a_close() {
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let mut link = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        link.send_raw(&uds_frame(TLV_RECORD, GARBAGE)).await?;
        link.error_then_close().await?;
        let mut link = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        link.send_raw(b"_XYZ\x00\x00\x00\x05\x03\x00\x00\x00\x00")
            .await?;
        link.error_then_close().await?;
        agent.check_running()?;
        let mut link = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        serves(&mut link, "after-garbage").await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mqtt_records_are_dropped_and_the_agent_keeps_serving() {
    bounded(async {
        let broker = Mosquitto::start().await?;
        let mut agent = Agent::start(Setup {
            mqtt: vec![MqttMtp::v5(broker.port)],
            ..Setup::default()
        })
        .await?;
        let mut link = MqttLink::connect(broker.port, AGENT_TOPIC_V5, RAW_TOPIC).await?;
        wait_served_over_mqtt(&mut link).await?;
        link.send(GARBAGE.to_vec()).await?;
        link.send(Vec::new()).await?;
        serves(&mut link, "after-garbage").await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_above_max_record_size_are_dropped_on_every_mtp() {
    bounded(async {
        let broker = Mosquitto::start().await?;
        let mut agent = Agent::start(Setup {
            max_record_size: Some(2048),
            mqtt: vec![MqttMtp::v5(broker.port)],
            ..Setup::default()
        })
        .await?;

        // WebSocket: a moderately oversize Record is dropped and the session stays; a huge
        // one ends the session, and the next session is served.
        let mut ws = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        ws.send(big_get("big", 4000)).await?;
        serves(&mut ws, "after-big").await?;
        ws.send(big_get("huge", 1 << 20)).await?;
        assert!(ws.close_code().await.is_ok());
        let mut ws = WsLink::connect(agent.ws_port, CONTROLLER, None).await?;
        serves(&mut ws, "after-huge").await?;

        // UDS: the frame is refused with an Error TLV and the connection closed.
        let mut uds = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        uds.send(big_get("big", 4000)).await?;
        uds.error_then_close().await?;
        let mut uds = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        serves(&mut uds, "after-big").await?;

        // MQTT: the broker never delivers a PUBLISH above the agent's Maximum Packet Size.
        let mut mqtt = MqttLink::connect(broker.port, AGENT_TOPIC_V5, RAW_TOPIC).await?;
        wait_served_over_mqtt(&mut mqtt).await?;
        mqtt.send(big_get("big", 4000)).await?;
        serves(&mut mqtt, "after-big").await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

/// Repeats a Get until the agent answers over MQTT: it subscribes to its topic shortly after
/// it starts, and a PUBLISH before that reaches nobody. Answers to earlier attempts are read
/// past, so the link holds nothing stale afterwards.
async fn wait_served_over_mqtt(link: &mut MqttLink) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let msg_id = format!("ready-{attempt}");
        link.send(get_record(CONTROLLER, AGENT_ID, &msg_id, PATH))
            .await?;
        let answered = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            loop {
                let (_, answer) = recv_msg(link).await?;
                if super::peer::msg_id(&answer) == msg_id {
                    return anyhow::Ok(());
                }
            }
        })
        .await;
        if let Ok(result) = answered {
            return result;
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the agent never answered over MQTT");
        }
    }
}
