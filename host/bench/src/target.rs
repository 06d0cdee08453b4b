//! Which agent to talk to and over which MTP: the command-line options every subcommand shares,
//! turned into [`ControllerOptions`].

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use usp_controller::{ControllerOptions, Endpoint, MqttEndpoint, MqttVersion, WsEndpoint};

/// How to reach the agent.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The agent's WebSocket server, e.g. `ws://127.0.0.1:8080/usp`.
    #[arg(long, conflicts_with = "mqtt")]
    pub ws: Option<String>,
    /// An MQTT broker, e.g. `mqtt://127.0.0.1:1883`.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// MQTT protocol version: `5` or `3.1.1`.
    #[arg(long, default_value = "5")]
    pub mqtt_version: String,
    /// MQTT QoS of our publishes and subscription (0 or 1).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// The topic the agent subscribes to; default `usp/agent/<agent-id>`.
    #[arg(long)]
    pub agent_topic: Option<String>,
    /// Our own topic; default `usp/controller/<controller-id>`.
    #[arg(long)]
    pub own_topic: Option<String>,
    /// The agent's Endpoint ID.
    #[arg(long)]
    pub agent_id: String,
    /// Our Endpoint ID (a controller the agent knows).
    #[arg(long)]
    pub controller_id: String,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

impl Target {
    /// `mqtt` or `ws`, for reports.
    pub fn mtp_name(&self) -> &'static str {
        if self.mqtt.is_some() { "mqtt" } else { "ws" }
    }

    /// Client options for a session with `window` requests in flight.
    pub fn options(&self, window: usize) -> anyhow::Result<ControllerOptions> {
        let endpoint = match (&self.ws, &self.mqtt) {
            (Some(url), None) => Endpoint::WebSocket(WsEndpoint { url: url.clone() }),
            (None, Some(url)) => Endpoint::Mqtt(self.mqtt_endpoint(url)?),
            _ => bail!("give exactly one of --ws URL and --mqtt URL"),
        };
        let mut options = ControllerOptions::new(&self.controller_id, &self.agent_id, endpoint);
        options.window = window;
        options.timeout = Duration::from_secs_f64(self.timeout);
        Ok(options)
    }

    fn mqtt_endpoint(&self, url: &str) -> anyhow::Result<MqttEndpoint> {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .with_context(|| format!("--mqtt {url:?} is not mqtt://HOST:PORT"))?;
        let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .with_context(|| format!("--mqtt {url:?}: bad port"))?,
            ),
            None => (rest.trim_end_matches('/'), 1883),
        };
        let version = match self.mqtt_version.as_str() {
            "5" | "5.0" => MqttVersion::V5,
            "3.1.1" | "4" => MqttVersion::V3_1_1,
            other => bail!("--mqtt-version {other:?} is not 5 or 3.1.1"),
        };
        let agent_topic = self
            .agent_topic
            .clone()
            .unwrap_or_else(|| format!("usp/agent/{}", self.agent_id));
        let own_topic = self
            .own_topic
            .clone()
            .unwrap_or_else(|| format!("usp/controller/{}", self.controller_id));
        Ok(MqttEndpoint {
            version,
            qos: self.qos,
            ..MqttEndpoint::new(
                host.trim_matches(['[', ']']),
                port,
                &agent_topic,
                &own_topic,
            )
        })
    }
}
