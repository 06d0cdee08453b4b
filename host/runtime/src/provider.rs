//! [`PluginProvider`]: `usp_dm::Provider` for one loaded `usp:dm` component. Each call runs in
//! the plugin's own `Store` under a deadline; a trap, panic, deadline overrun or limit breach
//! marks the plugin failed (every call then answers 7003 naming the plugin), the store is
//! discarded, and when the backoff delay ends the plugin is re-instantiated from its
//! `InstancePre` (by a timer, so a plugin that pushes events comes back without waiting for a
//! call; a call after the delay restarts it too if the timer has not run yet).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};
use usp_codec::UspErrorCode;
use usp_dm::{
    Args, ChangeSink, GetRequest, GetResponse, OperateOutcome, ParamValues, Provider,
    ProviderError, Schema, Transaction,
};
use wasmtime::component::ResourceAny;
use wasmtime::{Engine, Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::bindings::usp::dm::types::{self as wit, OperateOutcome as WitOutcome};
use crate::bindings::{DmPlugin, DmPluginPre, HostState, SharedSink};
use crate::config::{Approved, Backoff};
use crate::engine::deadline_ticks;
use crate::error::{EngineError, RuntimeError, plugin_fault, plugin_unavailable};
use crate::kv::KvStore;

/// What the guest wrote to stderr is kept up to this size; its tail explains a panic.
const STDERR_CAPACITY: usize = 16 * 1024;
/// How much of the stderr tail goes into a failure reason.
const STDERR_TAIL: usize = 400;
/// Host resources (WASI streams, descriptors, pollables) one instance may hold at once. The
/// store's memory limit does not count them, and garbage-collected guests drop them late; a
/// guest past this bound traps and is restarted with an empty table.
pub const MAX_HOST_RESOURCES: usize = 10_000;

/// The state of a plugin as the agent can report it (for logs and a status parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginStatus {
    /// Serving calls.
    Running,
    /// Failed; calls answer 7003 until a restart succeeds.
    Failed {
        /// Why it failed (trap, deadline, memory limit, instantiation error).
        reason: String,
        /// Consecutive failures so far.
        failures: u32,
        /// When the next restart is attempted.
        retry_at: Instant,
    },
    /// Unloaded; calls answer 7003.
    Unloaded,
}

/// Everything needed to build a fresh instance of the plugin.
pub(crate) struct Blueprint {
    pub name: Arc<str>,
    pub engine: Engine,
    pub pre: DmPluginPre<HostState>,
    pub approved: Approved,
    pub claims: Arc<[String]>,
    pub kv: KvStore,
    pub backoff: Backoff,
}

struct Live {
    store: Store<HostState>,
    bindings: DmPlugin,
    generation: u64,
    stderr: MemoryOutputPipe,
    /// Failures before this instance started; cleared by its first successful call.
    failures_before: u32,
}

enum Slot {
    Live(Box<Live>),
    Failed {
        reason: String,
        failures: u32,
        retry_at: Instant,
    },
    Unloaded,
}

struct Inner {
    blueprint: Blueprint,
    config: Arc<BTreeMap<String, String>>,
    sink: SharedSink,
    ticks: u64,
    slot: AsyncMutex<Slot>,
    status: Mutex<PluginStatus>,
    generations: AtomicU64,
    /// Transactions dropped without commit, to be dropped in the store at the next call.
    orphans: Mutex<Vec<(u64, ResourceAny)>>,
    /// This plugin, for the restart timer (which must not keep an unloaded plugin alive).
    me: Weak<Inner>,
}

/// A loaded plugin serving its claimed subtrees.
#[derive(Clone)]
pub struct PluginProvider {
    inner: Arc<Inner>,
    schema: Arc<Schema>,
}

impl std::fmt::Debug for PluginProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginProvider")
            .field("name", &&*self.inner.blueprint.name)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a fresh instance could not be made: the readable reason recorded as the plugin's
/// failure, and the engine's error behind it.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
struct InstanceFailure {
    /// Deadline, trap or limit, with the tail of the guest's stderr.
    reason: String,
    /// The engine's error.
    #[source]
    source: EngineError,
}

impl Inner {
    fn name(&self) -> &str {
        &self.blueprint.name
    }

    async fn instantiate(&self, failures_before: u32) -> Result<Live, InstanceFailure> {
        let blueprint = &self.blueprint;
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        // Grants are read-only local directories (`/proc`, `/sys`, configuration): a file
        // operation there takes microseconds, while handing each one to a blocking-pool thread
        // cost ~0.1 ms and a thread per concurrent read.
        wasi.allow_blocking_current_thread(true);
        wasi.stderr(stderr.clone());
        for (host, guest) in &blueprint.approved.preopens {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|err| InstanceFailure {
                    reason: format!("preopen {}: {err}", host.display()),
                    source: err.into(),
                })?;
        }
        for (name, value) in &blueprint.approved.env {
            wasi.env(name, value);
        }
        let memory = usize::try_from(blueprint.approved.limits.memory).unwrap_or(usize::MAX);
        let state = HostState {
            wasi: wasi.build(),
            table: {
                let mut table = wasmtime::component::ResourceTable::new();
                table.set_max_capacity(MAX_HOST_RESOURCES);
                table
            },
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .memories(4)
                .tables(32)
                .instances(32)
                .table_elements(100_000)
                .trap_on_grow_failure(true)
                .build(),
            plugin: Arc::clone(&blueprint.name),
            claims: Arc::clone(&blueprint.claims),
            kv: blueprint.kv.clone(),
            config: Arc::clone(&self.config),
            sink: Arc::clone(&self.sink),
        };
        let mut store = Store::new(&blueprint.engine, state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.ticks);
        let bindings = blueprint
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|err| InstanceFailure {
                reason: describe_failure(&err, &stderr, blueprint.approved.limits.deadline_ms),
                source: err.into(),
            })?;
        Ok(Live {
            store,
            bindings,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            stderr,
            failures_before,
        })
    }

    fn set_status(&self, status: PluginStatus) {
        *lock(&self.status) = status;
    }

    /// The slot with a live instance, restarting a failed plugin whose backoff has elapsed.
    async fn acquire(&self) -> Result<MutexGuard<'_, Slot>, ProviderError> {
        let mut slot = self.slot.lock().await;
        match &*slot {
            Slot::Live(_) => {}
            Slot::Unloaded => return Err(plugin_unavailable(self.name(), "unloaded")),
            Slot::Failed {
                reason, retry_at, ..
            } if Instant::now() < *retry_at => {
                let wait = retry_at.saturating_duration_since(Instant::now());
                return Err(plugin_unavailable(
                    self.name(),
                    &format!("{reason} (restart in {} ms)", wait.as_millis()),
                ));
            }
            Slot::Failed { failures, .. } => {
                let failures = *failures;
                match self.instantiate(failures).await {
                    Ok(live) => {
                        tracing::info!(plugin = self.name(), failures, "plugin restarted");
                        *slot = Slot::Live(Box::new(live));
                        self.set_status(PluginStatus::Running);
                    }
                    Err(failure) => {
                        let reason = failure.reason;
                        self.fail(&mut slot, failures + 1, reason.clone());
                        return Err(plugin_unavailable(self.name(), &reason));
                    }
                }
            }
        }
        self.drop_orphans(&mut slot).await;
        Ok(slot)
    }

    fn fail(&self, slot: &mut Slot, failures: u32, reason: String) {
        let delay = self.blueprint.backoff.delay(failures);
        tracing::error!(
            plugin = self.name(),
            failures,
            restart_in_ms = delay.as_millis() as u64,
            "plugin failed: {reason}"
        );
        let retry_at = Instant::now() + delay;
        *slot = Slot::Failed {
            reason: reason.clone(),
            failures,
            retry_at,
        };
        self.set_status(PluginStatus::Failed {
            reason,
            failures,
            retry_at,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let me = self.me.clone();
            runtime.spawn(async move {
                tokio::time::sleep_until(retry_at.into()).await;
                if let Some(plugin) = me.upgrade() {
                    // A failed restart is logged and rescheduled by `fail`.
                    let _ = plugin.acquire().await;
                }
            });
        }
    }

    /// Turns the outcome of a call into the value or the 7003 error, marking the plugin failed
    /// when the call trapped.
    fn settle<T>(&self, slot: &mut Slot, result: wasmtime::Result<T>) -> Result<T, ProviderError> {
        let Slot::Live(live) = slot else {
            return Err(plugin_unavailable(self.name(), "not running"));
        };
        match result {
            Ok(value) => {
                live.failures_before = 0;
                Ok(value)
            }
            Err(err) => {
                let reason = describe_failure(
                    &err,
                    &live.stderr,
                    self.blueprint.approved.limits.deadline_ms,
                );
                let failures = live.failures_before + 1;
                self.fail(slot, failures, reason.clone());
                Err(plugin_unavailable(self.name(), &reason))
            }
        }
    }

    async fn drop_orphans(&self, slot: &mut Slot) {
        let orphans = std::mem::take(&mut *lock(&self.orphans));
        let Slot::Live(live) = slot else { return };
        for (generation, resource) in orphans {
            if generation != live.generation {
                continue;
            }
            live.store.set_epoch_deadline(self.ticks);
            let result = resource.resource_drop_async(&mut live.store).await;
            if result.is_err() {
                let _ = self.settle(slot, result);
                return;
            }
        }
    }
}

/// A readable reason for a failed call: deadline, stack, memory, trap, with the tail of what
/// the guest printed to stderr (a Rust panic message).
fn describe_failure(err: &wasmtime::Error, stderr: &MemoryOutputPipe, deadline_ms: u64) -> String {
    let mut reason = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!("call exceeded its deadline of {deadline_ms} ms"),
        Some(Trap::StackOverflow) => "call stack exhausted (deep recursion)".to_string(),
        Some(trap) => format!("trap: {trap}"),
        None => format!("{err:#}"),
    };
    let chain = format!("{err:#}");
    if chain.contains("forcing trap when growing memory") {
        reason = "memory limit exceeded".to_string();
    } else if chain.contains("resource table has no free keys") {
        reason =
            format!("host resource limit exceeded ({MAX_HOST_RESOURCES} handles held at once)");
    }
    let output = stderr.contents();
    let text = String::from_utf8_lossy(&output);
    let text = text.trim();
    if !text.is_empty() {
        let start = text
            .char_indices()
            .map(|(at, _)| at)
            .find(|at| text.len() - at <= STDERR_TAIL)
            .unwrap_or(0);
        reason.push_str(&format!("; stderr: {}", &text[start..]));
    }
    reason
}

impl PluginProvider {
    /// Instantiates the plugin, reads its schema and checks it against the claims.
    pub(crate) async fn start(
        blueprint: Blueprint,
        config: BTreeMap<String, String>,
    ) -> Result<PluginProvider, RuntimeError> {
        let name = blueprint.name.to_string();
        let ticks = deadline_ticks(blueprint.approved.limits.deadline());
        let inner = Arc::new_cyclic(|me| Inner {
            blueprint,
            config: Arc::new(config),
            sink: Arc::new(Mutex::new(None)),
            ticks,
            slot: AsyncMutex::new(Slot::Unloaded),
            status: Mutex::new(PluginStatus::Running),
            generations: AtomicU64::new(0),
            orphans: Mutex::new(Vec::new()),
            me: me.clone(),
        });
        let mut live = inner
            .instantiate(0)
            .await
            .map_err(|failure| RuntimeError::Instantiate {
                plugin: name.clone(),
                reason: failure.reason,
                source: failure.source,
            })?;
        live.store.set_epoch_deadline(ticks);
        let described = live
            .bindings
            .usp_dm_provider()
            .call_describe(&mut live.store)
            .await
            .map_err(|err| RuntimeError::Instantiate {
                plugin: name.clone(),
                reason: format!(
                    "describe() failed: {}",
                    describe_failure(
                        &err,
                        &live.stderr,
                        inner.blueprint.approved.limits.deadline_ms
                    )
                ),
                source: err.into(),
            })?;
        let schema = crate::schema::from_wit(&name, &inner.blueprint.claims, described)?;
        *inner.slot.lock().await = Slot::Live(Box::new(live));
        Ok(PluginProvider {
            inner,
            schema: Arc::new(schema),
        })
    }

    /// The plugin's current status.
    pub fn status(&self) -> PluginStatus {
        lock(&self.inner.status).clone()
    }

    /// Re-instantiates the plugin now from its `InstancePre`, dropping the running instance
    /// and its in-memory state (what a restart after a failure does, without waiting).
    pub async fn restart(&self) -> Result<(), ProviderError> {
        let inner = &self.inner;
        let mut slot = inner.slot.lock().await;
        if matches!(*slot, Slot::Unloaded) {
            return Err(plugin_unavailable(inner.name(), "unloaded"));
        }
        match inner.instantiate(0).await {
            Ok(live) => {
                *slot = Slot::Live(Box::new(live));
                inner.set_status(PluginStatus::Running);
                Ok(())
            }
            Err(failure) => {
                let reason = failure.reason;
                inner.fail(&mut slot, 1, reason.clone());
                Err(plugin_unavailable(inner.name(), &reason))
            }
        }
    }

    /// The subtrees the plugin claimed in its manifest.
    pub fn claims(&self) -> &[String] {
        &self.inner.blueprint.claims
    }

    /// Stops the plugin: its store is dropped and every later call answers 7003.
    pub async fn shut_down(&self) {
        *self.inner.slot.lock().await = Slot::Unloaded;
        self.inner.set_status(PluginStatus::Unloaded);
    }
}

fn to_wit_values(values: &ParamValues) -> Vec<wit::ParamValue> {
    values
        .iter()
        .map(|(name, value)| wit::ParamValue {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

fn from_wit_values(values: Vec<wit::ParamValue>) -> ParamValues {
    values
        .into_iter()
        .map(|value| (value.name, value.value))
        .collect()
}

#[async_trait]
impl Provider for PluginProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    fn attach(&self, sink: ChangeSink) {
        *lock(&self.inner.sink) = Some(sink);
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        let inner = &self.inner;
        let mut slot = inner.acquire().await?;
        let Slot::Live(live) = &mut *slot else {
            return Err(plugin_unavailable(inner.name(), "not running"));
        };
        live.store.set_epoch_deadline(inner.ticks);
        let result = live
            .bindings
            .usp_dm_provider()
            .call_instances(&mut live.store, table)
            .await;
        let mut numbers = inner
            .settle(&mut slot, result)?
            .map_err(|fault| plugin_fault(inner.name(), fault.code, &fault.message))?;
        numbers.retain(|number| *number > 0);
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        let inner = &self.inner;
        let failed = |error: ProviderError| requests.iter().map(|_| Err(error.clone())).collect();
        let mut slot = match inner.acquire().await {
            Ok(slot) => slot,
            Err(error) => return failed(error),
        };
        let Slot::Live(live) = &mut *slot else {
            return failed(plugin_unavailable(inner.name(), "not running"));
        };
        let wit_requests: Vec<wit::GetRequest> = requests
            .iter()
            .map(|request| wit::GetRequest {
                object: request.object.clone(),
                params: request.params.clone(),
            })
            .collect();
        live.store.set_epoch_deadline(inner.ticks);
        let result = live
            .bindings
            .usp_dm_provider()
            .call_get(&mut live.store, &wit_requests)
            .await;
        let answers = match inner.settle(&mut slot, result) {
            Ok(answers) => answers,
            Err(error) => return failed(error),
        };
        if answers.len() != requests.len() {
            return failed(ProviderError::new(
                UspErrorCode::InternalError,
                format!(
                    "plugin \"{}\" answered {} objects for {} requested",
                    inner.name(),
                    answers.len(),
                    requests.len()
                ),
            ));
        }
        answers
            .into_iter()
            .map(|answer| {
                answer
                    .map(from_wit_values)
                    .map_err(|fault| plugin_fault(inner.name(), fault.code, &fault.message))
            })
            .collect()
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        let inner = &self.inner;
        let mut slot = inner.acquire().await?;
        let Slot::Live(live) = &mut *slot else {
            return Err(plugin_unavailable(inner.name(), "not running"));
        };
        let generation = live.generation;
        live.store.set_epoch_deadline(inner.ticks);
        let result = live
            .bindings
            .usp_dm_provider()
            .call_begin(&mut live.store)
            .await;
        let resource = inner.settle(&mut slot, result)?;
        Ok(Box::new(PluginTransaction {
            inner: Arc::clone(&self.inner),
            resource: Some(resource),
            generation,
        }))
    }

    async fn operate(
        &self,
        command: &str,
        command_key: &str,
        input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        let inner = &self.inner;
        let mut slot = inner.acquire().await?;
        let Slot::Live(live) = &mut *slot else {
            return Err(plugin_unavailable(inner.name(), "not running"));
        };
        live.store.set_epoch_deadline(inner.ticks);
        let result = live
            .bindings
            .usp_dm_provider()
            .call_operate(
                &mut live.store,
                command,
                command_key,
                &to_wit_values(&input),
            )
            .await;
        match inner.settle(&mut slot, result)? {
            Ok(WitOutcome::Done(output)) => Ok(OperateOutcome::Done(from_wit_values(output))),
            Ok(WitOutcome::Started(token)) => Ok(OperateOutcome::Started(token)),
            Err(fault) => Err(plugin_fault(inner.name(), fault.code, &fault.message)),
        }
    }
}

/// A transaction resource living in the plugin's store. Dropped without commit, it is queued
/// and dropped in the store at the plugin's next call (dropping the guest resource = abort).
struct PluginTransaction {
    inner: Arc<Inner>,
    resource: Option<ResourceAny>,
    generation: u64,
}

enum Step<'a> {
    Set(&'a str, &'a str, &'a str),
    Add(&'a str, Vec<wit::ParamValue>),
    Delete(&'a str),
    Prepare,
    Commit,
}

impl PluginTransaction {
    async fn step(&mut self, step: Step<'_>) -> Result<Option<u32>, ProviderError> {
        let inner = Arc::clone(&self.inner);
        let resource = self
            .resource
            .ok_or_else(|| plugin_unavailable(inner.name(), "transaction already finished"))?;
        let mut slot = inner.acquire().await?;
        let Slot::Live(live) = &mut *slot else {
            return Err(plugin_unavailable(inner.name(), "not running"));
        };
        if live.generation != self.generation {
            self.resource = None;
            return Err(plugin_unavailable(
                inner.name(),
                "restarted during the transaction; its staged changes are lost",
            ));
        }
        live.store.set_epoch_deadline(inner.ticks);
        let guest = live.bindings.usp_dm_provider().transaction();
        let store = &mut live.store;
        let result = match step {
            Step::Set(object, param, value) => guest
                .call_set(&mut *store, resource, object, param, value)
                .await
                .map(|outcome| outcome.map(|()| None)),
            Step::Add(table, params) => guest
                .call_add(&mut *store, resource, table, &params)
                .await
                .map(|outcome| outcome.map(Some)),
            Step::Delete(object) => guest
                .call_delete(&mut *store, resource, object)
                .await
                .map(|outcome| outcome.map(|()| None)),
            Step::Prepare => guest
                .call_prepare(&mut *store, resource)
                .await
                .map(|outcome| outcome.map(|()| None)),
            Step::Commit => {
                let committed = guest.call_commit(&mut *store, resource).await;
                match committed {
                    Ok(outcome) => {
                        self.resource = None;
                        resource
                            .resource_drop_async(&mut *store)
                            .await
                            .map(|()| outcome.map(|()| None))
                    }
                    Err(err) => Err(err),
                }
            }
        };
        inner
            .settle(&mut slot, result)?
            .map_err(|fault| plugin_fault(inner.name(), fault.code, &fault.message))
    }
}

#[async_trait]
impl Transaction for PluginTransaction {
    async fn set(&mut self, object: &str, param: &str, value: &str) -> Result<(), ProviderError> {
        self.step(Step::Set(object, param, value)).await.map(|_| ())
    }

    async fn add(&mut self, table: &str, params: &ParamValues) -> Result<u32, ProviderError> {
        let number = self.step(Step::Add(table, to_wit_values(params))).await?;
        number.ok_or_else(|| plugin_unavailable(self.inner.name(), "add returned no instance"))
    }

    async fn delete(&mut self, object: &str) -> Result<(), ProviderError> {
        self.step(Step::Delete(object)).await.map(|_| ())
    }

    async fn prepare(&mut self) -> Result<(), ProviderError> {
        self.step(Step::Prepare).await.map(|_| ())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), ProviderError> {
        self.step(Step::Commit).await.map(|_| ())
    }
}

impl Drop for PluginTransaction {
    fn drop(&mut self) {
        if let Some(resource) = self.resource.take() {
            lock(&self.inner.orphans).push((self.generation, resource));
        }
    }
}

/// How long a failed plugin waits before its next restart attempt, for status reports.
pub fn retry_in(status: &PluginStatus) -> Option<Duration> {
    match status {
        PluginStatus::Failed { retry_at, .. } => {
            Some(retry_at.saturating_duration_since(Instant::now()))
        }
        _ => None,
    }
}
