//! Engine benchmarks: what a Get and a Set cost inside the data-model engine, without the
//! message encoding or persistence around it.
//!
//! - `get_local_agent`: resolve + Get of `Device.LocalAgent.` (the TR-181 schema, with two
//!   Controllers, their MTPs and five Subscriptions), as the Get handler does it: resolve,
//!   expand the subtree, one batched read.
//! - `get_search_10k`: resolve + Get of `Device.X_Bench.Item.[Value>9990&&Enable==true].Name`
//!   over a 10 000-instance table.
//! - `set_100_params`: one Set of 100 instance paths (one parameter each) in one transaction,
//!   then commit (a 100-instance table).
//! - `add_at_1600`, `add_at_16000`: resolve the table, Add one instance with its unique key
//!   given, commit, in a table of that size (the previous iteration's instance is deleted
//!   outside the timing, so the table keeps its size). The two should cost about the same.
//!
//! Run: `cargo bench -p usp-dm --bench engine`.

use std::sync::Arc;

use std::cell::RefCell;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use usp_dm::{
    DataModel, DmError, MemoryProvider, ObjectAccess, ObjectDef, ParamAccess, ParamDef,
    ParamValues, ReadRequest, Schema, Snapshot, ValueType,
};

const TABLE_SIZE: u32 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|error| panic!("tokio runtime: {error}"))
}

/// Resolve, expand and read, as the Get handler does; returns the number of values read.
async fn get(dm: &DataModel, path: &str) -> Result<usize, DmError> {
    let resolution = dm.resolve_str(path).await?;
    let only: Vec<String> = match &resolution.leaf {
        usp_dm::Leaf::Param(name) => vec![name.clone()],
        _ => Vec::new(),
    };
    let mut objects = Vec::new();
    if only.is_empty() {
        for object in &resolution.objects {
            objects.extend(dm.subtree(object, 0).await?);
        }
    } else {
        objects = resolution.objects;
    }
    let requests: Vec<ReadRequest> = objects
        .into_iter()
        .map(|object| ReadRequest {
            object: object.path,
            supported: object.supported,
            params: only.clone(),
        })
        .collect();
    let mut count = 0;
    for answer in dm.read(&requests).await {
        count += answer?.len();
    }
    Ok(count)
}

fn local_agent() -> DataModel {
    let schema = usp_dm::tr181::schema("Device.LocalAgent.")
        .unwrap_or_else(|error| panic!("TR-181 LocalAgent schema: {error}"));
    let provider = MemoryProvider::new("LocalAgent", schema);
    let add = |table: &str, pairs: &[(&str, &str)]| {
        let values: ParamValues = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        provider
            .add_instance(table, &values)
            .unwrap_or_else(|error| panic!("{table}: {error}"));
    };
    for controller in ["ctrl-a", "ctrl-b"] {
        add(
            "Device.LocalAgent.Controller.",
            &[("EndpointID", controller)],
        );
    }
    add("Device.LocalAgent.Controller.1.MTP.", &[]);
    add("Device.LocalAgent.Controller.2.MTP.", &[]);
    for id in 1..=5 {
        add(
            "Device.LocalAgent.Subscription.",
            &[
                ("ID", &format!("sub-{id}")),
                ("Recipient", "Device.LocalAgent.Controller.1"),
            ],
        );
    }
    let mut dm = DataModel::default();
    dm.register(Arc::new(provider))
        .unwrap_or_else(|error| panic!("{error}"));
    dm
}

fn table(size: u32) -> DataModel {
    let mut table = ObjectDef::new("Device.X_Bench.Item.{i}.");
    table.access = ObjectAccess::AddDelete;
    table.unique_keys = vec![vec!["Name".into()]];
    table.params = vec![
        ParamDef::new("Name", ValueType::String).access(ParamAccess::ReadWrite),
        ParamDef::new("Value", ValueType::UnsignedInt).access(ParamAccess::ReadWrite),
        ParamDef::new("Enable", ValueType::Boolean).access(ParamAccess::ReadWrite),
    ];
    let schema: Schema = [ObjectDef::new("Device.X_Bench."), table]
        .into_iter()
        .collect();
    let provider = MemoryProvider::new("bench", schema);
    let mut snapshot = Snapshot::default();
    for number in 1..=size {
        let object = format!("Device.X_Bench.Item.{number}.");
        snapshot
            .params
            .push((format!("{object}Name"), format!("item-{number}")));
        snapshot
            .params
            .push((format!("{object}Value"), number.to_string()));
        snapshot
            .params
            .push((format!("{object}Enable"), (number % 2 == 0).to_string()));
        snapshot.instances.push(object);
    }
    let report = provider.restore(&snapshot);
    assert!(report.skipped.is_empty(), "{report:?}");
    let mut dm = DataModel::default();
    dm.register(Arc::new(provider))
        .unwrap_or_else(|error| panic!("{error}"));
    dm
}

fn benches(c: &mut Criterion) {
    let rt = runtime();

    let dm = local_agent();
    let values = rt
        .block_on(get(&dm, "Device.LocalAgent."))
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(values > 50, "LocalAgent has {values} values");
    c.bench_function("get_local_agent", |b| {
        b.iter(|| rt.block_on(get(&dm, "Device.LocalAgent.")))
    });

    let dm = table(TABLE_SIZE);
    let search = "Device.X_Bench.Item.[Value>9990&&Enable==true].Name";
    let found = rt
        .block_on(get(&dm, search))
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(found, 5);
    c.bench_function("get_search_10k", |b| {
        b.iter(|| rt.block_on(get(&dm, search)))
    });

    // One Set message with 100 UpdateObjects (`Device.X_Bench.Item.N.` Value=...), each
    // resolved on its own as the Set handler does, in one transaction.
    let dm = table(100);
    let paths: Vec<String> = (1..=100)
        .map(|n| format!("Device.X_Bench.Item.{n}."))
        .collect();
    let mut round = 0u32;
    c.bench_function("set_100_params", |b| {
        b.iter(|| {
            round += 1;
            rt.block_on(async {
                let mut tx = dm.begin();
                for path in &paths {
                    let resolution = dm.resolve_str(path).await?;
                    for object in &resolution.objects {
                        tx.set(object, "Value", &round.to_string()).await?;
                    }
                }
                tx.commit().await.map(|changes| changes.len())
            })
        })
    });

    for size in [1_600, 16_000] {
        add_at(c, &rt, size);
    }
}

fn add_at(c: &mut Criterion, rt: &tokio::runtime::Runtime, size: u32) {
    let dm = table(size);
    let added: RefCell<Option<String>> = RefCell::new(None);
    let mut round = 0u32;
    c.bench_function(&format!("add_at_{size}"), |b| {
        b.iter_batched(
            || {
                if let Some(path) = added.borrow_mut().take() {
                    rt.block_on(async {
                        let resolution = dm.resolve_str(&path).await?;
                        let mut tx = dm.begin();
                        tx.delete(&resolution.objects[0]).await?;
                        tx.commit().await
                    })
                    .unwrap_or_else(|error| panic!("{path}: {error}"));
                }
                round += 1;
                ParamValues::from([("Name".to_string(), format!("added-{round}"))])
            },
            |params| {
                let path = rt
                    .block_on(async {
                        let resolution = dm.resolve_str("Device.X_Bench.Item.").await?;
                        let mut tx = dm.begin();
                        let number = tx.add(&resolution.objects[0], &params).await?;
                        tx.commit().await?;
                        Ok::<_, DmError>(format!("Device.X_Bench.Item.{number}."))
                    })
                    .unwrap_or_else(|error| panic!("add: {error}"));
                *added.borrow_mut() = Some(path);
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
