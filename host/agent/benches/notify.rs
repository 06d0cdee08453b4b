//! The cost of a Set that triggers notifications, with 10 000 subscriptions and a table of
//! 100 000 instances (`Device.X_Bench.Item.{i}.`), through the real data model (memory
//! providers), the real ControllerTrust (full-access recipient) and the real [`Notifier`].
//!
//! Scenarios (each: one committed Set of `Item.{n}.Value`, then `Notifier::on_change` on the
//! pushed change, until every Notify Msg is built):
//! - `fanout`: 10 000 subscriptions on `Device.X_Bench.Item.*.Value` (wildcard): 10 000
//!   Notifys per Set;
//! - `selective`: 10 000 subscriptions on `Device.X_Bench.Item.{k}.Value`, one per instance
//!   k = 1..10 000: every one is a candidate for the index, one matches;
//! - `unrelated`: 10 000 wildcard subscriptions on another parameter of the same table: the
//!   index rules them all out;
//! - `search`: 10 subscriptions with a search expression (`Item.[Value=="hit"].Value`), each
//!   evaluated against the 100 000 instances.
//!
//! `cargo bench -p usp-agent --bench notify`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usp_agent::builtin::controller_trust::ControllerTrustProvider;
use usp_agent::builtin::local_agent::{self, CONTROLLER_TABLE, SUBSCRIPTION_TABLE};
use usp_agent::notify::Notifier;
use usp_dm::{
    Change, ChangeSink, CommitHook, DataModel, MemoryProvider, ObjectAccess, ObjectDef,
    ParamAccess, ParamDef, Schema, Snapshot, ValueType,
};

const INSTANCES: u32 = 100_000;
const SUBSCRIPTIONS: u32 = 10_000;
const TABLE: &str = "Device.X_Bench.Item.";

struct Scenario {
    name: &'static str,
    subscriptions: u32,
    reference: fn(u32) -> String,
    /// Instance whose Value the measured Sets write.
    target: u32,
}

fn bench_table() -> MemoryProvider {
    let mut item = ObjectDef::new("Device.X_Bench.Item.{i}.");
    item.access = ObjectAccess::AddDelete;
    for name in ["Value", "Other"] {
        item.params
            .push(ParamDef::new(name, ValueType::String).access(ParamAccess::ReadWrite));
    }
    let schema: Schema = [ObjectDef::new("Device.X_Bench."), item]
        .into_iter()
        .collect();
    let provider = MemoryProvider::new("bench table", schema);
    let mut snapshot = Snapshot::default();
    for n in 1..=INSTANCES {
        snapshot.instances.push(format!("{TABLE}{n}."));
        let value = if n % 10_000 == 0 { "hit" } else { "miss" };
        snapshot
            .params
            .push((format!("{TABLE}{n}.Value"), value.to_string()));
    }
    let report = provider.restore(&snapshot);
    assert!(report.skipped.is_empty(), "bench rows rejected");
    provider
}

fn subscriptions(scenario: &Scenario) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for k in 1..=scenario.subscriptions {
        let row = format!("{SUBSCRIPTION_TABLE}{k}.");
        snapshot.instances.push(row.clone());
        for (name, value) in [
            ("Enable", "true".to_string()),
            ("ID", format!("bench-{k}")),
            ("Recipient", "Device.LocalAgent.Controller.1".to_string()),
            ("NotifType", "ValueChange".to_string()),
            ("ReferenceList", (scenario.reference)(k)),
        ] {
            snapshot.params.push((format!("{row}{name}"), value));
        }
    }
    snapshot.instances.push(format!("{CONTROLLER_TABLE}1."));
    for (name, value) in [
        ("EndpointID", "bench::controller"),
        ("Enable", "true"),
        ("AssignedRole", "Device.LocalAgent.ControllerTrust.Role.1"),
    ] {
        snapshot
            .params
            .push((format!("{CONTROLLER_TABLE}1.{name}"), value.to_string()));
    }
    snapshot
}

struct Measured {
    set: Duration,
    notify: Duration,
    notifys: usize,
}

async fn run(scenario: &Scenario, rounds: u32) -> (Measured, Duration) {
    let setup = Instant::now();
    let changes: Arc<Mutex<Vec<Change>>> = Arc::default();
    let sink = Arc::clone(&changes);
    let mut dm = DataModel::new(ChangeSink::new(move |change| {
        sink.lock().expect("changes").push(change)
    }));
    let hook: CommitHook = Arc::new(|_| {});
    let tables = local_agent::tables(hook.clone()).expect("tables");
    tables.restore(&subscriptions(scenario));
    let trust = ControllerTrustProvider::new(&Snapshot::default(), tables.clone(), hook)
        .await
        .expect("trust");
    dm.register(Arc::new(tables.clone())).expect("tables");
    dm.register(Arc::new(trust.clone())).expect("trust");
    dm.register(Arc::new(bench_table())).expect("bench table");
    let mut notifier = Notifier::new(tables, trust.trust());
    notifier.load().await;
    assert_eq!(notifier.subscriptions(), scenario.subscriptions as usize);
    changes.lock().expect("changes").clear();
    let setup = setup.elapsed();

    let object = dm
        .resolve_str(&format!("{TABLE}{}.", scenario.target))
        .await
        .expect("target")
        .objects
        .remove(0);
    let mut total = Measured {
        set: Duration::ZERO,
        notify: Duration::ZERO,
        notifys: 0,
    };
    for round in 0..rounds {
        let started = Instant::now();
        let mut tx = dm.begin();
        let value = if scenario.name == "search" {
            "hit".to_string()
        } else {
            format!("v{round}")
        };
        tx.set(&object, "Value", &value).await.expect("set");
        tx.commit().await.expect("commit");
        let committed = Instant::now();
        let pushed = std::mem::take(&mut *changes.lock().expect("changes"));
        for change in &pushed {
            total.notifys += notifier.on_change(&dm, change, Instant::now()).await.len();
        }
        total.set += committed - started;
        total.notify += committed.elapsed();
    }
    (
        Measured {
            set: total.set / rounds,
            notify: total.notify / rounds,
            notifys: total.notifys / rounds as usize,
        },
        setup,
    )
}

fn main() {
    let scenarios = [
        Scenario {
            name: "fanout",
            subscriptions: SUBSCRIPTIONS,
            reference: |_| format!("{TABLE}*.Value"),
            target: 4242,
        },
        Scenario {
            name: "selective",
            subscriptions: SUBSCRIPTIONS,
            reference: |k| format!("{TABLE}{k}.Value"),
            target: 4242,
        },
        Scenario {
            name: "unrelated",
            subscriptions: SUBSCRIPTIONS,
            reference: |_| format!("{TABLE}*.Other"),
            target: 4242,
        },
        Scenario {
            name: "search",
            subscriptions: 10,
            reference: |_| format!(r#"{TABLE}[Value=="hit"].Value"#),
            target: 50_000,
        },
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{INSTANCES} instances; per Set: commit time, notification time (matching, access, Msgs), Notifys built"
    );
    for scenario in &scenarios {
        let rounds = if scenario.name == "fanout" { 5 } else { 20 };
        let (measured, setup) = runtime.block_on(run(scenario, rounds));
        println!(
            "{:<10} {:>6} subscriptions: set {:>9.3} ms, notify {:>9.3} ms, {:>6} Notifys ({:.2} µs each); setup {:.1} s",
            scenario.name,
            scenario.subscriptions,
            measured.set.as_secs_f64() * 1e3,
            measured.notify.as_secs_f64() * 1e3,
            measured.notifys,
            if measured.notifys > 0 {
                measured.notify.as_secs_f64() * 1e6 / measured.notifys as f64
            } else {
                0.0
            },
            setup.as_secs_f64(),
        );
    }
}
