//! Role-based access control in the agent, per message: the [`Access`] the message handlers
//! ask, and the roles a TLS peer holds. The rules themselves (roles, permissions, credentials,
//! challenges) are the built-in object [`crate::builtin::controller_trust`], which publishes
//! the [`usp_rbac::Trust`] used here.
//!
//! - [`access_for`] (here): a Controller's [`Access`] for one message, with the instance data
//!   its search-expression targets need.
//! - [`certificate_roles`] (here): the roles a TLS peer's certificate chain holds through
//!   `ControllerTrust.Credential.{i}`; [`CertificateRoles`] remembers them per chain.
//!
//! Plugins never see who is asking: the checks happen in the message handlers, before any
//! provider is called.

use std::collections::HashMap;
use std::sync::Arc;

use usp_dm::{DataModel, MemoryProvider};
use usp_rbac::{Access, ResolvedSearches, Trust, TrustedCertificate};

use crate::builtin::certificate::{self, Certificates};

/// The access of a Controller holding `roles` (its `AssignedRole` and `InheritedRole`
/// references), for one message: search-expression targets are resolved against the current
/// data once, here, so that every check of the message sees the same instances. A site that
/// no longer resolves (its table is gone) selects nothing.
pub async fn access_for<S: AsRef<str>>(
    dm: &DataModel,
    trust: &Trust,
    roles: impl IntoIterator<Item = S>,
) -> Access {
    let access = trust.access(roles);
    let sites = access.search_sites();
    if sites.is_empty() {
        return access;
    }
    let mut searches = ResolvedSearches::new();
    for site in sites {
        let instances = match dm.resolve_str(&site).await {
            Ok(resolution) => resolution
                .objects
                .into_iter()
                .map(|object| object.path)
                .collect(),
            Err(error) => {
                tracing::debug!(site, %error, "permission target selects nothing");
                Vec::new()
            }
        };
        searches.insert(site, instances);
    }
    access.with_searches(Arc::new(searches))
}

/// The role references the certificate `chain` (DER, leaf first) holds through the first
/// matching `ControllerTrust.Credential.{i}` (R-SEC.25), resolving its `Credential` reference in
/// `Device.LocalAgent.Certificate.` (`tables`, `certificates`); the walk up the chain goes on
/// through the listed certificates where the presented chain stops. Empty when none matches.
pub fn certificate_roles(
    trust: &Trust,
    tables: &MemoryProvider,
    certificates: &Certificates,
    chain: &[Vec<u8>],
) -> Vec<String> {
    if trust.credentials().is_empty() {
        return Vec::new();
    }
    let anchors: Vec<&[u8]> = certificates
        .iter()
        .map(|known| known.der.as_slice())
        .collect();
    usp_rbac::credential_roles(chain, &anchors, trust.credentials(), |reference| {
        certificate::lookup(tables, certificates, reference)
    })
    .map(<[String]>::to_vec)
    .unwrap_or_default()
}

/// How many chains [`CertificateRoles`] remembers before it starts over.
const REMEMBERED_CHAINS: usize = 256;

/// [`certificate_roles`] remembered per presented chain. Working them out parses the
/// certificates and checks issuer signatures (about 0.23 ms a Record in a release build, for a
/// leaf and its CA), while a controller sends every Record of a session with the same chain.
/// An answer is reused only while its inputs are unchanged: the same [`Trust`] (rebuilt on
/// every ControllerTrust change, so the same Credential rows) and the same Enable and
/// certificate behind each Credential's `Certificate.{i}` reference.
#[derive(Default)]
pub struct CertificateRoles {
    seen: HashMap<Vec<Vec<u8>>, Remembered>,
}

struct Remembered {
    trust: Arc<Trust>,
    rows: Vec<Option<(bool, Vec<u8>)>>,
    roles: Vec<String>,
}

impl CertificateRoles {
    /// [`certificate_roles`], from memory when nothing it depends on has changed.
    pub fn roles(
        &mut self,
        trust: &Arc<Trust>,
        tables: &MemoryProvider,
        certificates: &Certificates,
        chain: &[Vec<u8>],
    ) -> Vec<String> {
        if trust.credentials().is_empty() {
            return Vec::new();
        }
        let rows: Vec<Option<TrustedCertificate<'_>>> = trust
            .credentials()
            .iter()
            .map(|credential| certificate::lookup(tables, certificates, &credential.certificate))
            .collect();
        let unchanged = |remembered: &Remembered| {
            Arc::ptr_eq(&remembered.trust, trust)
                && remembered.rows.len() == rows.len()
                && remembered
                    .rows
                    .iter()
                    .zip(&rows)
                    .all(|(old, new)| match (old, new) {
                        (None, None) => true,
                        (Some((enable, der)), Some(row)) => *enable == row.enable && der == row.der,
                        _ => false,
                    })
        };
        if let Some(remembered) = self.seen.get(chain).filter(|r| unchanged(r)) {
            return remembered.roles.clone();
        }
        let roles = certificate_roles(trust, tables, certificates, chain);
        if self.seen.len() >= REMEMBERED_CHAINS {
            self.seen.clear();
        }
        self.seen.insert(
            chain.to_vec(),
            Remembered {
                trust: Arc::clone(trust),
                rows: rows
                    .iter()
                    .map(|row| row.map(|row| (row.enable, row.der.to_vec())))
                    .collect(),
                roles: roles.clone(),
            },
        );
        roles
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
    use usp_rbac::{AllowedUses, Credential};

    #[test]
    fn remembered_roles_follow_certificate_and_credential_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["ctl.example".to_string()])
            .unwrap()
            .signed_by(
                &rcgen::KeyPair::generate().unwrap(),
                &rcgen::Issuer::from_params(&ca, &ca_key),
            )
            .unwrap();
        let chain = vec![leaf.der().to_vec()];

        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        let (certificates, _) = Certificates::load(&[dir.path().join("ca.pem")]);
        certificate::sync_table(&tables, &certificates);
        let mut trust = Trust::new();
        trust.set_credentials(vec![Credential {
            enable: true,
            roles: vec!["Device.LocalAgent.ControllerTrust.Role.3".to_string()],
            certificate: "Device.LocalAgent.Certificate.1".to_string(),
            allowed_uses: AllowedUses::MtpAndUsp,
        }]);
        let trust = Arc::new(trust);
        let mut remembered = CertificateRoles::default();
        let mut roles =
            |trust: &Arc<Trust>| remembered.roles(trust, &tables, &certificates, &chain);
        let granted = vec!["Device.LocalAgent.ControllerTrust.Role.3".to_string()];

        assert_eq!(roles(&trust), granted);
        assert_eq!(roles(&trust), granted);
        tables
            .set_value("Device.LocalAgent.Certificate.1.Enable", "false")
            .unwrap();
        assert!(roles(&trust).is_empty());
        tables
            .set_value("Device.LocalAgent.Certificate.1.Enable", "true")
            .unwrap();
        assert_eq!(roles(&trust), granted);
        assert!(roles(&Arc::new(Trust::new())).is_empty());
        tables
            .delete_instance("Device.LocalAgent.Certificate.1.")
            .unwrap();
        assert!(roles(&trust).is_empty());
    }
}
