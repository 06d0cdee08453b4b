//! Start-up state: restoring the stored tables from SQLite, or, on a first boot (no database,
//! a database moved aside as corrupt, or after `Device.FactoryReset()`), building them from
//! the factory-reset file. Also the boot cause reported by `Device.Boot!`.

use std::collections::BTreeSet;
use std::path::Path;

use usp_dm::memory::supported_path;
use usp_dm::{MemoryProvider, Schema, Snapshot};

use crate::factory_reset::{self, Entry};
use crate::store::{Store, StoreError};

/// Meta keys in the store (agent-internal values).
pub(crate) mod meta {
    /// Cause of the next boot, written before a reboot or factory reset.
    pub const BOOT_CAUSE: &str = "boot_cause";
    /// Command key of the Reboot()/FactoryReset() that caused the next boot.
    pub const BOOT_COMMAND_KEY: &str = "boot_command_key";
    /// Reason given to Reboot()/FactoryReset().
    pub const BOOT_REASON: &str = "boot_reason";
    /// Set by FactoryReset(): the next boot starts from factory defaults.
    pub const FACTORY_RESET_PENDING: &str = "factory_reset_pending";
    /// The config file's `[[mtp]]` tables (JSON) as last written into the MTP rows.
    pub const MTP_SEED: &str = "mtp_seed";
}

/// Why start-up state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured factory-reset file could not be read.
    #[error("cannot read factory-reset file {path}: {source}")]
    FactoryFile {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// Why the agent (re)started, as reported by `Device.Boot!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootCause {
    /// `LocalReboot`, `RemoteReboot`, `LocalFactoryReset`, `RemoteFactoryReset`.
    pub cause: String,
    /// The command key of the Operate that caused it ("" otherwise).
    pub command_key: String,
    /// The reason given to that Operate ("" otherwise).
    pub reason: String,
}

/// Turns factory-reset entries into the rows to restore into `schema`'s provider: each value
/// is checked against its parameter's type, every instance on the way is created, `+` lines
/// do not overwrite. Entries that do not fit are returned as messages naming their line.
pub fn factory_snapshot(entries: &[Entry], schema: &Schema) -> (Snapshot, Vec<String>) {
    let mut problems = Vec::new();
    let mut instances = BTreeSet::new();
    let mut params: Vec<(String, String)> = Vec::new();
    for entry in entries {
        if entry.internal() {
            continue;
        }
        let Some(cut) = entry.path.rfind('.') else {
            problems.push(format!(
                "line {}: {} is not a parameter path",
                entry.line, entry.path
            ));
            continue;
        };
        let (object, name) = (&entry.path[..=cut], &entry.path[cut + 1..]);
        let Some(def) = schema
            .object(&supported_path(object))
            .and_then(|def| def.param(name))
        else {
            problems.push(format!(
                "line {}: {} is not a stored parameter of this agent; skipped",
                entry.line, entry.path
            ));
            continue;
        };
        let value = match def.check(&entry.value) {
            Ok(value) => value,
            Err(error) => {
                problems.push(format!(
                    "line {}: {} {:?}: {error}; skipped",
                    entry.line, entry.path, entry.value
                ));
                continue;
            }
        };
        let existing = params.iter().position(|(path, _)| *path == entry.path);
        match (existing, entry.if_absent) {
            (Some(_), true) => continue,
            (Some(at), false) => params[at].1 = value,
            (None, _) => params.push((entry.path.clone(), value)),
        }
        let mut prefix = String::new();
        for part in object.split_inclusive('.') {
            prefix.push_str(part);
            let bare = part.trim_end_matches('.');
            if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
                instances.insert(prefix.clone());
            }
        }
    }
    let snapshot = Snapshot {
        instances: instances.into_iter().collect(),
        params,
        next_instance: Vec::new(),
    };
    (snapshot, problems)
}

/// The rows the built-in tables start from: what the store holds, or (when `fresh`) the
/// factory-reset file's rows checked against `schema` (the schema of every stored table).
/// Problems with the file are logged, never fatal.
pub fn initial_rows(
    store: &Store,
    schema: &Schema,
    fresh: bool,
    factory_file: Option<&Path>,
) -> Result<Snapshot, BootError> {
    if !fresh {
        return Ok(store.load()?);
    }
    let Some(file) = factory_file else {
        return Ok(Snapshot::default());
    };
    let text = std::fs::read_to_string(file).map_err(|source| BootError::FactoryFile {
        path: file.display().to_string(),
        source,
    })?;
    let parsed = factory_reset::parse(&text);
    for error in &parsed.errors {
        tracing::warn!(file = %file.display(), "factory-reset {error}; skipped");
    }
    let (snapshot, problems) = factory_snapshot(&parsed.entries, schema);
    for problem in problems {
        tracing::warn!(file = %file.display(), "factory-reset {problem}");
    }
    tracing::info!(
        file = %file.display(),
        values = snapshot.params.len(),
        "applying factory-reset file"
    );
    Ok(snapshot)
}

/// Splits rows into those under `prefix` and the rest.
pub fn split(snapshot: Snapshot, prefix: &str) -> (Snapshot, Snapshot) {
    let mut inside = Snapshot::default();
    let mut outside = Snapshot::default();
    for path in snapshot.instances {
        let part = if path.starts_with(prefix) {
            &mut inside
        } else {
            &mut outside
        };
        part.instances.push(path);
    }
    for (path, value) in snapshot.params {
        let part = if path.starts_with(prefix) {
            &mut inside
        } else {
            &mut outside
        };
        part.params.push((path, value));
    }
    for (path, next) in snapshot.next_instance {
        let part = if path.starts_with(prefix) {
            &mut inside
        } else {
            &mut outside
        };
        part.next_instance.push((path, next));
    }
    (inside, outside)
}

/// Loads rows into a memory provider, logging what no longer fits its schema.
pub fn restore(provider: &MemoryProvider, rows: &Snapshot) {
    for path in provider.restore(rows).skipped {
        tracing::warn!(%path, "stored value does not fit the data model; ignored");
    }
}

/// After a fresh start, makes the store hold exactly `rows` (one transaction) and clears the
/// pending factory-reset mark.
pub fn persist_fresh(store: &mut Store, rows: &Snapshot) -> Result<(), StoreError> {
    store.replace_all(rows)?;
    store.set_meta(meta::FACTORY_RESET_PENDING, None)
}

/// Joins row sets (disjoint subtrees).
pub fn join(parts: impl IntoIterator<Item = Snapshot>) -> Snapshot {
    let mut all = Snapshot::default();
    for part in parts {
        all.instances.extend(part.instances);
        all.params.extend(part.params);
        all.next_instance.extend(part.next_instance);
    }
    all
}

/// Reads and clears the stored boot cause; without one the cause is `LocalFactoryReset` on a
/// first boot and `LocalReboot` otherwise.
pub fn take_boot_cause(store: &mut Store, fresh: bool) -> Result<BootCause, StoreError> {
    let stored = store.meta(meta::BOOT_CAUSE)?;
    let cause = BootCause {
        cause: stored.unwrap_or_else(|| {
            if fresh {
                "LocalFactoryReset"
            } else {
                "LocalReboot"
            }
            .to_string()
        }),
        command_key: store.meta(meta::BOOT_COMMAND_KEY)?.unwrap_or_default(),
        reason: store.meta(meta::BOOT_REASON)?.unwrap_or_default(),
    };
    for key in [meta::BOOT_CAUSE, meta::BOOT_COMMAND_KEY, meta::BOOT_REASON] {
        store.set_meta(key, None)?;
    }
    Ok(cause)
}

/// Records why the next boot happens (before a reboot or factory reset).
pub fn record_boot_cause(store: &mut Store, cause: &BootCause) -> Result<(), StoreError> {
    store.set_meta(meta::BOOT_CAUSE, Some(&cause.cause))?;
    store.set_meta(meta::BOOT_COMMAND_KEY, Some(&cause.command_key))?;
    store.set_meta(meta::BOOT_REASON, Some(&cause.reason))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::builtin::local_agent;
    use std::sync::Arc;

    fn schema() -> Schema {
        (*usp_dm::Provider::schema(&local_agent::tables(Arc::new(|_| {})).unwrap())).clone()
    }

    #[test]
    fn entries_create_instances_and_canonical_values() {
        let parsed = factory_reset::parse(
            "Device.LocalAgent.Controller.1.EndpointID \"self::ctl\"\n\
             Device.LocalAgent.Controller.1.Enable 1\n\
             Device.LocalAgent.Controller.1.MTP.2.Protocol \"MQTT\"\n\
             Internal.Reboot.Cause \"LocalFactoryReset\"\n",
        );
        let (snapshot, problems) = factory_snapshot(&parsed.entries, &schema());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            snapshot.instances,
            vec![
                "Device.LocalAgent.Controller.1.".to_string(),
                "Device.LocalAgent.Controller.1.MTP.2.".to_string()
            ]
        );
        assert!(snapshot.params.contains(&(
            "Device.LocalAgent.Controller.1.Enable".to_string(),
            "true".to_string()
        )));
    }

    #[test]
    fn plus_lines_do_not_overwrite_and_plain_lines_do() {
        let parsed = factory_reset::parse(
            "Device.LocalAgent.Controller.1.Alias \"first\"\n\
             +Device.LocalAgent.Controller.1.Alias \"second\"\n\
             Device.LocalAgent.Controller.1.EndpointID \"a\"\n\
             Device.LocalAgent.Controller.1.EndpointID \"b\"\n",
        );
        let (snapshot, _) = factory_snapshot(&parsed.entries, &schema());
        let value = |path: &str| {
            snapshot
                .params
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            value("Device.LocalAgent.Controller.1.Alias").as_deref(),
            Some("first")
        );
        assert_eq!(
            value("Device.LocalAgent.Controller.1.EndpointID").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn unknown_paths_and_bad_values_are_reported_with_their_line() {
        let parsed = factory_reset::parse(
            "Device.WiFi.Radio.1.Enable \"x\"\n\
             Device.LocalAgent.Controller.1.Enable \"maybe\"\n",
        );
        let (snapshot, problems) = factory_snapshot(&parsed.entries, &schema());
        assert!(snapshot.params.is_empty());
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].starts_with("line 1: Device.WiFi.Radio.1.Enable"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("line 2: Device.LocalAgent.Controller.1.Enable"),
            "{problems:?}"
        );
    }

    #[test]
    fn first_boot_applies_the_file_and_later_boots_read_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("factory.txt");
        std::fs::write(
            &file,
            "Device.LocalAgent.Controller.3.EndpointID \"self::c\"\n",
        )
        .unwrap();
        let (mut store, opened) = Store::open(&dir.path().join("agent.db")).unwrap();
        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        let rows = initial_rows(&store, &schema(), opened.is_fresh(), Some(&file)).unwrap();
        restore(&tables, &rows);
        let endpoint = "Device.LocalAgent.Controller.3.EndpointID";
        assert_eq!(tables.value(endpoint).as_deref(), Some("self::c"));
        persist_fresh(&mut store, &tables.snapshot()).unwrap();
        let again = local_agent::tables(Arc::new(|_| {})).unwrap();
        restore(
            &again,
            &initial_rows(&store, &schema(), false, Some(&file)).unwrap(),
        );
        assert_eq!(again.value(endpoint).as_deref(), Some("self::c"));
    }

    #[test]
    fn split_and_join_partition_rows_by_prefix() {
        let rows = Snapshot {
            instances: vec!["Device.A.1.".into(), "Device.B.1.".into()],
            params: vec![
                ("Device.A.1.X".into(), "1".into()),
                ("Device.B.1.Y".into(), "2".into()),
            ],
            next_instance: vec![("Device.A.".into(), 2)],
        };
        let (a, rest) = split(rows.clone(), "Device.A.");
        assert_eq!(a.instances, vec!["Device.A.1.".to_string()]);
        assert_eq!(
            rest.params,
            vec![("Device.B.1.Y".to_string(), "2".to_string())]
        );
        let mut joined = join([a, rest]);
        joined.instances.sort();
        assert_eq!(joined.instances, rows.instances);
    }

    #[test]
    fn boot_cause_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        let cause = BootCause {
            cause: "RemoteReboot".into(),
            command_key: "k".into(),
            reason: "r".into(),
        };
        record_boot_cause(&mut store, &cause).unwrap();
        assert_eq!(take_boot_cause(&mut store, false).unwrap(), cause);
        assert_eq!(
            take_boot_cause(&mut store, false).unwrap().cause,
            "LocalReboot"
        );
        assert_eq!(
            take_boot_cause(&mut store, true).unwrap().cause,
            "LocalFactoryReset"
        );
    }
}
