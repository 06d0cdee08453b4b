//! `Device.LocalAgent.ControllerTrust.` as a built-in object: the `Role.{i}` /
//! `Permission.{i}`, `Credential.{i}` and `Challenge.{i}` tables and the `UntrustedRole`,
//! `SecuredRoles` lists, stored in a [`MemoryProvider`] (persisted like the other built-in
//! tables), the `*NumberOfEntries` counts, and the `RequestChallenge()` /
//! `ChallengeResponse()` commands.
//!
//! `UntrustedRole` decides whether an endpoint that is not in `Device.LocalAgent.Controller.`
//! is served at all: non-empty, such an endpoint is served with the permissions of the roles
//! it names (the actor's `context`); empty, its Records are dropped. The factory value is empty
//! (the `Untrusted` role, `Role.2`, is still created, ready to be named): TR-369 R-SEC.0 has
//! an Agent process a Controller's messages only once it knows who the Controller is, and an
//! endpoint outside the Controller table offers nothing but a claimed `from_id` (on MQTT any
//! broker client can claim any). OB-USP-Agent's default drops such Records too. Serving
//! unknown Controllers (for `RequestChallenge()`, say) is an operator's explicit choice: set
//! `UntrustedRole`, or `agent.serve_untrusted` in the configuration.
//!
//! Every committed change rebuilds the [`usp_rbac::Trust`] published through [`TrustHandle`]
//! (roles, the special role lists and the `Credential.{i}` rows), so a role or credential edit
//! applies from the next message on. Values that RBAC would have to ignore
//! (a malformed `Targets` item or `rwxn` string) are refused at write time with 7012 naming
//! the parameter.
//!
//! Layout: the provider, its schema, its factory roles and its write-time checks here;
//! `trust` (private) reads the rows into the published [`usp_rbac::Trust`] ([`TrustHandle`],
//! [`split_list`]); `challenge` (private) runs `RequestChallenge()` / `ChallengeResponse()`
//! for the calling Controller ([`ORIGINATOR`]).

mod challenge;
#[cfg(test)]
mod tests;
mod trust;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use usp_codec::UspErrorCode;
use usp_dm::{
    Args, ChangeSink, CommitHook, GetRequest, GetResponse, MemoryProvider, OperateOutcome,
    ParamValues, Provider, ProviderError, Schema, Snapshot, Transaction,
};
use usp_rbac::{Challenges, Rights, Role, Target};

use crate::builtin::{BuiltinError, standard_object, standard_subtree};

pub use trust::{TrustHandle, split_list};

/// `Device.LocalAgent.ControllerTrust.`
pub const CONTROLLER_TRUST: &str = "Device.LocalAgent.ControllerTrust.";
/// `Device.LocalAgent.ControllerTrust.Role.`
pub const ROLE_TABLE: &str = "Device.LocalAgent.ControllerTrust.Role.";
const CREDENTIAL_TABLE: &str = "Device.LocalAgent.ControllerTrust.Credential.";
const CHALLENGE_TABLE: &str = "Device.LocalAgent.ControllerTrust.Challenge.";
const PERMISSION_FIELDS: [&str; 4] = ["Param", "Obj", "InstantiatedObj", "CommandEvent"];

tokio::task_local! {
    /// The Endpoint ID of the Controller whose message is being handled. The challenge
    /// commands need it (the `Provider` contract passes no identity), so the agent runs
    /// `messages::handle` inside `ORIGINATOR.scope(endpoint_id, ...)`.
    pub static ORIGINATOR: String;
}

/// The ControllerTrust provider. Register it with the data model like any provider.
#[derive(Clone)]
pub struct ControllerTrustProvider {
    schema: Arc<Schema>,
    tables: MemoryProvider,
    controllers: MemoryProvider,
    trust: TrustHandle,
    challenges: Arc<Mutex<Challenges>>,
}

/// The schema served: the standard ControllerTrust subtree, with its two commands.
fn schema() -> Result<Schema, BuiltinError> {
    let mut schema = standard_subtree(CONTROLLER_TRUST, &[])?;
    let with_commands = standard_object(
        CONTROLLER_TRUST,
        &[
            "UntrustedRole",
            "BannedRole",
            "SecuredRoles",
            "TOFUAllowed",
            "TOFUInactivityTimer",
            "RoleNumberOfEntries",
            "CredentialNumberOfEntries",
            "ChallengeNumberOfEntries",
        ],
        &["RequestChallenge()", "ChallengeResponse()"],
        &[],
    )?;
    schema.insert(with_commands);
    Ok(schema)
}

impl ControllerTrustProvider {
    /// The provider, its rows loaded from `snapshot` (the persisted ControllerTrust rows).
    /// With no `Role.{i}` row at all (first boot, or every role deleted), the factory roles are
    /// created: `Role.1` full access, `Role.2` untrusted; `UntrustedRole` stays empty (see the
    /// module docs for why unknown endpoints are not served by default).
    /// `controllers` is the provider of `Device.LocalAgent.Controller.{i}.` (for
    /// `ChallengeResponse()` to update `AssignedRole`). Committed changes go to `hook`.
    pub async fn new(
        snapshot: &Snapshot,
        controllers: MemoryProvider,
        hook: CommitHook,
    ) -> Result<ControllerTrustProvider, BuiltinError> {
        let tables = MemoryProvider::new("builtin ControllerTrust", schema()?)
            .with_commit_hook(hook.clone());
        let provider = ControllerTrustProvider {
            schema: Arc::new(schema()?),
            tables: tables.clone(),
            controllers,
            trust: TrustHandle::default(),
            challenges: Arc::new(Mutex::new(Challenges::new())),
        };
        tables.restore(snapshot);
        let seeded = provider
            .tables
            .instances(ROLE_TABLE)
            .await
            .is_ok_and(|roles| !roles.is_empty());
        if !seeded {
            provider.seed_default_roles(&hook);
        }
        provider.rebuild().await;
        Ok(provider)
    }

    /// The trust handle the message loop reads.
    pub fn trust(&self) -> TrustHandle {
        self.trust.clone()
    }

    fn seed_default_roles(&self, hook: &CommitHook) {
        let mut rows = Vec::new();
        for (instance, role) in [(1, Role::full_access()), (2, Role::untrusted())] {
            let path = format!("{ROLE_TABLE}{instance}.");
            rows.push(usp_dm::StoredChange::ObjectAdded {
                path: path.clone(),
                next_instance: instance + 1,
            });
            rows.push(set(&path, "Enable", "true"));
            rows.push(set(&path, "Name", &role.name));
            for (number, permission) in (1..).zip(role.permissions().iter().rev()) {
                let entry = format!("{path}Permission.{number}.");
                rows.push(usp_dm::StoredChange::ObjectAdded {
                    path: entry.clone(),
                    next_instance: number + 1,
                });
                rows.push(set(&entry, "Enable", "true"));
                rows.push(set(&entry, "Order", &permission.order.to_string()));
                let targets: Vec<String> =
                    permission.targets.iter().map(Target::to_string).collect();
                rows.push(set(&entry, "Targets", &targets.join(",")));
                let grants = permission.grants;
                for (name, rights) in PERMISSION_FIELDS.iter().zip([
                    grants.param,
                    grants.obj,
                    grants.instantiated_obj,
                    grants.command_event,
                ]) {
                    rows.push(set(&entry, name, &rights.to_string()));
                }
            }
        }
        self.tables.restore(&snapshot_of(&rows));
        hook(&rows);
    }

    async fn count(&self, table: &str) -> String {
        self.tables
            .instances(table)
            .await
            .map_or_else(|_| "0".to_string(), |numbers| numbers.len().to_string())
    }
}

fn set(object: &str, name: &str, value: &str) -> usp_dm::StoredChange {
    usp_dm::StoredChange::ParamSet {
        path: format!("{object}{name}"),
        value: value.to_string(),
    }
}

fn snapshot_of(rows: &[usp_dm::StoredChange]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for row in rows {
        match row {
            usp_dm::StoredChange::ObjectAdded {
                path,
                next_instance,
            } => {
                snapshot.instances.push(path.clone());
                let table = path
                    .trim_end_matches('.')
                    .rsplit_once('.')
                    .map(|(table, _)| format!("{table}."))
                    .unwrap_or_default();
                snapshot.next_instance.push((table, *next_instance));
            }
            usp_dm::StoredChange::ParamSet { path, value } => {
                snapshot.params.push((path.clone(), value.clone()));
            }
            usp_dm::StoredChange::ObjectDeleted { .. } => {}
        }
    }
    snapshot
}

/// Refuses values RBAC could not use: a `Targets` list that does not parse, a permission
/// string that is not `rwxn`-shaped. `object` is a concrete object path.
fn validate(object: &str, param: &str, value: &str) -> Result<(), ProviderError> {
    let is_permission = usp_dm::memory::supported_path(object)
        == "Device.LocalAgent.ControllerTrust.Role.{i}.Permission.{i}.";
    if !is_permission {
        return Ok(());
    }
    let invalid = |message: String| {
        ProviderError::new(
            UspErrorCode::InvalidValue,
            format!("{object}{param}: {message}"),
        )
    };
    if param == "Targets" {
        Target::parse_list(value).map_err(|error| invalid(error.to_string()))?;
    } else if PERMISSION_FIELDS.contains(&param) {
        value
            .parse::<Rights>()
            .map_err(|error| invalid(error.to_string()))?;
    }
    Ok(())
}

/// The memory transaction, with value checks before and a trust rebuild after commit.
struct TrustTransaction {
    inner: Box<dyn Transaction>,
    provider: ControllerTrustProvider,
}

#[async_trait]
impl Transaction for TrustTransaction {
    async fn set(&mut self, object: &str, param: &str, value: &str) -> Result<(), ProviderError> {
        validate(object, param, value)?;
        self.inner.set(object, param, value).await
    }

    async fn add(&mut self, table: &str, params: &ParamValues) -> Result<u32, ProviderError> {
        let object = format!("{table}{{i}}.");
        for (name, value) in params {
            validate(&object, name, value)?;
        }
        self.inner.add(table, params).await
    }

    async fn delete(&mut self, object: &str) -> Result<(), ProviderError> {
        self.inner.delete(object).await
    }

    async fn prepare(&mut self) -> Result<(), ProviderError> {
        self.inner.prepare().await
    }

    async fn commit(self: Box<Self>) -> Result<(), ProviderError> {
        let TrustTransaction { inner, provider } = *self;
        inner.commit().await?;
        provider.rebuild().await;
        Ok(())
    }
}

#[async_trait]
impl Provider for ControllerTrustProvider {
    fn name(&self) -> &str {
        "builtin ControllerTrust"
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    fn attach(&self, sink: ChangeSink) {
        self.tables.attach(sink);
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        self.tables.instances(table).await
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        let mut answers = self.tables.get(requests).await;
        let counts: BTreeMap<&str, String> = BTreeMap::from([
            ("RoleNumberOfEntries", self.count(ROLE_TABLE).await),
            (
                "CredentialNumberOfEntries",
                self.count(CREDENTIAL_TABLE).await,
            ),
            (
                "ChallengeNumberOfEntries",
                self.count(CHALLENGE_TABLE).await,
            ),
        ]);
        for (request, answer) in requests.iter().zip(answers.iter_mut()) {
            let Ok(values) = answer else { continue };
            if request.object == CONTROLLER_TRUST {
                for (name, count) in &counts {
                    if let Some(value) = values.get_mut(*name) {
                        value.clone_from(count);
                    }
                }
            } else if usp_dm::memory::supported_path(&request.object)
                == "Device.LocalAgent.ControllerTrust.Role.{i}."
                && let Some(value) = values.get_mut("PermissionNumberOfEntries")
            {
                *value = self.count(&format!("{}Permission.", request.object)).await;
            }
        }
        answers
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        Ok(Box::new(TrustTransaction {
            inner: self.tables.begin().await?,
            provider: self.clone(),
        }))
    }

    async fn operate(
        &self,
        command: &str,
        _command_key: &str,
        input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        let originator = ORIGINATOR.try_with(Clone::clone).map_err(|_| {
            ProviderError::new(
                UspErrorCode::CommandFailure,
                format!("{command} needs to know the calling Controller"),
            )
        })?;
        let output = match command.strip_prefix(CONTROLLER_TRUST) {
            Some("RequestChallenge()") => self.request_challenge(&originator, &input).await?,
            Some("ChallengeResponse()") => self.challenge_response(&originator, &input).await?,
            _ => {
                return Err(crate::builtin::no_command(command));
            }
        };
        Ok(OperateOutcome::Done(output))
    }
}
