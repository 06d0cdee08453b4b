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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use usp_codec::UspErrorCode;
use usp_dm::{
    Args, ChangeSink, CommitHook, GetRequest, GetResponse, MemoryProvider, OperateOutcome,
    ParamValues, Provider, ProviderError, Schema, Snapshot, Transaction,
};
use usp_rbac::{
    AllowedUses, Challenge, Challenges, Credential, Grants, Permission, Rights, Role, Target,
    Trust, assigned_after_challenge,
};

use crate::builtin::{BuiltinError, standard_object, standard_subtree};

/// `Device.LocalAgent.ControllerTrust.`
pub const CONTROLLER_TRUST: &str = "Device.LocalAgent.ControllerTrust.";
/// `Device.LocalAgent.ControllerTrust.Role.`
pub const ROLE_TABLE: &str = "Device.LocalAgent.ControllerTrust.Role.";
const CREDENTIAL_TABLE: &str = "Device.LocalAgent.ControllerTrust.Credential.";
const CHALLENGE_TABLE: &str = "Device.LocalAgent.ControllerTrust.Challenge.";
const CONTROLLER_TABLE: &str = "Device.LocalAgent.Controller.";
const PERMISSION_FIELDS: [&str; 4] = ["Param", "Obj", "InstantiatedObj", "CommandEvent"];
const DEFAULT_REQUEST_EXPIRATION: Duration = Duration::from_secs(900);

tokio::task_local! {
    /// The Endpoint ID of the Controller whose message is being handled. The challenge
    /// commands need it (the `Provider` contract passes no identity), so the agent runs
    /// `messages::handle` inside `ORIGINATOR.scope(endpoint_id, ...)`.
    pub static ORIGINATOR: String;
}

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

    /// Reads the rows and publishes the trust they describe. Entries RBAC cannot use (which
    /// write-time validation keeps out) are skipped with a warning rather than failing the
    /// whole table.
    async fn rebuild(&self) {
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

    fn challenge(&self, reference: &str) -> Option<Challenge> {
        let path = format!("{}.", reference.trim().trim_end_matches('.'));
        if !path.starts_with(CHALLENGE_TABLE) {
            return None;
        }
        let value = |name: &str| self.tables.value(&format!("{path}{name}"));
        let enable = value("Enable")?;
        Some(Challenge {
            enable: enable == "true",
            value: value("Value").unwrap_or_default(),
            value_type: value("ValueType").unwrap_or_default(),
            instruction: value("Instruction").unwrap_or_default(),
            instruction_type: value("InstructionType").unwrap_or_default(),
            roles: split_list(&value("Role").unwrap_or_default()),
            retries: value("Retries").and_then(|v| v.parse().ok()).unwrap_or(0),
            lockout_period: Duration::from_secs(
                value("LockoutPeriod")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(30),
            ),
        })
    }

    fn challenges(&self) -> std::sync::MutexGuard<'_, Challenges> {
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn controller_instance(&self, endpoint_id: &str) -> Option<String> {
        let numbers = self.controllers.instances(CONTROLLER_TABLE).await.ok()?;
        numbers.into_iter().find_map(|number| {
            let path = format!("{CONTROLLER_TABLE}{number}.");
            (self
                .controllers
                .value(&format!("{path}EndpointID"))
                .as_deref()
                == Some(endpoint_id))
            .then_some(path)
        })
    }

    async fn request_challenge(
        &self,
        originator: &str,
        input: &Args,
    ) -> Result<Args, ProviderError> {
        let reference = input.get("ChallengeRef").cloned().unwrap_or_default();
        let expiration = match input.get("RequestExpiration") {
            Some(value) if !value.is_empty() => {
                let seconds = value.parse::<i64>().map_err(|_| {
                    ProviderError::new(
                        UspErrorCode::InvalidCommandArguments,
                        format!("RequestExpiration \"{value}\" is not an integer"),
                    )
                })?;
                Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
            }
            _ => DEFAULT_REQUEST_EXPIRATION,
        };
        let challenge = self.challenge(&reference);
        let id = uuid::Uuid::new_v4().to_string();
        let issued = self
            .challenges()
            .request(
                originator,
                &reference,
                challenge.as_ref(),
                expiration,
                id,
                Instant::now(),
            )
            .map_err(|error| ProviderError::new(error.code(), error.to_string()))?;
        Ok(Args::from([
            ("Instruction".to_string(), issued.instruction),
            ("InstructionType".to_string(), issued.instruction_type),
            ("ValueType".to_string(), issued.value_type),
            ("ChallengeID".to_string(), issued.id),
        ]))
    }

    async fn challenge_response(
        &self,
        originator: &str,
        input: &Args,
    ) -> Result<Args, ProviderError> {
        let id = input.get("ChallengeID").cloned().unwrap_or_default();
        let value = input.get("Value").cloned().unwrap_or_default();
        let pending = self
            .challenges()
            .pending_challenge(originator, &id)
            .map(str::to_string);
        let challenge = pending
            .as_deref()
            .and_then(|reference| self.challenge(reference));
        let granted = self
            .challenges()
            .respond(originator, &id, &value, challenge.as_ref(), Instant::now())
            .map_err(|error| ProviderError::new(error.code(), error.to_string()))?;
        let controller = self.controller_instance(originator).await.ok_or_else(|| {
            ProviderError::new(
                UspErrorCode::CommandFailure,
                format!("no Device.LocalAgent.Controller entry has EndpointID \"{originator}\""),
            )
        })?;
        let assigned_path = format!("{controller}AssignedRole");
        let assigned = split_list(&self.controllers.value(&assigned_path).unwrap_or_default());
        let trust = self.trust.current();
        let updated = assigned_after_challenge(&assigned, trust.untrusted_roles(), &granted);
        self.controllers
            .set_value(&assigned_path, &updated.join(","))?;
        Ok(Args::new())
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use usp_dm::{DataModel, DmError, StoredChange};

    type Rows = Arc<Mutex<Vec<StoredChange>>>;

    struct Fixture {
        dm: DataModel,
        provider: ControllerTrustProvider,
        controllers: MemoryProvider,
        rows: Rows,
    }

    async fn fixture(snapshot: &Snapshot) -> Fixture {
        let rows: Rows = Arc::default();
        let sink = Arc::clone(&rows);
        let hook: CommitHook = Arc::new(move |changes: &[StoredChange]| {
            sink.lock().unwrap().extend_from_slice(changes)
        });
        let controllers = crate::builtin::local_agent::tables(hook.clone()).unwrap();
        let provider = ControllerTrustProvider::new(snapshot, controllers.clone(), hook)
            .await
            .unwrap();
        let mut dm = DataModel::new(ChangeSink::new(|_| {}));
        dm.register(Arc::new(controllers.clone())).unwrap();
        dm.register(Arc::new(provider.clone())).unwrap();
        Fixture {
            dm,
            provider,
            controllers,
            rows,
        }
    }

    async fn add(dm: &DataModel, table: &str, params: &[(&str, &str)]) -> Result<u32, DmError> {
        let resolution = dm.resolve_str(table).await.unwrap();
        let params: ParamValues = params
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let mut tx = dm.begin();
        let number = tx.add(&resolution.objects[0], &params).await?;
        tx.commit().await?;
        Ok(number)
    }

    async fn set(dm: &DataModel, object: &str, name: &str, value: &str) -> Result<(), DmError> {
        let resolution = dm.resolve_str(object).await.unwrap();
        let mut tx = dm.begin();
        tx.set(&resolution.objects[0], name, value).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get(dm: &DataModel, path: &str) -> String {
        let (object, name) = path.rsplit_once('.').unwrap();
        let resolution = dm.resolve_str(&format!("{object}.")).await.unwrap();
        dm.read_param(&resolution.objects[0], name).await.unwrap()
    }

    const FULL: &str = "Device.LocalAgent.ControllerTrust.Role.1";
    const UNTRUSTED: &str = "Device.LocalAgent.ControllerTrust.Role.2";

    #[tokio::test]
    async fn first_boot_creates_and_persists_the_factory_roles() {
        let fx = fixture(&Snapshot::default()).await;
        let trust = fx.provider.trust().current();
        assert!(
            trust
                .access([FULL])
                .can_write_param("Device.LocalAgent.Controller.1.Enable")
        );
        // Unknown endpoints are not served until UntrustedRole names a role.
        assert!(trust.untrusted_roles().is_empty());
        assert!(
            !trust
                .access([UNTRUSTED])
                .can_read_param("Device.DeviceInfo.SerialNumber")
        );
        assert!(
            trust
                .access([UNTRUSTED])
                .can_read_param("Device.LocalAgent.ControllerTrust.Challenge.1.Alias")
        );
        assert_eq!(
            get(&fx.dm, "Device.LocalAgent.ControllerTrust.Role.1.Name").await,
            "Full Access"
        );
        assert_eq!(
            get(
                &fx.dm,
                "Device.LocalAgent.ControllerTrust.RoleNumberOfEntries"
            )
            .await,
            "2"
        );
        assert_eq!(
            get(
                &fx.dm,
                "Device.LocalAgent.ControllerTrust.Role.2.PermissionNumberOfEntries"
            )
            .await,
            "3"
        );
        let rows = fx.rows.lock().unwrap().clone();
        assert!(rows.contains(&StoredChange::ParamSet {
            path: "Device.LocalAgent.ControllerTrust.Role.2.Name".to_string(),
            value: "Untrusted".to_string(),
        }));
        assert_eq!(
            get(&fx.dm, "Device.LocalAgent.ControllerTrust.UntrustedRole").await,
            ""
        );
    }

    #[tokio::test]
    async fn stored_roles_are_restored_without_factory_roles() {
        let snapshot = Snapshot {
            instances: vec![
                "Device.LocalAgent.ControllerTrust.Role.5.".to_string(),
                "Device.LocalAgent.ControllerTrust.Role.5.Permission.1.".to_string(),
            ],
            params: [
                ("Role.5.Enable", "true"),
                ("Role.5.Name", "Reader"),
                ("Role.5.Permission.1.Enable", "true"),
                ("Role.5.Permission.1.Targets", "Device.DeviceInfo."),
                ("Role.5.Permission.1.Param", "r---"),
            ]
            .iter()
            .map(|(path, value)| (format!("{CONTROLLER_TRUST}{path}"), value.to_string()))
            .collect(),
            next_instance: Vec::new(),
        };
        let fx = fixture(&snapshot).await;
        let trust = fx.provider.trust().current();
        assert!(trust.role(FULL).is_none());
        let reader = trust.access(["Device.LocalAgent.ControllerTrust.Role.5"]);
        assert!(reader.can_read_param("Device.DeviceInfo.SerialNumber"));
        assert!(!reader.can_write_param("Device.DeviceInfo.SerialNumber"));
        assert!(fx.rows.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn permission_edits_apply_once_committed() {
        let fx = fixture(&Snapshot::default()).await;
        add(
            &fx.dm,
            "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
            &[
                ("Enable", "true"),
                ("Order", "2"),
                ("Targets", "Device.LocalAgent.ControllerTrust."),
            ],
        )
        .await
        .unwrap();
        let access = fx.provider.trust().current().access([FULL]);
        assert!(!access.can_read_param("Device.LocalAgent.ControllerTrust.UntrustedRole"));
        assert!(access.can_read_param("Device.LocalAgent.EndpointID"));

        set(
            &fx.dm,
            "Device.LocalAgent.ControllerTrust.Role.1.Permission.2.",
            "Param",
            "r---",
        )
        .await
        .unwrap();
        let access = fx.provider.trust().current().access([FULL]);
        assert!(access.can_read_param("Device.LocalAgent.ControllerTrust.UntrustedRole"));
        assert!(!access.can_write_param("Device.LocalAgent.ControllerTrust.UntrustedRole"));
    }

    #[tokio::test]
    async fn malformed_permission_values_are_refused_with_7012() {
        let fx = fixture(&Snapshot::default()).await;
        let entry = "Device.LocalAgent.ControllerTrust.Role.1.Permission.1.";
        for (name, value) in [("Targets", "Device..X"), ("Param", "rw-x"), ("Obj", "xwrn")] {
            let error = set(&fx.dm, entry, name, value).await.unwrap_err();
            let DmError::Provider { source, .. } = &error else {
                panic!("{name}={value}: unexpected {error:?}");
            };
            assert_eq!(source.code, UspErrorCode::InvalidValue, "{name}={value}");
            assert!(
                source.message.contains(&format!("{entry}{name}")),
                "{source}"
            );
        }
        let error = add(
            &fx.dm,
            "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
            &[("Targets", "Device.X.Y+.")],
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("reference following"), "{error}");
        // Nothing changed.
        assert_eq!(get(&fx.dm, &format!("{entry}Targets")).await, "Device.");
    }

    #[tokio::test]
    async fn secured_roles_follow_the_table() {
        let fx = fixture(&Snapshot::default()).await;
        set(&fx.dm, CONTROLLER_TRUST, "SecuredRoles", FULL)
            .await
            .unwrap();
        let trust = fx.provider.trust().current();
        assert!(trust.access([FULL]).is_secured());
        assert!(!trust.access([UNTRUSTED]).is_secured());
    }

    #[tokio::test]
    async fn a_right_challenge_response_replaces_the_untrusted_role() {
        let fx = fixture(&Snapshot::default()).await;
        set(&fx.dm, CONTROLLER_TRUST, "UntrustedRole", UNTRUSTED)
            .await
            .unwrap();
        let controller = add(
            &fx.dm,
            "Device.LocalAgent.Controller.",
            &[("EndpointID", "proto::ctrl"), ("AssignedRole", UNTRUSTED)],
        )
        .await
        .unwrap();
        add(
            &fx.dm,
            "Device.LocalAgent.ControllerTrust.Challenge.",
            &[
                ("Enable", "true"),
                ("Role", FULL),
                ("Value", "c2VjcmV0"),
                ("Instruction", "bGFiZWw="),
                ("Retries", "2"),
            ],
        )
        .await
        .unwrap();
        let object = usp_dm::ResolvedObject::object(CONTROLLER_TRUST, CONTROLLER_TRUST);
        let request = Args::from([(
            "ChallengeRef".to_string(),
            "Device.LocalAgent.ControllerTrust.Challenge.1".to_string(),
        )]);
        let outcome = ORIGINATOR
            .scope(
                "proto::ctrl".to_string(),
                fx.dm.operate(&object, "RequestChallenge()", "", &request),
            )
            .await
            .unwrap();
        let OperateOutcome::Done(output) = outcome else {
            panic!("RequestChallenge() is synchronous");
        };
        assert_eq!(output["Instruction"], "bGFiZWw=");
        let id = output["ChallengeID"].clone();

        let answer = |value: &str| {
            Args::from([
                ("ChallengeID".to_string(), id.clone()),
                ("Value".to_string(), value.to_string()),
            ])
        };
        let wrong = ORIGINATOR
            .scope(
                "proto::ctrl".to_string(),
                fx.dm
                    .operate(&object, "ChallengeResponse()", "", &answer("d3Jvbmc=")),
            )
            .await;
        assert!(wrong.is_err());
        ORIGINATOR
            .scope(
                "proto::ctrl".to_string(),
                fx.dm
                    .operate(&object, "ChallengeResponse()", "", &answer("c2VjcmV0")),
            )
            .await
            .unwrap();
        let assigned = fx
            .controllers
            .value(&format!(
                "Device.LocalAgent.Controller.{controller}.AssignedRole"
            ))
            .unwrap();
        assert_eq!(assigned, FULL);
    }

    #[tokio::test]
    async fn challenge_commands_need_the_calling_controller() {
        let fx = fixture(&Snapshot::default()).await;
        let object = usp_dm::ResolvedObject::object(CONTROLLER_TRUST, CONTROLLER_TRUST);
        let request = Args::from([("ChallengeRef".to_string(), "x".to_string())]);
        let error = fx
            .dm
            .operate(&object, "RequestChallenge()", "", &request)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("calling Controller"), "{error}");
    }
}
