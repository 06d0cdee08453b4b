//! Test harness: test certificates from rcgen, Records, free ports, and bounded waits for MTP
//! events. The brokers (mosquitto, RabbitMQ with STOMP) come from `usp-testkit`.

use std::path::PathBuf;
use std::time::Duration;

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
