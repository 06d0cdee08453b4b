//! A Controller's Set, Add and Delete of `Device.LocalAgent.Controller.{i}` through the real
//! message handler, each followed by its durable write: one SQLite transaction in WAL mode with
//! `synchronous=FULL` (the WAL is fsynced before the response would leave), on a database in
//! the target directory (a real disk, not tmpfs).
//!
//! `cargo bench -p usp-agent --bench durable_write`

use std::sync::{Arc, Mutex};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use usp_agent::builtin::local_agent;
use usp_agent::messages::{self, RequestContext};
use usp_agent::store::Store;
use usp_codec::msg;
use usp_codec::usp_proto::usp::{self, request::ReqType};
use usp_dm::{DataModel, StoredChange};

struct Bench {
    runtime: tokio::runtime::Runtime,
    dm: DataModel,
    store: Store,
    pending: Arc<Mutex<Vec<StoredChange>>>,
    ctx: RequestContext,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let (store, _) = Store::open(&dir.path().join("agent.db")).expect("store");
        let pending: Arc<Mutex<Vec<StoredChange>>> = Arc::default();
        let sink = Arc::clone(&pending);
        let tables = local_agent::tables(Arc::new(move |changes: &[StoredChange]| {
            sink.lock().expect("pending").extend_from_slice(changes);
        }))
        .expect("tables");
        let mut dm = DataModel::default();
        dm.register(Arc::new(tables)).expect("register");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut bench = Bench {
            runtime,
            dm,
            store,
            pending,
            ctx: RequestContext::new("self::bench"),
            _dir: dir,
        };
        bench.handle(add("seed", "self::seed"));
        bench
    }

    /// Handles one message and writes its change set durably, as the agent's actor does.
    fn handle(&mut self, request: usp::Msg) -> usp::Msg {
        let reply = self
            .runtime
            .block_on(messages::handle(&mut self.dm, &self.ctx, request))
            .expect("an answer");
        let changes = std::mem::take(&mut *self.pending.lock().expect("pending"));
        assert!(
            !changes.is_empty(),
            "the message changed nothing: {reply:?}"
        );
        self.store.commit(&changes).expect("durable write");
        reply
    }
}

fn add(id: &str, endpoint: &str) -> usp::Msg {
    msg::request(
        id,
        ReqType::Add(usp::Add {
            allow_partial: false,
            create_objs: vec![usp::add::CreateObject {
                obj_path: "Device.LocalAgent.Controller.".into(),
                param_settings: vec![usp::add::CreateParamSetting {
                    param: "EndpointID".into(),
                    value: endpoint.into(),
                    required: true,
                }],
            }],
        }),
    )
}

fn set(value: u32) -> usp::Msg {
    msg::request(
        "set",
        ReqType::Set(usp::Set {
            allow_partial: false,
            update_objs: vec![usp::set::UpdateObject {
                obj_path: "Device.LocalAgent.Controller.1.".into(),
                param_settings: vec![usp::set::UpdateParamSetting {
                    param: "PeriodicNotifInterval".into(),
                    value: value.to_string(),
                    required: true,
                }],
            }],
        }),
    )
}

fn delete(path: String) -> usp::Msg {
    msg::request(
        "del",
        ReqType::Delete(usp::Delete {
            allow_partial: false,
            obj_paths: vec![path],
        }),
    )
}

/// The instance path an AddResp reports.
fn created(reply: &usp::Msg) -> String {
    use usp::add_resp::created_object_result::operation_status::OperStatus;
    let Some(usp::body::MsgBody::Response(usp::Response {
        resp_type: Some(usp::response::RespType::AddResp(resp)),
    })) = reply.body.as_ref().and_then(|body| body.msg_body.clone())
    else {
        panic!("not an AddResp: {reply:?}");
    };
    match resp.created_obj_results[0]
        .oper_status
        .as_ref()
        .and_then(|status| status.oper_status.clone())
    {
        Some(OperStatus::OperSuccess(success)) => success.instantiated_path,
        other => panic!("Add failed: {other:?}"),
    }
}

fn durable_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_write");
    let mut bench = Bench::new();
    let mut value = 60;
    group.bench_function("set_one_param", |b| {
        b.iter(|| {
            value += 1;
            bench.handle(set(value))
        })
    });
    let mut counter = 0u64;
    group.bench_function("add_instance", |b| {
        b.iter(|| {
            counter += 1;
            bench.handle(add("add", &format!("self::c{counter}")))
        })
    });
    // Setup (an Add) and routine (the Delete) both need the bench mutably, one at a time.
    let bench = std::cell::RefCell::new(bench);
    group.bench_function("delete_instance", |b| {
        b.iter_batched(
            || {
                counter += 1;
                let reply = bench
                    .borrow_mut()
                    .handle(add("add", &format!("self::d{counter}")));
                created(&reply)
            },
            |path| bench.borrow_mut().handle(delete(path)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, durable_writes);
criterion_main!(benches);
