//! rustls configuration from PEM files (client and server), and the identities in a peer
//! certificate's subjectAltName that R-SEC.0a compares `from_id` with.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use std::sync::{Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use x509_parser::extensions::GeneralName;

use crate::config::TlsConfig;
use crate::event::PeerCertificate;

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path} holds no {what}")]
    Empty {
        /// The file.
        path: String,
        /// What was looked for.
        what: &'static str,
    },
    /// A server was configured without a certificate or key.
    #[error("a TLS server needs cert_file and key_file")]
    MissingServerCertificate,
    /// `cert_file` and `key_file` must be given together.
    #[error("cert_file and key_file must be given together")]
    HalfClientCertificate,
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// rustls refused the material.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = File::open(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = File::open(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            path: path.display().to_string(),
            what: "private key",
        })
}

fn roots(tls: &TlsConfig) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if let Some(ca) = &tls.ca_file {
        for cert in read_certs(ca)? {
            store.add(cert)?;
        }
    }
    Ok(store)
}

/// A client's trust store: `ca_file`, or the Mozilla roots when none is configured.
fn client_roots(tls: &TlsConfig) -> Result<RootCertStore, TlsError> {
    if tls.ca_file.is_some() {
        return roots(tls);
    }
    Ok(RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
}

/// The chain the server of the latest handshake presented, for transports whose library keeps
/// the TLS session to itself (rumqttc).
#[derive(Debug, Clone, Default)]
pub(crate) struct SeenCertificate(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl SeenCertificate {
    pub(crate) fn get(&self) -> Option<PeerCertificate> {
        let chain = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (!chain.is_empty()).then(|| peer_certificate(&chain))
    }
}

/// Verifies exactly as the standard WebPKI verifier does and remembers the certificate.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: SeenCertificate,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        *self.seen.0.lock().unwrap_or_else(PoisonError::into_inner) = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|cert| cert.clone().into_owned())
            .collect();
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// [`client_config`] that also reports the server's certificate after each handshake.
pub(crate) fn recording_client_config(
    tls: &TlsConfig,
) -> Result<(Arc<ClientConfig>, SeenCertificate), TlsError> {
    let seen = SeenCertificate::default();
    let verifier = Recording {
        inner: WebPkiServerVerifier::builder_with_provider(
            Arc::new(client_roots(tls)?),
            provider(),
        )
        .build()?,
        seen: seen.clone(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    Ok((with_client_auth(builder, tls)?, seen))
}

/// A client configuration: the server must chain to `ca_file` (the Mozilla roots when none is
/// given); `cert_file`/`key_file`, when given, are presented as the client certificate.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(client_roots(tls)?);
    with_client_auth(builder, tls)
}

fn with_client_auth(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    tls: &TlsConfig,
) -> Result<Arc<ClientConfig>, TlsError> {
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::HalfClientCertificate),
    };
    Ok(Arc::new(config))
}

/// A server configuration presenting `cert_file`; with a `ca_file` every client must present a
/// certificate chaining to it (R-MTP.1).
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
        return Err(TlsError::MissingServerCertificate);
    };
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if tls.ca_file.is_some() {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots(tls)?), provider())
                .build()?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Ok(Arc::new(
        builder.with_single_cert(read_certs(cert)?, read_key(key)?)?,
    ))
}

/// The name a client verifies the server certificate against.
pub fn server_name(tls: &TlsConfig, host: &str) -> Result<ServerName<'static>, TlsError> {
    let name = tls.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName(name.to_string()))
}

/// The presented chain (end-entity first, as rustls hands it over) with the end-entity
/// certificate's subjectAltName URIs and DNS names. A certificate that does not parse yields no
/// identities, so no `from_id` can match it.
pub fn peer_certificate(chain: &[CertificateDer<'_>]) -> PeerCertificate {
    let identities = chain
        .first()
        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf.as_ref()).ok())
        .and_then(|(_, cert)| {
            let san = cert.subject_alternative_name().ok().flatten()?;
            Some(
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::URI(uri) => Some(uri.to_string()),
                        GeneralName::DNSName(dns) => Some(dns.to_string()),
                        _ => None,
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    PeerCertificate {
        chain: chain.iter().map(|cert| cert.as_ref().to_vec()).collect(),
        identities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_uris_and_dns_names_are_extracted() {
        let mut params = rcgen::CertificateParams::new(vec!["ctrl.example".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("urn:bbf:usp:id:proto::ctrl").unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let peer = peer_certificate(std::slice::from_ref(cert.der()));
        assert_eq!(
            peer.identities,
            vec!["ctrl.example", "urn:bbf:usp:id:proto::ctrl"]
        );
        assert!(peer.names_endpoint("proto::ctrl"));
    }

    #[test]
    fn the_whole_chain_is_kept_leaf_first_with_the_leaf_identities() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&key).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["leaf.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let peer = peer_certificate(&[leaf.der().clone(), ca.der().clone()]);
        assert_eq!(peer.chain, vec![leaf.der().to_vec(), ca.der().to_vec()]);
        assert_eq!(peer.leaf(), leaf.der().as_ref());
        assert_eq!(peer.identities, vec!["leaf.example"]);
    }

    #[test]
    fn garbage_certificate_has_no_identities() {
        let peer = peer_certificate(&[CertificateDer::from(vec![1, 2, 3])]);
        assert!(peer.identities.is_empty());
    }

    #[test]
    fn server_without_certificate_is_rejected() {
        assert!(matches!(
            server_config(&TlsConfig::default()),
            Err(TlsError::MissingServerCertificate)
        ));
    }

    #[test]
    fn missing_ca_file_names_the_path() {
        let tls = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let err = client_config(&tls).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
