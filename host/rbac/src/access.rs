//! [`Access`]: the one check every message handler uses. It holds the roles of the Controller a
//! message came from (or a subscription belongs to) and answers, per path, what it may do.
//!
//! Paths given to the checks are concrete, as the engine resolved them:
//! - parameters `Device.LocalAgent.Controller.1.Alias`,
//! - objects and instances ending in `.` (`Device.LocalAgent.Controller.`,
//!   `Device.LocalAgent.Controller.1.`),
//! - commands and events `Device.Reboot()`, `Device.Boot!`.
//!
//! A path with `{i}` (or `*`) in place of an instance number, as GetSupportedDM uses, gets what
//! the roles grant on *at least one* instance: a schema element is shown when some instance of
//! it is readable. Wildcard request paths must be resolved to concrete paths before checking.
//!
//! Combination (digest §8.2, R-SEC.1): each role resolves the path on its own (the
//! highest-`Order` covering entry wins), then the roles' grants are OR-ed letter by letter.
//! What a handler does with a refusal (digest §8.2, R-GET.1/4, R-GIN.0/1, R-GSP.0, R-ADD.6,
//! R-SET.3, R-DEL.2/4):
//! - unreadable data is absent: Get, GetInstances and GetSupportedDM omit it silently,
//!   Add/Set omit it from `unique_keys`/`updated_params`;
//! - a denied write (Set, Add, Delete) is [`Denied::code`] (7006, TP 2.16) for that element;
//! - a denied Operate is an OperateResp `cmd_failure` with [`Denied::code`] (TP 2.18);
//! - a Notify goes out only when the recipient's `n` letter allows it.

use std::collections::BTreeSet;
use std::sync::Arc;

use usp_codec::UspErrorCode;

use crate::rights::Grants;
use crate::role::Role;
use crate::target::{ResolvedSearches, SearchMatcher};

/// A refused write, add, delete or operate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: {action} {path}")]
pub struct Denied {
    /// What was refused (`write`, `add to`, `delete`, `operate`).
    pub action: &'static str,
    /// The path it was refused on.
    pub path: String,
}

impl Denied {
    /// The USP error code of every refusal (7006, Permission denied).
    pub fn code(&self) -> UspErrorCode {
        UspErrorCode::PermissionDenied
    }
}

/// How a parameter's value may be shown to the Controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRead {
    /// Not readable: treat the parameter as absent.
    Hidden,
    /// A secured parameter and none of the Controller's roles is a secured role: report it
    /// with an empty value (digest §8.2 `SecuredRoles`).
    Empty,
    /// Report the value.
    Value,
}

/// The access rights of one Controller, for the duration of one message or notification.
#[derive(Clone)]
pub struct Access {
    roles: Vec<Arc<Role>>,
    secured: bool,
    searches: Arc<dyn SearchMatcher>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field(
                "roles",
                &self.roles.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .field("secured", &self.secured)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The union of `roles`; `secured` when one of them is in `SecuredRoles`. Search-expression
    /// targets match nothing until [`Access::with_searches`] supplies instance data.
    pub fn new(roles: Vec<Arc<Role>>, secured: bool) -> Access {
        Access {
            roles,
            secured,
            searches: Arc::new(ResolvedSearches::new()),
        }
    }

    /// Everything allowed, secured values included: for the agent's own work (factory
    /// defaults, boot-time configuration), never for a Controller.
    pub fn full() -> Access {
        Access::new(vec![Arc::new(Role::full_access())], true)
    }

    /// Nothing allowed.
    pub fn none() -> Access {
        Access::new(Vec::new(), false)
    }

    /// Supplies instance data for search-expression targets: see [`Access::search_sites`].
    pub fn with_searches(mut self, searches: Arc<dyn SearchMatcher>) -> Access {
        self.searches = searches;
        self
    }

    /// The search sites (`Device.IP.Interface.[Name=="lan"].`) the roles' targets use, each
    /// once. A caller using [`ResolvedSearches`] resolves each to its current instances.
    pub fn search_sites(&self) -> BTreeSet<String> {
        self.roles
            .iter()
            .filter(|role| role.enable)
            .flat_map(|role| role.search_sites())
            .map(str::to_string)
            .collect()
    }

    /// True when one of the roles is a secured role.
    pub fn is_secured(&self) -> bool {
        self.secured
    }

    /// All four fields' rights on `path`, for a handler that needs several answers.
    pub fn grants(&self, path: &str) -> Grants {
        let mut grants = Grants::NONE;
        for role in &self.roles {
            grants |= role.resolve(path, self.searches.as_ref());
            if grants == Grants::ALL {
                break;
            }
        }
        grants
    }

    /// `Param` `r`: Get may return the parameter and GetSupportedDM may list it.
    pub fn can_read_param(&self, path: &str) -> bool {
        self.grants(path).param.read()
    }

    /// How a parameter's value is shown: hidden without `Param` `r`, empty when `secured`
    /// (the schema's flag) and no secured role is held.
    pub fn read_param(&self, path: &str, secured: bool) -> ParamRead {
        if !self.can_read_param(path) {
            ParamRead::Hidden
        } else if secured && !self.secured {
            ParamRead::Empty
        } else {
            ParamRead::Value
        }
    }

    /// `Param` `w`: Set, or a value given in Add.
    pub fn can_write_param(&self, path: &str) -> bool {
        self.grants(path).param.write()
    }

    /// `Param` `n`: ValueChange notifications.
    pub fn can_notify_value_change(&self, path: &str) -> bool {
        self.grants(path).param.notify()
    }

    /// `Obj` `r`: the object (path ending in `.`) resolves in Get and shows in GetSupportedDM.
    pub fn can_read_obj(&self, object: &str) -> bool {
        self.grants(object).obj.read()
    }

    /// `Obj` `w` on the table (`Device.LocalAgent.Subscription.`): Add.
    pub fn can_add(&self, table: &str) -> bool {
        self.grants(table).obj.write()
    }

    /// `Obj` `n` on the new instance (`Device.LocalAgent.Subscription.4.`): ObjectCreation.
    pub fn can_notify_creation(&self, instance: &str) -> bool {
        self.grants(instance).obj.notify()
    }

    /// `InstantiatedObj` `r` on an instance: GetInstances lists it.
    pub fn can_read_instance(&self, instance: &str) -> bool {
        self.grants(instance).instantiated_obj.read()
    }

    /// `InstantiatedObj` `w` on an instance: Delete.
    pub fn can_delete(&self, instance: &str) -> bool {
        self.grants(instance).instantiated_obj.write()
    }

    /// `InstantiatedObj` `n` on an instance: ObjectDeletion.
    pub fn can_notify_deletion(&self, instance: &str) -> bool {
        self.grants(instance).instantiated_obj.notify()
    }

    /// `CommandEvent` `r`: GetSupportedDM may list the command or event with its arguments.
    pub fn can_read_command_event(&self, path: &str) -> bool {
        self.grants(path).command_event.read()
    }

    /// `CommandEvent` `x` on a command (`Device.Reboot()`): Operate.
    pub fn can_operate(&self, command: &str) -> bool {
        self.grants(command).command_event.execute()
    }

    /// `CommandEvent` `n` on a command or event: OperationComplete and Event notifications.
    pub fn can_notify_command_event(&self, path: &str) -> bool {
        self.grants(path).command_event.notify()
    }

    /// [`Access::can_write_param`] as a `Result` naming the path.
    pub fn check_write_param(&self, path: &str) -> Result<(), Denied> {
        allow(self.can_write_param(path), "write", path)
    }

    /// [`Access::can_add`] as a `Result` naming the table.
    pub fn check_add(&self, table: &str) -> Result<(), Denied> {
        allow(self.can_add(table), "add to", table)
    }

    /// [`Access::can_delete`] as a `Result` naming the instance.
    pub fn check_delete(&self, instance: &str) -> Result<(), Denied> {
        allow(self.can_delete(instance), "delete", instance)
    }

    /// [`Access::can_operate`] as a `Result` naming the command.
    pub fn check_operate(&self, command: &str) -> Result<(), Denied> {
        allow(self.can_operate(command), "operate", command)
    }
}

fn allow(allowed: bool, action: &'static str, path: &str) -> Result<(), Denied> {
    if allowed {
        Ok(())
    } else {
        Err(Denied {
            action,
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::rights::Rights;
    use crate::role::Permission;
    use crate::target::Target;

    fn role(name: &str, permissions: &[(u32, &str, &str, &str, &str, &str)]) -> Arc<Role> {
        let permissions = permissions
            .iter()
            .map(|&(order, targets, param, obj, inst, cmd)| Permission {
                enable: true,
                order,
                targets: Target::parse_list(targets).unwrap(),
                grants: Grants {
                    param: param.parse().unwrap(),
                    obj: obj.parse().unwrap(),
                    instantiated_obj: inst.parse().unwrap(),
                    command_event: cmd.parse().unwrap(),
                },
            })
            .collect();
        Arc::new(Role::new(name, true, permissions))
    }

    #[test]
    fn roles_combine_letter_by_letter() {
        // Spec example: role A resolves to `r-xn` (Order 55 over Order 3), role B to `----`.
        let a = role(
            "A",
            &[
                (
                    3,
                    "Device.LocalAgent.Controller.",
                    "r---",
                    "----",
                    "----",
                    "----",
                ),
                (
                    55,
                    "Device.LocalAgent.Controller.",
                    "r-xn",
                    "----",
                    "----",
                    "----",
                ),
            ],
        );
        let b = role(
            "B",
            &[(
                78,
                "Device.LocalAgent.Controller.",
                "----",
                "----",
                "----",
                "----",
            )],
        );
        let access = Access::new(vec![a, b], false);
        let grants = access.grants("Device.LocalAgent.Controller.1.Alias");
        assert_eq!(grants.param.to_string(), "r-xn");

        let reader = role("R", &[(1, "Device.", "r---", "----", "----", "----")]);
        let notifier = role("N", &[(1, "Device.", "---n", "----", "----", "----")]);
        let access = Access::new(vec![reader, notifier], false);
        assert_eq!(access.grants("Device.X.Y").param.to_string(), "r--n");
    }

    #[test]
    fn each_check_reads_its_own_field_and_letter() {
        let only = |param: &str, obj: &str, inst: &str, cmd: &str| {
            Access::new(
                vec![role("x", &[(1, "Device.", param, obj, inst, cmd)])],
                false,
            )
        };
        type Check = fn(&Access, &str) -> bool;
        let cases: [(&str, Access, Check, &str); 12] = [
            (
                "param r",
                only("r---", "----", "----", "----"),
                Access::can_read_param,
                "Device.A.B",
            ),
            (
                "param w",
                only("-w--", "----", "----", "----"),
                Access::can_write_param,
                "Device.A.B",
            ),
            (
                "param n",
                only("---n", "----", "----", "----"),
                Access::can_notify_value_change,
                "Device.A.B",
            ),
            (
                "obj r",
                only("----", "r---", "----", "----"),
                Access::can_read_obj,
                "Device.A.",
            ),
            (
                "obj w",
                only("----", "-w--", "----", "----"),
                Access::can_add,
                "Device.A.T.",
            ),
            (
                "obj n",
                only("----", "---n", "----", "----"),
                Access::can_notify_creation,
                "Device.A.T.1.",
            ),
            (
                "inst r",
                only("----", "----", "r---", "----"),
                Access::can_read_instance,
                "Device.A.T.1.",
            ),
            (
                "inst w",
                only("----", "----", "-w--", "----"),
                Access::can_delete,
                "Device.A.T.1.",
            ),
            (
                "inst n",
                only("----", "----", "---n", "----"),
                Access::can_notify_deletion,
                "Device.A.T.1.",
            ),
            (
                "cmd r",
                only("----", "----", "----", "r---"),
                Access::can_read_command_event,
                "Device.Boot!",
            ),
            (
                "cmd x",
                only("----", "----", "----", "--x-"),
                Access::can_operate,
                "Device.Reboot()",
            ),
            (
                "cmd n",
                only("----", "----", "----", "---n"),
                Access::can_notify_command_event,
                "Device.Boot!",
            ),
        ];
        let checks: Vec<Check> = cases.iter().map(|case| case.2).collect();
        for (name, access, check, path) in &cases {
            assert!(check(access, path), "{name} should allow {path}");
            // The same access refuses every other check on the same path.
            let granted = checks.iter().filter(|other| other(access, path)).count();
            assert_eq!(granted, 1, "{name} grants only its own check");
        }
    }

    #[test]
    fn secured_parameters_read_as_empty_without_a_secured_role() {
        let reader = role("reader", &[(1, "Device.", "r---", "r---", "r---", "r---")]);
        let plain = Access::new(vec![reader.clone()], false);
        let secured = Access::new(vec![reader], true);
        let password = "Device.MQTT.Client.1.Password";
        assert_eq!(plain.read_param(password, true), ParamRead::Empty);
        assert_eq!(plain.read_param(password, false), ParamRead::Value);
        assert_eq!(secured.read_param(password, true), ParamRead::Value);
        assert_eq!(Access::none().read_param(password, true), ParamRead::Hidden);
        assert_eq!(
            Access::none().read_param(password, false),
            ParamRead::Hidden
        );
    }

    #[test]
    fn tp_2_16_read_only_instance_refuses_set_with_7006() {
        let admin = role("admin", &[(1, "Device.", "rwxn", "rwxn", "rwxn", "rwxn")]);
        let restricted = role(
            "restricted",
            &[
                (1, "Device.", "rwxn", "rwxn", "rwxn", "rwxn"),
                (
                    2,
                    "Device.LocalAgent.Subscription.3.",
                    "r---",
                    "rwxn",
                    "rwxn",
                    "rwxn",
                ),
            ],
        );
        let access = Access::new(vec![restricted], false);
        let denied = access
            .check_write_param("Device.LocalAgent.Subscription.3.Enable")
            .unwrap_err();
        assert_eq!(denied.code(), UspErrorCode::PermissionDenied);
        assert!(
            denied
                .to_string()
                .contains("Device.LocalAgent.Subscription.3.Enable")
        );
        assert!(access.can_read_param("Device.LocalAgent.Subscription.3.Enable"));
        assert!(
            access
                .check_write_param("Device.LocalAgent.Subscription.4.Enable")
                .is_ok()
        );
        // A second role that allows writing lifts the restriction (OR across roles).
        let both = Access::new(vec![admin, access.roles[0].clone()], false);
        assert!(
            both.check_write_param("Device.LocalAgent.Subscription.3.Enable")
                .is_ok()
        );
    }

    #[test]
    fn tp_2_18_operate_without_x_is_denied() {
        let access = Access::new(
            vec![role(
                "r",
                &[
                    (1, "Device.", "rwxn", "rwxn", "rwxn", "rwxn"),
                    (2, "Device.Reboot()", "rwxn", "rwxn", "rwxn", "r---"),
                ],
            )],
            false,
        );
        let denied = access.check_operate("Device.Reboot()").unwrap_err();
        assert_eq!(denied.code(), UspErrorCode::PermissionDenied);
        assert!(access.check_operate("Device.FactoryReset()").is_ok());
        assert!(access.can_read_command_event("Device.Reboot()"));
    }

    #[test]
    fn add_and_delete_checks_name_the_path() {
        let access = Access::new(
            vec![role("r", &[(1, "Device.", "rwxn", "r---", "r---", "rwxn")])],
            false,
        );
        let add = access
            .check_add("Device.LocalAgent.Subscription.")
            .unwrap_err();
        assert_eq!(
            add.to_string(),
            "permission denied: add to Device.LocalAgent.Subscription."
        );
        let delete = access
            .check_delete("Device.LocalAgent.Subscription.2.")
            .unwrap_err();
        assert_eq!(delete.path, "Device.LocalAgent.Subscription.2.");
        assert_eq!(delete.code(), UspErrorCode::PermissionDenied);
    }

    #[test]
    fn search_targets_use_the_supplied_instances() {
        let access = Access::new(
            vec![role(
                "s",
                &[
                    (1, "Device.", "rwxn", "rwxn", "rwxn", "rwxn"),
                    (
                        2,
                        r#"Device.IP.Interface.[Type=="WAN"]."#,
                        "r---",
                        "r---",
                        "r---",
                        "r---",
                    ),
                ],
            )],
            false,
        );
        let sites = access.search_sites();
        assert_eq!(
            sites.iter().map(String::as_str).collect::<Vec<_>>(),
            [r#"Device.IP.Interface.[Type=="WAN"]."#]
        );
        let mut searches = ResolvedSearches::new();
        for site in &sites {
            searches.insert(site.clone(), ["Device.IP.Interface.1.".to_string()]);
        }
        let access = access.with_searches(Arc::new(searches));
        assert!(!access.can_write_param("Device.IP.Interface.1.Enable"));
        assert!(access.can_write_param("Device.IP.Interface.2.Enable"));
    }

    #[test]
    fn full_and_none() {
        assert_eq!(Access::full().grants("Device.Anything.1.X"), Grants::ALL);
        assert!(Access::full().is_secured());
        assert_eq!(Access::none().grants("Device."), Grants::NONE);
        assert_eq!(Grants::uniform(Rights::ALL), Grants::ALL);
    }
}
