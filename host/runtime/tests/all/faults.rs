//! Fault isolation, end to end with real components built from `tests/guests`: every
//! misbehaviour marks only the guilty plugin failed (7003 naming it), other plugins keep
//! answering, and the plugin is re-instantiated after its backoff.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use usp_codec::UspErrorCode;
use usp_dm::{GetRequest, Provider, ProviderError};
use usp_runtime::{PluginProvider, PluginStatus, RuntimeError};

use crate::common;

const ROOT: &str = "Device.X_TEST_Faults.";

fn request(object: &str) -> Vec<GetRequest> {
    vec![GetRequest {
        object: object.to_string(),
        params: Vec::new(),
    }]
}

async fn get_one(
    provider: &PluginProvider,
    object: &str,
) -> Result<usp_dm::ParamValues, ProviderError> {
    provider
        .get(&request(object))
        .await
        .into_iter()
        .next()
        .expect("one answer per request")
}

/// Triggers the fault object `fault` and checks the failure, the 7003 while failed, and the
/// recovery after backoff. Returns the failure reason and how long the failing call took.
async fn fails_then_recovers(fault: &str, limits: &str) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin = host
        .load(&common::faulty_dir(dir.path(), "faulty", limits))
        .await
        .unwrap();
    assert_eq!(get_one(&plugin, ROOT).await.unwrap()["Ok"], "fine");

    let started = Instant::now();
    let error = get_one(&plugin, &format!("{ROOT}{fault}."))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.code, UspErrorCode::InternalError, "{error}");
    assert!(error.message.contains("plugin \"faulty\""), "{error}");

    let status = plugin.status();
    let PluginStatus::Failed {
        reason, failures, ..
    } = &status
    else {
        panic!("expected failed, got {status:?}");
    };
    assert_eq!(*failures, 1);
    let during_backoff = get_one(&plugin, ROOT).await.unwrap_err();
    assert_eq!(during_backoff.code, UspErrorCode::InternalError);
    assert!(
        during_backoff.message.contains("restart in"),
        "{during_backoff}"
    );

    common::wait_for_retry(&status).await;
    let values = get_one(&plugin, ROOT).await.unwrap();
    assert_eq!(values["Calls"], "1", "a fresh instance serves the call");
    assert_eq!(plugin.status(), PluginStatus::Running);
    (reason.clone(), took)
}

#[tokio::test]
async fn trap_fails_the_plugin_with_7003_and_it_restarts_after_backoff() {
    let (reason, _) = fails_then_recovers("Trap", "").await;
    assert!(reason.contains("trap"), "{reason}");
}

#[tokio::test]
async fn rust_panic_is_reported_with_its_message() {
    let (reason, _) = fails_then_recovers("Panic", "").await;
    assert!(reason.contains("panicked on purpose"), "{reason}");
}

#[tokio::test]
async fn infinite_loop_is_stopped_at_the_deadline() {
    let (reason, took) = fails_then_recovers("Loop", "deadline_ms = 200").await;
    assert!(reason.contains("deadline of 200 ms"), "{reason}");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn memory_bomb_stops_at_the_memory_limit() {
    let (reason, _) = fails_then_recovers("MemoryBomb", "memory = 4194304").await;
    assert!(reason.contains("memory limit exceeded"), "{reason}");
}

#[tokio::test]
async fn deep_recursion_traps_without_harming_the_host() {
    let (reason, _) = fails_then_recovers("Recursion", "").await;
    assert!(
        reason.contains("stack") || reason.contains("out of bounds"),
        "{reason}"
    );
}

#[tokio::test]
async fn hundred_megabyte_result_is_refused_by_the_memory_limit() {
    let (reason, _) = fails_then_recovers("Huge", "memory = 16777216").await;
    assert!(reason.contains("memory limit exceeded"), "{reason}");
}

#[tokio::test]
async fn other_plugins_keep_answering_while_one_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let faulty = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    let other = host
        .load(&common::plugin_dir(
            dir.path(),
            "other",
            Path::new(usp_runtime::artifacts::FAULTY_GUEST),
            "claims = [\"Device.X_TEST_Other.\"]\n[grants]\nconfig = { root = \"Device.X_TEST_Other.\" }\n",
        ))
        .await
        .unwrap();
    assert!(get_one(&faulty, &format!("{ROOT}Trap.")).await.is_err());
    assert!(matches!(faulty.status(), PluginStatus::Failed { .. }));
    assert_eq!(
        get_one(&other, "Device.X_TEST_Other.").await.unwrap()["Ok"],
        "fine"
    );
    assert_eq!(host.status("other").await, Some(PluginStatus::Running));
}

#[tokio::test]
async fn leaking_host_resources_stops_at_the_table_bound() {
    let (reason, _) = fails_then_recovers("Leak", "").await;
    assert!(reason.contains("host resource limit exceeded"), "{reason}");
}

#[tokio::test]
async fn a_failed_plugin_is_restarted_when_its_backoff_ends_without_waiting_for_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    assert!(get_one(&plugin, &format!("{ROOT}Trap.")).await.is_err());
    let failed = plugin.status();
    common::wait_for_retry(&failed).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while plugin.status() != PluginStatus::Running {
        assert!(Instant::now() < deadline, "still {:?}", plugin.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let values = get_one(&plugin, ROOT).await.unwrap();
    assert_eq!(values["Calls"], "1", "the restarted instance is fresh");
}

#[tokio::test]
async fn repeated_failures_back_off_exponentially() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    assert!(get_one(&plugin, &format!("{ROOT}Trap.")).await.is_err());
    let first = plugin.status();
    common::wait_for_retry(&first).await;
    // The restarted instance fails again before serving anything: the wait doubles.
    assert!(get_one(&plugin, &format!("{ROOT}Trap.")).await.is_err());
    let PluginStatus::Failed {
        failures, retry_at, ..
    } = plugin.status()
    else {
        panic!("expected failed");
    };
    assert_eq!(failures, 2);
    let wait = retry_at.saturating_duration_since(Instant::now());
    assert!(
        wait > Duration::from_millis(250) && wait <= Duration::from_millis(400),
        "{wait:?}"
    );
}

#[tokio::test]
async fn claim_of_a_core_owned_object_is_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin_dir = common::plugin_dir(
        dir.path(),
        "usurper",
        Path::new(usp_runtime::artifacts::FAULTY_GUEST),
        "claims = [\"Device.LocalAgent.\"]\n",
    );
    let error = host.load(&plugin_dir).await.unwrap_err();
    assert!(
        matches!(error, RuntimeError::ClaimRejected { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("Device.LocalAgent."), "{error}");
    assert!(host.plugins().await.is_empty());
}

#[tokio::test]
async fn claim_overlapping_another_plugin_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    host.load(&common::faulty_dir(dir.path(), "first", ""))
        .await
        .unwrap();
    let error = host
        .load(&common::faulty_dir(dir.path(), "second", ""))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("plugin \"first\""), "{error}");
}

#[tokio::test]
async fn ungranted_import_fails_at_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin_dir = common::plugin_dir(
        dir.path(),
        "ungranted",
        Path::new(usp_runtime::artifacts::UNGRANTED_GUEST),
        "claims = [\"Device.X_TEST_Ungranted.\"]\n",
    );
    let error = host.load(&plugin_dir).await.unwrap_err();
    assert!(
        matches!(error, RuntimeError::UngrantedImport { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("usp:forbidden/shell"), "{error}");
}

#[tokio::test]
async fn unapproved_preopen_fails_at_load_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin_dir = common::plugin_dir(
        dir.path(),
        "snoop",
        Path::new(usp_runtime::artifacts::FAULTY_GUEST),
        "claims = [\"Device.X_TEST_Faults.\"]\n[grants]\npreopens = [{ host = \"/etc\", guest = \"/etc\" }]\n",
    );
    let error = host.load(&plugin_dir).await.unwrap_err();
    assert!(matches!(error, RuntimeError::GrantDenied { .. }), "{error}");
    assert!(error.to_string().contains("/etc"), "{error}");
}

#[tokio::test]
async fn corrupt_wasm_fails_at_load_and_the_host_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x0d\0\x01\0this is not a component").unwrap();
    let plugin_dir = common::plugin_dir(
        dir.path(),
        "corrupt",
        &corrupt,
        "claims = [\"Device.X_TEST_Corrupt.\"]\n",
    );
    let error = host.load(&plugin_dir).await.unwrap_err();
    assert!(matches!(error, RuntimeError::Compile { .. }), "{error}");
    assert!(error.to_string().contains("plugin \"corrupt\""), "{error}");
    let good = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    assert_eq!(get_one(&good, ROOT).await.unwrap()["Ok"], "fine");
}

#[tokio::test]
async fn provider_serves_through_the_dm_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let provider: Arc<dyn Provider> = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    assert_eq!(provider.name(), "faulty");
    let schema = provider.schema();
    assert!(
        schema
            .object(ROOT)
            .unwrap()
            .command("Work()")
            .unwrap()
            .is_async
    );
    assert!(schema.object(&format!("{ROOT}Trap.")).is_some());
    let answers = provider
        .get(&[
            GetRequest {
                object: ROOT.to_string(),
                params: vec!["Ok".to_string()],
            },
            GetRequest {
                object: "Device.X_TEST_Faults.Nope.".to_string(),
                params: Vec::new(),
            },
        ])
        .await;
    assert_eq!(
        answers[0].as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["Ok"]
    );
    assert_eq!(
        answers[1].as_ref().unwrap_err().code,
        UspErrorCode::InvalidPath
    );
}
