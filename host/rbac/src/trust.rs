//! [`Trust`]: the roles of `Device.LocalAgent.ControllerTrust.` keyed by their references, with
//! `UntrustedRole` and `SecuredRoles`, turning a Controller's role references into an
//! [`Access`]; and the `Credential.{i}` rows that grant roles by certificate.
//!
//! Role references are the values of `Controller.{i}.AssignedRole`, `InheritedRole`,
//! `UntrustedRole` and `SecuredRoles`: instance paths of `ControllerTrust.Role.{i}`, written
//! with or without the final `.`. A reference to a role that does not exist grants nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::access::Access;
use crate::credential::Credential;
use crate::role::Role;

/// The table `ControllerTrust.Role.{i}`.
pub const ROLE_TABLE: &str = "Device.LocalAgent.ControllerTrust.Role.";

/// The role trust of the agent. Cheap to clone: roles are shared.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    roles: BTreeMap<String, Arc<Role>>,
    untrusted: Vec<String>,
    secured: BTreeSet<String>,
    credentials: Arc<[Credential]>,
}

/// A role reference in canonical form: without the final `.`.
fn key(reference: &str) -> &str {
    reference.trim().trim_end_matches('.')
}

impl Trust {
    /// No roles at all.
    pub fn new() -> Trust {
        Trust::default()
    }

    /// The factory state: `Role.1` full access, `Role.2` untrusted (also the `UntrustedRole`),
    /// no secured role. The agent's store overrides this once it holds a ControllerTrust.
    pub fn with_default_roles() -> Trust {
        let mut trust = Trust::new();
        trust.set_role(&Trust::role_reference(1), Role::full_access());
        trust.set_role(&Trust::role_reference(2), Role::untrusted());
        trust.set_untrusted_roles([Trust::role_reference(2)]);
        trust
    }

    /// The reference of `ControllerTrust.Role.{instance}` (`Device.LocalAgent.ControllerTrust.Role.1`).
    pub fn role_reference(instance: u32) -> String {
        format!("{ROLE_TABLE}{instance}")
    }

    /// Adds or replaces the role at `reference`.
    pub fn set_role(&mut self, reference: &str, role: Role) {
        self.roles
            .insert(key(reference).to_string(), Arc::new(role));
    }

    /// Removes the role at `reference`; references to it then grant nothing.
    pub fn remove_role(&mut self, reference: &str) {
        self.roles.remove(key(reference));
    }

    /// The role at `reference`.
    pub fn role(&self, reference: &str) -> Option<&Arc<Role>> {
        self.roles.get(key(reference))
    }

    /// Sets `ControllerTrust.UntrustedRole`.
    pub fn set_untrusted_roles<S: AsRef<str>>(&mut self, references: impl IntoIterator<Item = S>) {
        self.untrusted = references
            .into_iter()
            .map(|r| key(r.as_ref()).to_string())
            .collect();
    }

    /// `ControllerTrust.UntrustedRole`, canonical references: what the agent appends to the
    /// `AssignedRole` of a Controller it does not know (digest §8.2).
    pub fn untrusted_roles(&self) -> &[String] {
        &self.untrusted
    }

    /// Sets `ControllerTrust.SecuredRoles`.
    pub fn set_secured_roles<S: AsRef<str>>(&mut self, references: impl IntoIterator<Item = S>) {
        self.secured = references
            .into_iter()
            .map(|r| key(r.as_ref()).to_string())
            .collect();
    }

    /// Sets the `Credential.{i}` rows, in table order.
    pub fn set_credentials(&mut self, credentials: Vec<Credential>) {
        self.credentials = credentials.into();
    }

    /// The `Credential.{i}` rows, in table order, for [`crate::credential_roles`].
    pub fn credentials(&self) -> &[Credential] {
        &self.credentials
    }

    /// The access of a Controller holding these role references (`AssignedRole` and
    /// `InheritedRole` together; duplicates are harmless). Secured values are readable when one
    /// of them is in `SecuredRoles`.
    pub fn access<S: AsRef<str>>(&self, references: impl IntoIterator<Item = S>) -> Access {
        let mut seen = BTreeSet::new();
        let mut roles = Vec::new();
        let mut secured = false;
        for reference in references {
            let reference = key(reference.as_ref());
            if !seen.insert(reference.to_string()) {
                continue;
            }
            if let Some(role) = self.roles.get(reference) {
                secured |= role.enable && self.secured.contains(reference);
                roles.push(Arc::clone(role));
            }
        }
        Access::new(roles, secured)
    }

    /// The access of a Controller with no role but `UntrustedRole`.
    pub fn untrusted_access(&self) -> Access {
        self.access(&self.untrusted)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::access::ParamRead;

    #[test]
    fn default_trust_has_full_and_untrusted_roles() {
        let trust = Trust::with_default_roles();
        let full = trust.access(["Device.LocalAgent.ControllerTrust.Role.1"]);
        assert!(full.can_write_param("Device.LocalAgent.Controller.1.Alias"));
        assert_eq!(
            trust.untrusted_roles(),
            ["Device.LocalAgent.ControllerTrust.Role.2"]
        );
        let untrusted = trust.untrusted_access();
        assert!(!untrusted.can_read_param("Device.LocalAgent.EndpointID"));
        assert!(untrusted.can_operate("Device.LocalAgent.ControllerTrust.RequestChallenge()"));
    }

    #[test]
    fn references_with_or_without_final_dot_are_the_same_role() {
        let trust = Trust::with_default_roles();
        let a = trust.access(["Device.LocalAgent.ControllerTrust.Role.1."]);
        assert!(a.can_read_param("Device.DeviceInfo.SerialNumber"));
        assert!(
            trust
                .role("Device.LocalAgent.ControllerTrust.Role.2.")
                .is_some()
        );
    }

    #[test]
    fn assigned_and_inherited_roles_combine() {
        let trust = Trust::with_default_roles();
        let both = trust.access([
            "Device.LocalAgent.ControllerTrust.Role.2",
            "Device.LocalAgent.ControllerTrust.Role.1",
        ]);
        assert!(both.can_write_param("Device.DeviceInfo.ProvisioningCode"));
    }

    #[test]
    fn unknown_and_removed_roles_grant_nothing() {
        let mut trust = Trust::with_default_roles();
        let reference = "Device.LocalAgent.ControllerTrust.Role.1";
        assert!(
            !trust
                .access(["Device.LocalAgent.ControllerTrust.Role.9"])
                .can_read_param("Device.X")
        );
        trust.remove_role(reference);
        assert!(!trust.access([reference]).can_read_param("Device.X"));
    }

    #[test]
    fn secured_values_need_an_enabled_secured_role() {
        let mut trust = Trust::with_default_roles();
        let full = "Device.LocalAgent.ControllerTrust.Role.1";
        let password = "Device.MQTT.Client.1.Password";
        assert_eq!(
            trust.access([full]).read_param(password, true),
            ParamRead::Empty
        );

        trust.set_role(
            "Device.LocalAgent.ControllerTrust.Role.3",
            Role::new("Secured", true, Vec::new()),
        );
        trust.set_secured_roles(["Device.LocalAgent.ControllerTrust.Role.3."]);
        let access = trust.access([full, "Device.LocalAgent.ControllerTrust.Role.3"]);
        assert_eq!(access.read_param(password, true), ParamRead::Value);
        // Holding only the secured role gives no read permission by itself.
        let only_secured = trust.access(["Device.LocalAgent.ControllerTrust.Role.3"]);
        assert_eq!(only_secured.read_param(password, true), ParamRead::Hidden);

        trust.set_role(
            "Device.LocalAgent.ControllerTrust.Role.3",
            Role::new("Secured", false, Vec::new()),
        );
        let access = trust.access([full, "Device.LocalAgent.ControllerTrust.Role.3"]);
        assert_eq!(access.read_param(password, true), ParamRead::Empty);
    }
}
