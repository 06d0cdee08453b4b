//! Plugin call and load costs, measured with real components: host→plugin `get` of 1 and of
//! 100 parameters, plugin load with a cold compile (child process) and with a warm cache,
//! re-instantiation from the `InstancePre`, resident memory per loaded plugin, and the same
//! Gets served by the native in-memory provider for comparison.
//!
//! Run: `cargo bench -p usp-runtime --bench plugin_calls` (release build). Prints one line
//! per measurement: the median of several rounds, each the mean of many calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use usp_dm::memory::{MemoryProvider, Snapshot};
use usp_dm::{GetRequest, Provider};
use usp_runtime::{ApprovalPolicy, CompilerCommand, HostConfig, PluginHost, artifacts};

fn config(state: &Path, cache: &Path) -> HostConfig {
    HostConfig {
        state_dir: state.to_path_buf(),
        cache_dir: cache.to_path_buf(),
        reserved_roots: vec!["Device.LocalAgent.".to_string()],
        approval: ApprovalPolicy {
            readable_dirs: vec![PathBuf::from("/proc"), PathBuf::from("/sys")],
            ..ApprovalPolicy::default()
        },
        compiler: CompilerCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_usp-plugin-compile")),
            args: Vec::new(),
        },
        backoff: usp_runtime::Backoff::default(),
        pooling: true,
        max_instances: 16,
    }
}

fn wide_dir(root: &Path) -> PathBuf {
    let dir = root.join("wide");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(artifacts::WIDE_GUEST, dir.join("wide.wasm")).expect("copy");
    std::fs::write(
        dir.join("manifest.toml"),
        "name = \"wide\"\nwasm = \"wide.wasm\"\nclaims = [\"Device.X_TEST_Bench.\"]\n",
    )
    .expect("manifest");
    dir
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(name: &str, value: Duration) {
    println!("{name:<44} {:>10.2} µs", value.as_secs_f64() * 1e6);
}

async fn per_call(provider: &dyn Provider, requests: &[GetRequest], calls: u32) -> Duration {
    let mut rounds = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..calls {
            let answers = provider.get(requests).await;
            assert!(answers[0].is_ok());
        }
        rounds.push(started.elapsed() / calls);
    }
    median(rounds)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let work = tempfile::tempdir().expect("tempdir");
    let cache = work.path().join("cache");
    let rss_start = rss_kib();
    let host = PluginHost::new(config(work.path(), &cache)).expect("host");
    let rss_engine = rss_kib();

    let wide_dir = wide_dir(work.path());
    let started = Instant::now();
    let wide = host.load(&wide_dir).await.expect("load wide");
    report("load, cold (compile in child + load)", started.elapsed());
    host.unload("wide").await.expect("unload");

    let mut warm = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        host.load(&wide_dir).await.expect("load wide");
        warm.push(started.elapsed());
        host.unload("wide").await.expect("unload");
    }
    report(
        "load, cached (deserialize_file + instantiate)",
        median(warm),
    );
    drop(wide);

    let wide = host.load(&wide_dir).await.expect("load wide");
    let mut restarts = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        for _ in 0..100 {
            wide.restart().await.expect("restart");
        }
        restarts.push(started.elapsed() / 100);
    }
    report("instantiate from InstancePre (restart)", median(restarts));

    let one = [GetRequest {
        object: "Device.X_TEST_Bench.".to_string(),
        params: vec!["P1".to_string()],
    }];
    let all = [GetRequest {
        object: "Device.X_TEST_Bench.".to_string(),
        params: Vec::new(),
    }];
    let plugin_one = per_call(&*wide, &one, 2000).await;
    let plugin_all = per_call(&*wide, &all, 500).await;
    report("get 1 param", plugin_one);
    report("get 100 params", plugin_all);

    // The same schema and values served by the agent's native in-memory provider: the cost a
    // subtree would have without the sandbox.
    let native = MemoryProvider::new("native", (*wide.schema()).clone());
    let values = wide.get(&all).await.remove(0).expect("values");
    native.restore(&Snapshot {
        params: values
            .into_iter()
            .map(|(name, value)| (format!("Device.X_TEST_Bench.{name}"), value))
            .collect(),
        ..Snapshot::default()
    });
    let native_one = per_call(&native, &one, 2000).await;
    let native_all = per_call(&native, &all, 500).await;
    report("native get 1 param", native_one);
    report("native get 100 params", native_all);
    println!(
        "plugin / native: get 1 param {:.1}x, get 100 params {:.1}x",
        plugin_one.as_secs_f64() / native_one.as_secs_f64(),
        plugin_all.as_secs_f64() / native_all.as_secs_f64()
    );
    host.unload("wide").await.expect("unload");

    let before_plugins = rss_kib();
    let loaded = host
        .load_dir(Path::new(artifacts::BUNDLED_PLUGINS_DIR))
        .await;
    let plugins = loaded.iter().filter(|(_, result)| result.is_ok()).count();
    let after_plugins = rss_kib();
    println!(
        "RSS: process start {rss_start} KiB, + engine {rss_engine} KiB, before bundled plugins {before_plugins} KiB, \
         with {plugins} bundled plugins {after_plugins} KiB ({} KiB per plugin)",
        (after_plugins.saturating_sub(before_plugins)) / plugins.max(1) as u64
    );
}
