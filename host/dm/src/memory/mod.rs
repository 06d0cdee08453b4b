//! [`MemoryProvider`]: a generic, schema-driven provider that keeps parameters and table
//! instances in memory. The agent serves its built-in configuration objects with it
//! (`Device.LocalAgent.Controller.{i}.`, `Subscription.{i}.`, ...).
//!
//! What it does for the objects of its schema:
//! - static objects (no `{i}` in their path) exist from the start with their defaults;
//! - Add assigns instance numbers that are never reused (also across restarts, through the
//!   persisted counter), fills defaults, creates single-instance sub-objects, generates
//!   `cpe-N` values for unique-key strings that were not supplied (`Alias`, R-ADD.5) and
//!   enforces unique keys (7025);
//! - Delete removes the instance and everything below it;
//! - [`MemoryProvider::find_by_key`] finds a committed row by a unique key without a scan;
//! - every committed change set is reported once to the commit hook as [`StoredChange`]s, so
//!   the agent can write it in one SQLite transaction per message; [`MemoryProvider::restore`]
//!   loads a [`Snapshot`] of those rows at boot.
//!
//! Transactions stage their writes in an overlay: readers see nothing before commit. Unique
//! keys are checked through an index (`keys`) and table membership is staged as added and
//! removed numbers, so an Add or a Delete costs about the same in a table of ten rows or of
//! tens of thousands.
//!
//! Layout:
//! - here: [`MemoryProvider`] and its shared state, committed reads ([`MemoryProvider::value`],
//!   [`MemoryProvider::find_by_key`]), the agent-internal writes, the [`Provider`] impl.
//! - `store`: the committed store (objects, tables, instance counters, key indexes), path
//!   helpers ([`supported_path`]), the objects an instance is created with, and the count values
//!   read from it.
//! - `transaction`: a transaction's staged overlay, its checks (unique keys, 7025), generated
//!   keys (R-ADD.5), and the commit that applies it to the store and reports it.
//! - `persist`: what the commit hook receives ([`StoredChange`]), volatile paths, and boot-time
//!   [`MemoryProvider::restore`] / [`MemoryProvider::snapshot`].
//! - `keys`: the unique-key index.
//! - `counts`: which `*NumberOfEntries` parameter counts which table ([`counted_table`]).
//!
//! Submodules depend on this one (the shared state) and on each other one way only: `keys`
//! and `counts` on nothing here, `store` on them, `persist` on `store`, `transaction` on
//! `store` and `persist`.

mod counts;
mod keys;
mod persist;
mod store;
mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use usp_codec::UspErrorCode;

use crate::provider::{
    Args, ChangeSink, GetRequest, GetResponse, OperateOutcome, ParamValues, Provider,
    ProviderError, Transaction,
};
use crate::schema::Schema;
use keys::Columns;
use store::{Store, defaults, split_instance};

pub use counts::counted_table;
pub use persist::{CommitHook, RestoreReport, Snapshot, StoredChange};
pub use store::supported_path;

struct Inner {
    name: String,
    schema: Arc<Schema>,
    /// Supported path of each table with unique keys (`Device.X.{i}.`) → its indexed columns.
    columns: HashMap<String, Columns>,
    store: Mutex<Store>,
    hook: Option<CommitHook>,
    volatile: Vec<String>,
    /// Supported paths of parameters whose values are live (`Device.X.{i}.Status`).
    volatile_params: Vec<String>,
    sink: Mutex<Option<ChangeSink>>,
}

/// A schema-driven in-memory provider. See the module docs.
#[derive(Clone)]
pub struct MemoryProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryProvider")
            .field("name", &self.inner.name)
            .finish()
    }
}

fn error(code: UspErrorCode, message: impl Into<String>) -> ProviderError {
    ProviderError::new(code, message)
}

impl Inner {
    /// For an instance of a table with unique keys: its table, number and indexed columns.
    fn keyed<'p>(&self, path: &'p str) -> Option<(&'p str, u32, &Columns)> {
        if self.columns.is_empty() {
            return None;
        }
        let columns = self.columns.get(&supported_path(path))?;
        let (table, number) = split_instance(path)?;
        Some((table, number, columns))
    }
}

impl MemoryProvider {
    /// A provider serving `schema`, with every static object created with its defaults.
    pub fn new(name: impl Into<String>, schema: Schema) -> Self {
        let mut store = Store::default();
        for def in schema.objects() {
            if def.path.contains("{i}") {
                if def.path.matches("{i}").count() == 1 {
                    let table = def.path.trim_end_matches("{i}.").to_string();
                    store.tables.entry(table.clone()).or_default();
                    store.next.entry(table).or_insert(1);
                }
            } else {
                store.objects.insert(def.path.clone(), defaults(def));
            }
        }
        let columns = schema
            .objects()
            .filter_map(|def| Some((def.path.clone(), Columns::of(def)?)))
            .collect();
        MemoryProvider {
            inner: Arc::new(Inner {
                name: name.into(),
                schema: Arc::new(schema),
                columns,
                store: Mutex::new(store),
                hook: None,
                volatile: Vec::new(),
                volatile_params: Vec::new(),
                sink: Mutex::new(None),
            }),
        }
    }

    fn inner_mut(&mut self) -> Option<&mut Inner> {
        Arc::get_mut(&mut self.inner)
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the store half-written: writes are
        // applied from a fully built overlay. So a poisoned lock is still consistent.
        self.inner
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current value of a parameter (concrete path), if it exists.
    pub fn value(&self, path: &str) -> Option<String> {
        let cut = path.rfind('.')?;
        let (object, name) = (&path[..=cut], &path[cut + 1..]);
        let store = self.store();
        let values = store.objects.get(object)?;
        if let Some(value) = values.get(name) {
            return Some(value.clone());
        }
        self.inner
            .counts(&store, object)
            .into_iter()
            .find(|(count, _)| count == name)
            .map(|(_, value)| value)
    }

    /// The instance of `table` (a concrete table path, `Device.LocalAgent.Controller.`) whose
    /// unique key made of exactly the parameters named in `key` holds the given values, as
    /// committed: one index lookup, whatever the table's size. `None` when no instance holds
    /// them or when those parameters are not a unique key of the table.
    pub fn find_by_key(&self, table: &str, key: &[(&str, &str)]) -> Option<u32> {
        let supported = format!("{}{{i}}.", supported_path(table));
        let columns = self.inner.columns.get(&supported)?;
        let def = self.inner.schema.object(&supported)?;
        let set = def.unique_keys.iter().position(|names| {
            names.len() == key.len()
                && names
                    .iter()
                    .all(|name| key.iter().any(|(given, _)| given == name))
        })?;
        let values: ParamValues = key
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let store = self.store();
        store
            .keys
            .get(table)?
            .holders(set, &columns.values(set, &values))
            .next()
    }

    /// Agent-internal write (no access checks): sets a parameter, reports it to the commit hook
    /// and pushes a [`Change::ValueChanged`](crate::Change::ValueChanged) to the change sink.
    pub fn set_value(&self, path: &str, value: &str) -> Result<(), ProviderError> {
        let cut = path.rfind('.').ok_or_else(|| {
            error(
                UspErrorCode::InvalidPathSyntax,
                format!("{path}: not a parameter path"),
            )
        })?;
        let mut tx = self.transaction();
        tx.set_sync(&path[..=cut], &path[cut + 1..], value)?;
        self.commit_sync(tx);
        self.push(crate::Change::ValueChanged {
            path: path.to_string(),
            value: value.to_string(),
        });
        Ok(())
    }

    /// Agent-internal Add (works on read-only tables such as `Device.LocalAgent.Request.`);
    /// pushes [`Change::ObjectCreated`](crate::Change::ObjectCreated).
    pub fn add_instance(&self, table: &str, params: &ParamValues) -> Result<u32, ProviderError> {
        let mut tx = self.transaction();
        let number = tx.add_sync(table, params)?;
        self.commit_sync(tx);
        self.push(crate::Change::ObjectCreated {
            path: format!("{table}{number}."),
        });
        Ok(number)
    }

    /// Agent-internal Delete; pushes [`Change::ObjectDeleted`](crate::Change::ObjectDeleted).
    pub fn delete_instance(&self, path: &str) -> Result<(), ProviderError> {
        let mut tx = self.transaction();
        tx.delete_sync(path)?;
        self.commit_sync(tx);
        self.push(crate::Change::ObjectDeleted {
            path: path.to_string(),
        });
        Ok(())
    }

    fn push(&self, change: crate::Change) {
        let sink = self
            .inner
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(sink) = sink {
            sink.push(change);
        }
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.inner.schema)
    }

    fn attach(&self, sink: ChangeSink) {
        *self
            .inner
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sink);
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        let store = self.store();
        Ok(store
            .tables
            .get(table)
            .map(|numbers| numbers.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn has_instance(&self, table: &str, number: u32) -> Result<bool, ProviderError> {
        let store = self.store();
        Ok(store
            .tables
            .get(table)
            .is_some_and(|numbers| numbers.contains(&number)))
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        let store = self.store();
        requests
            .iter()
            .map(|request| {
                let Some(stored) = store.objects.get(&request.object) else {
                    return Err(error(
                        UspErrorCode::ObjectDoesNotExist,
                        format!("{} does not exist", request.object),
                    ));
                };
                if request.params.is_empty() {
                    let mut values = stored.clone();
                    values.extend(self.inner.counts(&store, &request.object));
                    return Ok(values);
                }
                let mut values: ParamValues = request
                    .params
                    .iter()
                    .filter_map(|name| stored.get(name).map(|v| (name.clone(), v.clone())))
                    .collect();
                if values.len() < request.params.len() {
                    values.extend(
                        self.inner
                            .counts(&store, &request.object)
                            .into_iter()
                            .filter(|(name, _)| request.params.contains(name)),
                    );
                }
                Ok(values)
            })
            .collect()
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        Ok(Box::new(self.transaction()))
    }

    async fn operate(
        &self,
        command: &str,
        _command_key: &str,
        _input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        Err(error(
            UspErrorCode::CommandFailure,
            format!("{command}: the in-memory provider runs no commands"),
        ))
    }
}

#[cfg(test)]
mod tests;
