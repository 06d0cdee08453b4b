//! The host side of the `usp:dm` world: Rust bindings generated from `wit/` and the state of
//! one plugin instance's `Store` ([`HostState`]), which implements the host imports (`log`,
//! `notify`, `emit-event`, `complete`, the key-value store, `config-get`) and WASI.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use usp_codec::UspErrorCode;
use usp_dm::{Change, ChangeSink};
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::plugin_fault;
use crate::kv::{KvError, KvStore};

wasmtime::component::bindgen!({
    world: "dm-plugin",
    path: "../../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

use usp::dm::types::{Change as WitChange, Fault, Level, ParamValue};

/// Longest log line kept from a plugin; the rest is cut so a plugin cannot flood the log.
const MAX_LOG_LINE: usize = 1024;

/// Where pushed changes go; empty until the engine attaches its sink.
pub(crate) type SharedSink = Arc<Mutex<Option<ChangeSink>>>;

/// Everything one plugin instance's `Store` holds.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub plugin: Arc<str>,
    pub claims: Arc<[String]>,
    pub kv: KvStore,
    pub config: Arc<BTreeMap<String, String>>,
    pub sink: SharedSink,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    fn claimed(&self, path: &str) -> bool {
        self.claims
            .iter()
            .any(|claim| path.starts_with(claim.as_str()))
    }

    /// Forwards a change to the engine if the path lies in the plugin's claims: a plugin must
    /// not raise notifications for subtrees it does not serve.
    fn push(&self, path: &str, change: Change) {
        if !self.claimed(path) {
            tracing::warn!(plugin = %self.plugin, path, "change outside the plugin's claims dropped");
            return;
        }
        let sink = self.sink.lock().ok().and_then(|sink| sink.clone());
        match sink {
            Some(sink) => sink.push(change),
            None => tracing::debug!(plugin = %self.plugin, path, "change before attach dropped"),
        }
    }
}

fn args(values: Vec<ParamValue>) -> usp_dm::Args {
    values
        .into_iter()
        .map(|value| (value.name, value.value))
        .collect()
}

fn kv_fault(error: KvError) -> Fault {
    let code = match error {
        KvError::TooLarge(_) => UspErrorCode::ResourcesExceeded,
        KvError::Io(_) => UspErrorCode::InternalError,
    };
    Fault {
        code: code.code(),
        message: error.to_string(),
    }
}

impl usp::dm::types::Host for HostState {}

impl usp::dm::host::Host for HostState {
    async fn log(&mut self, lvl: Level, msg: String) -> wasmtime::Result<()> {
        let line = match msg.char_indices().nth(MAX_LOG_LINE) {
            Some((cut, _)) => &msg[..cut],
            None => msg.as_str(),
        };
        let plugin = &*self.plugin;
        match lvl {
            Level::Error => tracing::error!(plugin, "{line}"),
            Level::Warn => tracing::warn!(plugin, "{line}"),
            Level::Info => tracing::info!(plugin, "{line}"),
            Level::Debug => tracing::debug!(plugin, "{line}"),
        }
        Ok(())
    }

    async fn notify(&mut self, changes: Vec<WitChange>) -> wasmtime::Result<()> {
        for change in changes {
            match change {
                WitChange::ValueChanged(at) => {
                    let path = at.path.clone();
                    self.push(
                        &path,
                        Change::ValueChanged {
                            path: at.path,
                            value: at.value,
                        },
                    );
                }
                WitChange::ObjectCreated(path) => {
                    self.push(&path, Change::ObjectCreated { path: path.clone() })
                }
                WitChange::ObjectDeleted(path) => {
                    self.push(&path, Change::ObjectDeleted { path: path.clone() })
                }
            }
        }
        Ok(())
    }

    async fn emit_event(
        &mut self,
        object: String,
        name: String,
        event_args: Vec<ParamValue>,
    ) -> wasmtime::Result<()> {
        let change = Change::Event {
            object: object.clone(),
            name,
            args: args(event_args),
        };
        self.push(&object, change);
        Ok(())
    }

    async fn complete(
        &mut self,
        token: u64,
        outcome: Result<Vec<ParamValue>, Fault>,
    ) -> wasmtime::Result<()> {
        let result = outcome
            .map(args)
            .map_err(|fault| plugin_fault(&self.plugin, fault.code, &fault.message));
        let sink = self.sink.lock().ok().and_then(|sink| sink.clone());
        if let Some(sink) = sink {
            sink.push(Change::OperationComplete { token, result });
        }
        Ok(())
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.kv.get(&key))
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Fault>> {
        Ok(self.kv.set(&key, &value).map_err(kv_fault))
    }

    async fn kv_delete(&mut self, key: String) -> wasmtime::Result<Result<(), Fault>> {
        Ok(self.kv.delete(&key).map_err(kv_fault))
    }

    async fn config_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }
}
