//! The `Provider` trait: the one seam between the engine and anything that serves a subtree.
//! Built-in objects implement it natively; `usp-runtime` implements it by calling a WebAssembly
//! component. The engine, the message handlers and RBAC never know which kind they talk to.
//!
//! Contract (what the engine guarantees before calling a provider):
//! - every path is concrete (instance numbers only; wildcards, search expressions, unique-key
//!   addressing and references were resolved by the engine);
//! - every path lies inside a subtree the provider claimed in its schema;
//! - every value written was validated against the schema (type, range, enumeration, length);
//! - no Controller identity is passed: access control happened before the call.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use usp_codec::UspErrorCode;

use crate::schema::Schema;

/// A failure reported by a provider, already expressed as a USP error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProviderError {
    /// The USP error code to report.
    pub code: UspErrorCode,
    /// A message naming the path or field at fault.
    pub message: String,
}

impl ProviderError {
    /// An error with a code and a message.
    pub fn new(code: UspErrorCode, message: impl Into<String>) -> Self {
        ProviderError {
            code,
            message: message.into(),
        }
    }
}

/// Parameter values of one object instance, keyed by parameter name relative to the object.
pub type ParamValues = BTreeMap<String, String>;

/// One object of a batched [`Provider::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    /// Concrete object path ending in `.` (`Device.IP.Interface.1.`).
    pub object: String,
    /// Names of the object's own parameters to read; empty means all of them.
    pub params: Vec<String>,
}

/// The answer for one [`GetRequest`], in the same order as the requests.
pub type GetResponse = Result<ParamValues, ProviderError>;

/// Arguments given to a command, or returned by it (names relative to the command).
pub type Args = BTreeMap<String, String>;

/// What [`Provider::operate`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperateOutcome {
    /// A synchronous command finished with these output arguments.
    Done(Args),
    /// An asynchronous command was started; its completion is pushed later as
    /// [`Change::OperationComplete`] carrying the same token.
    Started(u64),
}

/// Something that changed inside a provider without a Controller asking: pushed so that
/// notifications are event-driven, never polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A parameter took a new value (`Device.Time.Status`).
    ValueChanged {
        /// Concrete parameter path.
        path: String,
        /// The new value.
        value: String,
    },
    /// An instance appeared (concrete instance path ending in `.`).
    ObjectCreated {
        /// Concrete instance path.
        path: String,
    },
    /// An instance disappeared (concrete instance path ending in `.`).
    ObjectDeleted {
        /// Concrete instance path.
        path: String,
    },
    /// An event fired.
    Event {
        /// Concrete object path the event is defined on.
        object: String,
        /// Event name with `!`.
        name: String,
        /// Event arguments.
        args: Args,
    },
    /// An asynchronous command finished.
    OperationComplete {
        /// The token returned in [`OperateOutcome::Started`].
        token: u64,
        /// Output arguments, or the failure.
        result: Result<Args, ProviderError>,
    },
}

/// Where a provider pushes its [`Change`]s. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct ChangeSink(Arc<dyn Fn(Change) + Send + Sync>);

impl ChangeSink {
    /// A sink that hands every change to `deliver`.
    pub fn new(deliver: impl Fn(Change) + Send + Sync + 'static) -> Self {
        ChangeSink(Arc::new(deliver))
    }

    /// Pushes one change.
    pub fn push(&self, change: Change) {
        (self.0)(change)
    }
}

impl std::fmt::Debug for ChangeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeSink")
    }
}

/// Serves one or more subtrees of the data model.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for logs and error messages (`plugin "ip"`, `builtin LocalAgent`).
    fn name(&self) -> &str;

    /// The schema of the subtrees this provider serves. Its top-level objects are the
    /// provider's claims; the engine rejects claims that overlap another provider's.
    fn schema(&self) -> Arc<Schema>;

    /// Gives the provider the sink for pushed changes. Called once, at registration.
    fn attach(&self, sink: ChangeSink) {
        let _ = sink;
    }

    /// Instance numbers of a table, in ascending order. `table` is a concrete path to a
    /// multi-instance object without instance number (`Device.IP.Interface.1.IPv4Address.`).
    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError>;

    /// Whether instance `number` of `table` exists. The default asks [`Provider::instances`];
    /// providers with large tables answer it directly, since resolving an instance path calls it.
    async fn has_instance(&self, table: &str, number: u32) -> Result<bool, ProviderError> {
        Ok(self.instances(table).await?.contains(&number))
    }

    /// Reads parameters of several objects in one call.
    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse>;

    /// Starts a transaction for Set/Add/Delete. Dropping it without commit aborts it.
    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError>;

    /// Runs a command. `command` is a concrete command path (`Device.IP.Interface.1.Reset()`);
    /// `input` was checked for mandatory arguments and types; `command_key` is the Controller's.
    async fn operate(
        &self,
        command: &str,
        command_key: &str,
        input: Args,
    ) -> Result<OperateOutcome, ProviderError>;
}

/// A provider-side transaction. Nothing is visible to readers before `commit`.
///
/// A `set`/`add`/`delete` that returns an error must leave the transaction as it was before
/// the call: with `allow_partial` the engine reports the failed parameter and goes on with the
/// others in the same transaction. Changes committed through a transaction are pushed to the
/// change sink by the engine; the provider must not push them again.
#[async_trait]
pub trait Transaction: Send {
    /// Writes one parameter (`object` is a concrete instance path ending in `.`).
    async fn set(&mut self, object: &str, param: &str, value: &str) -> Result<(), ProviderError>;

    /// Creates an instance in `table` (concrete path without instance number) with the given
    /// parameter values (relative names, possibly into single-instance sub-objects); returns the
    /// new instance number.
    async fn add(&mut self, table: &str, params: &ParamValues) -> Result<u32, ProviderError>;

    /// Deletes an instance (concrete instance path ending in `.`) and everything below it.
    async fn delete(&mut self, object: &str) -> Result<(), ProviderError>;

    /// Checks that the transaction can commit; after success, `commit` must not fail except
    /// for I/O faults.
    async fn prepare(&mut self) -> Result<(), ProviderError>;

    /// Makes every change visible.
    async fn commit(self: Box<Self>) -> Result<(), ProviderError>;
}
