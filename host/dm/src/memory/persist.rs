//! Persistence of a [`MemoryProvider`]: the rows each commit reports to the commit hook
//! ([`StoredChange`]), which paths stay out of it (volatile), and loading ([`Snapshot`],
//! [`MemoryProvider::restore`]) or dumping ([`MemoryProvider::snapshot`]) the whole state.

use std::sync::Arc;

use super::MemoryProvider;
use super::counts::counted_table;
use super::store::{Store, create_instance, supported_path};

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

impl MemoryProvider {
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
    pub(super) fn is_volatile(&self, change: &StoredChange) -> bool {
        let path = change.path();
        self.inner
            .volatile
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
            || (matches!(change, StoredChange::ParamSet { .. })
                && !self.inner.volatile_params.is_empty()
                && self.inner.volatile_params.contains(&supported_path(path)))
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
