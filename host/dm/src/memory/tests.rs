use std::collections::BTreeMap;

use super::*;
use crate::schema::{ObjectAccess, ObjectDef, ParamAccess, ParamDef};
use crate::value::ValueType;

fn schema() -> Schema {
    let mut table = ObjectDef::new("Device.NAT.PortMapping.{i}.");
    table.access = ObjectAccess::AddDelete;
    table.unique_keys = vec![
        vec!["Alias".into()],
        vec!["RemoteHost".into(), "ExternalPort".into()],
    ];
    table.params = vec![
        ParamDef::new("Alias", ValueType::String).access(ParamAccess::WriteOnceReadOnly),
        // TR-181 gives RemoteHost the default "" (any host): a value, not a missing key.
        ParamDef::new("RemoteHost", ValueType::String)
            .access(ParamAccess::ReadWrite)
            .default_value(""),
        ParamDef::new("ExternalPort", ValueType::UnsignedInt)
            .access(ParamAccess::ReadWrite)
            .default_value("0"),
    ];
    let mut sub = ObjectDef::new("Device.NAT.PortMapping.{i}.Stats.");
    sub.params = vec![ParamDef::new("Hits", ValueType::UnsignedInt).default_value("0")];
    let mut nested = ObjectDef::new("Device.NAT.PortMapping.{i}.Rule.{i}.");
    nested.access = ObjectAccess::AddDelete;
    let nat = ObjectDef::new("Device.NAT.");
    [nat, table, sub, nested].into_iter().collect()
}

fn port(value: &str) -> ParamValues {
    ParamValues::from([("ExternalPort".to_string(), value.to_string())])
}

fn ok<T>(result: Result<T, ProviderError>) -> T {
    result.unwrap_or_else(|error| panic!("{error}"))
}

async fn commit(tx: Box<dyn Transaction>) {
    ok(tx.commit().await);
}

/// A Subscription-like table: `ID` is writable, has no default and is a key member.
fn keyed_on_id() -> Schema {
    let mut table = ObjectDef::new("Device.S.Sub.{i}.");
    table.access = ObjectAccess::AddDelete;
    table.unique_keys = vec![vec!["Alias".into()], vec!["Recipient".into(), "ID".into()]];
    table.params = vec![
        ParamDef::new("Alias", ValueType::String).access(ParamAccess::WriteOnceReadOnly),
        ParamDef::new("Recipient", ValueType::String),
        ParamDef::new("ID", ValueType::String)
            .access(ParamAccess::ReadWrite)
            .constraints(crate::schema::Constraints {
                min_length: Some(1),
                max_length: Some(64),
                ..Default::default()
            }),
        // Writable, no default, but empty is a valid value: never made up.
        ParamDef::new("Note", ValueType::String).access(ParamAccess::ReadWrite),
    ];
    table.unique_keys.push(vec!["Note".into()]);
    [ObjectDef::new("Device.S."), table].into_iter().collect()
}

#[tokio::test]
async fn r_add_5_a_writable_key_without_default_is_generated_and_unique() {
    let provider = MemoryProvider::new("s", keyed_on_id());
    let recipient = |id: Option<&str>| {
        let mut params = ParamValues::from([("Recipient".to_string(), "Device.C.1".to_string())]);
        if let Some(id) = id {
            params.insert("ID".to_string(), id.to_string());
        }
        params
    };
    assert_eq!(
        ok(provider.add_instance("Device.S.Sub.", &recipient(Some("cpe-2")))),
        1
    );
    assert_eq!(
        ok(provider.add_instance("Device.S.Sub.", &recipient(None))),
        2
    );
    // `cpe-2` is taken by instance 1, so instance 2 gets the next free value.
    assert_eq!(
        provider.value("Device.S.Sub.2.ID").as_deref(),
        Some("cpe-2-1")
    );
    assert_eq!(
        ok(provider.add_instance("Device.S.Sub.", &recipient(None))),
        3
    );
    assert_eq!(
        provider.value("Device.S.Sub.3.ID").as_deref(),
        Some("cpe-3")
    );
    assert_eq!(provider.value("Device.S.Sub.1.Note").as_deref(), Some(""));
    // A read-only member is the Agent's to fill: never generated.
    assert_eq!(
        ok(provider.add_instance("Device.S.Sub.", &ParamValues::new())),
        4
    );
    assert_eq!(
        provider
            .value("Device.S.Sub.4.Recipient")
            .unwrap_or_default(),
        ""
    );
}

#[tokio::test]
async fn add_fills_defaults_sub_objects_and_alias() {
    let provider = MemoryProvider::new("t", schema());
    let number = ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
    assert_eq!(number, 1);
    assert_eq!(
        provider.value("Device.NAT.PortMapping.1.Alias").as_deref(),
        Some("cpe-1")
    );
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.1.Stats.Hits")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        ok(provider.instances("Device.NAT.PortMapping.1.Rule.").await),
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn staged_writes_are_invisible_until_commit_and_dropped_on_abort() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
    let mut tx = ok(provider.begin().await);
    ok(tx
        .set("Device.NAT.PortMapping.1.", "ExternalPort", "81")
        .await);
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.1.ExternalPort")
            .as_deref(),
        Some("80")
    );
    drop(tx);
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.1.ExternalPort")
            .as_deref(),
        Some("80")
    );
    let mut tx = ok(provider.begin().await);
    ok(tx
        .set("Device.NAT.PortMapping.1.", "ExternalPort", "81")
        .await);
    commit(tx).await;
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.1.ExternalPort")
            .as_deref(),
        Some("81")
    );
}

#[tokio::test]
async fn unique_keys_are_checked_against_staged_siblings() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
    ok(provider.add_instance("Device.NAT.PortMapping.", &port("81")));
    let mut tx = ok(provider.begin().await);
    ok(tx
        .set("Device.NAT.PortMapping.1.", "ExternalPort", "90")
        .await);
    let clash = tx
        .set("Device.NAT.PortMapping.2.", "ExternalPort", "90")
        .await;
    assert_eq!(
        clash.map_err(|e| e.code),
        Err(UspErrorCode::DuplicateUniqueKey)
    );
    let mut explicit = port("90");
    explicit.insert("RemoteHost".into(), String::new());
    let clash = tx.add("Device.NAT.PortMapping.", &explicit).await;
    assert_eq!(
        clash.map_err(|e| e.code),
        Err(UspErrorCode::DuplicateUniqueKey)
    );
    // Not supplied, the colliding key member is generated instead (R-ADD.5).
    let number = ok(tx.add("Device.NAT.PortMapping.", &port("90")).await);
    assert_eq!(number, 3);
}

fn mapping(host: &str, port: &str) -> ParamValues {
    ParamValues::from([
        ("RemoteHost".to_string(), host.to_string()),
        ("ExternalPort".to_string(), port.to_string()),
    ])
}

fn alias(value: &str) -> ParamValues {
    ParamValues::from([("Alias".to_string(), value.to_string())])
}

fn refused<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> String {
    match result {
        Err(error) if error.code == UspErrorCode::DuplicateUniqueKey => error.message,
        other => panic!("expected 7025, got {other:?}"),
    }
}

#[tokio::test]
async fn deleting_an_instance_frees_its_unique_keys() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80")));
    ok(provider.add_instance("Device.NAT.PortMapping.", &alias("web")));
    // Freed inside the transaction that deletes the holder...
    let mut tx = ok(provider.begin().await);
    ok(tx.delete("Device.NAT.PortMapping.1.").await);
    assert_eq!(
        ok(tx.add("Device.NAT.PortMapping.", &mapping("h", "80")).await),
        3
    );
    drop(tx);
    // ...and for good once the delete is committed.
    ok(provider.delete_instance("Device.NAT.PortMapping.2."));
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &alias("web"))),
        3
    );
    refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80")));
    ok(provider.delete_instance("Device.NAT.PortMapping.1."));
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80"))),
        4
    );
}

#[tokio::test]
async fn setting_a_key_param_moves_the_instance_in_the_index() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80")));
    ok(provider.set_value("Device.NAT.PortMapping.1.ExternalPort", "81"));
    // The old value is free, the new one taken.
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80"))),
        2
    );
    refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
    let mut tx = ok(provider.begin().await);
    ok(tx
        .set("Device.NAT.PortMapping.1.", "ExternalPort", "82")
        .await);
    ok(tx
        .set("Device.NAT.PortMapping.2.", "ExternalPort", "81")
        .await);
    let message = refused(
        tx.set("Device.NAT.PortMapping.2.", "ExternalPort", "82")
            .await,
    );
    assert_eq!(
        message,
        "Device.NAT.PortMapping.2.: RemoteHost+ExternalPort equals that of \
         Device.NAT.PortMapping.1."
    );
    // A non-key Set of a staged instance keeps its staged key values in the index.
    ok(tx.set("Device.NAT.PortMapping.1.", "Alias", "one").await);
    refused(tx.add("Device.NAT.PortMapping.", &mapping("", "82")).await);
    commit(tx).await;
    refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "82")));
    refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80"))),
        3
    );
}

#[tokio::test]
async fn an_aborted_transaction_leaves_the_index_as_it_was() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80")));
    ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
    let mut tx = ok(provider.begin().await);
    ok(tx
        .set("Device.NAT.PortMapping.1.", "ExternalPort", "91")
        .await);
    ok(tx.add("Device.NAT.PortMapping.", &mapping("", "90")).await);
    ok(tx.delete("Device.NAT.PortMapping.2.").await);
    drop(tx);
    refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "80")));
    refused(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "81")));
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "90"))),
        3
    );
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("", "91"))),
        4
    );
}

#[tokio::test]
async fn a_duplicate_within_one_transaction_is_refused_and_leaves_no_trace() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &alias("a")));
    let mut tx = ok(provider.begin().await);
    assert_eq!(
        ok(tx.add("Device.NAT.PortMapping.", &mapping("h", "90")).await),
        2
    );
    let message = refused(tx.add("Device.NAT.PortMapping.", &mapping("h", "90")).await);
    assert_eq!(
        message,
        "Device.NAT.PortMapping.3.: RemoteHost+ExternalPort equals that of \
         Device.NAT.PortMapping.2."
    );
    // Both keys clash: the lowest-numbered holder is named, with the key it shares.
    let mut both = mapping("h", "90");
    both.insert("Alias".into(), "a".into());
    let message = refused(tx.add("Device.NAT.PortMapping.", &both).await);
    assert_eq!(
        message,
        "Device.NAT.PortMapping.3.: Alias equals that of Device.NAT.PortMapping.1."
    );
    commit(tx).await;
    assert_eq!(provider.snapshot().instances.len(), 2);
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "91"))),
        3
    );
}

#[tokio::test]
async fn restored_rows_are_indexed_for_checks_and_generated_keys() {
    let provider = MemoryProvider::new("t", schema());
    let snapshot = Snapshot {
        instances: vec![
            "Device.NAT.PortMapping.4.".into(),
            "Device.NAT.PortMapping.7.".into(),
        ],
        params: vec![
            ("Device.NAT.PortMapping.4.Alias".into(), "cpe-8".into()),
            ("Device.NAT.PortMapping.4.RemoteHost".into(), "cpe-8".into()),
            ("Device.NAT.PortMapping.7.Alias".into(), "cpe-8-1".into()),
        ],
        next_instance: Vec::new(),
    };
    assert!(provider.restore(&snapshot).skipped.is_empty());
    refused(provider.add_instance("Device.NAT.PortMapping.", &alias("cpe-8-1")));
    // Instance 7 holds RemoteHost "" and ExternalPort 0, the defaults: the new instance's
    // RemoteHost is generated, avoiding the value instance 4 holds.
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &ParamValues::new())),
        8
    );
    assert_eq!(
        provider.value("Device.NAT.PortMapping.8.Alias").as_deref(),
        Some("cpe-8-2")
    );
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.8.RemoteHost")
            .as_deref(),
        Some("cpe-8-1")
    );
}

/// Random Adds, key Sets, Deletes, commits and aborts over a small value domain; every
/// outcome must match a full scan of a plain model of the rows.
#[tokio::test]
async fn the_index_agrees_with_a_full_scan() {
    type Row = (String, String, String);
    fn clash(rows: &BTreeMap<u32, Row>, number: u32, row: &Row) -> bool {
        rows.iter().any(|(other, (alias, host, port))| {
            *other != number && (*alias == row.0 || (*host == row.1 && *port == row.2))
        })
    }
    let provider = MemoryProvider::new("t", schema());
    let mut committed: BTreeMap<u32, Row> = BTreeMap::new();
    let mut next = 1u32;
    let mut seed = 0x9e37_79b9_u32;
    let mut draw = |bound: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % bound
    };
    for _ in 0..60 {
        let mut tx = ok(provider.begin().await);
        let mut staged = committed.clone();
        let mut staged_next = next;
        for _ in 0..draw(6) {
            let existing: Vec<u32> = staged.keys().copied().collect();
            let pick = existing.get(draw(existing.len().max(1) as u32) as usize);
            match (draw(3), pick) {
                (1, Some(&number)) => {
                    let port = draw(4).to_string();
                    let mut row = staged[&number].clone();
                    row.2 = port.clone();
                    let object = format!("Device.NAT.PortMapping.{number}.");
                    let result = tx.set(&object, "ExternalPort", &port).await;
                    assert_eq!(result.is_err(), clash(&staged, number, &row), "{object}");
                    if result.is_ok() {
                        staged.insert(number, row);
                    }
                }
                (2, Some(&number)) => {
                    ok(tx
                        .delete(&format!("Device.NAT.PortMapping.{number}."))
                        .await);
                    staged.remove(&number);
                }
                _ => {
                    let row = (
                        format!("a{}", draw(8)),
                        format!("h{}", draw(2)),
                        draw(4).to_string(),
                    );
                    let mut params = mapping(&row.1, &row.2);
                    params.insert("Alias".into(), row.0.clone());
                    let result = tx.add("Device.NAT.PortMapping.", &params).await;
                    assert_eq!(result.is_err(), clash(&staged, staged_next, &row));
                    if let Ok(number) = result {
                        assert_eq!(number, staged_next);
                        staged.insert(number, row);
                        staged_next += 1;
                    }
                }
            }
        }
        if draw(4) == 0 {
            drop(tx);
        } else {
            commit(tx).await;
            committed = staged;
            next = staged_next;
        }
        for (number, (alias, _, port)) in &committed {
            let object = format!("Device.NAT.PortMapping.{number}.");
            assert_eq!(
                provider.value(&format!("{object}Alias")).as_ref(),
                Some(alias)
            );
            assert_eq!(
                provider.value(&format!("{object}ExternalPort")).as_ref(),
                Some(port)
            );
        }
        assert_eq!(provider.snapshot().instances.len(), committed.len());
    }
}

#[tokio::test]
async fn find_by_key_answers_from_committed_rows_only() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &mapping("h", "80")));
    ok(provider.add_instance("Device.NAT.PortMapping.", &alias("web")));
    let table = "Device.NAT.PortMapping.";
    assert_eq!(provider.find_by_key(table, &[("Alias", "web")]), Some(2));
    assert_eq!(
        provider.find_by_key(table, &[("ExternalPort", "80"), ("RemoteHost", "h")]),
        Some(1)
    );
    assert_eq!(provider.find_by_key(table, &[("RemoteHost", "h")]), None);
    assert_eq!(provider.find_by_key(table, &[("Alias", "nope")]), None);
    let mut tx = ok(provider.begin().await);
    ok(tx.add(table, &alias("staged")).await);
    ok(tx.delete("Device.NAT.PortMapping.2.").await);
    assert_eq!(provider.find_by_key(table, &[("Alias", "staged")]), None);
    assert_eq!(provider.find_by_key(table, &[("Alias", "web")]), Some(2));
    commit(tx).await;
    assert_eq!(provider.find_by_key(table, &[("Alias", "staged")]), Some(3));
    assert_eq!(provider.find_by_key(table, &[("Alias", "web")]), None);
}

#[tokio::test]
async fn delete_is_recursive_and_numbers_are_not_reused() {
    let provider = MemoryProvider::new("t", schema());
    ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
    ok(provider.add_instance("Device.NAT.PortMapping.1.Rule.", &ParamValues::new()));
    ok(provider.delete_instance("Device.NAT.PortMapping.1."));
    assert_eq!(provider.value("Device.NAT.PortMapping.1.Stats.Hits"), None);
    assert!(provider.snapshot().instances.is_empty());
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("80"))),
        2
    );
}

#[tokio::test]
async fn commit_hook_sees_one_change_set_and_restore_rebuilds_state() {
    let log: Arc<Mutex<Vec<Vec<StoredChange>>>> = Arc::default();
    let sink = Arc::clone(&log);
    let provider = MemoryProvider::new("t", schema()).with_commit_hook(Arc::new(
        move |changes: &[StoredChange]| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(changes.to_vec())
        },
    ));
    let mut tx = ok(provider.begin().await);
    ok(tx.add("Device.NAT.PortMapping.", &port("80")).await);
    ok(tx.add("Device.NAT.PortMapping.", &port("81")).await);
    ok(tx.delete("Device.NAT.PortMapping.1.").await);
    commit(tx).await;
    let sets = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert_eq!(sets.len(), 1, "one change set per transaction");
    let snapshot = provider.snapshot();
    let restored = MemoryProvider::new("t", schema());
    let report = restored.restore(&snapshot);
    assert!(report.skipped.is_empty(), "{report:?}");
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(
        ok(restored.add_instance("Device.NAT.PortMapping.", &port("82"))),
        3
    );
}

#[tokio::test]
async fn volatile_params_stay_out_of_the_commit_hook() {
    let log: Arc<Mutex<Vec<StoredChange>>> = Arc::default();
    let sink = Arc::clone(&log);
    let provider = MemoryProvider::new("t", schema())
        .with_volatile_param("Device.NAT.PortMapping.{i}.Stats.Hits")
        .with_commit_hook(Arc::new(move |changes: &[StoredChange]| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(changes)
        }));
    ok(provider.add_instance("Device.NAT.PortMapping.", &port("80")));
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    ok(provider.set_value("Device.NAT.PortMapping.1.Stats.Hits", "7"));
    ok(provider.set_value("Device.NAT.PortMapping.1.ExternalPort", "81"));
    let paths: Vec<String> = log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|change| change.path().to_string())
        .collect();
    assert_eq!(paths, ["Device.NAT.PortMapping.1.ExternalPort"]);
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.1.Stats.Hits")
            .as_deref(),
        Some("7"),
        "the live value is served"
    );
}

#[tokio::test]
async fn restore_reports_rows_the_schema_no_longer_has() {
    let provider = MemoryProvider::new("t", schema());
    let snapshot = Snapshot {
        instances: vec!["Device.NAT.PortMapping.4.".into(), "Device.Gone.1.".into()],
        params: vec![
            ("Device.NAT.PortMapping.4.ExternalPort".into(), "8".into()),
            ("Device.NAT.PortMapping.4.Removed".into(), "x".into()),
        ],
        next_instance: vec![("Device.NAT.PortMapping.".into(), 2)],
    };
    let report = provider.restore(&snapshot);
    assert_eq!(
        report.skipped,
        ["Device.Gone.1.", "Device.NAT.PortMapping.4.Removed"]
    );
    assert_eq!(
        provider
            .value("Device.NAT.PortMapping.4.ExternalPort")
            .as_deref(),
        Some("8")
    );
    assert_eq!(
        ok(provider.add_instance("Device.NAT.PortMapping.", &port("9"))),
        5
    );
}

/// A Controller table shaped like TR-181's: counts, typed parameters without defaults.
fn controller_schema() -> Schema {
    let mut agent = ObjectDef::new("Device.LocalAgent.");
    agent.params = vec![ParamDef::new(
        "ControllerNumberOfEntries",
        ValueType::UnsignedInt,
    )];
    let mut controller = ObjectDef::new("Device.LocalAgent.Controller.{i}.");
    controller.access = ObjectAccess::AddDelete;
    controller.params = vec![
        ParamDef::new("MTPNumberOfEntries", ValueType::UnsignedInt),
        ParamDef::new("BootParameterNumberOfEntries", ValueType::UnsignedInt),
        ParamDef::new("Enable", ValueType::Boolean).access(ParamAccess::ReadWrite),
        ParamDef::new("PeriodicNotifTime", ValueType::DateTime).access(ParamAccess::ReadWrite),
    ];
    let mut mtp = ObjectDef::new("Device.LocalAgent.Controller.{i}.MTP.{i}.");
    mtp.access = ObjectAccess::AddDelete;
    let mut websocket = ObjectDef::new("Device.LocalAgent.Controller.{i}.MTP.{i}.WebSocket.");
    websocket.params =
        vec![ParamDef::new("Port", ValueType::UnsignedInt).access(ParamAccess::ReadWrite)];
    let mut boot = ObjectDef::new("Device.LocalAgent.Controller.{i}.BootParameter.{i}.");
    boot.access = ObjectAccess::AddDelete;
    [agent, controller, mtp, websocket, boot]
        .into_iter()
        .collect()
}

async fn get_all(provider: &MemoryProvider, object: &str) -> ParamValues {
    let answers = provider
        .get(&[GetRequest {
            object: object.to_string(),
            params: vec![],
        }])
        .await;
    answers.into_iter().next().map(ok).unwrap_or_default()
}

#[tokio::test]
async fn number_of_entries_always_count_the_rows_of_their_table() {
    let provider = MemoryProvider::new("t", controller_schema());
    let controller = "Device.LocalAgent.Controller.1.";
    ok(provider.add_instance("Device.LocalAgent.Controller.", &ParamValues::new()));
    let values = get_all(&provider, controller).await;
    assert_eq!(values["MTPNumberOfEntries"], "0");
    assert_eq!(values["BootParameterNumberOfEntries"], "0");
    assert_eq!(
        get_all(&provider, "Device.LocalAgent.").await["ControllerNumberOfEntries"],
        "1"
    );
    for _ in 0..2 {
        ok(provider.add_instance(&format!("{controller}MTP."), &ParamValues::new()));
    }
    assert_eq!(
        get_all(&provider, controller).await["MTPNumberOfEntries"],
        "2"
    );
    ok(provider.delete_instance(&format!("{controller}MTP.1.")));
    let named = provider
        .get(&[GetRequest {
            object: controller.to_string(),
            params: vec!["MTPNumberOfEntries".to_string(), "Enable".to_string()],
        }])
        .await;
    let named = ok(named
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no answer")));
    assert_eq!(named.len(), 2, "{named:?}");
    assert_eq!(named["MTPNumberOfEntries"], "1");
    assert_eq!(
        provider
            .value(&format!("{controller}MTPNumberOfEntries"))
            .as_deref(),
        Some("1")
    );
    assert!(
        !provider
            .snapshot()
            .params
            .iter()
            .any(|(path, _)| path.ends_with("NumberOfEntries")),
        "counts are computed, never stored"
    );
}

#[tokio::test]
async fn parameters_without_a_default_start_with_the_zero_of_their_type() {
    let provider = MemoryProvider::new("t", controller_schema());
    ok(provider.add_instance("Device.LocalAgent.Controller.", &ParamValues::new()));
    ok(provider.add_instance("Device.LocalAgent.Controller.1.MTP.", &ParamValues::new()));
    let controller = get_all(&provider, "Device.LocalAgent.Controller.1.").await;
    assert_eq!(controller["Enable"], "false");
    assert_eq!(controller["PeriodicNotifTime"], "0001-01-01T00:00:00Z");
    let websocket = get_all(&provider, "Device.LocalAgent.Controller.1.MTP.1.WebSocket.").await;
    assert_eq!(websocket["Port"], "0");
}

#[tokio::test]
async fn restore_keeps_typed_values_over_stored_empty_placeholders_and_counts() {
    let provider = MemoryProvider::new("t", controller_schema());
    let snapshot = Snapshot {
        instances: vec![
            "Device.LocalAgent.Controller.1.".into(),
            "Device.LocalAgent.Controller.1.MTP.1.".into(),
        ],
        params: vec![
            (
                "Device.LocalAgent.Controller.1.MTPNumberOfEntries".into(),
                String::new(),
            ),
            (
                "Device.LocalAgent.Controller.1.MTP.1.WebSocket.Port".into(),
                String::new(),
            ),
            (
                "Device.LocalAgent.Controller.1.Enable".into(),
                "true".into(),
            ),
        ],
        next_instance: vec![],
    };
    let report = provider.restore(&snapshot);
    assert!(report.skipped.is_empty(), "{report:?}");
    let value = |path: &str| provider.value(path).unwrap_or_default();
    assert_eq!(
        value("Device.LocalAgent.Controller.1.MTPNumberOfEntries"),
        "1"
    );
    assert_eq!(
        value("Device.LocalAgent.Controller.1.MTP.1.WebSocket.Port"),
        "0"
    );
    assert_eq!(value("Device.LocalAgent.Controller.1.Enable"), "true");
}

#[test]
fn counted_tables_follow_the_name_and_the_model_exceptions() {
    let count = |name: &str| ParamDef::new(name, ValueType::UnsignedInt);
    assert_eq!(counted_table(&count("MTPNumberOfEntries")), Some("MTP"));
    assert_eq!(
        counted_table(&count("ForwardNumberOfEntries")),
        Some("Forwarding")
    );
    assert_eq!(counted_table(&count("NumberOfEntries")), None);
    assert_eq!(
        counted_table(&ParamDef::new("XNumberOfEntries", ValueType::String)),
        None
    );
}

#[test]
fn supported_path_replaces_instance_numbers() {
    assert_eq!(supported_path("Device.A.12.B.3.C"), "Device.A.{i}.B.{i}.C");
    assert_eq!(supported_path("Device.A."), "Device.A.");
}
