//! The plugin manifest (`manifest.toml` next to the `.wasm`): name, component file, claimed
//! subtrees, grants and limits. Parsed with serde; unknown keys are errors so a typo never
//! silently drops a limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::RuntimeError;

/// Default linear-memory cap of a plugin instance.
pub const DEFAULT_MEMORY: u64 = 16 * 1024 * 1024;
/// Default per-call deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique plugin name (`[a-z0-9-]`), used in logs, errors and the key-value store.
    pub name: String,
    /// The component file, relative to the manifest's directory.
    pub wasm: PathBuf,
    /// Supported-DM object paths (ending in `.`) whose subtrees the plugin serves.
    pub claims: Vec<String>,
    /// Capabilities requested; each must also be approved by the agent's configuration.
    #[serde(default)]
    pub grants: Grants,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Capabilities a plugin asks for. Nothing is granted by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host directories preopened read-only.
    #[serde(default)]
    pub preopens: Vec<Preopen>,
    /// Environment variables visible to the plugin.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Configuration values readable with the `config-get` host call.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// A read-only preopened directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preopen {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the plugin sees.
    pub guest: String,
}

/// Resource limits of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Maximum size of each linear memory, in bytes.
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// Per-call deadline in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

fn default_memory() -> u64 {
    DEFAULT_MEMORY
}

fn default_deadline_ms() -> u64 {
    DEFAULT_DEADLINE.as_millis() as u64
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            deadline_ms: default_deadline_ms(),
        }
    }
}

impl Limits {
    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

impl Manifest {
    /// Parses manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, RuntimeError> {
        let error = |message: String| RuntimeError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let manifest: Manifest =
            toml::from_str(text).map_err(|source| RuntimeError::ManifestSyntax {
                path: path.to_path_buf(),
                source,
            })?;
        if manifest.name.is_empty()
            || !manifest
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(error(format!(
                "name {:?} must be non-empty and use only a-z, 0-9 and '-'",
                manifest.name
            )));
        }
        if manifest.claims.is_empty() {
            return Err(error("claims: at least one subtree must be claimed".into()));
        }
        for claim in &manifest.claims {
            if !claim.starts_with("Device.") || !claim.ends_with('.') || claim.contains("..") {
                return Err(error(format!(
                    "claims: {claim:?} is not an object path under Device. ending in '.'"
                )));
            }
        }
        if manifest.limits.deadline_ms == 0 || manifest.limits.memory == 0 {
            return Err(error(
                "limits: memory and deadline_ms must be positive".into(),
            ));
        }
        Ok(manifest)
    }

    /// Reads and parses `<dir>/manifest.toml`.
    pub fn read_dir(dir: &Path) -> Result<Manifest, RuntimeError> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| RuntimeError::ManifestRead {
            path: path.clone(),
            source,
        })?;
        Manifest::parse(&text, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, RuntimeError> {
        Manifest::parse(text, Path::new("m.toml"))
    }

    #[test]
    fn full_manifest_parses_with_grants_and_limits() {
        let manifest = parse(
            r#"
            name = "net"
            wasm = "net.wasm"
            claims = ["Device.IP."]
            [grants]
            preopens = [{ host = "/proc", guest = "/proc" }]
            env = { TZ = "UTC" }
            config = { mode = "fast" }
            [limits]
            memory = 1048576
            deadline_ms = 250
            "#,
        )
        .unwrap();
        assert_eq!(manifest.grants.preopens[0].guest, "/proc");
        assert_eq!(manifest.grants.env["TZ"], "UTC");
        assert_eq!(manifest.limits.deadline(), Duration::from_millis(250));
    }

    #[test]
    fn defaults_grant_nothing_and_apply_default_limits() {
        let manifest =
            parse("name = \"t\"\nwasm = \"t.wasm\"\nclaims = [\"Device.Time.\"]\n").unwrap();
        assert_eq!(manifest.grants, Grants::default());
        assert_eq!(manifest.limits, Limits::default());
    }

    #[test]
    fn unknown_keys_and_bad_claims_are_rejected_with_the_field() {
        let typo = parse(
            "name = \"t\"\nwasm = \"t.wasm\"\nclaims = [\"Device.Time.\"]\n[limits]\nmemroy = 1\n",
        );
        assert!(typo.unwrap_err().to_string().contains("memroy"));
        let claim = parse("name = \"t\"\nwasm = \"t.wasm\"\nclaims = [\"Time\"]\n");
        assert!(claim.unwrap_err().to_string().contains("\"Time\""));
        let name = parse("name = \"../x\"\nwasm = \"t.wasm\"\nclaims = [\"Device.Time.\"]\n");
        assert!(name.unwrap_err().to_string().contains("name"));
    }
}
