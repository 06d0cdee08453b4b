//! The MTP configuration as data: `Device.LocalAgent.MTP.{i}` and the rows it references show
//! the running MTPs; a Controller's Set moves an MTP at run time (a WebSocket server to another
//! port, an MQTT client to another broker), and the change survives a restart while the config
//! file stays as it was.

use std::time::Duration;

use anyhow::{Context, bail};

use usp_mtp::MqttVersion;

use super::harness::{
    AGENT_ID, AGENT_TOPIC_V5, Agent, CONTROLLER, CONTROLLER_TOPIC, Mosquitto, MqttMtp, Setup,
    bounded, free_port, wait_tcp,
};
use super::serving::mqtt_client;
use crate::access_control::{set, ws_client};
use crate::subscriptions::{get_values, set_ok};

const WS_ROW: &str = "Device.LocalAgent.MTP.[Alias==\"ws\"].";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_the_websocket_port_moves_the_server_and_survives_a_restart() -> anyhow::Result<()>
{
    bounded(async {
        let mut agent = Agent::start(Setup::default()).await?;
        let client = ws_client(&agent).await?;
        let aliases = get_values(&client, "Device.LocalAgent.MTP.", "Alias").await?;
        assert_eq!(aliases, ["ws", "uds"]);
        let status = get_values(&client, "Device.LocalAgent.MTP.", "Status").await?;
        assert_eq!(status, ["Up", "Up"]);
        let socket = get_values(
            &client,
            "Device.UnixDomainSockets.UnixDomainSocket.",
            "Path",
        )
        .await?;
        assert_eq!(socket, [agent.uds_path().display().to_string()]);

        let old = agent.ws_port;
        let port = free_port()?;
        set_ok(set(&client, WS_ROW, &[("WebSocket.Port", &port.to_string())]).await?)?;
        wait_tcp(port, Duration::from_secs(10)).await?;
        let mut closed = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(("127.0.0.1", old))
                .await
                .is_err()
            {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !closed {
            bail!("the old port {old} still accepts connections");
        }
        agent.ws_port = port;
        let moved = ws_client(&agent).await.with_context(|| agent.log())?;
        let ports = get_values(&moved, &format!("{WS_ROW}WebSocket."), "Port")
            .await
            .with_context(|| agent.log())?;
        assert_eq!(ports, [port.to_string()]);

        // Same config file: the stored rows rule after a restart.
        agent.restart().await?;
        let again = ws_client(&agent).await?;
        let status = get_values(&again, WS_ROW, "Status").await?;
        assert_eq!(status, ["Up"]);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_the_broker_port_moves_the_mqtt_client_to_another_broker() -> anyhow::Result<()> {
    bounded(async {
        let first = Mosquitto::start().await?;
        let second = Mosquitto::start().await?;
        let agent = Agent::start(Setup {
            mqtt: vec![MqttMtp::v5(first.port)],
            ..Setup::default()
        })
        .await?;
        let client = ws_client(&agent).await?;
        let client_row = "Device.MQTT.Client.[Alias==\"mqtt\"].";
        let ports = get_values(&client, client_row, "BrokerPort").await?;
        assert_eq!(ports, [first.port.to_string()]);

        set_ok(
            set(
                &client,
                client_row,
                &[("BrokerPort", &second.port.to_string())],
            )
            .await?,
        )?;
        // A controller on the other broker is answered: the agent moved there.
        mqtt_client(
            second.port,
            MqttVersion::V5,
            (CONTROLLER, AGENT_ID),
            (AGENT_TOPIC_V5, CONTROLLER_TOPIC),
        )
        .await
        .with_context(|| agent.log())?;
        let status = get_values(&client, client_row, "Status").await?;
        assert_eq!(status, ["Connected"]);
        Ok(())
    })
    .await
}
