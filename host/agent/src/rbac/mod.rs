//! Role-based access control in the agent: the ControllerTrust built-in object that feeds
//! `usp-rbac`, and the per-message [`Access`] the message handlers ask.
//!
//! - [`controller_trust`]: `Device.LocalAgent.ControllerTrust.` (roles, permissions,
//!   credentials, challenges) and the published [`usp_rbac::Trust`].
//! - [`access_for`] (here): a Controller's [`Access`] for one message, with the instance data
//!   its search-expression targets need.
//! - [`certificate_roles`] (here): the roles a TLS peer's certificate chain holds through
//!   `ControllerTrust.Credential.{i}`.
//!
//! Plugins never see who is asking: the checks happen in the message handlers, before any
//! provider is called.

pub mod controller_trust;

use std::sync::Arc;

use usp_dm::{DataModel, MemoryProvider};
use usp_rbac::{Access, ResolvedSearches, Trust};

use crate::builtin::certificate::{self, Certificates};

pub use controller_trust::{ControllerTrustProvider, ORIGINATOR, TrustHandle, split_list};

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
