//! Interoperability with code this project did not write.
//!
//! usp-js (npm, pinned in `tests/interop/package-lock.json`) is a Controller library that
//! publishes without MQTT 5 Response Topic or 3.1.1 `/reply-to=` suffix and expects its answers
//! on the topic the agent's `Device.LocalAgent.Controller.{i}.MTP.{j}.MQTT.Topic` holds for it.
//! `tests/interop/probe.js` runs its checks (Get, Set, Add, Delete, GetSupportedDM,
//! GetSupportedProtocol, GetInstances, subscribe/Notify, an async Operate) against the real
//! agent and a real mosquitto over MQTT 5.0, MQTT 3.1.1, MQTT over WebSocket and the USP
//! WebSocket binding; every check must pass. The Controllers exist only as data-model rows
//! (the factory-reset file), none in the agent's config file. Node.js and npm are required: a
//! missing one fails the test (tests/services/install.sh installs them); `node_modules` is
//! installed with `npm ci` when absent.
//!
//! The other test decodes the Records the agent sent to a raw MQTT client with `rusp-lib`, an
//! independent USP codec: the MQTTConnect Records to the Controller rows' topics, the answers to
//! requests without reply-to, and that a Controller's Set of its own `MQTT.Topic` moves the next
//! answer to the new topic on the same connection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rusp_lib::usp::mod_Body::OneOfmsg_body;
use rusp_lib::usp::mod_Response::OneOfresp_type;
use rusp_lib::usp_record::mod_MQTTConnectRecord::MQTTVersion;
use rusp_lib::usp_record::mod_Record::OneOfrecord_type;
use tokio::process::Command;
use tokio::sync::mpsc;
use usp_codec::Record;
use usp_codec::msg;
use usp_codec::usp_proto::usp::{self, request::ReqType};

use super::harness::{ANSWER, Agent, Mosquitto, bounded_by, free_port};
use super::peer::{Link, WsLink, get_record};

/// The agent's Endpoint ID here.
const AGENT_ID: &str = "proto::interop-agent";
/// The topics the agent's two MQTT MTPs (`mqtt5`, `mqtt311`) subscribe to.
const AGENT_TOPIC_V5: &str = "usp/interop/agent-v5";
const AGENT_TOPIC_V311: &str = "usp/interop/agent-v311";

/// The Controllers: Endpoint ID, `MTP.1.Protocol`, `MQTT.Topic`, `MQTT.AgentMTPReference`.
/// The agent's MTP rows are 1 = `mqtt5`, 2 = `mqtt311`, 3 = `ws` (the config file's order).
const CONTROLLERS: [(&str, &str, &str, &str); 6] = [
    (
        "proto::usp-js-v5",
        "MQTT",
        "usp/interop/js-v5",
        "Device.LocalAgent.MTP.1",
    ),
    (
        "proto::usp-js-v311",
        "MQTT",
        "usp/interop/js-v311",
        "Device.LocalAgent.MTP.2",
    ),
    (
        "proto::usp-js-mqtt-ws",
        "MQTT",
        "usp/interop/js-mqtt-ws",
        "",
    ),
    ("proto::usp-js-usp-ws", "WebSocket", "", ""),
    (
        "proto::raw-v5",
        "MQTT",
        "usp/interop/raw-v5/a",
        "Device.LocalAgent.MTP.1",
    ),
    (
        "proto::raw-v311",
        "MQTT",
        "usp/interop/raw-v311/a",
        "Device.LocalAgent.MTP.2",
    ),
];

/// Every check probe.js runs; each must be reported as passed.
const CHECKS: [&str; 14] = [
    "connect",
    "get parameter",
    "get object",
    "get own Controller row by search expression",
    "get error for a path that does not exist",
    "supportedDM",
    "supportedProto",
    "instances",
    "add",
    "set",
    "delete",
    "subscribe and receive an ObjectCreation Notify",
    "operate async command with OperationComplete Notify",
    "disconnect",
];

/// How long one probe run may take (it waits 1 s for the timer it schedules).
const PROBE_LIMIT: Duration = Duration::from_secs(120);

/// The broker (TCP and WebSocket listeners) and the agent with its MQTT 5.0, MQTT 3.1.1 and
/// WebSocket server MTPs, the Controllers only in its factory-reset file.
struct Setup {
    broker: Mosquitto,
    agent: Agent,
}

impl Setup {
    async fn start() -> anyhow::Result<Setup> {
        let broker = Mosquitto::start_with_websockets().await?;
        Setup::start_agent(broker).await
    }

    async fn start_agent(broker: Mosquitto) -> anyhow::Result<Setup> {
        let dir = tempfile::tempdir()?;
        let mut reset = String::new();
        for (n, (endpoint_id, protocol, topic, reference)) in CONTROLLERS.iter().enumerate() {
            let row = format!("Device.LocalAgent.Controller.{}.", n + 1);
            reset += &format!(
                "{row}EndpointID \"{endpoint_id}\"\n{row}Enable true\n\
                 {row}AssignedRole \"Device.LocalAgent.ControllerTrust.Role.1\"\n\
                 {row}MTP.1.Enable true\n{row}MTP.1.Protocol \"{protocol}\"\n"
            );
            if !topic.is_empty() {
                reset += &format!("{row}MTP.1.MQTT.Topic \"{topic}\"\n");
            }
            if !reference.is_empty() {
                reset += &format!("{row}MTP.1.MQTT.AgentMTPReference \"{reference}\"\n");
            }
        }
        std::fs::write(dir.path().join("factory-reset.txt"), reset)?;
        let ws_port = free_port()?;
        let port = broker.port;
        let config = format!(
            "[agent]\nendpoint_id = \"{AGENT_ID}\"\nstate_dir = \"state\"\n\
             factory_reset_file = \"factory-reset.txt\"\nlog = \"info\"\n\
             \n[[mtp]]\nname = \"mqtt5\"\nprotocol = \"mqtt\"\nbroker_address = \"127.0.0.1\"\n\
             broker_port = {port}\nprotocol_version = \"5.0\"\nresponse_topic = \"{AGENT_TOPIC_V5}\"\n\
             connect_retry_time = 1\nconnect_retry_max_interval = 2\n\
             \n[[mtp]]\nname = \"mqtt311\"\nprotocol = \"mqtt\"\nbroker_address = \"127.0.0.1\"\n\
             broker_port = {port}\nprotocol_version = \"3.1.1\"\nresponse_topic = \"{AGENT_TOPIC_V311}\"\n\
             connect_retry_time = 1\nconnect_retry_max_interval = 2\n\
             \n[[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\nbind = \"127.0.0.1\"\n\
             port = {ws_port}\npath = \"/usp\"\n"
        );
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config)?;
        let agent = Agent::start_with_config(dir, &config_path, Some(ws_port), None).await?;
        Ok(Setup { broker, agent })
    }

    /// Waits until the agent's log says both MQTT MTPs are up (subscribed: SUBACK seen).
    async fn mqtt_up(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + ANSWER;
        loop {
            let log = self.agent.log();
            if log.contains("MTP up mtp=mqtt5") && log.contains("MTP up mtp=mqtt311") {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the MQTT MTPs did not come up; agent log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `tests/interop`.
fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// A program on `PATH`, or a failure that says how to get it.
fn program(name: &str) -> anyhow::Result<PathBuf> {
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "{name} is not installed: the usp-js interop tests need Node.js and npm \
                 (tests/services/install.sh installs them)"
            )
        })
}

/// Node.js, with usp-js installed from the lock file. `npm ci` runs at most once per test
/// process (the tests of this module run in parallel), and only when `node_modules` lacks
/// usp-js (tests/run.sh installs it beforehand).
fn node_with_usp_js() -> anyhow::Result<PathBuf> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let install = || -> anyhow::Result<PathBuf> {
                let node = program("node")?;
                let dir = interop_dir();
                if !dir.join("node_modules/usp-js/package.json").is_file() {
                    let npm = program("npm")?;
                    let out = std::process::Command::new(npm)
                        .args(["ci", "--no-audit", "--no-fund"])
                        .current_dir(&dir)
                        .stdin(Stdio::null())
                        .output()
                        .context("cannot run npm ci")?;
                    ensure!(
                        out.status.success(),
                        "npm ci in {} failed ({}):\n{}{}",
                        dir.display(),
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(node)
            };
            install().map_err(|error| format!("{error:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Runs probe.js for `transport` and checks that it reported every check of [`CHECKS`] as
/// passed; returns its output.
async fn probe(
    setup: &mut Setup,
    transport: &str,
    args: &[(&str, String)],
) -> anyhow::Result<String> {
    let node = node_with_usp_js()?;
    let mut command = Command::new(node);
    command
        .arg("probe.js")
        .args([
            "--transport",
            transport,
            "--host",
            "127.0.0.1",
            "--agent-id",
            AGENT_ID,
        ])
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (flag, value) in args {
        command.arg(format!("--{flag}")).arg(value);
    }
    let out = tokio::time::timeout(PROBE_LIMIT, command.output())
        .await
        .with_context(|| format!("usp-js {transport}: probe.js ran over {PROBE_LIMIT:?}"))?
        .context("cannot run probe.js")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let running = setup.agent.check_running();
    let report = || {
        format!(
            "usp-js over {transport} ({}):\n{stdout}{}\nagent log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            setup.agent.log()
        )
    };
    running.with_context(report)?;
    let passed: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("PASS "))
        .collect();
    let missing: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|check| !passed.contains(check))
        .collect();
    ensure!(
        missing.is_empty() && out.status.success(),
        "checks not passed: {missing:?}\n{}",
        report()
    );
    ensure!(
        !setup.agent.log().contains("response dropped"),
        "the agent dropped a response:\n{}",
        report()
    );
    Ok(stdout)
}

/// The MQTT flags of probe.js: usp-js publishes to the agent's topic and listens on its
/// Controller row's topic (a filter: a 3.1.1 agent adds `/reply-to=` levels, R-MQTT.24).
fn mqtt_args(
    port: u16,
    from_id: &str,
    agent_topic: &str,
    own_topic: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("port", port.to_string()),
        ("from-id", from_id.to_string()),
        ("publish", agent_topic.to_string()),
        ("subscribe", format!("{own_topic}/#")),
    ]
}

/// Runs the usp-js probe as `from_id` over one of the broker's listeners (its WebSocket one
/// when `over_websocket`): every check must pass.
async fn probe_over_mqtt(
    transport: &str,
    from_id: &str,
    agent_topic: &str,
    own_topic: &str,
    over_websocket: bool,
) -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    setup.mqtt_up().await?;
    let port = if over_websocket {
        setup.broker.ws_port.context("no WebSocket listener")?
    } else {
        setup.broker.port
    };
    let args = mqtt_args(port, from_id, agent_topic, own_topic);
    probe(&mut setup, transport, &args).await?;
    Ok(())
}

#[tokio::test]
async fn usp_js_over_mqtt5_without_response_topic_passes_every_check() {
    bounded_by(
        PROBE_LIMIT,
        probe_over_mqtt(
            "mqtt5",
            "proto::usp-js-v5",
            AGENT_TOPIC_V5,
            "usp/interop/js-v5",
            false,
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn usp_js_over_mqtt311_without_reply_to_suffix_passes_every_check() {
    bounded_by(
        PROBE_LIMIT,
        probe_over_mqtt(
            "mqtt311",
            "proto::usp-js-v311",
            AGENT_TOPIC_V311,
            "usp/interop/js-v311",
            false,
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn usp_js_over_mqtt_over_websocket_passes_every_check() {
    bounded_by(
        PROBE_LIMIT,
        probe_over_mqtt(
            "mqtt-ws",
            "proto::usp-js-mqtt-ws",
            AGENT_TOPIC_V5,
            "usp/interop/js-mqtt-ws",
            true,
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn usp_js_over_the_usp_websocket_binding_passes_every_check() {
    bounded_by(PROBE_LIMIT, async {
        let mut setup = Setup::start().await?;
        let args = vec![
            ("port", setup.agent.ws_port.to_string()),
            ("from-id", "proto::usp-js-usp-ws".to_string()),
            ("ws-path", "/usp".to_string()),
        ];
        probe(&mut setup, "usp-ws", &args).await?;
        Ok(())
    })
    .await
    .unwrap();
}

/// A PUBLISH the raw client received.
struct Received {
    topic: String,
    payload: Vec<u8>,
}

/// A bare MQTT 5 client: publishes without any property (no Response Topic, no Content Type),
/// as usp-js does, and hands over every PUBLISH it receives.
struct RawMqtt {
    client: AsyncClient,
    incoming: mpsc::Receiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl RawMqtt {
    async fn connect(port: u16, filters: &[&str]) -> anyhow::Result<RawMqtt> {
        let mut options = MqttOptions::new(
            format!("interop-raw-{}-{port}", std::process::id()),
            "127.0.0.1",
            port,
        );
        options.set_clean_start(true);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        client
            .subscribe_many(filters.iter().map(|f| Filter::new(*f, QoS::AtLeastOnce)))
            .await?;
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let (incoming_tx, incoming) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            while let Ok(event) = event_loop.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        let received = Received {
                            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                            payload: publish.payload.to_vec(),
                        };
                        if incoming_tx.send(received).await.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(ANSWER, subscribed)
            .await
            .context("no SUBACK from the broker")?
            .context("the MQTT connection failed")?;
        Ok(RawMqtt {
            client,
            incoming,
            task,
        })
    }

    async fn publish_bare(&self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
        Ok(())
    }

    async fn next(&mut self) -> anyhow::Result<Received> {
        tokio::time::timeout(ANSWER, self.incoming.recv())
            .await
            .context("no PUBLISH from the agent")?
            .context("the MQTT connection ended")
    }
}

impl Drop for RawMqtt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What rusp-lib made of one Record: its envelope and, for a Msg, the Msg.
struct Decoded {
    from_id: String,
    to_id: String,
    kind: OneOfrecord_type,
    msg: Option<rusp_lib::usp::Msg>,
}

/// Decodes `bytes` with rusp-lib only.
fn rusp_decode(bytes: &[u8]) -> anyhow::Result<Decoded> {
    let record = rusp_lib::usp_decoder::try_decode_record(bytes)
        .map_err(|error| anyhow::anyhow!("rusp-lib cannot decode the agent's Record: {error:#}"))?;
    let msg = match &record.record_type {
        OneOfrecord_type::no_session_context(plain) => Some(
            rusp_lib::usp_decoder::try_decode_msg(&plain.payload).map_err(|error| {
                anyhow::anyhow!("rusp-lib cannot decode the agent's Msg: {error:#}")
            })?,
        ),
        _ => None,
    };
    Ok(Decoded {
        from_id: record.from_id,
        to_id: record.to_id,
        kind: record.record_type,
        msg,
    })
}

/// The msg_id and GetResp parameters (resolved path + name → value) rusp-lib read.
fn get_resp(decoded: &Decoded) -> anyhow::Result<(String, HashMap<String, String>)> {
    let Some(msg) = &decoded.msg else {
        bail!("not a Msg Record");
    };
    let msg_id = msg
        .header
        .as_ref()
        .map(|h| h.msg_id.clone())
        .unwrap_or_default();
    let Some(OneOfmsg_body::response(response)) = msg.body.as_ref().map(|b| &b.msg_body) else {
        bail!("not a Response: {msg:?}");
    };
    let OneOfresp_type::get_resp(resp) = &response.resp_type else {
        bail!("not a GetResp: {response:?}");
    };
    let mut params = HashMap::new();
    for requested in &resp.req_path_results {
        ensure!(
            requested.err_code == 0,
            "Get of {} failed: {}",
            requested.requested_path,
            requested.err_msg
        );
        for resolved in &requested.resolved_path_results {
            for (name, value) in &resolved.result_params {
                params.insert(format!("{}{name}", resolved.resolved_path), value.clone());
            }
        }
    }
    Ok((msg_id, params))
}

/// A Set Record of one parameter.
fn set_record(from: &str, msg_id: &str, object: &str, param: &str, value: &str) -> Vec<u8> {
    let set = msg::request(
        msg_id,
        ReqType::Set(usp::Set {
            allow_partial: false,
            update_objs: vec![usp::set::UpdateObject {
                obj_path: object.to_string(),
                param_settings: vec![usp::set::UpdateParamSetting {
                    param: param.to_string(),
                    value: value.to_string(),
                    required: true,
                }],
            }],
        }),
    );
    Record::for_msg(from, AGENT_ID, &set).encode()
}

/// One MQTT MTP's side of the rusp test: `controller` (`Controller.{row}`, topic `<base>/a`,
/// `AgentMTPReference` = `Device.LocalAgent.MTP.{mtp_row}` whose `Alias` is `mtp_alias`)
/// publishes bare requests to `agent_topic`.
async fn answers_follow_the_controller_row(
    raw: &mut RawMqtt,
    controller: &str,
    row: usize,
    agent_topic: &str,
    base: &str,
    (mtp_row, mtp_alias): (usize, &str),
) -> anyhow::Result<()> {
    let alias = format!("Device.LocalAgent.MTP.{mtp_row}.Alias");
    raw.publish_bare(
        agent_topic,
        get_record(controller, AGENT_ID, "get-1", &alias),
    )
    .await?;
    let answer = raw.next().await?;
    ensure!(
        answer.topic.starts_with(&format!("{base}/a")),
        "{controller}: the answer came on {}, not on its Controller row's topic",
        answer.topic
    );
    let decoded = rusp_decode(&answer.payload)?;
    ensure!(
        (decoded.from_id.as_str(), decoded.to_id.as_str()) == (AGENT_ID, controller),
        "{controller}: Record from {} to {}",
        decoded.from_id,
        decoded.to_id
    );
    let (msg_id, params) = get_resp(&decoded)?;
    ensure!(msg_id == "get-1", "{controller}: msg_id {msg_id}");
    ensure!(
        params.get(&alias).map(String::as_str) == Some(mtp_alias),
        "{controller}: {alias} = {params:?}; its AgentMTPReference names the wrong MTP row"
    );

    // The Controller moves its own topic; the answer to the Set still goes where it was sent
    // from, the next one to the new topic: no restart, same MQTT connection.
    let object = format!("Device.LocalAgent.Controller.{row}.MTP.1.MQTT.");
    raw.publish_bare(
        agent_topic,
        set_record(controller, "set-1", &object, "Topic", &format!("{base}/b")),
    )
    .await?;
    let answer = raw.next().await?;
    ensure!(
        answer.topic.starts_with(&format!("{base}/a")),
        "SetResp on {}",
        answer.topic
    );
    let decoded = rusp_decode(&answer.payload)?;
    let Some(msg) = &decoded.msg else {
        bail!("the answer to the Set is not a Msg");
    };
    let Some(OneOfmsg_body::response(response)) = msg.body.as_ref().map(|b| &b.msg_body) else {
        bail!("the Set failed: {msg:?}");
    };
    ensure!(
        matches!(response.resp_type, OneOfresp_type::set_resp(_)),
        "not a SetResp: {response:?}"
    );

    raw.publish_bare(
        agent_topic,
        get_record(
            controller,
            AGENT_ID,
            "get-2",
            "Device.LocalAgent.EndpointID",
        ),
    )
    .await?;
    let answer = raw.next().await?;
    ensure!(
        answer.topic.starts_with(&format!("{base}/b")),
        "{controller}: after its Set the answer came on {}, not on the new topic",
        answer.topic
    );
    let (msg_id, params) = get_resp(&rusp_decode(&answer.payload)?)?;
    ensure!(msg_id == "get-2", "msg_id {msg_id}");
    ensure!(
        params
            .get("Device.LocalAgent.EndpointID")
            .map(String::as_str)
            == Some(AGENT_ID),
        "EndpointID {params:?}"
    );
    Ok(())
}

#[tokio::test]
async fn records_the_agent_sends_to_controllers_known_only_from_their_rows_decode_with_rusp() {
    bounded_by(Duration::from_secs(60), async {
        let broker = Mosquitto::start_with_websockets().await?;
        // Subscribed before the agent starts, so its MQTTConnect Records are seen.
        let mut raw = RawMqtt::connect(
            broker.port,
            &["usp/interop/raw-v5/#", "usp/interop/raw-v311/#"],
        )
        .await?;
        let mut setup = Setup::start_agent(broker).await?;
        setup.mqtt_up().await?;

        let mut connects = Vec::new();
        for _ in 0..2 {
            let received = raw.next().await?;
            let decoded = rusp_decode(&received.payload)?;
            let OneOfrecord_type::mqtt_connect(connect) = &decoded.kind else {
                bail!("expected an MQTTConnect Record on {}", received.topic);
            };
            ensure!(
                decoded.from_id == AGENT_ID,
                "MQTTConnect from {}",
                decoded.from_id
            );
            connects.push((
                received.topic.clone(),
                decoded.to_id.clone(),
                connect.version,
                connect.subscribed_topic.clone(),
            ));
        }
        connects.sort_by(|a, b| a.0.cmp(&b.0));
        ensure!(
            connects
                == vec![
                    (
                        "usp/interop/raw-v311/a/reply-to=usp%2Finterop%2Fagent-v311".to_string(),
                        "proto::raw-v311".to_string(),
                        MQTTVersion::V3_1_1,
                        AGENT_TOPIC_V311.to_string(),
                    ),
                    (
                        "usp/interop/raw-v5/a".to_string(),
                        "proto::raw-v5".to_string(),
                        MQTTVersion::V5,
                        AGENT_TOPIC_V5.to_string(),
                    ),
                ],
            "MQTTConnect Records: {connects:?}"
        );

        answers_follow_the_controller_row(
            &mut raw,
            "proto::raw-v5",
            5,
            AGENT_TOPIC_V5,
            "usp/interop/raw-v5",
            (1, "mqtt5"),
        )
        .await
        .with_context(|| setup.agent.log())?;
        answers_follow_the_controller_row(
            &mut raw,
            "proto::raw-v311",
            6,
            AGENT_TOPIC_V311,
            "usp/interop/raw-v311",
            (2, "mqtt311"),
        )
        .await
        .with_context(|| setup.agent.log())?;

        // The WebSocket server MTP's Records, through the same independent decoder.
        let mut ws = WsLink::connect(setup.agent.ws_port, "proto::usp-js-usp-ws", None).await?;
        ws.send(get_record(
            "proto::usp-js-usp-ws",
            AGENT_ID,
            "ws-get",
            "Device.LocalAgent.EndpointID",
        ))
        .await?;
        let decoded = loop {
            let decoded = rusp_decode(&ws.recv().await?)?;
            // R-WS: a WebSocketConnect Record may open the session.
            if !matches!(decoded.kind, OneOfrecord_type::websocket_connect(_)) {
                break decoded;
            }
        };
        ensure!(
            decoded.to_id == "proto::usp-js-usp-ws",
            "to {}",
            decoded.to_id
        );
        let (msg_id, params) = get_resp(&decoded)?;
        ensure!(msg_id == "ws-get", "msg_id {msg_id}");
        ensure!(
            params
                .get("Device.LocalAgent.EndpointID")
                .map(String::as_str)
                == Some(AGENT_ID),
            "EndpointID {params:?}"
        );
        setup.agent.check_running()?;
        Ok(())
    })
    .await
    .unwrap();
}
