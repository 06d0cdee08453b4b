//! The rows read into the [`Trust`] that RBAC decides with, published through
//! [`TrustHandle`] after every committed change.

use std::sync::{Arc, RwLock};

use usp_dm::{MemoryProvider, Provider};
use usp_rbac::{AllowedUses, Credential, Grants, Permission, Rights, Role, Target, Trust};

use super::{CONTROLLER_TRUST, CREDENTIAL_TABLE, ControllerTrustProvider, ROLE_TABLE};

/// The current [`Trust`], replaced after every committed ControllerTrust change. Cheap to
/// clone; readers take a snapshot (`current`) once per message.
#[derive(Debug, Clone, Default)]
pub struct TrustHandle(Arc<RwLock<Arc<Trust>>>);

impl TrustHandle {
    /// The trust in force now.
    pub fn current(&self) -> Arc<Trust> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn publish(&self, trust: Trust) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(trust);
    }
}

impl ControllerTrustProvider {
    /// Reads the rows and publishes the trust they describe. Entries RBAC cannot use (which
    /// write-time validation keeps out) are skipped with a warning rather than failing the
    /// whole table.
    pub(super) async fn rebuild(&self) {
        let mut trust = Trust::new();
        let roles = self.tables.instances(ROLE_TABLE).await.unwrap_or_default();
        for number in roles {
            let path = format!("{ROLE_TABLE}{number}.");
            let value = |name: &str| self.tables.value(&format!("{path}{name}"));
            let permission_table = format!("{path}Permission.");
            let numbers = self
                .tables
                .instances(&permission_table)
                .await
                .unwrap_or_default();
            let mut permissions = Vec::new();
            for entry in numbers {
                let entry = format!("{permission_table}{entry}.");
                match permission_from(&self.tables, &entry) {
                    Ok(permission) => permissions.push(permission),
                    Err(error) => tracing::warn!(entry, %error, "permission entry ignored"),
                }
            }
            let role = Role::new(
                value("Name").unwrap_or_default(),
                value("Enable").as_deref() == Some("true"),
                permissions,
            );
            trust.set_role(&path, role);
        }
        let list = |name: &str| {
            split_list(
                &self
                    .tables
                    .value(&format!("{CONTROLLER_TRUST}{name}"))
                    .unwrap_or_default(),
            )
        };
        trust.set_untrusted_roles(list("UntrustedRole"));
        trust.set_secured_roles(list("SecuredRoles"));
        trust.set_credentials(self.credentials().await);
        self.trust.publish(trust);
    }

    /// The `Credential.{i}` rows in instance order. An `AllowedUses` left empty (the standard
    /// gives it no default) counts as `MTP-only`: a Credential grants a role only when told to.
    async fn credentials(&self) -> Vec<Credential> {
        let numbers = self
            .tables
            .instances(CREDENTIAL_TABLE)
            .await
            .unwrap_or_default();
        numbers
            .into_iter()
            .filter_map(|number| {
                let path = format!("{CREDENTIAL_TABLE}{number}.");
                let value = |name: &str| {
                    self.tables
                        .value(&format!("{path}{name}"))
                        .unwrap_or_default()
                };
                let uses = value("AllowedUses");
                let allowed_uses = if uses.is_empty() {
                    AllowedUses::MtpOnly
                } else {
                    match uses.parse() {
                        Ok(uses) => uses,
                        Err(error) => {
                            tracing::warn!(path, %error, "credential ignored");
                            return None;
                        }
                    }
                };
                Some(Credential {
                    enable: value("Enable") == "true",
                    roles: split_list(&value("Role")),
                    certificate: value("Credential"),
                    allowed_uses,
                })
            })
            .collect()
    }
}

/// A TR-106 list value split into its items.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why a ControllerTrust value cannot be used.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    #[error(transparent)]
    Target(#[from] usp_rbac::TargetError),
    #[error(transparent)]
    Rights(#[from] usp_rbac::RightsError),
    #[error("Order \"{0}\" is not an unsigned integer")]
    Order(String),
}

fn permission_from(tables: &MemoryProvider, entry: &str) -> Result<Permission, EntryError> {
    let value = |name: &str| tables.value(&format!("{entry}{name}")).unwrap_or_default();
    let rights = |name: &str| value(name).parse::<Rights>();
    let order = value("Order");
    Ok(Permission {
        enable: value("Enable") == "true",
        order: order
            .parse()
            .map_err(|_| EntryError::Order(order.clone()))?,
        targets: Target::parse_list(&value("Targets"))?,
        grants: Grants {
            param: rights("Param")?,
            obj: rights("Obj")?,
            instantiated_obj: rights("InstantiatedObj")?,
            command_event: rights("CommandEvent")?,
        },
    })
}
