//! Load, unload, replace, the compile cache, transactions, async commands and pushed changes,
//! with the real `tests/guests/faulty` component.

use std::path::{Path, PathBuf};

use usp_codec::UspErrorCode;
use usp_dm::{Change, GetRequest, OperateOutcome, ParamValues, Provider};
use usp_runtime::{CompilerCommand, PluginHost, PluginStatus, RuntimeError};

use crate::common;

const ROOT: &str = "Device.X_TEST_Faults.";

async fn root_values(provider: &dyn Provider) -> ParamValues {
    provider
        .get(&[GetRequest {
            object: ROOT.to_string(),
            params: Vec::new(),
        }])
        .await
        .remove(0)
        .expect("root values")
}

#[tokio::test]
async fn committed_set_is_persisted_and_pushed_and_dropped_transaction_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = common::faulty_dir(dir.path(), "faulty", "");
    {
        let host = common::host(dir.path());
        let plugin = host.load(&plugin_dir).await.unwrap();
        let collected = common::Collected::default();
        plugin.attach(collected.sink());

        let mut txn = plugin.begin().await.unwrap();
        txn.set(ROOT, "Stored", "kept").await.unwrap();
        txn.prepare().await.unwrap();
        txn.commit().await.unwrap();
        let changes = collected.wait_for(1).await;
        assert_eq!(
            changes,
            [Change::ValueChanged {
                path: format!("{ROOT}Stored"),
                value: "kept".to_string()
            }]
        );

        let mut aborted = plugin.begin().await.unwrap();
        aborted.set(ROOT, "Stored", "lost").await.unwrap();
        drop(aborted);
        assert_eq!(root_values(&*plugin).await["Stored"], "kept");

        let mut refused = plugin.begin().await.unwrap();
        let error = refused.set(ROOT, "Ok", "x").await.unwrap_err();
        assert_eq!(error.code, UspErrorCode::ParamReadOnly);
        assert!(error.message.contains("Device.X_TEST_Faults.Ok"), "{error}");
    }
    let host = common::host(dir.path());
    let plugin = host.load(&plugin_dir).await.unwrap();
    assert_eq!(
        root_values(&*plugin).await["Stored"],
        "kept",
        "survives a new host"
    );
}

#[tokio::test]
async fn async_command_pushes_its_event_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    let collected = common::Collected::default();
    plugin.attach(collected.sink());
    let outcome = plugin
        .operate(&format!("{ROOT}Work()"), "key-1", Default::default())
        .await
        .unwrap();
    let OperateOutcome::Started(token) = outcome else {
        panic!("expected an async start, got {outcome:?}");
    };
    let changes = collected.wait_for(2).await;
    let args: usp_dm::Args = [("Key".to_string(), "key-1".to_string())].into();
    assert_eq!(
        changes,
        [
            Change::Event {
                object: ROOT.to_string(),
                name: "Worked!".to_string(),
                args: args.clone()
            },
            Change::OperationComplete {
                token,
                result: Ok(args)
            },
        ]
    );
    let unknown = plugin
        .operate(&format!("{ROOT}Nope()"), "k", Default::default())
        .await
        .unwrap_err();
    assert_eq!(unknown.code, UspErrorCode::InvalidPath);
}

#[tokio::test]
async fn transaction_of_a_restarted_plugin_fails_instead_of_touching_the_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();
    let mut txn = plugin.begin().await.unwrap();
    txn.set(ROOT, "Stored", "staged").await.unwrap();
    let crash = plugin
        .get(&[GetRequest {
            object: format!("{ROOT}Trap."),
            params: Vec::new(),
        }])
        .await;
    assert!(crash[0].is_err());
    common::wait_for_retry(&plugin.status()).await;
    let error = txn.commit().await.unwrap_err();
    assert!(
        error.message.contains("restarted during the transaction"),
        "{error}"
    );
    assert_eq!(root_values(&*plugin).await["Stored"], "");
}

#[tokio::test]
async fn unload_stops_the_plugin_and_frees_its_claims() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let plugin_dir = common::faulty_dir(dir.path(), "faulty", "");
    let plugin = host.load(&plugin_dir).await.unwrap();
    host.unload("faulty").await.unwrap();
    assert_eq!(plugin.status(), PluginStatus::Unloaded);
    let error = plugin
        .get(&[GetRequest {
            object: ROOT.to_string(),
            params: Vec::new(),
        }])
        .await;
    assert!(error[0].as_ref().unwrap_err().message.contains("unloaded"));
    assert!(matches!(
        host.unload("faulty").await,
        Err(RuntimeError::NotLoaded(_))
    ));
    host.load(&plugin_dir).await.unwrap();
}

#[tokio::test]
async fn bad_replacement_keeps_the_old_plugin_and_a_good_one_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::host(dir.path());
    let old = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap();

    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"not wasm at all").unwrap();
    let update_root = dir.path().join("update");
    let broken_dir = common::plugin_dir(
        &update_root,
        "faulty",
        &broken,
        "claims = [\"Device.X_TEST_Faults.\"]\n",
    );
    assert!(host.replace(&broken_dir).await.is_err());
    assert_eq!(old.status(), PluginStatus::Running);

    let good_root = dir.path().join("good");
    let new = host
        .replace(&common::faulty_dir(
            &good_root,
            "faulty",
            "deadline_ms = 500",
        ))
        .await
        .unwrap();
    assert_eq!(old.status(), PluginStatus::Unloaded);
    assert_eq!(root_values(&*new).await["Ok"], "fine");
}

#[tokio::test]
async fn second_load_uses_the_compile_cache_without_running_the_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let plugin_dir = common::faulty_dir(dir.path(), "faulty", "");
    let mut cold = common::config(dir.path());
    cold.cache_dir = dir.path().join("plugin-cache");
    PluginHost::new(cold)
        .unwrap()
        .load(&plugin_dir)
        .await
        .unwrap();
    let cached: Vec<PathBuf> = std::fs::read_dir(dir.path().join("plugin-cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].extension().unwrap(), "cwasm");

    let mut config = common::config(dir.path());
    config.cache_dir = dir.path().join("plugin-cache");
    config.compiler = CompilerCommand {
        program: Path::new("/nonexistent/compiler").to_path_buf(),
        args: Vec::new(),
    };
    let host = PluginHost::new(config).unwrap();
    let plugin = host.load(&plugin_dir).await.unwrap();
    assert_eq!(root_values(&*plugin).await["Ok"], "fine");
}

#[tokio::test]
async fn compiler_failure_names_the_plugin_and_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.cache_dir = dir.path().join("plugin-cache");
    config.compiler = CompilerCommand {
        program: Path::new("/nonexistent/compiler").to_path_buf(),
        args: Vec::new(),
    };
    let host = PluginHost::new(config).unwrap();
    let error = host
        .load(&common::faulty_dir(dir.path(), "faulty", ""))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/compiler"),
        "{error}"
    );
}
