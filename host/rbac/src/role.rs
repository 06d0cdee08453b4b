//! Roles as data: `ControllerTrust.Role.{i}` with its `Permission.{i}` entries, how one role
//! resolves a path to [`Grants`], and the two roles every agent starts with.

use crate::rights::{Grants, Rights};
use crate::target::{Match, SearchMatcher, Target, TargetError};

/// One `Role.{i}.Permission.{i}` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// `Enable` (TR-181 default false): a disabled entry is ignored entirely.
    pub enable: bool,
    /// `Order`: among the enabled entries covering a path, the highest wins.
    pub order: u32,
    /// `Targets`.
    pub targets: Vec<Target>,
    /// `Param`, `Obj`, `InstantiatedObj`, `CommandEvent`.
    pub grants: Grants,
}

impl Permission {
    /// An enabled entry with the same rights in all four fields.
    ///
    /// ```
    /// use usp_rbac::{Permission, Rights};
    /// let hide = Permission::uniform(2, "Device.LocalAgent.ControllerTrust.", Rights::NONE)?;
    /// assert_eq!(hide.targets.len(), 1);
    /// # Ok::<(), usp_rbac::TargetError>(())
    /// ```
    pub fn uniform(order: u32, targets: &str, rights: Rights) -> Result<Permission, TargetError> {
        Ok(Permission {
            enable: true,
            order,
            targets: Target::parse_list(targets)?,
            grants: Grants::uniform(rights),
        })
    }

    fn matches(&self, path: &str, searches: &dyn SearchMatcher) -> Match {
        let mut best = Match::No;
        for target in &self.targets {
            best = best.max(target.matches(path, searches));
            if best == Match::Yes {
                break;
            }
        }
        best
    }
}

/// One `ControllerTrust.Role.{i}` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// `Name`.
    pub name: String,
    /// `Enable` (TR-181 default false): a disabled role grants nothing.
    pub enable: bool,
    /// Sorted by descending `Order`; entries with equal `Order` keep their given order, and
    /// the later one wins (the agent enforces `Order` as a unique key, so this is a tie-break
    /// for inconsistent stores only).
    permissions: Vec<Permission>,
}

/// Targets of the untrusted role's challenge commands.
const CHALLENGE_COMMANDS: &str = "Device.LocalAgent.ControllerTrust.RequestChallenge(),\
                                  Device.LocalAgent.ControllerTrust.ChallengeResponse()";

impl Role {
    /// A role from its entries, in any order.
    pub fn new(name: impl Into<String>, enable: bool, permissions: Vec<Permission>) -> Role {
        let mut permissions = permissions;
        permissions.reverse();
        permissions.sort_by_key(|p| std::cmp::Reverse(p.order));
        Role {
            name: name.into(),
            enable,
            permissions,
        }
    }

    /// The entries, highest `Order` first.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// Full access: `rwxn` everywhere under `Device.`.
    pub fn full_access() -> Role {
        Role::new("Full Access", true, vec![full_device_permission()])
    }

    /// The role given to Controllers that are not (yet) trusted: nothing but what is needed to
    /// gain a role by challenge (TR-369 §"Challenge"): read the `Challenge.{i}` table (its
    /// `Value` is secured, so it reads as empty) and call `RequestChallenge()` and
    /// `ChallengeResponse()`.
    pub fn untrusted() -> Role {
        let deny_all = Permission {
            enable: true,
            order: 1,
            targets: device_target(),
            grants: Grants::NONE,
        };
        let challenges = Permission {
            enable: true,
            order: 2,
            targets: Target::parse_list("Device.LocalAgent.ControllerTrust.Challenge.")
                .unwrap_or_default(),
            grants: Grants {
                param: Rights::READ,
                obj: Rights::READ,
                instantiated_obj: Rights::READ,
                command_event: Rights::NONE,
            },
        };
        let commands = Permission {
            enable: true,
            order: 3,
            targets: Target::parse_list(CHALLENGE_COMMANDS).unwrap_or_default(),
            grants: Grants {
                command_event: Rights::READ | Rights::EXECUTE,
                ..Grants::NONE
            },
        };
        Role::new("Untrusted", true, vec![deny_all, challenges, commands])
    }

    /// What this role grants on `path`: the grants of the highest-`Order` enabled entry with a
    /// target covering it, `----` everywhere when none does (digest §8.2: the winner replaces,
    /// it does not merge). For a path standing for several instances (`{i}`, `*`), entries
    /// that cover only some of them add their grants on top of the winner's: the result is
    /// what the role grants on at least one of those instances.
    pub fn resolve(&self, path: &str, searches: &dyn SearchMatcher) -> Grants {
        if !self.enable {
            return Grants::NONE;
        }
        let mut grants = Grants::NONE;
        for permission in self.permissions.iter().filter(|p| p.enable) {
            match permission.matches(path, searches) {
                Match::Yes => return grants.union(permission.grants),
                Match::Some => grants |= permission.grants,
                Match::No => {}
            }
        }
        grants
    }

    /// Every search site of the role's enabled targets (see [`crate::target`]).
    pub fn search_sites(&self) -> impl Iterator<Item = &str> {
        self.permissions
            .iter()
            .filter(|p| p.enable)
            .flat_map(|p| p.targets.iter())
            .flat_map(Target::search_sites)
    }
}

fn device_target() -> Vec<Target> {
    Target::parse_list("Device.").unwrap_or_default()
}

fn full_device_permission() -> Permission {
    Permission {
        enable: true,
        order: 1,
        targets: device_target(),
        grants: Grants::ALL,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::target::ResolvedSearches;

    fn perm(
        order: u32,
        targets: &str,
        param: &str,
        obj: &str,
        inst: &str,
        cmd: &str,
    ) -> Permission {
        Permission {
            enable: true,
            order,
            targets: Target::parse_list(targets).unwrap(),
            grants: Grants {
                param: param.parse().unwrap(),
                obj: obj.parse().unwrap(),
                instantiated_obj: inst.parse().unwrap(),
                command_event: cmd.parse().unwrap(),
            },
        }
    }

    fn param_rights(role: &Role, path: &str) -> String {
        role.resolve(path, &ResolvedSearches::new())
            .param
            .to_string()
    }

    #[test]
    fn highest_order_covering_entry_wins_table() {
        // The same entries given in scrambled order: resolution must not depend on it.
        let role = Role::new(
            "test",
            true,
            vec![
                perm(2, "Device.WiFi.Radio.", "----", "----", "----", "----"),
                perm(1, "Device.", "rwxn", "rwxn", "rwxn", "rwxn"),
                perm(10, "Device.WiFi.Radio.1.", "r---", "r---", "r---", "r---"),
                perm(
                    5,
                    "Device.WiFi.Radio.*.Status",
                    "--xn",
                    "rwxn",
                    "rwxn",
                    "rwxn",
                ),
            ],
        );
        let cases = [
            ("Device.DeviceInfo.SerialNumber", "rwxn"),
            ("Device.WiFi.SSID.1.Name", "rwxn"),
            ("Device.WiFi.Radio.2.Enable", "----"),
            ("Device.WiFi.Radio.2.Status", "--xn"),
            ("Device.WiFi.Radio.1.Status", "r---"),
            ("Device.WiFi.Radio.1.Enable", "r---"),
            ("Device.WiFi.Radio.", "----"),
        ];
        for (path, expected) in cases {
            assert_eq!(param_rights(&role, path), expected, "{path}");
        }
    }

    #[test]
    fn winner_replaces_rather_than_merges() {
        // Spec example: Order 3 `r---` and Order 55 `r-xn` on the same target give `r-xn`;
        // a lower-order `rwxn` does not leak its `w` through.
        let role = Role::new(
            "A",
            true,
            vec![
                perm(
                    1,
                    "Device.LocalAgent.Controller.",
                    "rwxn",
                    "----",
                    "----",
                    "----",
                ),
                perm(
                    3,
                    "Device.LocalAgent.Controller.",
                    "r---",
                    "----",
                    "----",
                    "----",
                ),
                perm(
                    55,
                    "Device.LocalAgent.Controller.",
                    "r-xn",
                    "----",
                    "----",
                    "----",
                ),
            ],
        );
        assert_eq!(
            param_rights(&role, "Device.LocalAgent.Controller.1.Alias"),
            "r-xn"
        );
    }

    #[test]
    fn whitelisting_one_instance() {
        let role = Role::new(
            "wl",
            true,
            vec![
                perm(1, "Device.WiFi.Radio.", "----", "----", "----", "----"),
                perm(2, "Device.WiFi.Radio.1.", "rwxn", "rwxn", "rwxn", "rwxn"),
            ],
        );
        assert_eq!(param_rights(&role, "Device.WiFi.Radio.1.Channel"), "rwxn");
        assert_eq!(param_rights(&role, "Device.WiFi.Radio.2.Channel"), "----");
        assert_eq!(
            param_rights(&role, "Device.DeviceInfo.Manufacturer"),
            "----"
        );
        // Supported-DM view: some instance is readable, so the schema is visible.
        assert_eq!(param_rights(&role, "Device.WiFi.Radio.{i}.Channel"), "rwxn");
    }

    #[test]
    fn supported_paths_get_the_union_of_possible_outcomes() {
        let role = Role::new(
            "bl",
            true,
            vec![
                perm(1, "Device.", "r---", "r---", "r---", "r---"),
                perm(2, "Device.WiFi.Radio.1.", "---n", "----", "----", "----"),
                perm(3, "Device.WiFi.Radio.2.", "-w--", "----", "----", "----"),
                // Below the definite winner: never reached.
                perm(0, "Device.WiFi.", "--x-", "----", "----", "----"),
            ],
        );
        assert_eq!(param_rights(&role, "Device.WiFi.Radio.{i}.Channel"), "rw-n");
        assert_eq!(param_rights(&role, "Device.WiFi.Radio.*.Channel"), "rw-n");
        assert_eq!(param_rights(&role, "Device.WiFi.Radio.3.Channel"), "r---");
    }

    #[test]
    fn search_expression_targets_apply_to_matching_instances_only() {
        let role = Role::new(
            "search",
            true,
            vec![
                perm(1, "Device.", "rwxn", "rwxn", "rwxn", "rwxn"),
                perm(
                    2,
                    r#"Device.LocalAgent.Subscription.[Recipient=="Device.LocalAgent.Controller.2"]."#,
                    "r---",
                    "r---",
                    "r---",
                    "r---",
                ),
            ],
        );
        let sites: Vec<&str> = role.search_sites().collect();
        assert_eq!(sites.len(), 1);
        let mut searches = ResolvedSearches::new();
        searches.insert(sites[0], ["Device.LocalAgent.Subscription.4.".to_string()]);
        let param = |path| role.resolve(path, &searches).param.to_string();
        assert_eq!(param("Device.LocalAgent.Subscription.4.Enable"), "r---");
        assert_eq!(param("Device.LocalAgent.Subscription.5.Enable"), "rwxn");
        assert_eq!(param("Device.LocalAgent.Subscription.{i}.Enable"), "rwxn");
    }

    #[test]
    fn disabled_entries_and_roles_grant_nothing() {
        let mut hidden = perm(9, "Device.", "----", "----", "----", "----");
        hidden.enable = false;
        let role = Role::new(
            "d",
            true,
            vec![perm(1, "Device.", "r---", "----", "----", "----"), hidden],
        );
        assert_eq!(
            param_rights(&role, "Device.DeviceInfo.SerialNumber"),
            "r---"
        );
        let disabled = Role::new("off", false, role.permissions().to_vec());
        assert_eq!(
            param_rights(&disabled, "Device.DeviceInfo.SerialNumber"),
            "----"
        );
    }

    #[test]
    fn equal_orders_let_the_later_entry_win() {
        let role = Role::new(
            "tie",
            true,
            vec![
                perm(4, "Device.", "r---", "----", "----", "----"),
                perm(4, "Device.", "rw--", "----", "----", "----"),
            ],
        );
        assert_eq!(param_rights(&role, "Device.X"), "rw--");
    }

    #[test]
    fn default_roles() {
        let full = Role::full_access();
        let none = ResolvedSearches::new();
        assert_eq!(
            full.resolve("Device.LocalAgent.ControllerTrust.Role.1.Name", &none),
            Grants::ALL
        );

        let untrusted = Role::untrusted();
        assert_eq!(
            untrusted.resolve("Device.DeviceInfo.SerialNumber", &none),
            Grants::NONE
        );
        assert_eq!(untrusted.resolve("Device.Reboot()", &none), Grants::NONE);
        let request = untrusted.resolve(
            "Device.LocalAgent.ControllerTrust.RequestChallenge()",
            &none,
        );
        assert!(request.command_event.execute());
        let response = untrusted.resolve(
            "Device.LocalAgent.ControllerTrust.ChallengeResponse()",
            &none,
        );
        assert!(response.command_event.execute());
        let challenge = untrusted.resolve(
            "Device.LocalAgent.ControllerTrust.Challenge.1.Description",
            &none,
        );
        assert!(challenge.param.read() && !challenge.param.write());
        let role_table = untrusted.resolve("Device.LocalAgent.ControllerTrust.Role.1.Name", &none);
        assert_eq!(role_table, Grants::NONE);
    }
}
