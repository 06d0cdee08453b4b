//! The agent's own objects, served as ordinary [`Provider`]s so the engine and the message
//! handlers treat them like any plugin:
//!
//! - [`device`]: `Device.` itself: `Reboot()`, `FactoryReset()`, `ScheduleTimer()`, `Boot!`;
//! - [`device_info`]: `Device.DeviceInfo.` basics, from the config;
//! - [`local_agent`]: `Device.LocalAgent.` computed values, and the stored tables
//!   (`Controller.{i}`, `MTP.{i}`, `Subscription.{i}`, `Certificate.{i}`, `Request.{i}`) in a
//!   [`MemoryProvider`](usp_dm::MemoryProvider), served with their commands;
//! - [`certificate`]: the trusted certificates behind `Device.LocalAgent.Certificate.{i}`,
//!   their fingerprints, and the lookup `ControllerTrust.Credential.{i}` needs;
//! - [`controller_trust`]: `Device.LocalAgent.ControllerTrust.` (roles, permissions,
//!   credentials, challenges) and the [`usp_rbac::Trust`] it publishes for
//!   [`crate::rbac`];
//! - [`mtp`]: the MTP configuration as data (`Device.LocalAgent.MTP.{i}`,
//!   `Device.MQTT.Client.{i}`, `Device.STOMP.Connection.{i}`,
//!   `Device.UnixDomainSockets.UnixDomainSocket.{i}`, stored with the LocalAgent tables): their
//!   schema, the config file seeded into them, the settings read back from them for the MTPs
//!   that run, and their live `Status` values.
//!
//! Schemas come from the generated TR-181 model (`usp_dm::tr181`), trimmed to what is served:
//! GetSupportedDM never advertises a parameter or command the agent does not implement.
//!
//! Shared here: building those schemas (`standard_object`, `standard_subtree`), answering
//! gets of computed values (`answer_get`), and the refusals of read-only objects: a provider
//! of single-instance read-only objects implements [`ReadOnlyObjects`] and is registered as
//! [`ReadOnly`], which refuses tables, writes (`ReadOnlyTransaction`) and commands for all of
//! them alike.

pub mod certificate;
pub mod controller_trust;
pub mod device;
pub mod device_info;
pub mod local_agent;
pub mod mtp;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use usp_codec::UspErrorCode;
use usp_dm::{
    Args, GetRequest, GetResponse, ObjectDef, OperateOutcome, ParamValues, Provider, ProviderError,
    Schema, Transaction,
    tr181::{self, Tr181Error},
};

/// Why the built-in objects could not be built (a defect in the embedded model).
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// The TR-181 model has no such object.
    #[error(transparent)]
    Tr181(#[from] Tr181Error),
    /// The TR-181 object lacks an item the agent expects to serve.
    #[error("TR-181 object {object} has no {item}")]
    Missing {
        /// The object path.
        object: String,
        /// The parameter, command or event name.
        item: String,
    },
}

/// The standard definition of one object, keeping only the named parameters, commands and
/// events (in the standard's order).
pub(crate) fn standard_object(
    path: &str,
    params: &[&str],
    commands: &[&str],
    events: &[&str],
) -> Result<ObjectDef, BuiltinError> {
    let schema = tr181::schema(path)?;
    let mut def = schema
        .object(path)
        .cloned()
        .ok_or_else(|| Tr181Error::UnknownObject(path.to_string()))?;
    for (kind, wanted, present) in [
        (
            "parameter",
            params,
            def.params
                .iter()
                .map(|p| p.name.as_str())
                .collect::<BTreeSet<_>>(),
        ),
        (
            "command",
            commands,
            def.commands.iter().map(|c| c.name.as_str()).collect(),
        ),
        (
            "event",
            events,
            def.events.iter().map(|e| e.name.as_str()).collect(),
        ),
    ] {
        if let Some(missing) = wanted.iter().find(|name| !present.contains(*name)) {
            return Err(BuiltinError::Missing {
                object: path.to_string(),
                item: format!("{kind} {missing}"),
            });
        }
    }
    def.params
        .retain(|param| params.contains(&param.name.as_str()));
    def.commands
        .retain(|command| commands.contains(&command.name.as_str()));
    def.events
        .retain(|event| events.contains(&event.name.as_str()));
    Ok(def)
}

/// Every standard object at or below `path`, without commands or events (stored tables run
/// none), minus the subtrees listed in `without`.
pub(crate) fn standard_subtree(path: &str, without: &[&str]) -> Result<Schema, BuiltinError> {
    Ok(tr181::schema(path)?
        .objects()
        .filter(|def| !without.iter().any(|skip| def.path.starts_with(skip)))
        .map(|def| {
            let mut def = def.clone();
            def.commands.clear();
            def.events.clear();
            def
        })
        .collect())
}

/// Answers a batched get for single-instance objects whose values `lookup` computes.
pub(crate) fn answer_get(
    schema: &Schema,
    requests: &[GetRequest],
    lookup: impl Fn(&str, &str) -> Option<String>,
) -> Vec<GetResponse> {
    requests
        .iter()
        .map(|request| {
            let def = schema.object(&request.object).ok_or_else(|| {
                ProviderError::new(
                    UspErrorCode::InvalidPath,
                    format!("{} is not served here", request.object),
                )
            })?;
            let names: Vec<&str> = if request.params.is_empty() {
                def.params.iter().map(|param| param.name.as_str()).collect()
            } else {
                request.params.iter().map(String::as_str).collect()
            };
            let mut values = ParamValues::new();
            for name in names {
                let value = lookup(&request.object, name).ok_or_else(|| {
                    ProviderError::new(
                        UspErrorCode::UnsupportedParameter,
                        format!("{}{name} is not a supported parameter", request.object),
                    )
                })?;
                values.insert(name.to_string(), value);
            }
            Ok(values)
        })
        .collect()
}

/// A built-in provider whose objects are all single-instance and read-only: it names itself,
/// gives its schema and answers gets; wrapped in [`ReadOnly`], it is a [`Provider`] that refuses
/// everything else the same way as the others.
#[async_trait]
pub trait ReadOnlyObjects: Send + Sync {
    /// See [`Provider::name`].
    fn name(&self) -> &str;

    /// See [`Provider::schema`].
    fn schema(&self) -> Arc<Schema>;

    /// See [`Provider::get`].
    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse>;
}

/// [`ReadOnlyObjects`] served as a [`Provider`]: no tables, no commands, and writes refused by
/// `ReadOnlyTransaction`.
pub struct ReadOnly<T>(pub T);

#[async_trait]
impl<T: ReadOnlyObjects> Provider for ReadOnly<T> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn schema(&self) -> Arc<Schema> {
        self.0.schema()
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        Err(no_tables(table))
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        self.0.get(requests).await
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        Ok(Box::new(ReadOnlyTransaction))
    }

    async fn operate(
        &self,
        command: &str,
        _command_key: &str,
        _input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        Err(no_command(command))
    }
}

/// The transaction of providers whose objects are all read-only: the engine refuses writes
/// before they get here, so these answers only guard against a bypass.
pub(crate) struct ReadOnlyTransaction;

#[async_trait]
impl Transaction for ReadOnlyTransaction {
    async fn set(&mut self, object: &str, param: &str, _value: &str) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            UspErrorCode::ParamReadOnly,
            format!("{object}{param} is read-only"),
        ))
    }

    async fn add(&mut self, table: &str, _params: &ParamValues) -> Result<u32, ProviderError> {
        Err(ProviderError::new(
            UspErrorCode::ObjectNotCreatable,
            format!("{table} is not a table Controllers can add to"),
        ))
    }

    async fn delete(&mut self, object: &str) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            UspErrorCode::ObjectNotCreatable,
            format!("{object} cannot be deleted"),
        ))
    }

    async fn prepare(&mut self) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Error for a command a built-in provider does not run.
pub(crate) fn no_command(command: &str) -> ProviderError {
    ProviderError::new(
        UspErrorCode::CommandFailure,
        format!("{command} is not served here"),
    )
}

/// Error for table listing on providers that serve no tables.
pub(crate) fn no_tables(table: &str) -> ProviderError {
    ProviderError::new(
        UspErrorCode::ObjectNotATable,
        format!("{table} is not a table"),
    )
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn standard_object_keeps_only_what_is_served() {
        let def =
            standard_object("Device.", &["RootDataModelVersion"], &["Reboot()"], &[]).unwrap();
        assert_eq!(def.params.len(), 1);
        assert_eq!(def.commands.len(), 1);
        assert!(def.events.is_empty());
    }

    #[test]
    fn standard_object_reports_a_missing_item() {
        let err = standard_object("Device.", &["NoSuchParam"], &[], &[]).unwrap_err();
        assert!(err.to_string().contains("parameter NoSuchParam"), "{err}");
    }

    #[test]
    fn standard_subtree_drops_excluded_objects_and_commands() {
        let schema = standard_subtree(
            "Device.LocalAgent.Controller.{i}.",
            &["Device.LocalAgent.Controller.{i}.E2ESession."],
        )
        .unwrap();
        assert!(schema.object("Device.LocalAgent.Controller.{i}.").is_some());
        assert!(
            schema
                .object("Device.LocalAgent.Controller.{i}.MTP.{i}.")
                .is_some()
        );
        assert!(
            schema
                .object("Device.LocalAgent.Controller.{i}.E2ESession.")
                .is_none()
        );
        assert!(schema.objects().all(|def| def.commands.is_empty()));
    }
}
