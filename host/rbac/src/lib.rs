//! Role-based access control (TR-369 §"Roles", TR-181 `Device.LocalAgent.ControllerTrust.`):
//! roles and permissions as data, and the one check every message handler uses. Pure
//! functions, no I/O: the agent feeds in the ControllerTrust objects and, for
//! search-expression targets, instance data.
//!
//! Layout:
//! - [`rights`]: `rwxn` permission strings ([`Rights`]) and the four fields of a permission
//!   ([`Grants`]).
//! - [`target`]: `Permission.{i}.Targets` items ([`Target`]), how they cover a path, and the
//!   [`SearchMatcher`] hook for search-expression targets.
//! - [`role`]: [`Role`] and [`Permission`], highest-`Order`-wins resolution, the default
//!   full-access and untrusted roles.
//! - [`access`]: [`Access`], the check handlers call (`can_read_param`, `can_write_param`,
//!   `can_add`, `can_delete`, `can_operate`, the notification checks, secured values).
//! - [`trust`]: [`Trust`], the role table with `UntrustedRole` and `SecuredRoles`, giving a
//!   Controller's [`Access`] from its role references.
//! - [`challenge`]: the `RequestChallenge()` / `ChallengeResponse()` state machine.
//! - [`credential`]: roles granted by certificate: the `Credential.{i}` a TLS peer's chain
//!   falls under (R-SEC.25).
//!
//! Start at [`access`]: its header states what each message handler does with each answer.
//!
//! ```
//! use usp_rbac::Trust;
//! let trust = Trust::with_default_roles();
//! let access = trust.access(["Device.LocalAgent.ControllerTrust.Role.1"]);
//! assert!(access.can_write_param("Device.LocalAgent.Controller.1.ProvisioningCode"));
//! assert!(!trust.untrusted_access().can_operate("Device.Reboot()"));
//! ```

#![deny(missing_docs)]

pub mod access;
pub mod challenge;
pub mod credential;
pub mod rights;
pub mod role;
pub mod target;
pub mod trust;

pub use access::{Access, Denied, ParamRead};
pub use challenge::{
    Challenge, ChallengeError, Challenges, IssuedChallenge, assigned_after_challenge,
};
pub use credential::{
    AllowedUses, AllowedUsesError, Credential, TrustedCertificate, credential_roles,
};
pub use rights::{Grants, Rights, RightsError};
pub use role::{Permission, Role};
pub use target::{ResolvedSearches, SearchMatcher, Target, TargetError};
pub use trust::Trust;
