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

mod keys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use usp_codec::UspErrorCode;

use crate::provider::{
    Args, ChangeSink, GetRequest, GetResponse, OperateOutcome, ParamValues, Provider,
    ProviderError, Transaction,
};
use crate::schema::{ObjectDef, ParamAccess, ParamDef, Schema};
use crate::value::ValueType;
use keys::{Columns, KeyIndex};

/// One persisted row-level change, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredChange {
    /// A parameter took a value (concrete parameter path).
    ParamSet {
        /// `Device.LocalAgent.Controller.1.Enable`.
        path: String,
        /// The value.
        value: String,
    },
    /// An instance was created (its parameters follow as [`StoredChange::ParamSet`]s).
    ObjectAdded {
        /// The instance path (`Device.LocalAgent.Controller.1.`).
        path: String,
        /// The table's next instance number after this Add; persist it so numbers are never
        /// reused after a restart.
        next_instance: u32,
    },
    /// An instance and everything below it were removed (drop every row under `path`).
    ObjectDeleted {
        /// The instance path.
        path: String,
    },
}

impl StoredChange {
    /// The concrete path the change is about.
    pub fn path(&self) -> &str {
        match self {
            StoredChange::ParamSet { path, .. }
            | StoredChange::ObjectAdded { path, .. }
            | StoredChange::ObjectDeleted { path } => path,
        }
    }
}

/// Called once per committed transaction with its changes (never with an empty slice).
pub type CommitHook = Arc<dyn Fn(&[StoredChange]) + Send + Sync>;

/// The persisted state to load at boot: rows accumulated from [`StoredChange`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Instance paths (any order; parents are created before children).
    pub instances: Vec<String>,
    /// Parameter values (concrete parameter path → value).
    pub params: Vec<(String, String)>,
    /// Next instance number per table path (`Device.LocalAgent.Controller.` → 4).
    pub next_instance: Vec<(String, u32)>,
}

/// What [`MemoryProvider::restore`] could not place (schema changed since it was stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Instance and parameter paths that were skipped.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct Store {
    /// Concrete object path → its parameter values.
    objects: BTreeMap<String, ParamValues>,
    /// Concrete table path (no instance) → its instance numbers.
    tables: BTreeMap<String, BTreeSet<u32>>,
    /// Concrete table path → next instance number.
    next: BTreeMap<String, u32>,
    /// Concrete table path → its unique-key index (tables with unique keys only), kept equal
    /// to what `objects` holds.
    keys: HashMap<String, KeyIndex>,
}

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

/// The supported path of a concrete path: instance numbers become `{i}`.
pub fn supported_path(concrete: &str) -> String {
    let mut out = String::with_capacity(concrete.len() + 8);
    for part in concrete.split_inclusive('.') {
        let bare = part.trim_end_matches('.');
        if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("{i}");
            out.push_str(&part[bare.len()..]);
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The table and instance number of a concrete instance path (`Device.X.3.` → `Device.X.`, 3).
fn split_instance(path: &str) -> Option<(&str, u32)> {
    let trimmed = path.trim_end_matches('.');
    let cut = trimmed.rfind('.')?;
    let number = trimmed[cut + 1..].parse().ok()?;
    Some((&path[..=cut], number))
}

fn error(code: UspErrorCode, message: impl Into<String>) -> ProviderError {
    ProviderError::new(code, message)
}

/// Whether a unique-key member left out of an Add has no acceptable value unless the Agent
/// makes one up (R-ADD.5): writable (read-only members are the Agent's own to fill), no
/// default, and an empty value is invalid (a minimum length, as `Subscription.{i}.ID` has).
/// Members with enumerations or references, or whose minimum length a `cpe-N` value would not
/// meet (a UUID), are not made up: no invented value would be valid.
fn needs_value(param: &crate::schema::ParamDef) -> bool {
    param.access != ParamAccess::ReadOnly
        && param.default.is_none()
        && param.reference.is_none()
        && param.constraints.enumeration.is_empty()
        && param
            .constraints
            .min_length
            .is_some_and(|min| (1..=4).contains(&min))
}

/// The initial values of an object's stored parameters (every parameter but the
/// `*NumberOfEntries` counts, which are computed on read): defaults, or the zero of the type.
fn defaults(def: &ObjectDef) -> ParamValues {
    def.params
        .iter()
        .filter(|param| counted_table(param).is_none())
        .map(|param| (param.name.clone(), param.initial_value()))
        .collect()
}

/// TR-181 count parameters whose table is not named by the parameter's prefix (the model's
/// `numEntriesParameter` exceptions in Device:2.19): parameter name → table name.
const COUNT_EXCEPTIONS: &[(&str, &str)] = &[
    ("ForwardNumberOfEntries", "Forwarding"),
    ("DeviceImageNumberOfEntries", "DeviceImageFile"),
    ("TaskCapabilityRegistryNumberOfEntries", "Registry"),
    ("ResultConflictNumberOfEntries", "Conflict"),
    ("ResultReportTableNumberOfEntries", "ReportTable"),
    ("ResultReportRowNumberOfEntries", "ResultRow"),
    ("BindingTableNumberOfEntries", "Binding"),
];

/// For a `<Table>NumberOfEntries` parameter, the name of the table it counts (a child of its
/// own object). Such a value is always the live number of rows, never a stored one, so it can
/// neither go stale nor read as an empty string; a table this provider does not serve counts 0.
pub fn counted_table(param: &ParamDef) -> Option<&str> {
    if param.value_type != ValueType::UnsignedInt {
        return None;
    }
    let table = param.name.strip_suffix("NumberOfEntries")?;
    let table = COUNT_EXCEPTIONS
        .iter()
        .find(|(name, _)| *name == param.name)
        .map_or(table, |(_, table)| table);
    (!table.is_empty()).then_some(table)
}

/// The value of count parameter `param` of the concrete object `object`, as `store` holds it.
fn count_of(store: &Store, object: &str, table: &str) -> String {
    store
        .tables
        .get(&format!("{object}{table}."))
        .map_or(0, BTreeSet::len)
        .to_string()
}

impl Inner {
    /// The count parameters of the concrete object `object` with the values `store` gives them.
    fn counts(&self, store: &Store, object: &str) -> Vec<(String, String)> {
        let Some(def) = self.schema.object(&supported_path(object)) else {
            return Vec::new();
        };
        def.params
            .iter()
            .filter_map(|param| {
                let table = counted_table(param)?;
                Some((param.name.clone(), count_of(store, object, table)))
            })
            .collect()
    }
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

    /// Builder: reports committed change sets to `hook` (see [`CommitHook`]). Must be called
    /// before the provider is shared (cloned or registered); later calls are ignored.
    pub fn with_commit_hook(mut self, hook: CommitHook) -> Self {
        if let Some(inner) = self.inner_mut() {
            inner.hook = Some(hook);
        }
        self
    }

    /// Builder: changes under `prefix` (a concrete path such as `Device.LocalAgent.Request.`)
    /// are not reported to the commit hook, because they must not survive a restart.
    pub fn with_volatile(mut self, prefix: impl Into<String>) -> Self {
        if let Some(inner) = self.inner_mut() {
            inner.volatile.push(prefix.into());
        }
        self
    }

    /// Builder: values of the parameter `supported` (a supported path such as
    /// `Device.LocalAgent.MTP.{i}.Status`) are not reported to the commit hook: they are live
    /// state, set again after every restart, and not worth a write to the store.
    pub fn with_volatile_param(mut self, supported: impl Into<String>) -> Self {
        if let Some(inner) = self.inner_mut() {
            inner.volatile_params.push(supported.into());
        }
        self
    }

    /// Whether a change at `path` stays out of the commit hook.
    fn is_volatile(&self, change: &StoredChange) -> bool {
        let path = change.path();
        self.inner
            .volatile
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
            || (matches!(change, StoredChange::ParamSet { .. })
                && !self.inner.volatile_params.is_empty()
                && self.inner.volatile_params.contains(&supported_path(path)))
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

    fn transaction(&self) -> MemoryTransaction {
        MemoryTransaction {
            provider: self.clone(),
            overlay: Overlay::default(),
            journal: Vec::new(),
        }
    }

    fn commit_sync(&self, tx: MemoryTransaction) {
        let MemoryTransaction {
            overlay, journal, ..
        } = tx;
        {
            let mut guard = self.store();
            let store = &mut *guard;
            for (path, values) in overlay.objects {
                if let Some((table, number, columns)) = self.inner.keyed(&path) {
                    if let Some(old) = store.objects.get(&path)
                        && let Some(index) = store.keys.get_mut(table)
                    {
                        index.remove(columns, number, old);
                    }
                    if let Some(new) = &values {
                        store
                            .keys
                            .entry(table.to_string())
                            .or_default()
                            .insert(columns, number, new);
                    }
                }
                match values {
                    Some(values) => {
                        store.objects.insert(path, values);
                    }
                    None => {
                        store.objects.remove(&path);
                    }
                }
            }
            for (path, delta) in overlay.tables {
                match delta {
                    Some(delta) => delta.apply(store.tables.entry(path).or_default()),
                    None => {
                        store.tables.remove(&path);
                        store.keys.remove(&path);
                    }
                }
            }
            for (path, next) in overlay.next {
                store.next.insert(path, next);
            }
        }
        let reported: Vec<StoredChange> = journal
            .into_iter()
            .filter(|change| !self.is_volatile(change))
            .collect();
        if let (Some(hook), false) = (&self.inner.hook, reported.is_empty()) {
            hook(&reported);
        }
    }

    /// Loads persisted rows at boot (before registration): creates the instances with their
    /// defaults, applies the values and the instance counters. Does not call the commit hook.
    pub fn restore(&self, snapshot: &Snapshot) -> RestoreReport {
        let mut report = RestoreReport::default();
        let mut instances: Vec<&String> = snapshot.instances.iter().collect();
        instances.sort_by_key(|path| (path.matches('.').count(), (*path).clone()));
        let mut store = self.store();
        for path in instances {
            if !create_instance(&self.inner.schema, &mut store, path) {
                report.skipped.push(path.clone());
            }
        }
        for (path, value) in &snapshot.params {
            let placed = path.rfind('.').is_some_and(|cut| {
                let (object, name) = (&path[..=cut], &path[cut + 1..]);
                let def = self
                    .inner
                    .schema
                    .object(&supported_path(object))
                    .and_then(|def| def.param(name));
                match (store.objects.get_mut(object), def) {
                    // Counts are computed on read; older stores hold them (as "").
                    (Some(_), Some(def)) if counted_table(def).is_some() => true,
                    // An empty string where a number, boolean or dateTime belongs is the
                    // placeholder older versions stored for "no default": keep the typed
                    // initial value instead.
                    (Some(_), Some(def)) if value.is_empty() && def.check(value).is_err() => true,
                    (Some(values), Some(_)) => {
                        values.insert(name.to_string(), value.clone());
                        true
                    }
                    _ => false,
                }
            });
            if !placed {
                report.skipped.push(path.clone());
            }
        }
        for (table, next) in &snapshot.next_instance {
            let highest = store
                .tables
                .get(table)
                .and_then(|numbers| numbers.last().copied())
                .unwrap_or(0);
            store
                .next
                .insert(table.clone(), (*next).max(highest.saturating_add(1)));
        }
        let tables: Vec<String> = store.tables.keys().cloned().collect();
        for table in tables {
            let highest = store
                .tables
                .get(&table)
                .and_then(|numbers| numbers.last().copied())
                .unwrap_or(0);
            let next = store.next.entry(table).or_insert(1);
            *next = (*next).max(highest.saturating_add(1));
        }
        let Store { objects, keys, .. } = &mut *store;
        keys.clear();
        for (path, values) in objects.iter() {
            if let Some((table, number, columns)) = self.inner.keyed(path) {
                keys.entry(table.to_string())
                    .or_default()
                    .insert(columns, number, values);
            }
        }
        report
    }

    /// The whole state as persistable rows (what a full dump of the store would hold).
    pub fn snapshot(&self) -> Snapshot {
        let store = self.store();
        let mut snapshot = Snapshot::default();
        for (table, numbers) in &store.tables {
            for number in numbers {
                snapshot.instances.push(format!("{table}{number}."));
            }
        }
        for (object, values) in &store.objects {
            for (name, value) in values {
                snapshot
                    .params
                    .push((format!("{object}{name}"), value.clone()));
            }
        }
        snapshot.next_instance = store
            .next
            .iter()
            .map(|(table, next)| (table.clone(), *next))
            .collect();
        snapshot
    }
}

/// Creates an instance (with defaults, sub-objects and nested table entries) in a store.
/// Returns false when its table is unknown or its parent does not exist.
fn create_instance(schema: &Schema, store: &mut Store, path: &str) -> bool {
    let supported = supported_path(path);
    if schema.object(&supported).is_none() {
        return false;
    }
    let Some(cut) = path.trim_end_matches('.').rfind('.') else {
        return false;
    };
    let table = &path[..=cut];
    let Ok(number) = path[cut + 1..path.len() - 1].parse::<u32>() else {
        return false;
    };
    let Some(numbers) = store.tables.get_mut(table) else {
        return false;
    };
    numbers.insert(number);
    let mut objects = Vec::new();
    let mut tables = Vec::new();
    for def in schema.subtree(&supported) {
        let rest = &def.path[supported.len()..];
        match rest.matches("{i}").count() {
            0 => objects.push((format!("{path}{rest}"), defaults(def))),
            1 if rest.ends_with("{i}.") => {
                tables.push(format!("{path}{}", rest.trim_end_matches("{i}.")));
            }
            _ => {}
        }
    }
    for (object, values) in objects {
        store.objects.entry(object).or_insert(values);
    }
    for table in tables {
        store.tables.entry(table.clone()).or_default();
        store.next.entry(table).or_insert(1);
    }
    true
}

/// Staged writes of one transaction: `None` marks a deletion (of an object or a whole table).
#[derive(Debug, Default)]
struct Overlay {
    objects: BTreeMap<String, Option<ParamValues>>,
    tables: BTreeMap<String, Option<TableDelta>>,
    next: BTreeMap<String, u32>,
    /// Unique-key index of the staged instances (those `objects` holds as `Some`), per table.
    keys: HashMap<String, KeyIndex>,
}

/// The staged membership changes of one table: what an Add or Delete costs does not depend on
/// the table's size.
#[derive(Debug, Default)]
struct TableDelta {
    /// Created by this transaction (a nested table of a staged instance): the store's numbers,
    /// if any, do not count.
    fresh: bool,
    added: BTreeSet<u32>,
    removed: BTreeSet<u32>,
}

impl TableDelta {
    fn fresh() -> Self {
        TableDelta {
            fresh: true,
            ..TableDelta::default()
        }
    }

    fn remove(&mut self, number: u32) {
        if !self.added.remove(&number) {
            self.removed.insert(number);
        }
    }

    fn apply(self, numbers: &mut BTreeSet<u32>) {
        if self.fresh {
            numbers.clear();
        }
        for number in &self.removed {
            numbers.remove(number);
        }
        numbers.extend(self.added);
    }
}

struct MemoryTransaction {
    provider: MemoryProvider,
    overlay: Overlay,
    journal: Vec<StoredChange>,
}

impl MemoryTransaction {
    fn object(&self, store: &Store, path: &str) -> Option<ParamValues> {
        match self.overlay.objects.get(path) {
            Some(values) => values.clone(),
            None => store.objects.get(path).cloned(),
        }
    }

    fn table_exists(&self, store: &Store, table: &str) -> bool {
        match self.overlay.tables.get(table) {
            Some(delta) => delta.is_some(),
            None => store.tables.contains_key(table),
        }
    }

    fn has_instance(&self, store: &Store, table: &str, number: u32) -> bool {
        let stored = || {
            store
                .tables
                .get(table)
                .is_some_and(|numbers| numbers.contains(&number))
        };
        match self.overlay.tables.get(table) {
            Some(Some(delta)) => {
                delta.added.contains(&number)
                    || (!delta.fresh && !delta.removed.contains(&number) && stored())
            }
            Some(None) => false,
            None => stored(),
        }
    }

    /// The highest number `table` holds, or held before this transaction deleted it.
    fn highest(&self, store: &Store, table: &str) -> Option<u32> {
        let (fresh, staged) = match self.overlay.tables.get(table) {
            Some(Some(delta)) => (delta.fresh, delta.added.last().copied()),
            _ => (false, None),
        };
        let stored = store
            .tables
            .get(table)
            .filter(|_| !fresh)
            .and_then(|numbers| numbers.last().copied());
        staged.max(stored)
    }

    /// The staged membership of `table`; only for a table that exists.
    fn stage_table(&mut self, table: &str) -> &mut TableDelta {
        self.overlay
            .tables
            .entry(table.to_string())
            .or_insert_with(|| Some(TableDelta::default()))
            .get_or_insert_with(TableDelta::default)
    }

    /// The lowest-numbered instance of `table` other than `number` whose values of column set
    /// `set` are `key`, as this transaction sees the table: staged instances from the overlay's
    /// index, committed ones from the store's unless this transaction rewrote or deleted them
    /// (then the overlay's index knows their current values, or they are gone).
    fn holder(
        &self,
        store: &Store,
        table: &str,
        set: usize,
        key: &[Option<String>],
        number: u32,
    ) -> Option<u32> {
        let staged = self
            .overlay
            .keys
            .get(table)
            .and_then(|index| index.holders(set, key).find(|&other| other != number));
        let stored = store.keys.get(table).and_then(|index| {
            index.holders(set, key).find(|&other| {
                other != number
                    && !self
                        .overlay
                        .objects
                        .contains_key(&format!("{table}{other}."))
            })
        });
        match (staged, stored) {
            (Some(staged), Some(stored)) => Some(staged.min(stored)),
            (staged, stored) => staged.or(stored),
        }
    }

    /// Refuses `values` for instance `number` of `table` when a sibling holds the same values
    /// of a unique key (7025), naming the lowest-numbered such sibling.
    fn check_unique(
        &self,
        store: &Store,
        (table, number): (&str, u32),
        def: &ObjectDef,
        columns: &Columns,
        values: &ParamValues,
    ) -> Result<(), ProviderError> {
        let mut clash: Option<(u32, &Vec<String>)> = None;
        for (set, key) in def.unique_keys.iter().enumerate() {
            if let Some(other) =
                self.holder(store, table, set, &columns.values(set, values), number)
                && clash.is_none_or(|(lowest, _)| other < lowest)
            {
                clash = Some((other, key));
            }
        }
        match clash {
            None => Ok(()),
            Some((other, key)) => Err(error(
                UspErrorCode::DuplicateUniqueKey,
                format!(
                    "{table}{number}.: {} equals that of {table}{other}.",
                    key.join("+")
                ),
            )),
        }
    }

    fn set_sync(&mut self, object: &str, param: &str, value: &str) -> Result<(), ProviderError> {
        let inner = Arc::clone(&self.provider.inner);
        let store = self.provider.store();
        let mut values = self.object(&store, object).ok_or_else(|| {
            error(
                UspErrorCode::ObjectDoesNotExist,
                format!("{object} does not exist"),
            )
        })?;
        let def = inner
            .schema
            .object(&supported_path(object))
            .filter(|def| def.param(param).is_some())
            .ok_or_else(|| {
                error(
                    UspErrorCode::UnsupportedParameter,
                    format!("{object}{param} is not a supported parameter"),
                )
            })?;
        values.insert(param.to_string(), value.to_string());
        let keyed = inner.keyed(object);
        if let Some((table, number, columns)) = keyed {
            // Only a key member can create a duplicate.
            if def.unique_keys.iter().flatten().any(|key| key == param) {
                self.check_unique(&store, (table, number), def, columns, &values)?;
            }
        }
        drop(store);
        if let Some((table, number, columns)) = keyed {
            let staged = self.overlay.keys.entry(table.to_string()).or_default();
            if let Some(Some(old)) = self.overlay.objects.get(object) {
                staged.remove(columns, number, old);
            }
            staged.insert(columns, number, &values);
        }
        self.overlay
            .objects
            .insert(object.to_string(), Some(values));
        self.journal.push(StoredChange::ParamSet {
            path: format!("{object}{param}"),
            value: value.to_string(),
        });
        Ok(())
    }

    fn add_sync(&mut self, table: &str, params: &ParamValues) -> Result<u32, ProviderError> {
        let inner = Arc::clone(&self.provider.inner);
        let schema = &inner.schema;
        let store = self.provider.store();
        let supported = format!("{}{{i}}.", supported_path(table));
        let def = schema.object(&supported).ok_or_else(|| {
            error(
                UspErrorCode::ObjectNotATable,
                format!("{table} is not a table"),
            )
        })?;
        if !self.table_exists(&store, table) {
            return Err(error(
                UspErrorCode::ObjectDoesNotExist,
                format!("{table}: parent object does not exist"),
            ));
        }
        let number = self
            .overlay
            .next
            .get(table)
            .or_else(|| store.next.get(table))
            .copied()
            .unwrap_or(1)
            .max(
                self.highest(&store, table)
                    .map_or(1, |n| n.saturating_add(1)),
            );
        let path = format!("{table}{number}.");
        // Build the instance and its sub-objects in a scratch store view.
        let mut objects: BTreeMap<String, ParamValues> = BTreeMap::new();
        let mut tables: Vec<String> = Vec::new();
        for sub in schema.subtree(&supported) {
            let rest = &sub.path[supported.len()..];
            match rest.matches("{i}").count() {
                0 => {
                    objects.insert(format!("{path}{rest}"), defaults(sub));
                }
                1 if rest.ends_with("{i}.") => {
                    tables.push(format!("{path}{}", rest.trim_end_matches("{i}.")));
                }
                _ => {}
            }
        }
        for (name, value) in params {
            let (prefix, param) = match name.rfind('.') {
                Some(cut) => (&name[..=cut], &name[cut + 1..]),
                None => ("", name.as_str()),
            };
            let object = format!("{path}{prefix}");
            let known = schema
                .object(&format!("{supported}{prefix}"))
                .is_some_and(|sub| sub.param(param).is_some());
            match objects.get_mut(&object) {
                Some(values) if known => {
                    values.insert(param.to_string(), value.clone());
                }
                _ => {
                    return Err(error(
                        UspErrorCode::UnsupportedParameter,
                        format!("{table}{{i}}.{name} is not a supported parameter"),
                    ));
                }
            }
        }
        // R-ADD.5: the Agent assigns unique-key values the Controller did not supply. A
        // string key member is generated when it is missing and either is write-once
        // (`Alias`, whose agent-assigned values are `cpe-N` by the TR-181 Alias data type),
        // or has no value to fall back on (see `needs_value`: `Subscription.{i}.ID`), or its
        // default would collide with an existing instance. A default such as the empty
        // `NAT.PortMapping.{i}.RemoteHost` is a meaningful value, kept when it is unique.
        let own = objects.entry(path.clone()).or_default();
        let columns = inner.columns.get(&supported);
        if let Some(columns) = columns {
            for (set, key) in def.unique_keys.iter().enumerate() {
                let collides = self
                    .holder(&store, table, set, &columns.values(set, own), number)
                    .is_some();
                for name in key {
                    let Some(param) = def.param(name) else {
                        continue;
                    };
                    let generate = param.value_type == ValueType::String
                        && !params.contains_key(name)
                        && own.get(name).is_none_or(String::is_empty)
                        && (param.access == ParamAccess::WriteOnceReadOnly
                            || needs_value(param)
                            || collides);
                    if generate {
                        // Taken when another instance holds the value in this member alone:
                        // a generated member is unique whatever the other members hold.
                        let taken = |candidate: &str| {
                            columns.single(name).is_some_and(|single| {
                                self.holder(
                                    &store,
                                    table,
                                    single,
                                    &[Some(candidate.to_string())],
                                    number,
                                )
                                .is_some()
                            })
                        };
                        let mut candidate = format!("cpe-{number}");
                        let mut suffix = 1;
                        while taken(&candidate) {
                            candidate = format!("cpe-{number}-{suffix}");
                            suffix += 1;
                        }
                        own.insert(name.clone(), candidate);
                    }
                }
            }
        }
        let own = own.clone();
        if let Some(columns) = columns {
            self.check_unique(&store, (table, number), def, columns, &own)?;
        }
        drop(store);
        self.stage_table(table).added.insert(number);
        if let Some(columns) = columns {
            self.overlay
                .keys
                .entry(table.to_string())
                .or_default()
                .insert(columns, number, &own);
        }
        self.overlay
            .next
            .insert(table.to_string(), number.saturating_add(1));
        self.journal.push(StoredChange::ObjectAdded {
            path: path.clone(),
            next_instance: number.saturating_add(1),
        });
        for nested in tables {
            self.overlay
                .tables
                .insert(nested.clone(), Some(TableDelta::fresh()));
            self.overlay.next.insert(nested, 1);
        }
        for (object, values) in objects {
            for (name, value) in &values {
                self.journal.push(StoredChange::ParamSet {
                    path: format!("{object}{name}"),
                    value: value.clone(),
                });
            }
            self.overlay.objects.insert(object, Some(values));
        }
        Ok(number)
    }

    fn delete_sync(&mut self, path: &str) -> Result<(), ProviderError> {
        let inner = Arc::clone(&self.provider.inner);
        let store = self.provider.store();
        let not_an_instance = || {
            error(
                UspErrorCode::ObjectNotATable,
                format!("{path} is not an instance"),
            )
        };
        let trimmed = path.trim_end_matches('.');
        let cut = trimmed.rfind('.').ok_or_else(not_an_instance)?;
        let table = &path[..=cut];
        let number: u32 = trimmed[cut + 1..].parse().map_err(|_| not_an_instance())?;
        if !self.has_instance(&store, table, number) {
            return Err(error(
                UspErrorCode::ObjectDoesNotExist,
                format!("{path} does not exist"),
            ));
        }
        let doomed_objects: Vec<String> = store
            .objects
            .range(path.to_string()..)
            .take_while(|(key, _)| key.starts_with(path))
            .map(|(key, _)| key.clone())
            .chain(
                self.overlay
                    .objects
                    .range(path.to_string()..)
                    .take_while(|(key, _)| key.starts_with(path))
                    .map(|(key, _)| key.clone()),
            )
            .collect();
        let doomed_tables: Vec<String> = store
            .tables
            .range(path.to_string()..)
            .take_while(|(key, _)| key.starts_with(path))
            .map(|(key, _)| key.clone())
            .chain(
                self.overlay
                    .tables
                    .range(path.to_string()..)
                    .take_while(|(key, _)| key.starts_with(path))
                    .map(|(key, _)| key.clone()),
            )
            .collect();
        drop(store);
        if let Some((_, _, columns)) = inner.keyed(path)
            && let Some(Some(old)) = self.overlay.objects.get(path)
            && let Some(staged) = self.overlay.keys.get_mut(table)
        {
            staged.remove(columns, number, old);
        }
        for object in doomed_objects {
            self.overlay.objects.insert(object, None);
        }
        for nested in doomed_tables {
            self.overlay.keys.remove(&nested);
            self.overlay.tables.insert(nested, None);
        }
        self.stage_table(table).remove(number);
        self.journal.push(StoredChange::ObjectDeleted {
            path: path.to_string(),
        });
        Ok(())
    }
}

#[async_trait]
impl Transaction for MemoryTransaction {
    async fn set(&mut self, object: &str, param: &str, value: &str) -> Result<(), ProviderError> {
        self.set_sync(object, param, value)
    }

    async fn add(&mut self, table: &str, params: &ParamValues) -> Result<u32, ProviderError> {
        self.add_sync(table, params)
    }

    async fn delete(&mut self, object: &str) -> Result<(), ProviderError> {
        self.delete_sync(object)
    }

    async fn prepare(&mut self) -> Result<(), ProviderError> {
        // Every check ran when the write was staged.
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), ProviderError> {
        let provider = self.provider.clone();
        provider.commit_sync(*self);
        Ok(())
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
mod tests {
    use super::*;
    use crate::schema::{ObjectAccess, ParamDef};

    fn schema() -> Schema {
        let mut table = ObjectDef::new("Device.NAT.PortMapping.{i}.");
        table.access = ObjectAccess::AddDelete;
        table.unique_keys = vec![
            vec!["Alias".into()],
            vec!["RemoteHost".into(), "ExternalPort".into()],
        ];
        table.params = vec![
            ParamDef::new("Alias", ValueType::String).access(ParamAccess::WriteOnceReadOnly),
            // TR-181 gives RemoteHost the default "" (any host): a value, not a missing key.
            ParamDef::new("RemoteHost", ValueType::String)
                .access(ParamAccess::ReadWrite)
                .default_value(""),
            ParamDef::new("ExternalPort", ValueType::UnsignedInt)
                .access(ParamAccess::ReadWrite)
                .default_value("0"),
        ];
        let mut sub = ObjectDef::new("Device.NAT.PortMapping.{i}.Stats.");
        sub.params = vec![ParamDef::new("Hits", ValueType::UnsignedInt).default_value("0")];
        let mut nested = ObjectDef::new("Device.NAT.PortMapping.{i}.Rule.{i}.");
        nested.access = ObjectAccess::AddDelete;
        let nat = ObjectDef::new("Device.NAT.");
        [nat, table, sub, nested].into_iter().collect()
    }

    fn port(value: &str) -> ParamValues {
        ParamValues::from([("ExternalPort".to_string(), value.to_string())])
    }

    fn ok<T>(result: Result<T, ProviderError>) -> T {
        result.unwrap_or_else(|error| panic!("{error}"))
    }

    async fn commit(tx: Box<dyn Transaction>) {
        ok(tx.commit().await);
    }

    /// A Subscription-like table: `ID` is writable, has no default and is a key member.
    fn keyed_on_id() -> Schema {
        let mut table = ObjectDef::new("Device.S.Sub.{i}.");
        table.access = ObjectAccess::AddDelete;
        table.unique_keys = vec![vec!["Alias".into()], vec!["Recipient".into(), "ID".into()]];
        table.params = vec![
            ParamDef::new("Alias", ValueType::String).access(ParamAccess::WriteOnceReadOnly),
            ParamDef::new("Recipient", ValueType::String),
            ParamDef::new("ID", ValueType::String)
                .access(ParamAccess::ReadWrite)
                .constraints(crate::schema::Constraints {
                    min_length: Some(1),
                    max_length: Some(64),
                    ..Default::default()
                }),
            // Writable, no default, but empty is a valid value: never made up.
            ParamDef::new("Note", ValueType::String).access(ParamAccess::ReadWrite),
        ];
        table.unique_keys.push(vec!["Note".into()]);
        [ObjectDef::new("Device.S."), table].into_iter().collect()
    }

    #[tokio::test]
    async fn r_add_5_a_writable_key_without_default_is_generated_and_unique() {
        let provider = MemoryProvider::new("s", keyed_on_id());
        let recipient = |id: Option<&str>| {
            let mut params =
                ParamValues::from([("Recipient".to_string(), "Device.C.1".to_string())]);
            if let Some(id) = id {
                params.insert("ID".to_string(), id.to_string());
            }
            params
        };
        assert_eq!(
            ok(provider.add_instance("Device.S.Sub.", &recipient(Some("cpe-2")))),
            1
        );
        assert_eq!(
            ok(provider.add_instance("Device.S.Sub.", &recipient(None))),
            2
        );
        // `cpe-2` is taken by instance 1, so instance 2 gets the next free value.
        assert_eq!(
            provider.value("Device.S.Sub.2.ID").as_deref(),
            Some("cpe-2-1")
        );
        assert_eq!(
            ok(provider.add_instance("Device.S.Sub.", &recipient(None))),
            3
        );
        assert_eq!(
            provider.value("Device.S.Sub.3.ID").as_deref(),
            Some("cpe-3")
        );
        assert_eq!(provider.value("Device.S.Sub.1.Note").as_deref(), Some(""));
        // A read-only member is the Agent's to fill: never generated.
        assert_eq!(
            ok(provider.add_instance("Device.S.Sub.", &ParamValues::new())),
            4
        );
        assert_eq!(
            provider
                .value("Device.S.Sub.4.Recipient")
                .unwrap_or_default(),
            ""
        );
    }

    #[tokio::test]
    async fn add_fills_defaults_sub_objects_and_alias() {
        let provider = MemoryProvider::new("t", schema());
        let number = ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
        assert_eq!(number, 1);
        assert_eq!(
            provider.value("Device.NAT.PortMapping.1.Alias").as_deref(),
            Some("cpe-1")
        );
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.1.Stats.Hits")
                .as_deref(),
            Some("0")
        );
        assert_eq!(
            ok(provider.instances("Device.NAT.PortMapping.1.Rule.").await),
            Vec::<u32>::new()
        );
    }

    #[tokio::test]
    async fn staged_writes_are_invisible_until_commit_and_dropped_on_abort() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
        let mut tx = ok(provider.begin().await);
        ok(tx
            .set("Device.NAT.PortMapping.1.", "ExternalPort", "81")
            .await);
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.1.ExternalPort")
                .as_deref(),
            Some("80")
        );
        drop(tx);
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.1.ExternalPort")
                .as_deref(),
            Some("80")
        );
        let mut tx = ok(provider.begin().await);
        ok(tx
            .set("Device.NAT.PortMapping.1.", "ExternalPort", "81")
            .await);
        commit(tx).await;
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.1.ExternalPort")
                .as_deref(),
            Some("81")
        );
    }

    #[tokio::test]
    async fn unique_keys_are_checked_against_staged_siblings() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("81")));
        let mut tx = ok(provider.begin().await);
        ok(tx
            .set("Device.NAT.PortMapping.1.", "ExternalPort", "90")
            .await);
        let clash = tx
            .set("Device.NAT.PortMapping.2.", "ExternalPort", "90")
            .await;
        assert_eq!(
            clash.map_err(|e| e.code),
            Err(UspErrorCode::DuplicateUniqueKey)
        );
        let mut explicit = port("90");
        explicit.insert("RemoteHost".into(), String::new());
        let clash = tx.add("Device.NAT.PortMapping.", &explicit).await;
        assert_eq!(
            clash.map_err(|e| e.code),
            Err(UspErrorCode::DuplicateUniqueKey)
        );
        // Not supplied, the colliding key member is generated instead (R-ADD.5).
        let number = ok(tx.add("Device.NAT.PortMapping.", &port("90")).await);
        assert_eq!(number, 3);
    }

    fn mapping(host: &str, port: &str) -> ParamValues {
        ParamValues::from([
            ("RemoteHost".to_string(), host.to_string()),
            ("ExternalPort".to_string(), port.to_string()),
        ])
    }

    fn alias(value: &str) -> ParamValues {
        ParamValues::from([("Alias".to_string(), value.to_string())])
    }

    fn refused<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> String {
        match result {
            Err(error) if error.code == UspErrorCode::DuplicateUniqueKey => error.message,
            other => panic!("expected 7025, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn deleting_an_instance_frees_its_unique_keys() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80")));
        ok(provider.add_instance("Device.NAT.PortMapping.", &alias("web")));
        // Freed inside the transaction that deletes the holder...
        let mut tx = ok(provider.begin().await);
        ok(tx.delete("Device.NAT.PortMapping.1.").await);
        assert_eq!(
            ok(tx.add("Device.NAT.PortMapping.", &mapping("h", "80")).await),
            3
        );
        drop(tx);
        // ...and for good once the delete is committed.
        ok(provider.delete_instance("Device.NAT.PortMapping.2."));
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &alias("web"))),
            3
        );
        refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80")));
        ok(provider.delete_instance("Device.NAT.PortMapping.1."));
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80"))),
            4
        );
    }

    #[tokio::test]
    async fn setting_a_key_param_moves_the_instance_in_the_index() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80")));
        ok(provider.set_value("Device.NAT.PortMapping.1.ExternalPort", "81"));
        // The old value is free, the new one taken.
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80"))),
            2
        );
        refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
        let mut tx = ok(provider.begin().await);
        ok(tx
            .set("Device.NAT.PortMapping.1.", "ExternalPort", "82")
            .await);
        ok(tx
            .set("Device.NAT.PortMapping.2.", "ExternalPort", "81")
            .await);
        let message = refused(
            tx.set("Device.NAT.PortMapping.2.", "ExternalPort", "82")
                .await,
        );
        assert_eq!(
            message,
            "Device.NAT.PortMapping.2.: RemoteHost+ExternalPort equals that of \
             Device.NAT.PortMapping.1."
        );
        // A non-key Set of a staged instance keeps its staged key values in the index.
        ok(tx.set("Device.NAT.PortMapping.1.", "Alias", "one").await);
        refused(tx.add("Device.NAT.PortMapping.", &mapping("", "82")).await);
        commit(tx).await;
        refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "82")));
        refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80"))),
            3
        );
    }

    #[tokio::test]
    async fn an_aborted_transaction_leaves_the_index_as_it_was() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80")));
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
        let mut tx = ok(provider.begin().await);
        ok(tx
            .set("Device.NAT.PortMapping.1.", "ExternalPort", "91")
            .await);
        ok(tx.add("Device.NAT.PortMapping.", &mapping("", "90")).await);
        ok(tx.delete("Device.NAT.PortMapping.2.").await);
        drop(tx);
        refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80")));
        refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "90"))),
            3
        );
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "91"))),
            4
        );
    }

    #[tokio::test]
    async fn a_duplicate_within_one_transaction_is_refused_and_leaves_no_trace() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &alias("a")));
        let mut tx = ok(provider.begin().await);
        assert_eq!(
            ok(tx.add("Device.NAT.PortMapping.", &mapping("h", "90")).await),
            2
        );
        let message = refused(tx.add("Device.NAT.PortMapping.", &mapping("h", "90")).await);
        assert_eq!(
            message,
            "Device.NAT.PortMapping.3.: RemoteHost+ExternalPort equals that of \
             Device.NAT.PortMapping.2."
        );
        // Both keys clash: the lowest-numbered holder is named, with the key it shares.
        let mut both = mapping("h", "90");
        both.insert("Alias".into(), "a".into());
        let message = refused(tx.add("Device.NAT.PortMapping.", &both).await);
        assert_eq!(
            message,
            "Device.NAT.PortMapping.3.: Alias equals that of Device.NAT.PortMapping.1."
        );
        commit(tx).await;
        assert_eq!(provider.snapshot().instances.len(), 2);
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "91"))),
            3
        );
    }

    #[tokio::test]
    async fn restored_rows_are_indexed_for_checks_and_generated_keys() {
        let provider = MemoryProvider::new("t", schema());
        let snapshot = Snapshot {
            instances: vec![
                "Device.NAT.PortMapping.4.".into(),
                "Device.NAT.PortMapping.7.".into(),
            ],
            params: vec![
                ("Device.NAT.PortMapping.4.Alias".into(), "cpe-8".into()),
                ("Device.NAT.PortMapping.4.RemoteHost".into(), "cpe-8".into()),
                ("Device.NAT.PortMapping.7.Alias".into(), "cpe-8-1".into()),
            ],
            next_instance: Vec::new(),
        };
        assert!(provider.restore(&snapshot).skipped.is_empty());
        refused(provider.add_instance("Device.NAT.PortMapping.", &alias("cpe-8-1")));
        // Instance 7 holds RemoteHost "" and ExternalPort 0, the defaults: the new instance's
        // RemoteHost is generated, avoiding the value instance 4 holds.
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &ParamValues::new())),
            8
        );
        assert_eq!(
            provider.value("Device.NAT.PortMapping.8.Alias").as_deref(),
            Some("cpe-8-2")
        );
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.8.RemoteHost")
                .as_deref(),
            Some("cpe-8-1")
        );
    }

    /// Random Adds, key Sets, Deletes, commits and aborts over a small value domain; every
    /// outcome must match a full scan of a plain model of the rows.
    #[tokio::test]
    async fn the_index_agrees_with_a_full_scan() {
        type Row = (String, String, String);
        fn clash(rows: &BTreeMap<u32, Row>, number: u32, row: &Row) -> bool {
            rows.iter().any(|(other, (alias, host, port))| {
                *other != number && (*alias == row.0 || (*host == row.1 && *port == row.2))
            })
        }
        let provider = MemoryProvider::new("t", schema());
        let mut committed: BTreeMap<u32, Row> = BTreeMap::new();
        let mut next = 1u32;
        let mut seed = 0x9e37_79b9_u32;
        let mut draw = |bound: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % bound
        };
        for _ in 0..60 {
            let mut tx = ok(provider.begin().await);
            let mut staged = committed.clone();
            let mut staged_next = next;
            for _ in 0..draw(6) {
                let existing: Vec<u32> = staged.keys().copied().collect();
                let pick = existing.get(draw(existing.len().max(1) as u32) as usize);
                match (draw(3), pick) {
                    (1, Some(&number)) => {
                        let port = draw(4).to_string();
                        let mut row = staged[&number].clone();
                        row.2 = port.clone();
                        let object = format!("Device.NAT.PortMapping.{number}.");
                        let result = tx.set(&object, "ExternalPort", &port).await;
                        assert_eq!(result.is_err(), clash(&staged, number, &row), "{object}");
                        if result.is_ok() {
                            staged.insert(number, row);
                        }
                    }
                    (2, Some(&number)) => {
                        ok(tx
                            .delete(&format!("Device.NAT.PortMapping.{number}."))
                            .await);
                        staged.remove(&number);
                    }
                    _ => {
                        let row = (
                            format!("a{}", draw(8)),
                            format!("h{}", draw(2)),
                            draw(4).to_string(),
                        );
                        let mut params = mapping(&row.1, &row.2);
                        params.insert("Alias".into(), row.0.clone());
                        let result = tx.add("Device.NAT.PortMapping.", &params).await;
                        assert_eq!(result.is_err(), clash(&staged, staged_next, &row));
                        if let Ok(number) = result {
                            assert_eq!(number, staged_next);
                            staged.insert(number, row);
                            staged_next += 1;
                        }
                    }
                }
            }
            if draw(4) == 0 {
                drop(tx);
            } else {
                commit(tx).await;
                committed = staged;
                next = staged_next;
            }
            for (number, (alias, _, port)) in &committed {
                let object = format!("Device.NAT.PortMapping.{number}.");
                assert_eq!(
                    provider.value(&format!("{object}Alias")).as_ref(),
                    Some(alias)
                );
                assert_eq!(
                    provider.value(&format!("{object}ExternalPort")).as_ref(),
                    Some(port)
                );
            }
            assert_eq!(provider.snapshot().instances.len(), committed.len());
        }
    }

    #[tokio::test]
    async fn find_by_key_answers_from_committed_rows_only() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80")));
        ok(provider.add_instance("Device.NAT.PortMapping.", &alias("web")));
        let table = "Device.NAT.PortMapping.";
        assert_eq!(provider.find_by_key(table, &[("Alias", "web")]), Some(2));
        assert_eq!(
            provider.find_by_key(table, &[("ExternalPort", "80"), ("RemoteHost", "h")]),
            Some(1)
        );
        assert_eq!(provider.find_by_key(table, &[("RemoteHost", "h")]), None);
        assert_eq!(provider.find_by_key(table, &[("Alias", "nope")]), None);
        let mut tx = ok(provider.begin().await);
        ok(tx.add(table, &alias("staged")).await);
        ok(tx.delete("Device.NAT.PortMapping.2.").await);
        assert_eq!(provider.find_by_key(table, &[("Alias", "staged")]), None);
        assert_eq!(provider.find_by_key(table, &[("Alias", "web")]), Some(2));
        commit(tx).await;
        assert_eq!(provider.find_by_key(table, &[("Alias", "staged")]), Some(3));
        assert_eq!(provider.find_by_key(table, &[("Alias", "web")]), None);
    }

    #[tokio::test]
    async fn delete_is_recursive_and_numbers_are_not_reused() {
        let provider = MemoryProvider::new("t", schema());
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
        ok(provider.add_instance("Device.NAT.PortMapping.1.Rule.", &ParamValues::new()));
        ok(provider.delete_instance("Device.NAT.PortMapping.1."));
        assert_eq!(provider.value("Device.NAT.PortMapping.1.Stats.Hits"), None);
        assert!(provider.snapshot().instances.is_empty());
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &port("80"))),
            2
        );
    }

    #[tokio::test]
    async fn commit_hook_sees_one_change_set_and_restore_rebuilds_state() {
        let log: Arc<Mutex<Vec<Vec<StoredChange>>>> = Arc::default();
        let sink = Arc::clone(&log);
        let provider = MemoryProvider::new("t", schema()).with_commit_hook(Arc::new(
            move |changes: &[StoredChange]| {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(changes.to_vec())
            },
        ));
        let mut tx = ok(provider.begin().await);
        ok(tx.add("Device.NAT.PortMapping.", &port("80")).await);
        ok(tx.add("Device.NAT.PortMapping.", &port("81")).await);
        ok(tx.delete("Device.NAT.PortMapping.1.").await);
        commit(tx).await;
        let sets = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(sets.len(), 1, "one change set per transaction");
        let snapshot = provider.snapshot();
        let restored = MemoryProvider::new("t", schema());
        let report = restored.restore(&snapshot);
        assert!(report.skipped.is_empty(), "{report:?}");
        assert_eq!(restored.snapshot(), snapshot);
        assert_eq!(
            ok(restored.add_instance("Device.NAT.PortMapping.", &port("82"))),
            3
        );
    }

    #[tokio::test]
    async fn volatile_params_stay_out_of_the_commit_hook() {
        let log: Arc<Mutex<Vec<StoredChange>>> = Arc::default();
        let sink = Arc::clone(&log);
        let provider = MemoryProvider::new("t", schema())
            .with_volatile_param("Device.NAT.PortMapping.{i}.Stats.Hits")
            .with_commit_hook(Arc::new(move |changes: &[StoredChange]| {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(changes)
            }));
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        ok(provider.set_value("Device.NAT.PortMapping.1.Stats.Hits", "7"));
        ok(provider.set_value("Device.NAT.PortMapping.1.ExternalPort", "81"));
        let paths: Vec<String> = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|change| change.path().to_string())
            .collect();
        assert_eq!(paths, ["Device.NAT.PortMapping.1.ExternalPort"]);
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.1.Stats.Hits")
                .as_deref(),
            Some("7"),
            "the live value is served"
        );
    }

    #[tokio::test]
    async fn restore_reports_rows_the_schema_no_longer_has() {
        let provider = MemoryProvider::new("t", schema());
        let snapshot = Snapshot {
            instances: vec!["Device.NAT.PortMapping.4.".into(), "Device.Gone.1.".into()],
            params: vec![
                ("Device.NAT.PortMapping.4.ExternalPort".into(), "8".into()),
                ("Device.NAT.PortMapping.4.Removed".into(), "x".into()),
            ],
            next_instance: vec![("Device.NAT.PortMapping.".into(), 2)],
        };
        let report = provider.restore(&snapshot);
        assert_eq!(
            report.skipped,
            ["Device.Gone.1.", "Device.NAT.PortMapping.4.Removed"]
        );
        assert_eq!(
            provider
                .value("Device.NAT.PortMapping.4.ExternalPort")
                .as_deref(),
            Some("8")
        );
        assert_eq!(
            ok(provider.add_instance("Device.NAT.PortMapping.", &port("9"))),
            5
        );
    }

    /// A Controller table shaped like TR-181's: counts, typed parameters without defaults.
    fn controller_schema() -> Schema {
        let mut agent = ObjectDef::new("Device.LocalAgent.");
        agent.params = vec![ParamDef::new(
            "ControllerNumberOfEntries",
            ValueType::UnsignedInt,
        )];
        let mut controller = ObjectDef::new("Device.LocalAgent.Controller.{i}.");
        controller.access = ObjectAccess::AddDelete;
        controller.params = vec![
            ParamDef::new("MTPNumberOfEntries", ValueType::UnsignedInt),
            ParamDef::new("BootParameterNumberOfEntries", ValueType::UnsignedInt),
            ParamDef::new("Enable", ValueType::Boolean).access(ParamAccess::ReadWrite),
            ParamDef::new("PeriodicNotifTime", ValueType::DateTime).access(ParamAccess::ReadWrite),
        ];
        let mut mtp = ObjectDef::new("Device.LocalAgent.Controller.{i}.MTP.{i}.");
        mtp.access = ObjectAccess::AddDelete;
        let mut websocket = ObjectDef::new("Device.LocalAgent.Controller.{i}.MTP.{i}.WebSocket.");
        websocket.params =
            vec![ParamDef::new("Port", ValueType::UnsignedInt).access(ParamAccess::ReadWrite)];
        let mut boot = ObjectDef::new("Device.LocalAgent.Controller.{i}.BootParameter.{i}.");
        boot.access = ObjectAccess::AddDelete;
        [agent, controller, mtp, websocket, boot]
            .into_iter()
            .collect()
    }

    async fn get_all(provider: &MemoryProvider, object: &str) -> ParamValues {
        let answers = provider
            .get(&[GetRequest {
                object: object.to_string(),
                params: vec![],
            }])
            .await;
        answers.into_iter().next().map(ok).unwrap_or_default()
    }

    #[tokio::test]
    async fn number_of_entries_always_count_the_rows_of_their_table() {
        let provider = MemoryProvider::new("t", controller_schema());
        let controller = "Device.LocalAgent.Controller.1.";
        ok(provider.add_instance("Device.LocalAgent.Controller.", &ParamValues::new()));
        let values = get_all(&provider, controller).await;
        assert_eq!(values["MTPNumberOfEntries"], "0");
        assert_eq!(values["BootParameterNumberOfEntries"], "0");
        assert_eq!(
            get_all(&provider, "Device.LocalAgent.").await["ControllerNumberOfEntries"],
            "1"
        );
        for _ in 0..2 {
            ok(provider.add_instance(&format!("{controller}MTP."), &ParamValues::new()));
        }
        assert_eq!(
            get_all(&provider, controller).await["MTPNumberOfEntries"],
            "2"
        );
        ok(provider.delete_instance(&format!("{controller}MTP.1.")));
        let named = provider
            .get(&[GetRequest {
                object: controller.to_string(),
                params: vec!["MTPNumberOfEntries".to_string(), "Enable".to_string()],
            }])
            .await;
        let named = ok(named
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no answer")));
        assert_eq!(named.len(), 2, "{named:?}");
        assert_eq!(named["MTPNumberOfEntries"], "1");
        assert_eq!(
            provider
                .value(&format!("{controller}MTPNumberOfEntries"))
                .as_deref(),
            Some("1")
        );
        assert!(
            !provider
                .snapshot()
                .params
                .iter()
                .any(|(path, _)| path.ends_with("NumberOfEntries")),
            "counts are computed, never stored"
        );
    }

    #[tokio::test]
    async fn parameters_without_a_default_start_with_the_zero_of_their_type() {
        let provider = MemoryProvider::new("t", controller_schema());
        ok(provider.add_instance("Device.LocalAgent.Controller.", &ParamValues::new()));
        ok(provider.add_instance("Device.LocalAgent.Controller.1.MTP.", &ParamValues::new()));
        let controller = get_all(&provider, "Device.LocalAgent.Controller.1.").await;
        assert_eq!(controller["Enable"], "false");
        assert_eq!(controller["PeriodicNotifTime"], "0001-01-01T00:00:00Z");
        let websocket = get_all(&provider, "Device.LocalAgent.Controller.1.MTP.1.WebSocket.").await;
        assert_eq!(websocket["Port"], "0");
    }

    #[tokio::test]
    async fn restore_keeps_typed_values_over_stored_empty_placeholders_and_counts() {
        let provider = MemoryProvider::new("t", controller_schema());
        let snapshot = Snapshot {
            instances: vec![
                "Device.LocalAgent.Controller.1.".into(),
                "Device.LocalAgent.Controller.1.MTP.1.".into(),
            ],
            params: vec![
                (
                    "Device.LocalAgent.Controller.1.MTPNumberOfEntries".into(),
                    String::new(),
                ),
                (
                    "Device.LocalAgent.Controller.1.MTP.1.WebSocket.Port".into(),
                    String::new(),
                ),
                (
                    "Device.LocalAgent.Controller.1.Enable".into(),
                    "true".into(),
                ),
            ],
            next_instance: vec![],
        };
        let report = provider.restore(&snapshot);
        assert!(report.skipped.is_empty(), "{report:?}");
        let value = |path: &str| provider.value(path).unwrap_or_default();
        assert_eq!(
            value("Device.LocalAgent.Controller.1.MTPNumberOfEntries"),
            "1"
        );
        assert_eq!(
            value("Device.LocalAgent.Controller.1.MTP.1.WebSocket.Port"),
            "0"
        );
        assert_eq!(value("Device.LocalAgent.Controller.1.Enable"), "true");
    }

    #[test]
    fn counted_tables_follow_the_name_and_the_model_exceptions() {
        let count = |name: &str| ParamDef::new(name, ValueType::UnsignedInt);
        assert_eq!(counted_table(&count("MTPNumberOfEntries")), Some("MTP"));
        assert_eq!(
            counted_table(&count("ForwardNumberOfEntries")),
            Some("Forwarding")
        );
        assert_eq!(counted_table(&count("NumberOfEntries")), None);
        assert_eq!(
            counted_table(&ParamDef::new("XNumberOfEntries", ValueType::String)),
            None
        );
    }

    #[test]
    fn supported_path_replaces_instance_numbers() {
        assert_eq!(supported_path("Device.A.12.B.3.C"), "Device.A.{i}.B.{i}.C");
        assert_eq!(supported_path("Device.A."), "Device.A.");
    }
}
