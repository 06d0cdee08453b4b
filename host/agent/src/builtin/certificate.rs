//! `Device.LocalAgent.Certificate.{i}`: the certificates the agent trusts for controllers'
//! certificates (R-SEC.2), which `ControllerTrust.Credential.{i}` rows bind to roles.
//!
//! The files are the trust store: [`Certificates::load`] reads them at boot (the `ca_file` of
//! every MTP whose TLS peer is the controller itself, plus `[access] certificates`), and
//! [`sync_table`] makes the stored table match them. Rows are keyed by SerialNumber+Issuer, so
//! a certificate keeps its instance number, Alias and Enable across restarts (Credential
//! references stay valid); a certificate gone from the files loses its row; a new one gets a
//! new number (numbers are never reused) and starts enabled.
//!
//! Value formats: `SerialNumber` is the serial's DER bytes as colon-separated lower-case hex
//! (`01:a2:ff`), `Issuer` the issuer DN with attributes in certificate order, `, `-separated
//! (`C=FR, O=Example, CN=Example CA`): what x509-parser prints, not the reversed RFC 4514 order.
//!
//! Commands: `GetFingerprint()` hashes the DER; `Delete()` removes the row for the rest of the
//! run (a Credential naming it then grants nothing); the certificate comes back, under a new
//! number, at the next boot unless it is removed from its file, since the TLS trust store is
//! built from the same files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use usp_codec::UspErrorCode;
use usp_dm::{Args, MemoryProvider, OperateOutcome, ParamValues, ProviderError};
use usp_rbac::TrustedCertificate;
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

/// `Device.LocalAgent.Certificate.`
pub const CERTIFICATE_TABLE: &str = "Device.LocalAgent.Certificate.";
/// `Device.LocalAgent.Certificate.{i}.`
pub(crate) const CERTIFICATE_ROW: &str = "Device.LocalAgent.Certificate.{i}.";
/// The row's commands, served by [`operate`].
pub(crate) const COMMANDS: [&str; 2] = ["Delete()", "GetFingerprint()"];
/// `Device.LocalAgent.SupportedFingerprintAlgorithms`: what `GetFingerprint()` computes.
pub const FINGERPRINT_ALGORITHMS: &str = "SHA-1,SHA-224,SHA-256,SHA-384,SHA-512";

/// Why a trust file gave no certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A PEM block or the certificate in it is malformed.
    #[error("{path}: certificate {index} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Which PEM block (from 1).
        index: usize,
        /// What the parser reported.
        reason: String,
    },
}

/// One trusted certificate with the key of its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedFile {
    /// DER.
    pub der: Vec<u8>,
    /// `SerialNumber`, in the module's format.
    pub serial_number: String,
    /// `Issuer`, in the module's format.
    pub issuer: String,
}

/// The certificates read at boot; cheap to clone (shared by the table's commands and the
/// credential lookup of every Record).
#[derive(Debug, Clone, Default)]
pub struct Certificates(Arc<[TrustedFile]>);

impl Certificates {
    /// Reads every `CERTIFICATE` PEM block of `files`, in order, without duplicates. A file
    /// that cannot be used is reported in the errors and contributes nothing; the others load.
    pub fn load(files: &[PathBuf]) -> (Certificates, Vec<CertificateError>) {
        let mut loaded: Vec<TrustedFile> = Vec::new();
        let mut errors = Vec::new();
        for path in files {
            match read_file(path) {
                Ok(certificates) => {
                    for certificate in certificates {
                        if !loaded.iter().any(|known| known.der == certificate.der) {
                            loaded.push(certificate);
                        }
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        (Certificates(loaded.into()), errors)
    }

    /// The certificate of the row with this SerialNumber and Issuer.
    fn find(&self, serial_number: &str, issuer: &str) -> Option<&TrustedFile> {
        self.0
            .iter()
            .find(|known| known.serial_number == serial_number && known.issuer == issuer)
    }

    /// Every certificate, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &TrustedFile> {
        self.0.iter()
    }
}

fn read_file(path: &Path) -> Result<Vec<TrustedFile>, CertificateError> {
    let file = std::fs::File::open(path).map_err(|source| CertificateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certificates = Vec::new();
    for (index, block) in Pem::iter_from_reader(std::io::BufReader::new(file)).enumerate() {
        let malformed = |reason: String| CertificateError::Malformed {
            path: path.to_path_buf(),
            index: index + 1,
            reason,
        };
        let block = block.map_err(|error| malformed(error.to_string()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        certificates.push(describe(block.contents).map_err(malformed)?);
    }
    Ok(certificates)
}

/// `Certificate.{i}.Issuer` holds at most 256 characters (TR-181).
const ISSUER_MAX_CHARS: usize = 256;

/// The row key of a DER certificate. A longer issuer DN is cut to what `Issuer` holds: the
/// key stays unique with the serial number, and rows are matched on the same cut value.
fn describe(der: Vec<u8>) -> Result<TrustedFile, String> {
    let (serial_number, issuer) = {
        let (_, parsed) = X509Certificate::from_der(&der).map_err(|error| error.to_string())?;
        let issuer: String = parsed
            .issuer()
            .to_string()
            .chars()
            .take(ISSUER_MAX_CHARS)
            .collect();
        (parsed.raw_serial_as_string(), issuer)
    };
    Ok(TrustedFile {
        der,
        serial_number,
        issuer,
    })
}

/// Makes the rows of `tables` match `certificates` (see the module docs). Failures are logged:
/// the agent serves without the rows it could not write.
pub fn sync_table(tables: &MemoryProvider, certificates: &Certificates) {
    let numbers = tables.snapshot().instances;
    let mut present: Vec<&TrustedFile> = Vec::new();
    for row in numbers
        .iter()
        .filter(|path| is_row(path, CERTIFICATE_TABLE))
    {
        let value = |name: &str| tables.value(&format!("{row}{name}")).unwrap_or_default();
        match certificates.find(&value("SerialNumber"), &value("Issuer")) {
            Some(certificate) => present.push(certificate),
            None => {
                if let Err(error) = tables.delete_instance(row) {
                    tracing::warn!(%error, row, "could not drop the row of a certificate no longer trusted");
                }
            }
        }
    }
    for certificate in certificates.iter() {
        if present.contains(&certificate) {
            continue;
        }
        let params: ParamValues = [
            ("SerialNumber", certificate.serial_number.as_str()),
            ("Issuer", certificate.issuer.as_str()),
            ("Enable", "true"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        if let Err(error) = tables.add_instance(CERTIFICATE_TABLE, &params) {
            tracing::warn!(%error, issuer = %certificate.issuer, serial = %certificate.serial_number, "could not list a trusted certificate");
        }
    }
}

/// `Device.LocalAgent.Certificate.3.` is a row of `table`.
fn is_row(path: &str, table: &str) -> bool {
    path.strip_prefix(table)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
}

/// The row a `Credential.{i}.Credential` reference names (`Device.LocalAgent.Certificate.3`,
/// with or without the final dot), with its Enable and DER; `None` when it names no row.
pub fn lookup<'a>(
    tables: &MemoryProvider,
    certificates: &'a Certificates,
    reference: &str,
) -> Option<TrustedCertificate<'a>> {
    let row = format!("{}.", reference.trim().trim_end_matches('.'));
    if !is_row(&row, CERTIFICATE_TABLE) {
        return None;
    }
    let value = |name: &str| tables.value(&format!("{row}{name}"));
    let certificate = certificates.find(&value("SerialNumber")?, &value("Issuer")?)?;
    Some(TrustedCertificate {
        enable: value("Enable").as_deref() == Some("true"),
        der: &certificate.der,
    })
}

/// The fingerprint of `der` with a `SupportedFingerprintAlgorithms` algorithm, as hexBinary.
pub fn fingerprint(der: &[u8], algorithm: &str) -> Option<String> {
    Some(match algorithm {
        // sha1 0.11 implements digest 0.11, sha2 0.10 digest 0.10: one trait each.
        "SHA-1" => hex::encode(<Sha1 as sha1::Digest>::digest(der)),
        "SHA-224" => hex::encode(Sha224::digest(der)),
        "SHA-256" => hex::encode(Sha256::digest(der)),
        "SHA-384" => hex::encode(Sha384::digest(der)),
        "SHA-512" => hex::encode(Sha512::digest(der)),
        _ => return None,
    })
}

/// Runs `Certificate.{i}.Delete()` or `Certificate.{i}.GetFingerprint()`.
pub fn operate(
    tables: &MemoryProvider,
    certificates: &Certificates,
    command: &str,
    input: &Args,
) -> Result<OperateOutcome, ProviderError> {
    let failure =
        |code: UspErrorCode, why: String| ProviderError::new(code, format!("{command}: {why}"));
    let (row, name) = command
        .rsplit_once('.')
        .map(|(row, name)| (format!("{row}."), name))
        .filter(|(row, _)| is_row(row, CERTIFICATE_TABLE))
        .ok_or_else(|| {
            failure(
                UspErrorCode::CommandFailure,
                "not a Certificate command".to_string(),
            )
        })?;
    match name {
        "Delete()" => {
            tables.delete_instance(&row)?;
            Ok(OperateOutcome::Done(Args::new()))
        }
        "GetFingerprint()" => {
            let algorithm = input
                .get("FingerprintAlgorithm")
                .map(String::as_str)
                .unwrap_or_default();
            let value = |name: &str| tables.value(&format!("{row}{name}")).unwrap_or_default();
            let certificate = certificates
                .find(&value("SerialNumber"), &value("Issuer"))
                .ok_or_else(|| {
                    failure(
                        UspErrorCode::CommandFailure,
                        "the certificate is no longer loaded".to_string(),
                    )
                })?;
            let fingerprint = fingerprint(&certificate.der, algorithm).ok_or_else(|| {
                failure(
                    UspErrorCode::InvalidCommandArguments,
                    format!(
                        "FingerprintAlgorithm \"{algorithm}\" is not one of {FINGERPRINT_ALGORITHMS}"
                    ),
                )
            })?;
            Ok(OperateOutcome::Done(Args::from([(
                "Fingerprint".to_string(),
                fingerprint,
            )])))
        }
        other => Err(failure(
            UspErrorCode::CommandFailure,
            format!("{other} is not a Certificate command"),
        )),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::builtin::local_agent;

    fn pem_file(dir: &Path, name: &str, count: usize) -> (PathBuf, Vec<rcgen::Certificate>) {
        let mut text = String::new();
        let mut made = Vec::new();
        for n in 0..count {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("{name} {n}"));
            let cert = params
                .self_signed(&rcgen::KeyPair::generate().unwrap())
                .unwrap();
            text += &cert.pem();
            made.push(cert);
        }
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, text).unwrap();
        (path, made)
    }

    fn rows(tables: &MemoryProvider) -> Vec<(String, String)> {
        tables
            .snapshot()
            .instances
            .into_iter()
            .filter(|path| is_row(path, CERTIFICATE_TABLE))
            .map(|row| {
                let issuer = tables.value(&format!("{row}Issuer")).unwrap();
                (row, issuer)
            })
            .collect()
    }

    #[test]
    fn rows_follow_the_files_and_keep_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = pem_file(dir.path(), "a", 2);
        let (b, _) = pem_file(dir.path(), "b", 1);
        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        // The same file twice lists its certificates once.
        let (all, errors) = Certificates::load(&[a.clone(), b.clone(), a.clone()]);
        assert!(errors.is_empty());
        sync_table(&tables, &all);
        assert_eq!(
            rows(&tables),
            [
                ("Device.LocalAgent.Certificate.1.", "CN=a 0"),
                ("Device.LocalAgent.Certificate.2.", "CN=a 1"),
                ("Device.LocalAgent.Certificate.3.", "CN=b 0"),
            ]
            .map(|(row, issuer)| (row.to_string(), issuer.to_string()))
        );
        tables
            .set_value("Device.LocalAgent.Certificate.3.Enable", "false")
            .unwrap();
        // "a" is gone: its rows go, "b" keeps its number and its Enable.
        let (only_b, _) = Certificates::load(std::slice::from_ref(&b));
        sync_table(&tables, &only_b);
        assert_eq!(
            rows(&tables),
            [(
                "Device.LocalAgent.Certificate.3.".to_string(),
                "CN=b 0".to_string()
            )]
        );
        assert_eq!(
            tables
                .value("Device.LocalAgent.Certificate.3.Enable")
                .as_deref(),
            Some("false")
        );
        let serial = tables
            .value("Device.LocalAgent.Certificate.3.SerialNumber")
            .unwrap();
        assert!(
            serial
                .split(':')
                .all(|byte| byte.len() == 2 && byte.bytes().all(|b| b.is_ascii_hexdigit())),
            "{serial}"
        );
    }

    #[test]
    fn unreadable_and_malformed_files_are_reported_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing.pem");
        let (good, _) = pem_file(dir.path(), "good", 1);
        let (loaded, errors) = Certificates::load(&[bad.clone(), missing.clone(), good]);
        assert_eq!(loaded.iter().count(), 1);
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(messages[0].contains("bad.pem"), "{messages:?}");
        assert!(messages[1].contains("missing.pem"), "{messages:?}");
    }

    #[test]
    fn get_fingerprint_hashes_the_der_and_refuses_unknown_algorithms() {
        let dir = tempfile::tempdir().unwrap();
        let (file, made) = pem_file(dir.path(), "fp", 1);
        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        let (certificates, _) = Certificates::load(&[file]);
        sync_table(&tables, &certificates);
        let run = |algorithm: &str| {
            operate(
                &tables,
                &certificates,
                "Device.LocalAgent.Certificate.1.GetFingerprint()",
                &Args::from([("FingerprintAlgorithm".to_string(), algorithm.to_string())]),
            )
        };
        for algorithm in ["SHA-1", "SHA-224", "SHA-256", "SHA-384", "SHA-512"] {
            let OperateOutcome::Done(output) = run(algorithm).unwrap() else {
                panic!("GetFingerprint() is synchronous");
            };
            assert_eq!(
                Some(output["Fingerprint"].clone()),
                fingerprint(made[0].der().as_ref(), algorithm),
                "{algorithm}"
            );
        }
        // FIPS 180 test vectors for "abc".
        for (algorithm, expected) in [
            ("SHA-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "SHA-224",
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                "SHA-256",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "SHA-384",
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                "SHA-512",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ] {
            assert_eq!(
                fingerprint(b"abc", algorithm).as_deref(),
                Some(expected),
                "{algorithm}"
            );
        }
        let error = run("MD5").unwrap_err();
        assert_eq!(error.code, UspErrorCode::InvalidCommandArguments);
        assert!(error.message.contains("MD5"), "{error}");
    }

    #[test]
    fn delete_removes_the_row_and_its_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let (file, made) = pem_file(dir.path(), "del", 1);
        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        let (certificates, _) = Certificates::load(&[file]);
        sync_table(&tables, &certificates);
        let found = lookup(&tables, &certificates, "Device.LocalAgent.Certificate.1").unwrap();
        assert!(found.enable);
        assert_eq!(found.der, made[0].der().as_ref());
        operate(
            &tables,
            &certificates,
            "Device.LocalAgent.Certificate.1.Delete()",
            &Args::new(),
        )
        .unwrap();
        assert!(rows(&tables).is_empty());
        assert!(lookup(&tables, &certificates, "Device.LocalAgent.Certificate.1.").is_none());
        assert!(lookup(&tables, &certificates, "").is_none());
    }
}
