//! Shared set-up of the runtime's integration tests: a host configuration approving `/proc`
//! and `/sys`, with the crate's own compile binary as the out-of-process compiler, and plugin
//! directories assembled from the components the build script produced.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use usp_dm::{Change, ChangeSink};
use usp_runtime::{ApprovalPolicy, Backoff, CompilerCommand, HostConfig, PluginHost, PluginStatus};

/// A compile cache shared by all tests of a run (and later runs): debug-built cranelift takes
/// seconds per component, and the cache is keyed by content, so sharing it is safe.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

pub fn config(state_dir: &Path) -> HostConfig {
    HostConfig {
        state_dir: state_dir.to_path_buf(),
        cache_dir: shared_cache(),
        reserved_roots: vec!["Device.LocalAgent.".to_string()],
        approval: ApprovalPolicy {
            readable_dirs: vec![PathBuf::from("/proc"), PathBuf::from("/sys")],
            ..ApprovalPolicy::default()
        },
        compiler: CompilerCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_usp-plugin-compile")),
            args: Vec::new(),
        },
        backoff: Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(2),
        },
        pooling: true,
        max_instances: 16,
    }
}

pub fn host(state_dir: &Path) -> PluginHost {
    PluginHost::new(config(state_dir)).expect("plugin host")
}

/// Writes `<root>/<name>/manifest.toml` (with `manifest_body` after name and wasm) and copies
/// `wasm` next to it.
pub fn plugin_dir(root: &Path, name: &str, wasm: &Path, manifest_body: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::copy(wasm, dir.join("plugin.wasm")).expect("copy wasm");
    std::fs::write(
        dir.join("manifest.toml"),
        format!("name = \"{name}\"\nwasm = \"plugin.wasm\"\n{manifest_body}"),
    )
    .expect("write manifest");
    dir
}

/// The faulty guest claiming `Device.X_TEST_Faults.` with the given limits.
pub fn faulty_dir(root: &Path, name: &str, limits: &str) -> PathBuf {
    plugin_dir(
        root,
        name,
        Path::new(usp_runtime::artifacts::FAULTY_GUEST),
        &format!("claims = [\"Device.X_TEST_Faults.\"]\n[limits]\n{limits}\n"),
    )
}

/// Collects pushed changes and wakes waiters.
#[derive(Clone, Default)]
pub struct Collected {
    changes: Arc<Mutex<Vec<Change>>>,
    arrived: Arc<Notify>,
}

impl Collected {
    pub fn sink(&self) -> ChangeSink {
        let collected = self.clone();
        ChangeSink::new(move |change| {
            collected.changes.lock().expect("changes").push(change);
            collected.arrived.notify_waiters();
        })
    }

    pub fn snapshot(&self) -> Vec<Change> {
        self.changes.lock().expect("changes").clone()
    }

    /// Waits (at most 5 s) until `count` changes arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Change> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.arrived.notified();
            let now = self.snapshot();
            if now.len() >= count || Instant::now() >= deadline {
                return now;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }
}

/// Sleeps until the failed plugin's restart time (the backoff is the thing under test).
pub async fn wait_for_retry(status: &PluginStatus) {
    if let PluginStatus::Failed { retry_at, .. } = status {
        tokio::time::sleep_until((*retry_at).into()).await;
    }
}
