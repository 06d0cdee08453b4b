//! The SQLite store under the state directory: the durable copy of the configuration the
//! data model holds in memory. It is read once at boot and written once per committed message,
//! in one SQLite transaction, never per parameter.
//!
//! Durability: WAL with `synchronous=FULL`, so every committed transaction's WAL frames are
//! fsynced before [`Store::commit`] returns; a power loss right after a USP response cannot lose
//! the change it acknowledged. (`synchronous=NORMAL` would skip that fsync and may roll back the
//! last transactions on power loss; it is not used.)
//!
//! Besides the configuration it keeps the Notifys of persistent subscriptions that still wait
//! for their NotifyResp ([`StoredNotify`]), so their retries go on after a restart.
//!
//! A database that cannot be opened or fails `PRAGMA quick_check` is moved aside as
//! `agent.db.corrupt-<unix-seconds>` and rebuilt empty, with an error log line; the caller then
//! applies the factory-reset file as on a first boot.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use usp_dm::{Snapshot, StoredChange};

/// Layout version of the tables below; a database with another version is treated as corrupt.
const SCHEMA_VERSION: i64 = 1;

/// A store failure. Reported at boot (fatal) or logged after a commit (see the actor).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file operation (creating the state directory, moving a corrupt database) failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// How [`Store::open`] found the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// There was no database: first boot.
    Created,
    /// An existing, healthy database.
    Existing,
    /// The database was unusable and was moved to `moved_to`; a new, empty one was created.
    Recovered {
        /// Where the unusable file now is.
        moved_to: PathBuf,
        /// Why it was unusable.
        reason: String,
    },
}

impl Opened {
    /// True when the store starts empty and factory defaults must be applied.
    pub fn is_fresh(&self) -> bool {
        !matches!(self, Opened::Existing)
    }
}

/// A sent Notify that waits for its NotifyResp (see `crate::notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotify {
    /// The Notify's msg_id, which its retries keep.
    pub msg_id: String,
    /// The Recipient's row (`Device.LocalAgent.Controller.1`).
    pub recipient: String,
    /// The Recipient's Endpoint ID.
    pub endpoint_id: String,
    /// The encoded Msg.
    pub msg: Vec<u8>,
    /// Retries sent so far.
    pub retries: u32,
    /// When to stop retrying (Unix seconds), from `NotifExpiration`; `None`: never.
    pub give_up: Option<i64>,
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating the directory and file if needed) the database at `path`; an unusable
    /// database is moved aside and replaced.
    pub fn open(path: &Path) -> Result<(Store, Opened), StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                action: "create directory",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let existed = path.exists();
        match Store::open_checked(path) {
            Ok(store) if existed => Ok((store, Opened::Existing)),
            Ok(store) => Ok((store, Opened::Created)),
            Err(reason) => {
                let moved_to = move_aside(path)?;
                tracing::error!(
                    database = %path.display(),
                    moved_to = %moved_to.display(),
                    %reason,
                    "database is unusable; moved it aside and starting from factory defaults"
                );
                let store = Store::open_checked(path).map_err(|source| StoreError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok((
                    store,
                    Opened::Recovered {
                        moved_to,
                        reason: reason.to_string(),
                    },
                ))
            }
        }
    }

    fn open_checked(path: &Path) -> Result<Store, rusqlite::Error> {
        let conn = Connection::open(path)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        if check != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("quick_check: {check}")),
            ));
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS instances (path TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS params (path TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS counters (path TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS pending_notifys (msg_id TEXT PRIMARY KEY, recipient TEXT NOT NULL,
                 endpoint_id TEXT NOT NULL, msg BLOB NOT NULL, retries INTEGER NOT NULL,
                 give_up INTEGER) WITHOUT ROWID;",
        )?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(version) if version == SCHEMA_VERSION.to_string() => {}
            Some(version) => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(format!("unknown store schema version {version}")),
                ));
            }
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Reads everything the store holds.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let read = || -> Result<Snapshot, rusqlite::Error> {
            let mut snapshot = Snapshot::default();
            let mut stmt = self
                .conn
                .prepare("SELECT path FROM instances ORDER BY path")?;
            for row in stmt.query_map([], |row| row.get(0))? {
                snapshot.instances.push(row?);
            }
            let mut stmt = self
                .conn
                .prepare("SELECT path, value FROM params ORDER BY path")?;
            for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
                snapshot.params.push(row?);
            }
            let mut stmt = self
                .conn
                .prepare("SELECT path, next FROM counters ORDER BY path")?;
            for row in stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
                snapshot.next_instance.push(row?);
            }
            Ok(snapshot)
        };
        read().map_err(|source| self.error(source))
    }

    /// Writes one committed change set in one transaction (one fsync).
    pub fn commit(&mut self, changes: &[StoredChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let write = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            apply(&tx, changes)?;
            tx.commit()
        };
        write(&mut self.conn).map_err(|source| StoreError::Sqlite { path, source })
    }

    /// Replaces everything with `snapshot` in one transaction (first boot, factory reset).
    pub fn replace_all(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let path = self.path.clone();
        let write = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            tx.execute_batch(
                "DELETE FROM instances; DELETE FROM params; DELETE FROM counters;
                 DELETE FROM pending_notifys;",
            )?;
            {
                let mut instance = tx.prepare_cached("INSERT INTO instances (path) VALUES (?1)")?;
                for path in &snapshot.instances {
                    instance.execute(params![path])?;
                }
                let mut param =
                    tx.prepare_cached("INSERT INTO params (path, value) VALUES (?1, ?2)")?;
                for (path, value) in &snapshot.params {
                    param.execute(params![path, value])?;
                }
                let mut counter =
                    tx.prepare_cached("INSERT INTO counters (path, next) VALUES (?1, ?2)")?;
                for (path, next) in &snapshot.next_instance {
                    counter.execute(params![path, next])?;
                }
            }
            tx.commit()
        };
        write(&mut self.conn).map_err(|source| StoreError::Sqlite { path, source })
    }

    /// Writes (insert or replace) `saved` and deletes the Notifys whose msg_ids are in
    /// `removed`, in one transaction.
    pub fn save_notifys(
        &mut self,
        saved: &[StoredNotify],
        removed: &[String],
    ) -> Result<(), StoreError> {
        if saved.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let write = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            {
                let mut save = tx.prepare_cached(
                    "INSERT OR REPLACE INTO pending_notifys
                     (msg_id, recipient, endpoint_id, msg, retries, give_up)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for notify in saved {
                    save.execute(params![
                        notify.msg_id,
                        notify.recipient,
                        notify.endpoint_id,
                        notify.msg,
                        notify.retries,
                        notify.give_up
                    ])?;
                }
                let mut remove =
                    tx.prepare_cached("DELETE FROM pending_notifys WHERE msg_id = ?1")?;
                for msg_id in removed {
                    remove.execute(params![msg_id])?;
                }
            }
            tx.commit()
        };
        write(&mut self.conn).map_err(|source| StoreError::Sqlite { path, source })
    }

    /// Every stored Notify that waits for its NotifyResp, by msg_id.
    pub fn pending_notifys(&self) -> Result<Vec<StoredNotify>, StoreError> {
        let read = || -> Result<Vec<StoredNotify>, rusqlite::Error> {
            let mut stmt = self.conn.prepare(
                "SELECT msg_id, recipient, endpoint_id, msg, retries, give_up
                 FROM pending_notifys ORDER BY msg_id",
            )?;
            stmt.query_map([], |row| {
                Ok(StoredNotify {
                    msg_id: row.get(0)?,
                    recipient: row.get(1)?,
                    endpoint_id: row.get(2)?,
                    msg: row.get(3)?,
                    retries: row.get(4)?,
                    give_up: row.get(5)?,
                })
            })?
            .collect()
        };
        read().map_err(|source| self.error(source))
    }

    /// Removes every instance, parameter, counter and pending Notify (factory reset), in one
    /// transaction.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.replace_all(&Snapshot::default())
    }

    /// Reads an agent-internal value (boot cause, pending timers).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| self.error(source))
    }

    /// Writes (or with `None`, removes) an agent-internal value, durably.
    pub fn set_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        let result = match value {
            Some(value) => self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            ),
            None => self
                .conn
                .execute("DELETE FROM meta WHERE key = ?1", params![key]),
        };
        result.map(|_| ()).map_err(|source| self.error(source))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Applies changes inside an open transaction.
fn apply(tx: &rusqlite::Transaction<'_>, changes: &[StoredChange]) -> Result<(), rusqlite::Error> {
    let mut set = tx.prepare_cached(
        "INSERT INTO params (path, value) VALUES (?1, ?2)
         ON CONFLICT(path) DO UPDATE SET value = excluded.value",
    )?;
    let mut create = tx.prepare_cached("INSERT OR IGNORE INTO instances (path) VALUES (?1)")?;
    let mut counter = tx.prepare_cached(
        "INSERT INTO counters (path, next) VALUES (?1, ?2)
         ON CONFLICT(path) DO UPDATE SET next = excluded.next",
    )?;
    let mut delete = [
        tx.prepare_cached("DELETE FROM params WHERE path >= ?1 AND path < ?2")?,
        tx.prepare_cached("DELETE FROM instances WHERE path >= ?1 AND path < ?2")?,
        tx.prepare_cached("DELETE FROM counters WHERE path >= ?1 AND path < ?2")?,
    ];
    for change in changes {
        match change {
            StoredChange::ParamSet { path, value } => {
                set.execute(params![path, value])?;
            }
            StoredChange::ObjectAdded {
                path,
                next_instance,
            } => {
                create.execute(params![path])?;
                counter.execute(params![table_of(path), next_instance])?;
            }
            StoredChange::ObjectDeleted { path } => {
                let end = prefix_end(path);
                for statement in &mut delete {
                    statement.execute(params![path, end])?;
                }
            }
        }
    }
    Ok(())
}

/// The table path of an instance path: `Device.A.3.` → `Device.A.`.
fn table_of(instance: &str) -> &str {
    let trimmed = instance.trim_end_matches('.');
    match trimmed.rfind('.') {
        Some(cut) => &instance[..=cut],
        None => instance,
    }
}

/// The smallest string greater than every string starting with `prefix` (`prefix` ends in `.`;
/// `/` is the character after `.`).
fn prefix_end(prefix: &str) -> String {
    match prefix.strip_suffix('.') {
        Some(stem) => format!("{stem}/"),
        None => format!("{prefix}\u{10FFFF}"),
    }
}

/// Moves `path` and its WAL/SHM side files to `<path>.corrupt-<unix-seconds>`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let mut target = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    let mut counter = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.corrupt-{stamp}-{counter}", path.display()));
        counter += 1;
    }
    std::fs::rename(path, &target).map_err(|source| StoreError::Io {
        action: "move aside corrupt database",
        path: path.to_path_buf(),
        source,
    })?;
    for side in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{side}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{side}", target.display()));
            std::fs::rename(&from, &to).map_err(|source| StoreError::Io {
                action: "move aside corrupt database side file",
                path: from.clone(),
                source,
            })?;
        }
    }
    Ok(target)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    fn set(path: &str, value: &str) -> StoredChange {
        StoredChange::ParamSet {
            path: path.into(),
            value: value.into(),
        }
    }

    fn added(path: &str, next_instance: u32) -> StoredChange {
        StoredChange::ObjectAdded {
            path: path.into(),
            next_instance,
        }
    }

    #[test]
    fn first_open_creates_and_second_open_finds_existing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/agent.db");
        let (_, opened) = Store::open(&db).unwrap();
        assert_eq!(opened, Opened::Created);
        let (_, opened) = Store::open(&db).unwrap();
        assert_eq!(opened, Opened::Existing);
    }

    #[test]
    fn committed_changes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agent.db");
        {
            let (mut store, _) = Store::open(&db).unwrap();
            store
                .commit(&[
                    added("Device.A.1.", 2),
                    set("Device.A.1.Name", "x"),
                    set("Device.A.1.Name", "y"),
                    added("Device.A.2.", 3),
                    set("Device.A.2.Name", "z"),
                ])
                .unwrap();
        }
        let (store, _) = Store::open(&db).unwrap();
        assert_eq!(
            store.load().unwrap(),
            Snapshot {
                instances: vec!["Device.A.1.".into(), "Device.A.2.".into()],
                params: vec![
                    ("Device.A.1.Name".into(), "y".into()),
                    ("Device.A.2.Name".into(), "z".into())
                ],
                next_instance: vec![("Device.A.".into(), 3)],
            }
        );
    }

    #[test]
    fn delete_removes_the_subtree_only() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        store
            .commit(&[
                added("Device.A.1.", 2),
                added("Device.A.1.B.1.", 2),
                set("Device.A.1.B.1.X", "1"),
                added("Device.A.10.", 11),
                set("Device.A.10.X", "10"),
                set("Device.A.1X", "sibling"),
            ])
            .unwrap();
        store
            .commit(&[StoredChange::ObjectDeleted {
                path: "Device.A.1.".into(),
            }])
            .unwrap();
        let snapshot = store.load().unwrap();
        assert_eq!(snapshot.instances, vec!["Device.A.10.".to_string()]);
        assert_eq!(
            snapshot.params,
            vec![
                ("Device.A.10.X".to_string(), "10".to_string()),
                ("Device.A.1X".to_string(), "sibling".to_string())
            ]
        );
        assert_eq!(snapshot.next_instance, vec![("Device.A.".to_string(), 11)]);
    }

    #[test]
    fn replace_all_swaps_the_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        store
            .commit(&[added("Device.A.1.", 2), set("Device.A.1.X", "old")])
            .unwrap();
        let snapshot = Snapshot {
            instances: vec!["Device.B.7.".into()],
            params: vec![("Device.B.7.Y".into(), "new".into())],
            next_instance: vec![("Device.B.".into(), 8)],
        };
        store.replace_all(&snapshot).unwrap();
        assert_eq!(store.load().unwrap(), snapshot);
    }

    #[test]
    fn garbage_file_is_moved_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agent.db");
        std::fs::write(
            &db,
            b"this is not an sqlite database, just some text padding it out",
        )
        .unwrap();
        let (store, opened) = Store::open(&db).unwrap();
        let Opened::Recovered { moved_to, .. } = opened else {
            panic!("expected recovery, got {opened:?}");
        };
        assert!(moved_to.exists());
        assert!(moved_to.to_string_lossy().contains("agent.db.corrupt-"));
        assert_eq!(store.load().unwrap(), Snapshot::default());
        let (_, opened) = Store::open(&db).unwrap();
        assert_eq!(opened, Opened::Existing);
    }

    #[test]
    fn unknown_schema_version_is_treated_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agent.db");
        {
            let (mut store, _) = Store::open(&db).unwrap();
            store.set_meta("schema_version", Some("99")).unwrap();
        }
        let (_, opened) = Store::open(&db).unwrap();
        assert!(matches!(opened, Opened::Recovered { .. }), "{opened:?}");
    }

    fn stored_notify(msg_id: &str, give_up: Option<i64>) -> StoredNotify {
        StoredNotify {
            msg_id: msg_id.into(),
            recipient: "Device.LocalAgent.Controller.1".into(),
            endpoint_id: "self::ctl".into(),
            msg: vec![0x0a, 0x00, 0xff],
            retries: 2,
            give_up,
        }
    }

    #[test]
    fn pending_notifys_survive_reopen_until_removed_or_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("agent.db");
        {
            let (mut store, _) = Store::open(&db).unwrap();
            store
                .save_notifys(
                    &[stored_notify("n-1", None), stored_notify("n-2", Some(99))],
                    &[],
                )
                .unwrap();
            let mut again = stored_notify("n-1", None);
            again.retries = 3;
            store.save_notifys(&[again], &["n-2".into()]).unwrap();
        }
        let (mut store, _) = Store::open(&db).unwrap();
        let mut expected = stored_notify("n-1", None);
        expected.retries = 3;
        assert_eq!(store.pending_notifys().unwrap(), vec![expected]);
        store.clear().unwrap();
        assert!(store.pending_notifys().unwrap().is_empty());
    }

    #[test]
    fn clear_empties_data_but_keeps_meta() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        store.commit(&[set("Device.X", "1")]).unwrap();
        store
            .set_meta("boot_cause", Some("RemoteFactoryReset"))
            .unwrap();
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), Snapshot::default());
        assert_eq!(
            store.meta("boot_cause").unwrap().as_deref(),
            Some("RemoteFactoryReset")
        );
    }

    #[test]
    fn store_runs_in_wal_mode_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("agent.db")).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2);
    }
}
