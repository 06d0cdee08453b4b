//! The broker as a fault: down when the agent starts (the agent keeps retrying with its
//! `ConnectRetry*` backoff and serves once the broker is up), and killed and restarted mid-run
//! (the agent reconnects, re-subscribes, sends the MQTTConnect Record again, and serves).

use std::time::Duration;

use anyhow::Context;
use usp_codec::{MqttProtocol, RecordBody};
use usp_controller::{AgentEvent, ControllerClient, ControllerOptions, Endpoint, MqttEndpoint};
use usp_mtp::MqttVersion;

use super::harness::{
    AGENT_ID, AGENT_TOPIC_V5, Agent, CONTROLLER, CONTROLLER_TOPIC, Mosquitto, MqttMtp, Setup,
    bounded, free_port,
};
use super::peer::get_msg;

/// A controller over MQTT 5.0 through the broker on `port`, with a short per-request timeout
/// so that retries while the agent reconnects stay quick.
async fn controller(
    port: u16,
) -> anyhow::Result<(ControllerClient, tokio::sync::mpsc::Receiver<AgentEvent>)> {
    let mut endpoint = MqttEndpoint::new("127.0.0.1", port, AGENT_TOPIC_V5, CONTROLLER_TOPIC);
    endpoint.version = MqttVersion::V5;
    let mut options = ControllerOptions::new(CONTROLLER, AGENT_ID, Endpoint::Mqtt(endpoint));
    options.timeout = Duration::from_secs(1);
    Ok(ControllerClient::connect(options).await?)
}

/// Repeats a Get until the agent answers it, for at most `limit`.
async fn answered_within(client: &ControllerClient, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = get_msg(&client.next_msg_id(), "Device.LocalAgent.EndpointID");
        let msg_id = usp_codec::msg::msg_id(&msg).unwrap_or_default().to_string();
        match client.send(msg).await {
            Ok(answer) => {
                let value = super::expect::param(&answer, &msg_id, "EndpointID")?;
                anyhow::ensure!(value == AGENT_ID, "EndpointID {value:?}");
                return Ok(());
            }
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(err).context(format!("the agent did not answer within {limit:?}"));
            }
            Err(_) => {}
        }
    }
}

/// Waits for the agent's MQTTConnect Record naming its subscribed topic (R-MTP.6, R-MTP.8).
async fn mqtt_connect(
    events: &mut tokio::sync::mpsc::Receiver<AgentEvent>,
    limit: Duration,
) -> anyhow::Result<()> {
    tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Some(AgentEvent::Connect(RecordBody::MqttConnect {
                    version,
                    subscribed_topic,
                })) => {
                    assert_eq!(version, MqttProtocol::V5);
                    assert_eq!(subscribed_topic, AGENT_TOPIC_V5);
                    return Ok(());
                }
                Some(_) => {}
                None => anyhow::bail!("the controller session ended"),
            }
        }
    })
    .await
    .with_context(|| format!("no MQTTConnect Record within {limit:?}"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_broker_down_at_start_is_used_once_it_comes_up() {
    bounded(async {
        let port = free_port()?;
        let mut broker = Mosquitto::configure(port)?;
        let mut agent = Agent::start(Setup {
            mqtt: vec![MqttMtp::v5(port)],
            ..Setup::default()
        })
        .await?;
        // The agent is up (its WebSocket and UDS MTPs listen) and its MQTT MTP is failing.
        agent.check_running()?;
        broker.launch().await?;
        let (client, _events) = controller(port).await?;
        answered_within(&client, Duration::from_secs(20)).await?;
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_broker_restarted_mid_run_gets_a_new_mqtt_connect_and_serving_resumes() {
    bounded(async {
        let mut broker = Mosquitto::start().await?;
        let mut agent = Agent::start(Setup {
            mqtt: vec![MqttMtp::v5(broker.port)],
            ..Setup::default()
        })
        .await?;
        let (client, mut events) = controller(broker.port).await?;
        answered_within(&client, Duration::from_secs(20)).await?;

        broker.kill().await?;
        broker.launch().await?;
        // The controller client reconnects within 200 ms, the agent no sooner than its
        // ConnectRetryTime (1 s): the controller is subscribed when the MQTTConnect comes.
        mqtt_connect(&mut events, Duration::from_secs(20)).await?;
        answered_within(&client, Duration::from_secs(10)).await?;
        agent.check_running()
    })
    .await
    .unwrap();
}
