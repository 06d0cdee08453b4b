//! The host's configuration ([`HostConfig`]) and the approval of a manifest's grants against
//! the agent's [`ApprovalPolicy`]: a plugin gets a capability only when its manifest asks for
//! it and the agent's configuration allows it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::RuntimeError;
use crate::manifest::{Limits, Manifest, Preopen};

/// What the agent allows plugins to be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Host directories that may be preopened read-only (a preopen must be one of these or
    /// lie below one, after resolving symbolic links).
    pub readable_dirs: Vec<PathBuf>,
    /// Environment variable names that may be granted.
    pub env: Vec<String>,
    /// Whether manifests may pass configuration values to their plugin.
    pub allow_config: bool,
    /// Largest memory limit a manifest may ask for, in bytes.
    pub max_memory: u64,
    /// Longest per-call deadline a manifest may ask for.
    pub max_deadline: Duration,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            readable_dirs: Vec::new(),
            env: Vec::new(),
            allow_config: true,
            max_memory: 64 * 1024 * 1024,
            max_deadline: Duration::from_secs(10),
        }
    }
}

/// How the host runs the compiler out of its own process: `program args... <wasm> <cache-dir>`.
/// The program must call [`crate::compile_to_cache`] with those two paths and exit with 0 on
/// success, or print the error to stderr and exit non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments placed before the two paths.
    pub args: Vec<OsString>,
}

impl CompilerCommand {
    /// The running executable with the hidden `__compile` subcommand (what `usp-agent` does).
    pub fn current_exe() -> Result<CompilerCommand, RuntimeError> {
        let program = std::env::current_exe().map_err(RuntimeError::CurrentExe)?;
        Ok(CompilerCommand {
            program,
            args: vec![OsString::from("__compile")],
        })
    }
}

/// Restart policy of failed plugins: exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub initial: Duration,
    /// Upper bound of the wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (1 = first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Configuration of a [`crate::PluginHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The agent's state directory: plugin key-value stores live in
    /// `<state>/plugin-data/<name>`.
    pub state_dir: PathBuf,
    /// The compile cache (`<state>/plugin-cache` by default). Only files this host's compiler
    /// wrote here are ever loaded as native code.
    pub cache_dir: PathBuf,
    /// Object paths owned by the core (`Device.LocalAgent.`); plugin claims overlapping them are
    /// rejected.
    pub reserved_roots: Vec<String>,
    /// What grants the agent approves.
    pub approval: ApprovalPolicy,
    /// How to compile out of process.
    pub compiler: CompilerCommand,
    /// Restart backoff of failed plugins.
    pub backoff: Backoff,
    /// Use the pooling allocator (falls back to on-demand when the address space is too small).
    pub pooling: bool,
    /// Upper bound on plugin instances alive at once (sizes the pool).
    pub max_instances: u32,
}

impl HostConfig {
    /// A configuration with everything denied, the core's `Device.LocalAgent.` reserved, and
    /// the current executable's `__compile` subcommand as compiler.
    pub fn new(state_dir: impl Into<PathBuf>) -> Result<HostConfig, RuntimeError> {
        let state_dir = state_dir.into();
        Ok(HostConfig {
            cache_dir: state_dir.join("plugin-cache"),
            state_dir,
            reserved_roots: vec!["Device.LocalAgent.".to_string()],
            approval: ApprovalPolicy::default(),
            compiler: CompilerCommand::current_exe()?,
            backoff: Backoff::default(),
            pooling: true,
            max_instances: 64,
        })
    }
}

/// Grants of a manifest after approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Approved {
    pub preopens: Vec<(PathBuf, String)>,
    pub env: Vec<(String, String)>,
    pub config: Vec<(String, String)>,
    pub limits: Limits,
}

/// Checks every grant and limit of `manifest` against `policy`; the first refused one is the
/// error, named.
pub(crate) fn approve(
    manifest: &Manifest,
    policy: &ApprovalPolicy,
) -> Result<Approved, RuntimeError> {
    let denied = |grant: String| RuntimeError::GrantDenied {
        plugin: manifest.name.clone(),
        grant,
    };
    let mut preopens = Vec::new();
    for Preopen { host, guest } in &manifest.grants.preopens {
        let resolved = host
            .canonicalize()
            .map_err(|err| denied(format!("preopen {}: {err}", host.display())))?;
        let allowed = policy.readable_dirs.iter().any(|dir| {
            dir.canonicalize()
                .is_ok_and(|dir| resolved.starts_with(dir))
        });
        if !allowed {
            return Err(denied(format!(
                "preopen {} (not under an approved readable directory)",
                host.display()
            )));
        }
        preopens.push((resolved, guest.clone()));
    }
    for (name, value) in &manifest.grants.env {
        if !policy.env.contains(name) {
            return Err(denied(format!("environment variable {name}")));
        }
        if name.contains('=') || name.contains('\0') || value.contains('\0') {
            return Err(denied(format!("environment variable {name:?} (malformed)")));
        }
    }
    if !manifest.grants.config.is_empty() && !policy.allow_config {
        return Err(denied("configuration values".to_string()));
    }
    if manifest.limits.memory > policy.max_memory {
        return Err(denied(format!(
            "memory limit {} bytes (at most {} approved)",
            manifest.limits.memory, policy.max_memory
        )));
    }
    if manifest.limits.deadline() > policy.max_deadline {
        return Err(denied(format!(
            "deadline {} ms (at most {} ms approved)",
            manifest.limits.deadline_ms,
            policy.max_deadline.as_millis()
        )));
    }
    Ok(Approved {
        preopens,
        env: manifest.grants.env.clone().into_iter().collect(),
        config: manifest.grants.config.clone().into_iter().collect(),
        limits: manifest.limits,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn manifest(extra: &str) -> Manifest {
        let text = format!("name = \"p\"\nwasm = \"p.wasm\"\nclaims = [\"Device.X_T.\"]\n{extra}");
        Manifest::parse(&text, Path::new("m.toml")).unwrap()
    }

    #[test]
    fn nothing_requested_is_approved_by_the_default_policy() {
        let approved = approve(&manifest(""), &ApprovalPolicy::default()).unwrap();
        assert!(approved.preopens.is_empty() && approved.env.is_empty());
    }

    #[test]
    fn preopen_outside_approved_dirs_is_denied_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let wanted = manifest(&format!(
            "[grants]\npreopens = [{{ host = \"{}\", guest = \"/data\" }}]\n",
            dir.path().display()
        ));
        let error = approve(&wanted, &ApprovalPolicy::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&dir.path().display().to_string())
        );
        let policy = ApprovalPolicy {
            readable_dirs: vec![dir.path().to_path_buf()],
            ..ApprovalPolicy::default()
        };
        assert_eq!(approve(&wanted, &policy).unwrap().preopens.len(), 1);
    }

    #[test]
    fn env_and_limits_beyond_policy_are_denied() {
        let env = approve(
            &manifest("[grants]\nenv = { HOME = \"/\" }\n"),
            &ApprovalPolicy::default(),
        );
        assert!(env.unwrap_err().to_string().contains("HOME"));
        let memory = approve(
            &manifest("[limits]\nmemory = 1073741824\n"),
            &ApprovalPolicy::default(),
        );
        assert!(memory.unwrap_err().to_string().contains("memory limit"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(3), Duration::from_millis(350));
        assert_eq!(backoff.delay(60), Duration::from_millis(350));
    }
}
