//! A [`MemoryProvider`]'s transaction: writes are staged in an overlay (values, table
//! membership, instance counters, a unique-key index of the staged rows) that readers do not
//! see; every check runs when a write is staged (unknown objects and parameters, duplicate
//! unique keys 7025), an Add generates the unique-key values it lacks (R-ADD.5), and the commit
//! applies the overlay to the store and reports the journal to the commit hook.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use usp_codec::UspErrorCode;

use super::keys::{Columns, KeyIndex};
use super::persist::StoredChange;
use super::store::{Store, defaults, supported_path};
use super::{MemoryProvider, error};
use crate::provider::{ParamValues, ProviderError, Transaction};
use crate::schema::{ObjectDef, ParamAccess};
use crate::value::ValueType;

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

impl MemoryProvider {
    pub(super) fn transaction(&self) -> MemoryTransaction {
        MemoryTransaction {
            provider: self.clone(),
            overlay: Overlay::default(),
            journal: Vec::new(),
        }
    }

    pub(super) fn commit_sync(&self, tx: MemoryTransaction) {
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

pub(super) struct MemoryTransaction {
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

    pub(super) fn set_sync(
        &mut self,
        object: &str,
        param: &str,
        value: &str,
    ) -> Result<(), ProviderError> {
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

    pub(super) fn add_sync(
        &mut self,
        table: &str,
        params: &ParamValues,
    ) -> Result<u32, ProviderError> {
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

    pub(super) fn delete_sync(&mut self, path: &str) -> Result<(), ProviderError> {
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
