//! Start-up state: restoring the stored tables from SQLite, or, on a first boot (no database,
//! a database moved aside as corrupt, or after `Device.FactoryReset()`), building them from
//! the factory-reset file (obuspa's files as they are: legacy parameter names are mapped to
//! Device:2.19, `Device.LocalAgent.EndpointID` and `Internal.Reboot.Cause` are honoured). Also
//! the boot cause reported by `Device.Boot!`.

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
    /// `Device.LocalAgent.EndpointID` as the factory-reset file gave it (absent when it gave
    /// none); rewritten on every fresh start.
    pub const FACTORY_ENDPOINT_ID: &str = "factory_endpoint_id";
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

/// A value a factory-reset file gives outside the stored tables, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    /// 1-based line number.
    pub line: usize,
    /// The value.
    pub value: String,
}

/// What a factory-reset file sets: the stored rows, and the values that live elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactoryDefaults {
    /// Rows to restore into the stored tables.
    pub rows: Snapshot,
    /// `Device.LocalAgent.EndpointID`: used when neither `USP_ENDPOINT_ID` nor
    /// `agent.endpoint_id` is set (see `Config::endpoint_id_with`).
    pub endpoint_id: Option<FileValue>,
    /// `Internal.Reboot.Cause`: the `Boot!` cause of the first boot when none was recorded.
    pub boot_cause: Option<FileValue>,
    /// Lines applied under another name than the file gives (their Device:2.19 name).
    pub notes: Vec<String>,
    /// Lines that cannot apply, each naming its line, path and why.
    pub problems: Vec<String>,
}

/// The causes `Device.Boot!` reports.
const BOOT_CAUSES: [&str; 4] = [
    "LocalReboot",
    "RemoteReboot",
    "LocalFactoryReset",
    "RemoteFactoryReset",
];

/// Why a path the stored tables do not hold cannot apply (see [`factory_defaults`]).
fn not_stored(path: &str, cache: &mut Vec<(String, Option<Schema>)>) -> String {
    if path.starts_with("Device.DeviceInfo.") {
        return "Device.DeviceInfo. values come from [device_info] in the config file".to_string();
    }
    if path.starts_with("Internal.") {
        return "an obuspa-internal setting with no meaning for this agent".to_string();
    }
    let top = path.split('.').take(2).collect::<Vec<_>>().join(".") + ".";
    let index = match cache.iter().position(|(name, _)| *name == top) {
        Some(index) => index,
        None => {
            let schema = usp_dm::tr181::schema(&top).ok();
            cache.push((top, schema));
            cache.len() - 1
        }
    };
    let in_model = path.rfind('.').is_some_and(|cut| {
        cache[index]
            .1
            .as_ref()
            .and_then(|schema| schema.object(&supported_path(&path[..=cut])))
            .is_some_and(|def| def.param(&path[cut + 1..]).is_some())
    });
    // `Device.LocalAgent.X`: a value of the object itself (UpTime, SoftwareVersion, ...).
    let own_value = path.starts_with("Device.LocalAgent.") && path.matches('.').count() == 2;
    if !in_model {
        "not a parameter of TR-181 Device:2.19".to_string()
    } else if own_value {
        "a value this agent computes, not a stored setting".to_string()
    } else {
        "a TR-181 2.19 parameter this agent does not store (a plugin serves it, or it is not implemented)".to_string()
    }
}

/// Turns factory-reset entries into what the agent starts from: renamed and deprecated
/// parameters (obuspa's files predate Device:2.19) are mapped to their 2.19 form first
/// ([`factory_reset::legacy`]); each value is checked against its parameter's type; every
/// instance on the way is created; `+` lines do not overwrite. `Device.LocalAgent.EndpointID`
/// and `Internal.Reboot.Cause` are taken aside. A line that cannot apply is reported with its
/// number, its path and the reason.
pub fn factory_defaults(entries: &[Entry], schema: &Schema) -> FactoryDefaults {
    let mut out = FactoryDefaults::default();
    let migrated = factory_reset::legacy::migrate(entries.to_vec());
    for note in migrated.notes {
        let line = format!("line {}: {} is {}", note.line, note.path, note.message);
        if note.applied {
            out.notes.push(line);
        } else {
            out.problems.push(line);
        }
    }
    let mut cache = Vec::new();
    let mut instances = BTreeSet::new();
    let mut params: Vec<(String, String)> = Vec::new();
    for entry in &migrated.entries {
        let aside = match entry.path.as_str() {
            "Device.LocalAgent.EndpointID" => Some(&mut out.endpoint_id),
            "Internal.Reboot.Cause" => Some(&mut out.boot_cause),
            _ => None,
        };
        if let Some(slot) = aside {
            let valid = match entry.path.as_str() {
                "Device.LocalAgent.EndpointID" => !entry.value.is_empty(),
                _ => BOOT_CAUSES.contains(&entry.value.as_str()),
            };
            if !valid {
                out.problems.push(format!(
                    "line {}: {} {:?} is not a usable value; not applied",
                    entry.line, entry.path, entry.value
                ));
            } else if !(entry.if_absent && slot.is_some()) {
                *slot = Some(FileValue {
                    line: entry.line,
                    value: entry.value.clone(),
                });
            }
            continue;
        }
        let Some(cut) = entry.path.rfind('.') else {
            out.problems.push(format!(
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
            out.problems.push(format!(
                "line {}: {} is {}; not applied",
                entry.line,
                entry.path,
                not_stored(&entry.path, &mut cache)
            ));
            continue;
        };
        if usp_dm::memory::counted_table(def).is_some() {
            // obuspa files never write these, but a dump of a running agent does: the count
            // follows the rows the file creates.
            out.notes.push(format!(
                "line {}: {} is counted from the rows, not set; ignored",
                entry.line, entry.path
            ));
            continue;
        }
        let value = match def.check(&entry.value) {
            Ok(value) => value,
            Err(error) => {
                out.problems.push(format!(
                    "line {}: {} {:?}: {error}; not applied",
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
    out.rows = Snapshot {
        instances: instances.into_iter().collect(),
        params,
        next_instance: Vec::new(),
    };
    out
}

/// The rows the built-in tables start from: what the store holds, or (when `fresh`) what the
/// factory-reset file gives, checked against `schema` (the schema of every stored table).
/// Problems with the file are logged, never fatal; on a restart from the store the file is not
/// read, so the returned [`FactoryDefaults`] holds the rows only.
pub fn initial_rows(
    store: &Store,
    schema: &Schema,
    fresh: bool,
    factory_file: Option<&Path>,
) -> Result<FactoryDefaults, BootError> {
    if !fresh {
        return Ok(FactoryDefaults {
            rows: store.load()?,
            ..FactoryDefaults::default()
        });
    }
    let Some(file) = factory_file else {
        return Ok(FactoryDefaults::default());
    };
    let text = std::fs::read_to_string(file).map_err(|source| BootError::FactoryFile {
        path: file.display().to_string(),
        source,
    })?;
    let parsed = factory_reset::parse(&text);
    for error in &parsed.errors {
        tracing::warn!(file = %file.display(), "factory-reset {error}; skipped");
    }
    let defaults = factory_defaults(&parsed.entries, schema);
    for note in &defaults.notes {
        tracing::info!(file = %file.display(), "factory-reset {note}");
    }
    for problem in &defaults.problems {
        tracing::warn!(file = %file.display(), "factory-reset {problem}");
    }
    tracing::info!(
        file = %file.display(),
        values = defaults.rows.params.len(),
        "applying factory-reset file"
    );
    Ok(defaults)
}

/// The Endpoint ID the factory-reset file gave, kept in the store so it outlives the first
/// boot: on a fresh start `from_file` replaces what was kept (a file without one clears it),
/// otherwise the kept one is returned.
pub fn factory_endpoint_id(
    store: &mut Store,
    fresh: bool,
    from_file: Option<&FileValue>,
) -> Result<Option<String>, StoreError> {
    if fresh {
        let value = from_file.map(|file| file.value.clone());
        store.set_meta(meta::FACTORY_ENDPOINT_ID, value.as_deref())?;
        return Ok(value);
    }
    store.meta(meta::FACTORY_ENDPOINT_ID)
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

/// Reads and clears the stored boot cause; without one the cause is, on a first boot, the
/// factory-reset file's `Internal.Reboot.Cause` (`file_cause`) or `LocalFactoryReset`, and
/// `LocalReboot` otherwise.
pub fn take_boot_cause(
    store: &mut Store,
    fresh: bool,
    file_cause: Option<&str>,
) -> Result<BootCause, StoreError> {
    let stored = store.meta(meta::BOOT_CAUSE)?;
    let cause = BootCause {
        cause: stored.unwrap_or_else(|| {
            match (fresh, file_cause) {
                (true, Some(cause)) => cause,
                (true, None) => "LocalFactoryReset",
                (false, _) => "LocalReboot",
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

    /// The schema of every stored table, as the agent builds it.
    fn schema() -> Schema {
        let mut schema =
            (*usp_dm::Provider::schema(&local_agent::tables(Arc::new(|_| {})).unwrap())).clone();
        for def in crate::builtin::standard_subtree(
            crate::builtin::controller_trust::CONTROLLER_TRUST,
            &[],
        )
        .unwrap()
        .objects()
        {
            schema.insert(def.clone());
        }
        schema
    }

    fn value_of(rows: &Snapshot, path: &str) -> Option<String> {
        rows.params
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
    }

    /// Loads an obuspa-style fixture and checks that every line applied.
    fn load_fixture(text: &str) -> FactoryDefaults {
        let parsed = factory_reset::parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let defaults = factory_defaults(&parsed.entries, &schema());
        assert!(
            defaults.problems.is_empty(),
            "lines that did not apply: {:#?}",
            defaults.problems
        );
        // Lines naming the same parameter (a legacy alias and its 2.19 name) share one value.
        let written: BTreeSet<String> = factory_reset::legacy::migrate(parsed.entries)
            .entries
            .into_iter()
            .map(|entry| entry.path)
            .filter(|path| !path.starts_with("Internal.") && path != "Device.LocalAgent.EndpointID")
            .collect();
        assert_eq!(
            defaults.rows.params.len(),
            written.len(),
            "every parameter line becomes a stored value"
        );
        defaults
    }

    #[test]
    fn obuspa_mqtt_reset_file_loads_every_line() {
        let defaults = load_fixture(include_str!("../testdata/obuspa/mqtt.txt"));
        assert_eq!(
            defaults
                .endpoint_id
                .as_ref()
                .map(|file| file.value.as_str()),
            Some("os::00D09E-GW0042")
        );
        assert_eq!(
            defaults.boot_cause.as_ref().map(|file| file.value.as_str()),
            Some("LocalFactoryReset")
        );
        assert_eq!(
            value_of(
                &defaults.rows,
                "Device.LocalAgent.Controller.1.MTP.1.MQTT.AgentMTPReference"
            )
            .as_deref(),
            Some("Device.LocalAgent.MTP.1")
        );
        assert!(
            defaults.notes.iter().any(|note| note.starts_with("line ")
                && note.contains("Device.LocalAgent.Controller.1.MTP.1.MQTT.Reference")),
            "{:?}",
            defaults.notes
        );
    }

    #[test]
    fn obuspa_stomp_reset_file_loads_every_line_with_the_vendor_encryption_name() {
        let defaults = load_fixture(include_str!("../testdata/obuspa/stomp.txt"));
        assert_eq!(
            value_of(&defaults.rows, "Device.STOMP.Connection.1.EnableEncryption").as_deref(),
            Some("false")
        );
        assert_eq!(
            value_of(
                &defaults.rows,
                "Device.LocalAgent.Controller.1.MTP.1.STOMP.Reference"
            )
            .as_deref(),
            Some("Device.STOMP.Connection.1")
        );
    }

    #[test]
    fn obuspa_websocket_reset_file_loads_every_line() {
        let defaults = load_fixture(include_str!("../testdata/obuspa/websocket.txt"));
        assert_eq!(
            value_of(
                &defaults.rows,
                "Device.LocalAgent.Controller.1.MTP.1.WebSocket.Port"
            )
            .as_deref(),
            Some("8080")
        );
        assert_eq!(
            defaults.endpoint_id.map(|file| file.value).as_deref(),
            Some("proto::gw0044")
        );
    }

    #[test]
    fn obuspa_uds_reset_file_loads_every_line() {
        let defaults = load_fixture(include_str!("../testdata/obuspa/uds.txt"));
        assert_eq!(
            value_of(
                &defaults.rows,
                "Device.LocalAgent.Controller.1.MTP.1.UDS.UnixDomainSocketRef"
            )
            .as_deref(),
            Some("Device.UnixDomainSockets.UnixDomainSocket.1")
        );
    }

    #[test]
    fn deleted_and_foreign_lines_are_reported_with_line_path_and_reason() {
        let parsed = factory_reset::parse(
            "Device.LocalAgent.MTP.1.CoAP.Port \"5683\"\n\
             Device.DeviceInfo.ProductClass \"gw\"\n\
             Device.LocalAgent.SoftwareVersion \"1.0\"\n\
             Device.MQTT.Client.1.CleanSession true\n\
             Device.Nonsense.Thing 1\n\
             Internal.Reboot.CommandKey \"k\"\n\
             Device.LocalAgent.EndpointID \"\"\n\
             Device.LocalAgent.Controller.1.E2ESession.SessionMode \"Allow\"\n",
        );
        let defaults = factory_defaults(&parsed.entries, &schema());
        let problems = &defaults.problems;
        assert_eq!(problems.len(), 8, "{problems:#?}");
        for (index, (path, reason)) in [
            ("Device.LocalAgent.MTP.1.CoAP.Port", "CoAP"),
            ("Device.DeviceInfo.ProductClass", "[device_info]"),
            ("Device.LocalAgent.SoftwareVersion", "computes"),
            ("Device.MQTT.Client.1.CleanSession", "does not store"),
            ("Device.Nonsense.Thing", "not a parameter of TR-181"),
            ("Internal.Reboot.CommandKey", "obuspa-internal"),
            ("Device.LocalAgent.EndpointID", "not a usable value"),
            (
                "Device.LocalAgent.Controller.1.E2ESession.SessionMode",
                "does not store",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let line = index + 1;
            let problem = problems
                .iter()
                .find(|problem| problem.starts_with(&format!("line {line}: {path}")))
                .unwrap_or_else(|| panic!("no problem for line {line}: {problems:#?}"));
            assert!(problem.contains(reason), "{problem}");
        }
        assert!(defaults.endpoint_id.is_none());
    }

    #[test]
    fn a_count_line_from_a_dump_is_ignored_with_a_note() {
        let parsed = factory_reset::parse(
            "Device.LocalAgent.Controller.1.MTPNumberOfEntries \"3\"\n\
             Device.LocalAgent.Controller.1.Enable true\n",
        );
        let defaults = factory_defaults(&parsed.entries, &schema());
        assert!(defaults.problems.is_empty(), "{:?}", defaults.problems);
        assert_eq!(defaults.rows.params.len(), 1);
        assert!(
            defaults.notes[0].starts_with("line 1: "),
            "{:?}",
            defaults.notes
        );
    }

    #[test]
    fn factory_endpoint_id_is_kept_until_the_next_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        let file = FileValue {
            line: 3,
            value: "os::file".into(),
        };
        assert_eq!(
            factory_endpoint_id(&mut store, true, Some(&file))
                .unwrap()
                .as_deref(),
            Some("os::file")
        );
        assert_eq!(
            factory_endpoint_id(&mut store, false, None)
                .unwrap()
                .as_deref(),
            Some("os::file")
        );
        assert_eq!(factory_endpoint_id(&mut store, true, None).unwrap(), None);
        assert_eq!(factory_endpoint_id(&mut store, false, None).unwrap(), None);
    }

    #[test]
    fn the_file_boot_cause_applies_to_a_fresh_start_without_a_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        assert_eq!(
            take_boot_cause(&mut store, true, Some("RemoteFactoryReset"))
                .unwrap()
                .cause,
            "RemoteFactoryReset"
        );
        assert_eq!(
            take_boot_cause(&mut store, false, Some("RemoteFactoryReset"))
                .unwrap()
                .cause,
            "LocalReboot"
        );
    }

    #[test]
    fn entries_create_instances_and_canonical_values() {
        let parsed = factory_reset::parse(
            "Device.LocalAgent.Controller.1.EndpointID \"self::ctl\"\n\
             Device.LocalAgent.Controller.1.Enable 1\n\
             Device.LocalAgent.Controller.1.MTP.2.Protocol \"MQTT\"\n\
             Internal.Reboot.Cause \"LocalFactoryReset\"\n",
        );
        let defaults = factory_defaults(&parsed.entries, &schema());
        assert!(defaults.problems.is_empty(), "{:?}", defaults.problems);
        let snapshot = defaults.rows;
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
        let snapshot = factory_defaults(&parsed.entries, &schema()).rows;
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
        let FactoryDefaults {
            rows: snapshot,
            problems,
            ..
        } = factory_defaults(&parsed.entries, &schema());
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
        let rows = initial_rows(&store, &schema(), opened.is_fresh(), Some(&file))
            .unwrap()
            .rows;
        restore(&tables, &rows);
        let endpoint = "Device.LocalAgent.Controller.3.EndpointID";
        assert_eq!(tables.value(endpoint).as_deref(), Some("self::c"));
        persist_fresh(&mut store, &tables.snapshot()).unwrap();
        let again = local_agent::tables(Arc::new(|_| {})).unwrap();
        restore(
            &again,
            &initial_rows(&store, &schema(), false, Some(&file))
                .unwrap()
                .rows,
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
        assert_eq!(take_boot_cause(&mut store, false, None).unwrap(), cause);
        assert_eq!(
            take_boot_cause(&mut store, false, None).unwrap().cause,
            "LocalReboot"
        );
        assert_eq!(
            take_boot_cause(&mut store, true, None).unwrap().cause,
            "LocalFactoryReset"
        );
    }
}
