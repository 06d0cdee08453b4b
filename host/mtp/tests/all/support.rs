//! Test harness: RabbitMQ with STOMP (and its TLS listener) on free loopback ports, test
//! certificates from rcgen, Records, and bounded waits for MTP events. Free ports, broker
//! binaries and mosquitto come from `usp-testkit`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::sync::mpsc;
use usp_codec::usp_proto::usp_record::{NoSessionContextRecord, Record, record::RecordType};
use usp_mtp::{MtpEvent, TlsConfig};

/// How long any single expected event may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

pub const AGENT: &str = "proto::agent";
pub const CONTROLLER: &str = "proto::controller";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A port that was free a moment ago (brokers need a number before they start).
pub fn free_port() -> u16 {
    usp_testkit::free_port().expect("bind an ephemeral port")
}

/// A NoSessionContext Record carrying `payload`.
pub fn record(from: &str, to: &str, payload: &[u8]) -> Vec<u8> {
    Record {
        version: "1.4".into(),
        to_id: to.into(),
        from_id: from.into(),
        record_type: Some(RecordType::NoSessionContext(NoSessionContextRecord {
            payload: payload.to_vec(),
        })),
        ..Record::default()
    }
    .encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Record {
    Record::decode(bytes).expect("a Record")
}

/// Waits for the first event `pick` accepts, failing after [`EVENT_TIMEOUT`].
pub async fn wait_for<T>(
    rx: &mut mpsc::Receiver<MtpEvent>,
    what: &str,
    mut pick: impl FnMut(&MtpEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => {
                if let Some(t) = pick(&ev) {
                    return t;
                }
            }
            Ok(None) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits until a TCP port accepts connections.
pub fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "port {port} did not open within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finds a broker binary; CI installs it with tests/services/install.sh, so missing is a failure.
fn binary(name: &str) -> PathBuf {
    usp_testkit::system_binary(name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A CA, a server certificate for 127.0.0.1/localhost, and client certificates whose
/// subjectAltName URI is `urn:bbf:usp:id:<endpoint id>`.
pub struct Certs {
    pub dir: tempfile::TempDir,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "usp test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
        let certs = Certs {
            dir,
            ca_params,
            ca_key,
        };
        certs.issue("server", &["localhost", "127.0.0.1"], None);
        certs
    }

    /// Writes `<name>.pem` and `<name>.key`.
    pub fn issue(&self, name: &str, hosts: &[&str], endpoint_id: Option<&str>) {
        let mut params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .expect("params");
        if let Some(eid) = endpoint_id {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(format!("urn:bbf:usp:id:{eid}")).expect("uri"),
            ));
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).expect("write cert");
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).expect("write key");
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// TLS settings of a client that trusts the CA and presents `<name>` (if given).
    pub fn client(&self, name: Option<&str>) -> TlsConfig {
        TlsConfig {
            ca_file: Some(self.path("ca.pem")),
            cert_file: name.map(|n| self.path(&format!("{n}.pem"))),
            key_file: name.map(|n| self.path(&format!("{n}.key"))),
            server_name: Some("localhost".into()),
        }
    }

    /// TLS settings of the server; with `require_client` clients must chain to the CA.
    pub fn server(&self, require_client: bool) -> TlsConfig {
        TlsConfig {
            ca_file: require_client.then(|| self.path("ca.pem")),
            cert_file: Some(self.path("server.pem")),
            key_file: Some(self.path("server.key")),
            server_name: None,
        }
    }
}

/// A RabbitMQ node with the STOMP plugin on loopback ports, in a private directory; every
/// process it starts (su, beam.smp, epmd, ...) is found by a marker in its environment and
/// killed by PID on drop.
pub struct Rabbit {
    pub stomp_port: u16,
    /// The STOMP-over-TLS port, when prepared with certificates.
    pub stomp_tls_port: Option<u16>,
    dir: PathBuf,
    dist_port: u16,
    epmd_port: u16,
    /// The `rabbitmq-server` script process, reaped after its node is killed.
    script: Option<Child>,
}

impl Rabbit {
    /// Chooses ports and writes the configuration; [`Rabbit::launch`] starts the node. With
    /// `certs` a second STOMP listener speaks TLS with the server certificate.
    pub fn prepare(certs: Option<&Certs>) -> Rabbit {
        let dir = tempfile::Builder::new()
            .prefix("usp-rabbit")
            .tempdir()
            .expect("tempdir")
            .keep();
        let stomp_port = free_port();
        for sub in ["mnesia", "log", "expand"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_stomp].\n").expect("plugins");
        let mut conf = format!(
            "listeners.tcp.default = 127.0.0.1:{}\nstomp.listeners.tcp.1 = 127.0.0.1:{stomp_port}\nloopback_users = none\n",
            free_port()
        );
        let stomp_tls_port = certs.map(|c| {
            let port = free_port();
            // Copied in so the broker's own user can read them.
            for f in ["ca.pem", "server.pem", "server.key"] {
                std::fs::copy(c.path(f), dir.join(f)).expect("copy certificate");
            }
            conf.push_str(&format!(
                "stomp.listeners.ssl.1 = 127.0.0.1:{port}\nssl_options.cacertfile = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\nssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                dir.join("ca.pem").display(),
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ));
            port
        });
        std::fs::write(dir.join("rabbitmq.conf"), conf).expect("conf");
        let status = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown of the RabbitMQ directory failed");
        Rabbit {
            stomp_port,
            stomp_tls_port,
            dir,
            dist_port: free_port(),
            epmd_port: free_port(),
            script: None,
        }
    }

    /// Starts the node and blocks until its STOMP port accepts connections (boot takes
    /// several seconds).
    pub fn launch(&mut self) {
        let d = |s: &str| self.dir.join(s);
        let script = Command::new(binary("rabbitmq-server"))
            .current_dir(&self.dir)
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d("expand"))
            .env(
                "RABBITMQ_NODENAME",
                format!("usp{}@localhost", self.stomp_port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("HOME", &self.dir)
            .env("USP_TEST_BROKER", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rabbitmq-server");
        self.script = Some(script);
        wait_for_port(self.stomp_port, Duration::from_secs(120));
        if let Some(port) = self.stomp_tls_port {
            wait_for_port(port, Duration::from_secs(30));
        }
    }

    /// PIDs of every process started for this node.
    fn pids(&self) -> Vec<u32> {
        let marker = format!("USP_TEST_BROKER={}", self.dir.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    pub fn kill(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let start = Instant::now();
        while !self.pids().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(mut script) = self.script.take() {
            let _ = script.kill();
            let _ = script.wait();
        }
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
