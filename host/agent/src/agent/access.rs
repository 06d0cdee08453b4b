//! Who a Record's sender is: the Controller's row in `Device.LocalAgent.Controller.` and its
//! roles; and the adapter that lets the message handlers ask `usp-rbac` their access questions.

use usp_dm::MemoryProvider;
use usp_rbac::{Access, ParamRead};

use crate::builtin::controller_trust::split_list;
use crate::builtin::local_agent::CONTROLLER_TABLE;
use crate::messages::{AccessCheck, Role};

/// The message handlers' access questions answered by `usp-rbac`.
pub(crate) struct RbacAccess(pub Access);

impl AccessCheck for RbacAccess {
    fn can_read_param(&self, path: &str) -> bool {
        self.0.can_read_param(path)
    }

    fn can_read_secured(&self, path: &str) -> bool {
        self.0.read_param(path, true) == ParamRead::Value
    }

    fn can_write_param(&self, path: &str) -> bool {
        self.0.can_write_param(path)
    }

    fn can_read_obj(&self, path: &str) -> bool {
        self.0.can_read_obj(path)
    }

    fn can_read_instance(&self, path: &str) -> bool {
        self.0.can_read_instance(path)
    }

    fn can_add(&self, table: &str) -> bool {
        self.0.can_add(table)
    }

    fn can_delete(&self, instance: &str) -> bool {
        self.0.can_delete(instance)
    }

    fn can_operate(&self, command: &str) -> bool {
        self.0.can_operate(command)
    }

    fn can_read_command_event(&self, path: &str) -> bool {
        self.0.can_read_command_event(path)
    }
}

/// A known Controller: its row and role references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownController {
    /// `Device.LocalAgent.Controller.2` (no final dot: the form Recipient references use).
    pub row: String,
    /// `AssignedRole` items.
    pub assigned: Vec<String>,
    /// `InheritedRole` items.
    pub inherited: Vec<String>,
}

impl KnownController {
    /// `AssignedRole` ∪ `InheritedRole`.
    pub(crate) fn role(&self) -> Role {
        Role {
            references: self
                .assigned
                .iter()
                .chain(&self.inherited)
                .cloned()
                .collect(),
        }
    }

    /// Records the roles the Controller's certificate grants on this connection (R-SEC.25)
    /// in its `InheritedRole`, where Notify filtering finds them too. Written only when it
    /// changes: most Records change nothing.
    pub(crate) fn inherit(&mut self, tables: &MemoryProvider, roles: Vec<String>) {
        if self.inherited == roles {
            return;
        }
        let path = format!("{}.InheritedRole", self.row);
        if let Err(error) = tables.set_value(&path, &roles.join(",")) {
            tracing::warn!(%error, %path, "could not record the role the certificate grants");
        }
        self.inherited = roles;
    }
}

/// The enabled Controller row whose `EndpointID` is `endpoint_id`, if any: one lookup in the
/// table's unique-key index (EndpointID is a unique key of `Controller.{i}`), whatever the
/// number of Controllers.
pub(crate) fn find_controller(
    tables: &MemoryProvider,
    endpoint_id: &str,
) -> Option<KnownController> {
    let number = tables.find_by_key(CONTROLLER_TABLE, &[("EndpointID", endpoint_id)])?;
    let row = format!("{CONTROLLER_TABLE}{number}");
    let value = |name: &str| tables.value(&format!("{row}.{name}")).unwrap_or_default();
    if value("Enable") != "true" {
        return None;
    }
    Some(KnownController {
        assigned: split_list(&value("AssignedRole")),
        inherited: split_list(&value("InheritedRole")),
        row,
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::builtin::local_agent;
    use std::sync::Arc;
    use usp_dm::ParamValues;

    fn row(endpoint: &str, enable: &str, role: &str) -> ParamValues {
        [
            ("EndpointID", endpoint),
            ("Enable", enable),
            ("AssignedRole", role),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[tokio::test]
    async fn only_enabled_rows_identify_a_controller() {
        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        tables
            .add_instance(CONTROLLER_TABLE, &row("self::off", "false", ""))
            .unwrap();
        tables
            .add_instance(
                CONTROLLER_TABLE,
                &row(
                    "self::on",
                    "true",
                    "Device.LocalAgent.ControllerTrust.Role.1",
                ),
            )
            .unwrap();
        assert_eq!(find_controller(&tables, "self::off"), None);
        assert_eq!(find_controller(&tables, "self::nobody"), None);
        let known = find_controller(&tables, "self::on").unwrap();
        assert_eq!(known.row, "Device.LocalAgent.Controller.2");
        assert_eq!(
            known.role().references,
            vec!["Device.LocalAgent.ControllerTrust.Role.1".to_string()]
        );
    }

    #[tokio::test]
    async fn inherited_roles_join_the_assigned_ones_and_are_written_only_on_change() {
        let written = Arc::new(std::sync::Mutex::new(0));
        let count = Arc::clone(&written);
        let tables = local_agent::tables(Arc::new(move |_: &[usp_dm::StoredChange]| {
            *count.lock().unwrap() += 1;
        }))
        .unwrap();
        tables
            .add_instance(
                CONTROLLER_TABLE,
                &row(
                    "self::ctl",
                    "true",
                    "Device.LocalAgent.ControllerTrust.Role.1",
                ),
            )
            .unwrap();
        let mut known = find_controller(&tables, "self::ctl").unwrap();
        let before = *written.lock().unwrap();
        let granted = vec!["Device.LocalAgent.ControllerTrust.Role.3".to_string()];
        known.inherit(&tables, granted.clone());
        known.inherit(&tables, granted.clone());
        assert_eq!(*written.lock().unwrap(), before + 1);
        assert_eq!(
            find_controller(&tables, "self::ctl").unwrap().role(),
            Role {
                references: vec![
                    "Device.LocalAgent.ControllerTrust.Role.1".to_string(),
                    "Device.LocalAgent.ControllerTrust.Role.3".to_string(),
                ]
            }
        );
    }
}
