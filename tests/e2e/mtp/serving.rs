//! A controller on each MTP gets correct answers from the real agent: WebSocket, MQTT 5.0 /
//! 3.1.1 and STOMP through usp-mtp's controller client, UDS through the test's own framing,
//! `uspctl --stomp`; and the shipped `examples/agent.toml` serves WebSocket, UDS and `uspctl` as it is.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::{Context, bail};
use usp_codec::RecordBody;
use usp_codec::usp_proto::usp::{self, request::ReqType};
use usp_controller::{
    AgentEvent, ControllerClient, ControllerOptions, Endpoint, MqttEndpoint, StompEndpoint,
    WsEndpoint,
};
use usp_mtp::MqttVersion;

use super::expect::{self, MANUFACTURER};
use super::harness::{
    AGENT_DEST, AGENT_ID, AGENT_TOPIC_V5, AGENT_TOPIC_V311, Agent, CONTROLLER, CONTROLLER_DEST,
    CONTROLLER_TOPIC, Mosquitto, MqttMtp, Setup, bounded, bounded_by, free_port,
};
use super::peer::{Link, UdsLink, WsLink, get_record, recv_msg, recv_msg_from};
use crate::support::uspctl;
use usp_testkit::Rabbit;

/// Asks `client` for `Device.DeviceInfo.` and checks the answer.
async fn device_info(client: &ControllerClient) -> anyhow::Result<()> {
    let request = usp_codec::msg::request(
        &client.next_msg_id(),
        ReqType::Get(usp::Get {
            param_paths: vec!["Device.DeviceInfo.".to_string()],
            max_depth: 0,
        }),
    );
    let msg_id = usp_codec::msg::msg_id(&request)
        .unwrap_or_default()
        .to_string();
    let answer = client.send(request).await?;
    assert_eq!(
        expect::param(&answer, &msg_id, "Manufacturer")?,
        MANUFACTURER
    );
    Ok(())
}

/// Retries `device_info` until the agent answers, for at most 20 s: the agent's broker
/// connection comes up independently of the test's.
async fn first_device_info(client: &ControllerClient, mtp: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match device_info(client).await {
            Ok(()) => return Ok(()),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(err.context(format!("no answer over {mtp}")));
            }
            Err(_) => {}
        }
    }
}

/// A controller client over MQTT with `version`, retrying the first Get until the agent's MTP
/// has subscribed (its broker connection comes up independently of the test's).
pub(super) async fn mqtt_client(
    port: u16,
    version: MqttVersion,
    (controller_id, agent_id): (&str, &str),
    (agent_topic, own_topic): (&str, &str),
) -> anyhow::Result<(ControllerClient, tokio::sync::mpsc::Receiver<AgentEvent>)> {
    let mut endpoint = MqttEndpoint::new("127.0.0.1", port, agent_topic, own_topic);
    endpoint.version = version;
    let mut options = ControllerOptions::new(controller_id, agent_id, Endpoint::Mqtt(endpoint));
    options.timeout = Duration::from_secs(1);
    let (client, events) = ControllerClient::connect(options).await?;
    first_device_info(&client, &format!("MQTT {version:?}")).await?;
    Ok((client, events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_on_websocket_uds_and_mqtt_get_device_info() {
    bounded(async {
        let broker = Mosquitto::start().await?;
        let mut agent = Agent::start(Setup {
            mqtt: vec![
                MqttMtp {
                    name: "mqtt5",
                    port: broker.port,
                    version: "5.0",
                    topic: AGENT_TOPIC_V5,
                    publish_qos: None,
                },
                MqttMtp {
                    name: "mqtt311",
                    port: broker.port,
                    version: "3.1.1",
                    topic: AGENT_TOPIC_V311,
                    publish_qos: None,
                },
            ],
            ..Setup::default()
        })
        .await?;

        let (ws, _) = ControllerClient::connect(ControllerOptions::new(
            CONTROLLER,
            AGENT_ID,
            Endpoint::WebSocket(WsEndpoint {
                url: agent.ws_url(),
            }),
        ))
        .await?;
        device_info(&ws).await?;

        // UDS: the handshake, then the UDSConnect Record, then answers.
        let mut uds = UdsLink::connect(&agent.uds_path(), CONTROLLER).await?;
        let connect = usp_codec::Record::decode(&uds.recv().await?)?;
        assert_eq!(connect.body, RecordBody::UdsConnect);
        assert_eq!(connect.to_id, CONTROLLER);
        uds.send(get_record(
            CONTROLLER,
            AGENT_ID,
            "uds-1",
            "Device.DeviceInfo.",
        ))
        .await?;
        let (to, answer) = recv_msg(&mut uds).await?;
        assert_eq!(to, CONTROLLER);
        assert_eq!(
            expect::param(&answer, "uds-1", "Manufacturer")?,
            MANUFACTURER
        );

        let (mqtt5, _) = mqtt_client(
            broker.port,
            MqttVersion::V5,
            (CONTROLLER, AGENT_ID),
            (AGENT_TOPIC_V5, CONTROLLER_TOPIC),
        )
        .await?;
        device_info(&mqtt5).await?;
        let (mqtt311, _) = mqtt_client(
            broker.port,
            MqttVersion::V3_1_1,
            (CONTROLLER, AGENT_ID),
            (AGENT_TOPIC_V311, "usp/controller/e2e-311"),
        )
        .await
        .with_context(|| agent.log())?;
        device_info(&mqtt311).await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

/// The shipped example, with only its port, socket path and state moved into a temporary
/// directory so the test cannot collide with anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_config_serves_websocket_uds_and_uspctl_on_loopback() {
    bounded(async {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let text = std::fs::read_to_string(examples.join("agent.toml"))?;
        let mut config: toml::Table = toml::from_str(&text)?;
        let agent_id = config["agent"]["endpoint_id"]
            .as_str()
            .context("example has no endpoint_id")?
            .to_string();
        let dir = tempfile::tempdir()?;
        std::fs::copy(
            examples.join("factory-reset.txt"),
            dir.path().join("factory-reset.txt"),
        )?;
        let ws_port = free_port()?;
        let uds = dir.path().join("usp.sock");
        let mtps = config
            .get_mut("mtp")
            .and_then(toml::Value::as_array_mut)
            .context("example has no [[mtp]]")?;
        let (mut ws_seen, mut uds_seen) = (false, false);
        for mtp in mtps.iter_mut() {
            let table = mtp.as_table_mut().context("[[mtp]] is not a table")?;
            match table.get("protocol").and_then(toml::Value::as_str) {
                Some("websocket-server") => {
                    assert_eq!(
                        table.get("bind").and_then(toml::Value::as_str),
                        Some("127.0.0.1"),
                        "the example's WebSocket server must listen on loopback only"
                    );
                    assert!(table.get("tls").is_none());
                    table.insert("port".into(), i64::from(ws_port).into());
                    ws_seen = true;
                }
                Some("uds") => {
                    table.insert("path".into(), uds.display().to_string().into());
                    uds_seen = true;
                }
                other => bail!("the example enables an MTP that needs a broker: {other:?}"),
            }
        }
        assert!(ws_seen && uds_seen, "example MTPs: {mtps:?}");
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml::to_string(&config)?)?;
        let controller = "self::usp-controller";
        assert!(
            std::fs::read_to_string(examples.join("factory-reset.txt"))?.contains(controller),
            "the example factory-reset file no longer trusts {controller}"
        );

        let mut agent = Agent::start_with_config(dir, &path, Some(ws_port), Some(&uds)).await?;
        let mut args: Vec<OsString> = vec!["--config".into(), path.clone().into()];
        args.extend(["--timeout", "10", "get", "Device.LocalAgent."].map(OsString::from));
        let out = tokio::task::spawn_blocking(move || uspctl(args)).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "uspctl failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&agent_id),
            "uspctl get Device.LocalAgent. lacks the EndpointID: {stdout}"
        );

        let path = "Device.LocalAgent.EndpointID";
        let mut ws = WsLink::connect(ws_port, controller, None).await?;
        ws.send(get_record(controller, &agent_id, "ws-1", path))
            .await?;
        let (_, answer) = recv_msg_from(&mut ws, &agent_id).await?;
        assert_eq!(expect::param(&answer, "ws-1", "EndpointID")?, agent_id);
        let mut uds_link = UdsLink::connect_to(&uds, controller, &agent_id).await?;
        uds_link
            .send(get_record(controller, &agent_id, "uds-1", path))
            .await?;
        let (_, answer) = recv_msg_from(&mut uds_link, &agent_id).await?;
        assert_eq!(expect::param(&answer, "uds-1", "EndpointID")?, agent_id);
        agent.check_running()
    })
    .await
    .unwrap();
}

/// The shipped MQTT example against a test mosquitto: only the broker port, the socket path and
/// the state directory are changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_mqtt_config_serves_its_controller_through_mosquitto() {
    bounded(async {
        let broker = Mosquitto::start().await?;
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let text = std::fs::read_to_string(examples.join("agent-mqtt.toml"))?;
        let mut config: toml::Table = toml::from_str(&text)?;
        let agent_id = config["agent"]["endpoint_id"]
            .as_str()
            .context("example has no endpoint_id")?
            .to_string();
        config["agent"]
            .as_table_mut()
            .context("[agent] is not a table")?
            .insert("state_dir".into(), "state".into());
        let dir = tempfile::tempdir()?;
        std::fs::copy(
            examples.join("factory-reset.txt"),
            dir.path().join("factory-reset.txt"),
        )?;
        let uds = dir.path().join("usp.sock");
        let mut mqtt = None;
        for mtp in config
            .get_mut("mtp")
            .and_then(toml::Value::as_array_mut)
            .context("example has no [[mtp]]")?
        {
            let table = mtp.as_table_mut().context("[[mtp]] is not a table")?;
            match table.get("protocol").and_then(toml::Value::as_str) {
                Some("mqtt") => {
                    table.insert("broker_port".into(), i64::from(broker.port).into());
                    let topic = table["response_topic"].as_str().context("response_topic")?;
                    let controller = &table["controllers"][0];
                    mqtt = Some((
                        topic.to_string(),
                        controller["endpoint_id"]
                            .as_str()
                            .context("endpoint_id")?
                            .to_string(),
                        controller["topic"].as_str().context("topic")?.to_string(),
                    ));
                }
                Some("uds") => {
                    table.insert("path".into(), uds.display().to_string().into());
                }
                other => bail!("unexpected MTP in the MQTT example: {other:?}"),
            }
        }
        let (agent_topic, controller_id, controller_topic) =
            mqtt.context("the MQTT example has no mqtt MTP")?;
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, toml::to_string(&config)?)?;

        let mut agent = Agent::start_with_config(dir, &path, None, Some(&uds)).await?;
        let (client, _) = mqtt_client(
            broker.port,
            MqttVersion::V5,
            (&controller_id, &agent_id),
            (&agent_topic, &controller_topic),
        )
        .await?;
        device_info(&client).await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

/// A STOMP test boots RabbitMQ twice (start and restart), each up to tens of seconds on a
/// loaded machine.
const STOMP_TEST_LIMIT: Duration = Duration::from_secs(180);

/// Waits for the agent's STOMPConnect Record naming its destination (R-MTP.6).
async fn stomp_connect(events: &mut tokio::sync::mpsc::Receiver<AgentEvent>) -> anyhow::Result<()> {
    let limit = Duration::from_secs(20);
    let body = tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Some(AgentEvent::Connect(body)) => return Ok(body),
                Some(_) => {}
                None => bail!("the controller session ended"),
            }
        }
    })
    .await
    .with_context(|| format!("no STOMPConnect Record within {limit:?}"))??;
    assert_eq!(
        body,
        RecordBody::StompConnect {
            subscribed_destination: AGENT_DEST.to_string()
        }
    );
    Ok(())
}

/// STOMP through a real RabbitMQ (one broker for both clients: it boots in tens of seconds):
/// usp-mtp's controller client gets the agent's STOMPConnect Record and correct answers,
/// `uspctl --stomp` gets `Manufacturer`, and after the broker is killed and restarted the
/// controller client has reconnected on its own, gets a new STOMPConnect, and is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_and_uspctl_on_stomp_get_device_info_across_a_broker_restart() {
    bounded_by(STOMP_TEST_LIMIT, async {
        let mut broker = Rabbit::start().await?;
        let port = broker.stomp_port;
        let mut agent = Agent::start(Setup {
            stomp: Some(port),
            ..Setup::default()
        })
        .await?;
        let mut endpoint = StompEndpoint::new("127.0.0.1", port, AGENT_DEST, CONTROLLER_DEST);
        endpoint.login = Some("guest".to_string());
        endpoint.passcode = Some("guest".to_string());
        let mut options = ControllerOptions::new(CONTROLLER, AGENT_ID, Endpoint::Stomp(endpoint));
        options.timeout = Duration::from_secs(1);
        let (client, mut events) = ControllerClient::connect(options).await?;
        first_device_info(&client, "STOMP")
            .await
            .with_context(|| agent.log())?;
        // Sent when the agent subscribed; the broker kept it in our queue until we came.
        stomp_connect(&mut events).await?;
        device_info(&client).await?;

        let address = format!("127.0.0.1:{port}");
        let args = [
            "--stomp",
            &address,
            "--agent-id",
            AGENT_ID,
            "--agent-dest",
            AGENT_DEST,
            "--controller-id",
            CONTROLLER,
            "--stomp-login",
            "guest",
            "--stomp-passcode",
            "guest",
            "--timeout",
            "10",
            "get",
            "Device.DeviceInfo.Manufacturer",
        ]
        .map(OsString::from)
        .to_vec();
        let out = tokio::task::spawn_blocking(move || uspctl(args)).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "uspctl --stomp failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(MANUFACTURER),
            "uspctl --stomp get lacks the Manufacturer: {stdout}"
        );

        broker.restart().await?;
        stomp_connect(&mut events)
            .await
            .with_context(|| agent.log())?;
        first_device_info(&client, "STOMP after the broker restart").await?;
        agent.check_running()
    })
    .await
    .unwrap();
}
