//! What a plugin implements ([`Plugin`], [`Transaction`]) and the bridge from those traits to
//! the `usp:dm` component exports, used by [`export_plugin!`](crate::export_plugin).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::bindings::exports::usp::dm::provider as wit;
use crate::bindings::usp::dm::host;
use crate::bindings::usp::dm::types;
use crate::fault::{ErrorCode, Fault};
use crate::path::{ObjectPath, split_command};
use crate::schema::Schema;
use crate::value::Tr106;

/// Parameter or argument values by name (relative to the object, command or event).
pub type Args = BTreeMap<String, String>;

/// The values of one object, built with typed setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(Vec<(String, String)>);

impl Values {
    /// No values yet.
    pub fn new() -> Self {
        Values::default()
    }

    /// Adds a value in its TR-106 form (`bool` becomes `true`/`false` and so on).
    pub fn with(mut self, name: &str, value: impl Tr106) -> Self {
        self.0.push((name.to_string(), value.to_tr106()));
        self
    }

    /// Adds a value in place.
    pub fn put(&mut self, name: &str, value: impl Tr106) {
        self.0.push((name.to_string(), value.to_tr106()));
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// Name/value pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// What [`Plugin::operate`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A synchronous command finished with these output arguments.
    Done(Args),
    /// An asynchronous command started; finish it with [`Pending::complete`].
    Started(u64),
}

/// Hands out tokens for asynchronous commands.
#[derive(Debug, Default)]
pub struct AsyncCommands {
    last: Cell<u64>,
}

impl AsyncCommands {
    /// A token source starting at 1.
    pub fn new() -> Self {
        AsyncCommands::default()
    }

    /// Starts a command: return `Outcome::Started(pending.token())` from `operate` and call
    /// [`Pending::complete`] when the work is done (in `operate` itself or in any later call
    /// into the plugin; the agent reports the completion after the command's response).
    pub fn start(&self) -> Pending {
        let token = self.last.get() + 1;
        self.last.set(token);
        Pending { token }
    }
}

/// An asynchronous command in flight.
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    token: u64,
}

impl Pending {
    /// The token to return in [`Outcome::Started`].
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Reports the command's output (or failure) to the agent (OperationComplete).
    pub fn complete(self, result: Result<Args, Fault>) {
        let result = result
            .map(|args| to_param_values(&args))
            .map_err(types::Fault::from);
        host::complete(self.token, result.as_deref());
    }
}

/// A data-model plugin. Methods take `&self`: keep mutable state in `RefCell`/`Cell` (a
/// component instance is single-threaded, and the agent calls it one call at a time).
pub trait Plugin: 'static {
    /// The plugin's schema (asked once after start).
    fn schema(&self) -> Schema;

    /// Instance numbers of a table, ascending; `table` ends with the table name and `.`
    /// (`Device.IP.Interface.1.IPv4Address.`). Plugins without tables keep the default.
    fn instances(&self, table: &ObjectPath) -> Result<Vec<u32>, Fault> {
        Err(Fault::invalid_path(table))
    }

    /// All parameter values of one object. The SDK keeps only the names the agent asked for.
    fn get(&self, object: &ObjectPath) -> Result<Values, Fault>;

    /// Starts a transaction. The default refuses every write with 7013 (read-only plugin).
    fn begin(&self) -> Box<dyn Transaction> {
        Box::new(ReadOnly)
    }

    /// Runs command `name` (with `()`) on `object`. The default answers 7026.
    fn operate(
        &self,
        object: &ObjectPath,
        name: &str,
        command_key: &str,
        input: &Args,
    ) -> Result<Outcome, Fault> {
        let _ = (command_key, input);
        Err(Fault::invalid_path(format!("{object}{name}")))
    }
}

/// Staged writes of one USP Set/Add/Delete. Dropped without `commit` means aborted.
pub trait Transaction {
    /// Stages a write of `param` of `object`; validate here (the agent already checked the
    /// type and the schema's facets).
    fn set(&mut self, object: &ObjectPath, param: &str, value: &str) -> Result<(), Fault>;

    /// Stages a new instance of `table`; returns its instance number. Default: 7019.
    fn add(&mut self, table: &ObjectPath, params: &Args) -> Result<u32, Fault> {
        let _ = params;
        Err(Fault::new(
            ErrorCode::ObjectNotCreatable,
            format!("{table}: instances cannot be added"),
        ))
    }

    /// Stages the deletion of `object`. Default: 7024.
    fn delete(&mut self, object: &ObjectPath) -> Result<(), Fault> {
        Err(Fault::new(
            ErrorCode::DeleteFailure,
            format!("{object}: instances cannot be deleted"),
        ))
    }

    /// Checks that everything staged can be applied, without applying it.
    fn prepare(&mut self) -> Result<(), Fault> {
        Ok(())
    }

    /// Applies everything staged.
    fn commit(self: Box<Self>) -> Result<(), Fault>;
}

/// The transaction of a plugin that has no writable parameter.
struct ReadOnly;

impl Transaction for ReadOnly {
    fn set(&mut self, object: &ObjectPath, param: &str, _value: &str) -> Result<(), Fault> {
        Err(Fault::read_only(object.param(param)))
    }

    fn commit(self: Box<Self>) -> Result<(), Fault> {
        Ok(())
    }
}

pub(crate) fn to_param_values(args: &Args) -> Vec<types::ParamValue> {
    args.iter()
        .map(|(name, value)| types::ParamValue {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn to_args(values: Vec<types::ParamValue>) -> Args {
    values
        .into_iter()
        .map(|value| (value.name, value.value))
        .collect()
}

/// The component-side transaction resource: owns the plugin's transaction until commit.
#[doc(hidden)]
pub struct TransactionResource(RefCell<Option<Box<dyn Transaction>>>);

impl TransactionResource {
    fn with<R>(
        &self,
        run: impl FnOnce(&mut dyn Transaction) -> Result<R, Fault>,
    ) -> Result<R, types::Fault> {
        let mut slot = self.0.borrow_mut();
        let transaction = slot.as_mut().ok_or_else(finished)?;
        run(transaction.as_mut()).map_err(types::Fault::from)
    }
}

fn finished() -> types::Fault {
    Fault::new(ErrorCode::InternalError, "transaction already committed").into()
}

impl wit::GuestTransaction for TransactionResource {
    fn set(&self, object: String, param: String, value: String) -> Result<(), types::Fault> {
        self.with(|txn| txn.set(&ObjectPath::new(object), &param, &value))
    }

    fn add(&self, table: String, params: Vec<types::ParamValue>) -> Result<u32, types::Fault> {
        let params = to_args(params);
        self.with(|txn| txn.add(&ObjectPath::new(table), &params))
    }

    fn delete(&self, object: String) -> Result<(), types::Fault> {
        self.with(|txn| txn.delete(&ObjectPath::new(object)))
    }

    fn prepare(&self) -> Result<(), types::Fault> {
        self.with(|txn| txn.prepare())
    }

    fn commit(&self) -> Result<(), types::Fault> {
        let transaction = self.0.borrow_mut().take().ok_or_else(finished)?;
        transaction.commit().map_err(types::Fault::from)
    }
}

/// The export glue behind [`export_plugin!`](crate::export_plugin); not for direct use.
#[doc(hidden)]
pub mod bridge {
    use super::*;

    pub fn describe(plugin: &dyn Plugin) -> types::Schema {
        plugin.schema().into()
    }

    pub fn instances(plugin: &dyn Plugin, table: String) -> Result<Vec<u32>, types::Fault> {
        plugin
            .instances(&ObjectPath::new(table))
            .map_err(types::Fault::from)
    }

    pub fn get(
        plugin: &dyn Plugin,
        requests: Vec<types::GetRequest>,
    ) -> Vec<Result<Vec<types::ParamValue>, types::Fault>> {
        requests
            .into_iter()
            .map(|request| {
                let values = plugin
                    .get(&ObjectPath::new(request.object))
                    .map_err(types::Fault::from)?;
                Ok(values
                    .0
                    .into_iter()
                    .filter(|(name, _)| request.params.is_empty() || request.params.contains(name))
                    .map(|(name, value)| types::ParamValue { name, value })
                    .collect())
            })
            .collect()
    }

    pub fn begin(plugin: &dyn Plugin) -> wit::Transaction {
        wit::Transaction::new(TransactionResource(RefCell::new(Some(plugin.begin()))))
    }

    pub fn operate(
        plugin: &dyn Plugin,
        command: String,
        command_key: String,
        input: Vec<types::ParamValue>,
    ) -> Result<types::OperateOutcome, types::Fault> {
        let (object, name) = split_command(&command);
        match plugin.operate(&object, &name, &command_key, &to_args(input)) {
            Ok(Outcome::Done(output)) => Ok(types::OperateOutcome::Done(to_param_values(&output))),
            Ok(Outcome::Started(token)) => Ok(types::OperateOutcome::Started(token)),
            Err(fault) => Err(fault.into()),
        }
    }
}
