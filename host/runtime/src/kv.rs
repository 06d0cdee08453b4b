//! The per-plugin persistent key-value store behind the `kv-*` host calls: one file per key in
//! `<state>/plugin-data/<plugin>/kv/`, named by the hex of the key (so no key can name a path),
//! written atomically, bounded in key size, value size and total size.

use std::path::{Path, PathBuf};

/// Longest key, in bytes.
pub const MAX_KEY: usize = 128;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Largest total of all values of one plugin, in bytes.
pub const MAX_TOTAL: u64 = 1024 * 1024;

/// Why a store operation failed (becomes a 7005 or 7003 fault for the plugin).
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// A bound was exceeded.
    #[error("key-value store: {0}")]
    TooLarge(String),
    /// The file system failed.
    #[error("key-value store: {0}")]
    Io(#[from] std::io::Error),
}

/// One plugin's store.
#[derive(Debug, Clone)]
pub struct KvStore {
    dir: PathBuf,
}

impl KvStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        KvStore { dir }
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(hex::encode(key.as_bytes()))
    }

    /// The value of `key`, if stored.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        if key.len() > MAX_KEY {
            return None;
        }
        std::fs::read(self.file(key)).ok()
    }

    /// Stores `value` under `key`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(KvError::TooLarge(format!(
                "key must be 1 to {MAX_KEY} bytes"
            )));
        }
        if value.len() > MAX_VALUE {
            return Err(KvError::TooLarge(format!(
                "value of {key:?} is {} bytes, at most {MAX_VALUE} allowed",
                value.len()
            )));
        }
        let file = self.file(key);
        let replaced = std::fs::metadata(&file).map_or(0, |meta| meta.len());
        let total = self.total()? - replaced + value.len() as u64;
        if total > MAX_TOTAL {
            return Err(KvError::TooLarge(format!(
                "store would hold {total} bytes, at most {MAX_TOTAL} allowed"
            )));
        }
        std::fs::create_dir_all(&self.dir)?;
        let partial = file.with_extension("partial");
        std::fs::write(&partial, value)?;
        std::fs::rename(&partial, &file)?;
        Ok(())
    }

    /// Removes `key`; a missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<(), KvError> {
        match std::fs::remove_file(self.file(key)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Removes every key (plugin uninstalled).
    pub fn wipe(&self) -> Result<(), KvError> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    fn total(&self) -> Result<u64, KvError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(err.into()),
        };
        Ok(entries
            .filter_map(|entry| entry.ok()?.metadata().ok())
            .map(|meta| meta.len())
            .sum())
    }

    /// The directory holding the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_a_new_store_on_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        KvStore::new(dir.path().join("kv"))
            .set("Enable", b"true")
            .unwrap();
        let reopened = KvStore::new(dir.path().join("kv"));
        assert_eq!(reopened.get("Enable").as_deref(), Some(&b"true"[..]));
        reopened.delete("Enable").unwrap();
        reopened.delete("Enable").unwrap();
        assert_eq!(reopened.get("Enable"), None);
    }

    #[test]
    fn keys_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::new(dir.path().join("kv"));
        store.set("../../etc/passwd", b"x").unwrap();
        assert!(!dir.path().join("etc").exists());
        assert_eq!(store.get("../../etc/passwd").as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn bounds_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::new(dir.path().to_path_buf());
        assert!(store.set(&"k".repeat(MAX_KEY + 1), b"").is_err());
        assert!(store.set("big", &vec![0; MAX_VALUE + 1]).is_err());
        for index in 0..16 {
            store
                .set(&format!("k{index}"), &vec![0; MAX_VALUE])
                .unwrap();
        }
        let error = store.set("one-more", &[0; 16]).unwrap_err();
        assert!(error.to_string().contains("at most"));
    }
}
