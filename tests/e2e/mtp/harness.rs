//! What the MTP tests start: the real `usp-agent` binary with a configuration written for the
//! test (WebSocket server on a free port, UDS socket in the test's directory, optional MQTT
//! MTPs, an optional STOMP MTP and TLS), and the certificates the TLS tests need. Every wait has
//! a deadline. The brokers (mosquitto, RabbitMQ for the STOMP MTP) and the port helpers come from
//! `usp-testkit`, re-exported here.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use usp_testkit::wait_unix;
pub use usp_testkit::{Mosquitto, free_port, wait_tcp};

/// The agent's Endpoint ID in every MTP test.
pub const AGENT_ID: &str = "proto::mtp-e2e-agent";
/// A controller the agent's factory-reset file trusts with full access.
pub const CONTROLLER: &str = "proto::mtp-e2e-ctl";
/// A second trusted controller (the identity an impostor claims in the TLS test).
pub const OTHER_CONTROLLER: &str = "proto::mtp-e2e-ctl-2";
/// An endpoint that is not in `Device.LocalAgent.Controller.`.
pub const STRANGER: &str = "proto::mtp-e2e-stranger";
/// The topic the agent's MQTT 5.0 MTP subscribes to.
pub const AGENT_TOPIC_V5: &str = "usp/agent/e2e-v5";
/// The topic the agent's MQTT 3.1.1 MTP subscribes to.
pub const AGENT_TOPIC_V311: &str = "usp/agent/e2e-v311";
/// The topic [`CONTROLLER`] subscribes to; the agent's MQTTConnect goes there.
pub const CONTROLLER_TOPIC: &str = "usp/controller/e2e";
/// The STOMP destination the agent subscribes to.
pub const AGENT_DEST: &str = "/queue/usp-e2e-agent";
/// The STOMP destination [`CONTROLLER`] subscribes to; the agent's STOMPConnect goes there.
pub const CONTROLLER_DEST: &str = "/queue/usp-e2e-controller";

/// How long one answer may take.
pub const ANSWER: Duration = Duration::from_secs(10);
/// How long a whole test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(50);

/// Runs `body` with [`TEST_LIMIT`], so a hang fails the test instead of the CI job.
pub async fn bounded(body: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    bounded_by(TEST_LIMIT, body).await
}

/// Runs `body` with `limit`, for tests that wait for a slow broker to boot.
pub async fn bounded_by(
    limit: Duration,
    body: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::time::timeout(limit, body)
        .await
        .with_context(|| format!("the test did not finish within {limit:?}"))?
}

/// An agent MQTT MTP in a test configuration.
pub struct MqttMtp {
    /// The MTP's name.
    pub name: &'static str,
    /// The broker's port.
    pub port: u16,
    /// `5.0` or `3.1.1`.
    pub version: &'static str,
    /// The agent's topic (`response_topic`).
    pub topic: &'static str,
    /// `publish_qos` (`LocalAgent.MTP.{i}.MQTT.PublishQoS`); the agent's default when `None`.
    pub publish_qos: Option<u8>,
}

impl MqttMtp {
    /// An MQTT 5.0 MTP named `mqtt` on [`AGENT_TOPIC_V5`] to the broker on `port`.
    pub fn v5(port: u16) -> MqttMtp {
        MqttMtp {
            name: "mqtt",
            port,
            version: "5.0",
            topic: AGENT_TOPIC_V5,
            publish_qos: None,
        }
    }
}

/// What the test agent runs with. It always has a WebSocket server on a free port and a UDS
/// MTP in its directory.
#[derive(Default)]
pub struct Setup {
    /// `agent.max_record_size`; the agent's default when `None`.
    pub max_record_size: Option<usize>,
    /// `agent.serve_untrusted`.
    pub serve_untrusted: bool,
    /// MQTT MTPs, each with [`CONTROLLER`] reachable on [`CONTROLLER_TOPIC`] and reconnect
    /// waits of 1-2 s so the broker tests stay short.
    pub mqtt: Vec<MqttMtp>,
    /// The port of a STOMP broker (guest/guest, virtual host `/`) for a STOMP MTP named
    /// `stomp` on [`AGENT_DEST`], with [`CONTROLLER`] reachable on [`CONTROLLER_DEST`] and
    /// reconnect waits of 1-2 s.
    pub stomp: Option<u16>,
    /// TLS for the WebSocket server (with a trust store, client certificates are required).
    pub ws_tls: Option<WsTls>,
    /// A role reference `[access] mtp_roles` grants to every Record over the UDS MTP.
    pub uds_role: Option<&'static str>,
}

/// TLS files of the WebSocket server.
pub struct WsTls {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The CA client certificates must chain to.
    pub ca: PathBuf,
}

/// The real agent binary running in a directory of its own.
pub struct Agent {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The WebSocket server's port.
    pub ws_port: u16,
    config: PathBuf,
    uds: Option<PathBuf>,
}

impl Agent {
    /// Writes the configuration and factory-reset file, starts the agent and waits until its
    /// WebSocket and UDS MTPs accept connections.
    pub async fn start(setup: Setup) -> anyhow::Result<Agent> {
        let dir = tempfile::tempdir()?;
        let mut reset = String::new();
        for (n, id) in [CONTROLLER, OTHER_CONTROLLER].iter().enumerate() {
            let n = n + 1;
            reset += &format!(
                "Device.LocalAgent.Controller.{n}.EndpointID \"{id}\"\n\
                 Device.LocalAgent.Controller.{n}.Enable true\n\
                 Device.LocalAgent.Controller.{n}.AssignedRole \"Device.LocalAgent.ControllerTrust.Role.1\"\n"
            );
        }
        std::fs::write(dir.path().join("factory-reset.txt"), reset)?;
        let ws_port = free_port()?;
        let uds = dir.path().join("usp.sock");
        let mut config = format!(
            "[agent]\nendpoint_id = \"{AGENT_ID}\"\nstate_dir = \"state\"\n\
             factory_reset_file = \"factory-reset.txt\"\nlog = \"info\"\n\
             serve_untrusted = {}\n",
            setup.serve_untrusted
        );
        if let Some(size) = setup.max_record_size {
            config += &format!("max_record_size = {size}\n");
        }
        config += &format!(
            "\n[[mtp]]\nname = \"ws\"\nprotocol = \"websocket-server\"\nbind = \"127.0.0.1\"\n\
             port = {ws_port}\npath = \"/usp\"\n"
        );
        if let Some(tls) = &setup.ws_tls {
            config += &format!(
                "[mtp.tls]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
                tls.cert, tls.key, tls.ca
            );
        }
        config += &format!("\n[[mtp]]\nname = \"uds\"\nprotocol = \"uds\"\npath = {uds:?}\n");
        for mqtt in &setup.mqtt {
            let qos = mqtt
                .publish_qos
                .map(|q| format!("publish_qos = {q}\n"))
                .unwrap_or_default();
            config += &format!(
                "\n[[mtp]]\nname = \"{}\"\nprotocol = \"mqtt\"\nbroker_address = \"127.0.0.1\"\n\
                 broker_port = {}\nprotocol_version = \"{}\"\nresponse_topic = \"{}\"\n\
                 connect_retry_time = 1\nconnect_retry_max_interval = 2\n{qos}\
                 [[mtp.controllers]]\nendpoint_id = \"{CONTROLLER}\"\ntopic = \"{CONTROLLER_TOPIC}\"\n",
                mqtt.name, mqtt.port, mqtt.version, mqtt.topic
            );
        }
        if let Some(port) = setup.stomp {
            config += &format!(
                "\n[[mtp]]\nname = \"stomp\"\nprotocol = \"stomp\"\nhost = \"127.0.0.1\"\n\
                 port = {port}\nusername = \"guest\"\npassword = \"guest\"\nvirtual_host = \"/\"\n\
                 destination = \"{AGENT_DEST}\"\nserver_retry_initial_interval = 1\n\
                 server_retry_interval_multiplier = 1000\nserver_retry_max_interval = 2\n\
                 [[mtp.controllers]]\nendpoint_id = \"{CONTROLLER}\"\ndestination = \"{CONTROLLER_DEST}\"\n"
            );
        }
        if let Some(role) = setup.uds_role {
            config += &format!("\n[access]\nmtp_roles = {{ uds = [\"{role}\"] }}\n");
        }
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config)?;
        let mut agent = Agent {
            dir,
            child: None,
            ws_port,
            config: config_path,
            uds: Some(uds),
        };
        agent.spawn()?;
        agent.wait_ready().await?;
        Ok(agent)
    }

    /// Starts the agent on a configuration written elsewhere into `dir` (with `state_dir =
    /// "state"`); waits for its control socket and, if given, its WebSocket port and UDS socket.
    pub async fn start_with_config(
        dir: tempfile::TempDir,
        config: &Path,
        ws_port: Option<u16>,
        uds: Option<&Path>,
    ) -> anyhow::Result<Agent> {
        let mut agent = Agent {
            dir,
            child: None,
            ws_port: ws_port.unwrap_or_default(),
            config: config.to_path_buf(),
            uds: uds.map(Path::to_path_buf),
        };
        agent.spawn()?;
        agent.wait_ready().await?;
        Ok(agent)
    }

    /// Kills the agent (SIGKILL, no clean shutdown) and starts it again on the same
    /// configuration and state directory; waits until its MTPs accept connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        self.spawn()?;
        self.wait_ready().await
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_usp-agent"))
            .arg("--config")
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start usp-agent")?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let limit = Duration::from_secs(20);
        let control = self.dir.path().join("state/control.sock");
        let ws_port = (self.ws_port != 0).then_some(self.ws_port);
        let ready = async {
            wait_unix(&control, limit).await?;
            if let Some(port) = ws_port {
                wait_tcp(port, limit).await?;
            }
            match &self.uds {
                Some(path) => wait_unix(path, limit).await,
                None => Ok(()),
            }
        }
        .await;
        self.check_running()?;
        ready.with_context(|| format!("agent log:\n{}", self.log()))
    }

    /// The UDS MTP's socket.
    pub fn uds_path(&self) -> PathBuf {
        self.dir.path().join("usp.sock")
    }

    /// `ws://127.0.0.1:<port>/usp`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/usp", self.ws_port)
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Fails (with the log) if the agent process has exited: a crash.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("the agent is not running");
        };
        if let Some(status) = child.try_wait()? {
            bail!("usp-agent exited ({status}); log:\n{}", self.log());
        }
        Ok(())
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost, and client certificates whose
/// subjectAltName URI is `urn:bbf:usp:id:<endpoint id>` (R-SEC.0a), all written as PEM files.
pub struct Certs {
    dir: tempfile::TempDir,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Certs {
    /// A new CA with a `server` certificate.
    pub fn new() -> anyhow::Result<Certs> {
        let dir = tempfile::tempdir()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "usp e2e CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        std::fs::write(dir.path().join("ca.pem"), ca.pem())?;
        let certs = Certs {
            dir,
            ca_params,
            ca_key,
        };
        certs.issue("server", &["localhost", "127.0.0.1"], None)?;
        Ok(certs)
    }

    /// Writes `<name>.pem` and `<name>.key`, naming `hosts` and, if given, the Endpoint ID.
    pub fn issue(
        &self,
        name: &str,
        hosts: &[&str],
        endpoint_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        if let Some(eid) = endpoint_id {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(rcgen::string::Ia5String::try_from(
                    format!("urn:bbf:usp:id:{eid}"),
                )?));
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate()?;
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem())?;
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem())?;
        Ok(())
    }

    /// A file in the certificate directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The WebSocket server's TLS files, requiring client certificates from this CA.
    pub fn ws_server(&self) -> WsTls {
        WsTls {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            ca: self.path("ca.pem"),
        }
    }

    /// TLS settings of a client that trusts the CA and presents `<name>`.
    pub fn client(&self, name: &str) -> usp_mtp::TlsConfig {
        usp_mtp::TlsConfig {
            ca_file: Some(self.path("ca.pem")),
            cert_file: Some(self.path(&format!("{name}.pem"))),
            key_file: Some(self.path(&format!("{name}.key"))),
            server_name: Some("localhost".to_string()),
        }
    }
}
