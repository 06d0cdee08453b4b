//! What the fault tests start and break: the real `usp-agent` binary with a configuration
//! written for the test (WebSocket server on a free port, optionally an MQTT MTP to a broker),
//! killable with SIGKILL and restartable on the same port and state directory. The broker is
//! `usp_testkit::Mosquitto`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use usp_controller::{
    AgentEvent, ControllerClient, ControllerOptions, Endpoint, MqttEndpoint, WsEndpoint,
};
use usp_mtp::MqttVersion;
use usp_testkit::{free_port, wait_tcp};

/// The agent's Endpoint ID in every fault test.
pub const AGENT_ID: &str = "proto::fault-agent";
/// The controllers the agent's factory-reset file trusts with full access.
pub const CONTROLLERS: [&str; 2] = ["proto::fault-ctl-1", "proto::fault-ctl-2"];

/// The agent binary with its files in one directory.
pub struct Agent {
    pub ws_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Writes the configuration and factory-reset file into `dir`; `mqtt_port` adds an MQTT
    /// MTP to that broker, reconnecting every 2 s: short, yet later than the test controller's
    /// 200 ms, so the controller has re-subscribed before the agent's MQTTConnect record arrives.
    pub fn configure(dir: &Path, mqtt_port: Option<u16>) -> anyhow::Result<Agent> {
        let ws_port = free_port()?;
        let mut reset = String::new();
        for (i, id) in CONTROLLERS.iter().enumerate() {
            let n = i + 1;
            reset += &format!(
                "Device.LocalAgent.Controller.{n}.EndpointID \"{id}\"\n\
                 Device.LocalAgent.Controller.{n}.Enable true\n\
                 Device.LocalAgent.Controller.{n}.AssignedRole \"Device.LocalAgent.ControllerTrust.Role.1\"\n"
            );
        }
        std::fs::write(dir.join("factory-reset.txt"), reset)?;
        let mut config = format!(
            "[agent]\nendpoint_id = \"{AGENT_ID}\"\nstate_dir = \"state\"\n\
             factory_reset_file = \"factory-reset.txt\"\nlog = \"warn\"\n\n\
             [[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\nbind = \"127.0.0.1\"\n\
             port = {ws_port}\npath = \"/usp\"\n"
        );
        if let Some(port) = mqtt_port {
            config += &format!(
                "\n[[mtp]]\nname = \"mqtt\"\nprotocol = \"mqtt\"\nbroker_address = \"127.0.0.1\"\n\
                 broker_port = {port}\nresponse_topic = \"usp/agent/{AGENT_ID}\"\n\
                 connect_retry_time = 2\nconnect_retry_max_interval = 2\n"
            );
            for id in CONTROLLERS {
                config += &format!(
                    "[[mtp.controllers]]\nendpoint_id = \"{id}\"\ntopic = \"usp/controller/{id}\"\n"
                );
            }
        }
        let path = dir.join("agent.toml");
        std::fs::write(&path, config)?;
        Ok(Agent {
            ws_port,
            config: path,
            child: None,
        })
    }

    /// Starts the agent and waits until its WebSocket server listens.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let child = Command::new(env!("CARGO_BIN_EXE_usp-agent"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        wait_tcp(self.ws_port, Duration::from_secs(20)).await
    }

    /// The agent's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL (`kill -9`), and wait until it is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Whether the process has exited on its own.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | Some(Err(_)) | None => true,
            Some(Ok(None)) => false,
        }
    }

    /// Options for controller `n` (0 or 1) over WebSocket.
    pub fn ws_options(&self, n: usize, window: usize, timeout: Duration) -> ControllerOptions {
        let mut options = ControllerOptions::new(
            CONTROLLERS[n],
            AGENT_ID,
            Endpoint::WebSocket(WsEndpoint {
                url: format!("ws://127.0.0.1:{}/usp", self.ws_port),
            }),
        );
        options.window = window;
        options.timeout = timeout;
        options
    }

    /// A WebSocket session for controller `n`.
    pub async fn ws_client(
        &self,
        n: usize,
        window: usize,
        timeout: Duration,
    ) -> anyhow::Result<(ControllerClient, mpsc::Receiver<AgentEvent>)> {
        Ok(ControllerClient::connect(self.ws_options(n, window, timeout)).await?)
    }
}

/// Options for controller `n` over MQTT 5 through the broker on `port`.
pub fn mqtt_options(port: u16, n: usize, timeout: Duration) -> ControllerOptions {
    let id = CONTROLLERS[n];
    let mut endpoint = MqttEndpoint::new(
        "127.0.0.1",
        port,
        &format!("usp/agent/{AGENT_ID}"),
        &format!("usp/controller/{id}"),
    );
    endpoint.version = MqttVersion::V5;
    let mut options = ControllerOptions::new(id, AGENT_ID, Endpoint::Mqtt(endpoint));
    options.timeout = timeout;
    options
}

/// VmRSS and VmHWM of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// A pseudo-random number in `0..bound`, different in every call and every run (std's hasher
/// keys are random per process).
pub fn random_below(bound: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() % bound.max(1)
}
