//! Request latency through a stock mosquitto (Nagle's algorithm on: no `set_tcp_nodelay`).
//!
//! Issue 11: with the agent publishing at QoS 1, the broker's PUBACK to the agent went out
//! unacknowledged, the controller's next request then waited on the broker's socket for the
//! agent's delayed ACK, and every request took about 40 ms. The same happens on the
//! controller's socket when it publishes at QoS 1 and the answer follows the broker's PUBACK.
//! A correct agent answers one request at a time in well under a millisecond here; these tests
//! bound a run of sequential Gets far below what one 40 ms stall per request would cost, so a
//! loaded machine does not fail them but the stall does.

use std::time::{Duration, Instant};

use usp_controller::{ControllerClient, ControllerOptions, Endpoint, MqttEndpoint};
use usp_mtp::MqttVersion;

use super::harness::{
    AGENT_ID, AGENT_TOPIC_V5, Agent, CONTROLLER, CONTROLLER_TOPIC, Mosquitto, MqttMtp, Setup,
    bounded,
};
use super::peer::get_msg;

/// Sequential requests timed.
const REQUESTS: u32 = 30;

/// Their total bound: 20 ms a request, half the delayed-ACK stall (at least 40 ms on Linux)
/// that each of them paid with the bug (1.2 s in all).
const LIMIT: Duration = Duration::from_millis(600);

/// Runs [`REQUESTS`] Gets one after another through a stock broker, the agent publishing at
/// `publish_qos` (its default when `None`) and the controller at `controller_qos`, and checks
/// they took less than [`LIMIT`].
async fn sequential_gets_are_quick(publish_qos: Option<u8>, controller_qos: u8) {
    bounded(async {
        let broker = Mosquitto::start().await?;
        let mut agent = Agent::start(Setup {
            mqtt: vec![MqttMtp {
                publish_qos,
                ..MqttMtp::v5(broker.port)
            }],
            ..Setup::default()
        })
        .await?;
        let mut endpoint =
            MqttEndpoint::new("127.0.0.1", broker.port, AGENT_TOPIC_V5, CONTROLLER_TOPIC);
        endpoint.version = MqttVersion::V5;
        endpoint.qos = controller_qos;
        let mut options = ControllerOptions::new(CONTROLLER, AGENT_ID, Endpoint::Mqtt(endpoint));
        options.window = 1;
        // A request sent before the agent subscribed is lost: retry it soon.
        options.timeout = Duration::from_secs(1);
        let (client, _events) = ControllerClient::connect(options).await?;
        let get = || async {
            let msg = get_msg(&client.next_msg_id(), "Device.LocalAgent.EndpointID");
            let msg_id = usp_codec::msg::msg_id(&msg).unwrap_or_default().to_string();
            let answer = client.send(msg).await?;
            let value = super::expect::param(&answer, &msg_id, "EndpointID")?;
            anyhow::ensure!(value == AGENT_ID, "EndpointID {value:?}");
            anyhow::Ok(())
        };
        // The first answer also waits for the agent's subscription; not part of the timing.
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(err) = get().await {
            anyhow::ensure!(Instant::now() < deadline, "the agent never answered: {err}");
        }
        let start = Instant::now();
        for _ in 0..REQUESTS {
            get().await?;
        }
        let took = start.elapsed();
        anyhow::ensure!(
            took < LIMIT,
            "{REQUESTS} sequential Gets took {took:?} (limit {LIMIT:?}): requests are held \
             behind delayed ACKs"
        );
        agent.check_running()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_sequential_gets_through_a_stock_broker_are_not_held_by_delayed_acks_at_the_default_publish_qos()
 {
    sequential_gets_are_quick(None, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_sequential_gets_through_a_stock_broker_are_not_held_by_delayed_acks_at_publish_qos_1()
{
    // Both ends at QoS 1: the agent's answers and the controller's requests each get a PUBACK
    // that is followed by the next packet on the same broker socket.
    sequential_gets_are_quick(Some(1), 1).await;
}
