//! Wiring: [`run`] builds the agent from its [`Config`] (store, built-in objects, data model,
//! MTPs, control socket) and drives the data-model actor until shutdown.
//!
//! Layout:
//! - [`actor`]: the task that owns the data model and the store and handles every Record.
//! - `access`: Controller lookup and the RBAC adapter.
//! - `hooks`: what the agent does for the message handlers (Request rows, Subscription fill).
//! - `plugins`: the WebAssembly plugins registered at start.
//! - `routing`: which way a Notify goes to a Controller (its `MTP.{j}` rows in order).

pub mod actor;

mod access;
mod hooks;
#[cfg(feature = "plugins")]
mod plugins;
mod routing;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use usp_dm::{CommitHook, DataModel, DmError, MemoryProvider, Provider, StoredChange};
use usp_mtp::{ControllerDirectory, MtpSettings, Mtps};

use crate::boot::{self, BootError};
use crate::builtin::ReadOnly;
use crate::builtin::certificate::{self, Certificates};
use crate::builtin::controller_trust::{CONTROLLER_TRUST, ControllerTrustProvider};
use crate::builtin::device::DeviceProvider;
use crate::builtin::device_info::DeviceInfoProvider;
use crate::builtin::local_agent::{
    self, CONTROLLER_TABLE, LocalAgentProvider, LocalAgentTables, SUBSCRIPTION_TABLE,
};
use crate::builtin::mtp::{self, MtpParents};
use crate::builtin::{BuiltinError, standard_subtree};
use crate::config::{Config, EndpointIdSource};
use crate::control::server::{ControlError, ControlServer};
use crate::notify::Notifier;
use crate::rbac::CertificateRoles;
use crate::store::{Store, StoreError};

use actor::{Actor, Inputs};
use hooks::Hooks;

/// The MTPs this agent implements, as `Device.LocalAgent.SupportedProtocols` lists them.
pub const SUPPORTED_PROTOCOLS: &str = "MQTT,STOMP,WebSocket,UDS";

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The shutdown future resolved.
    Shutdown,
    /// `Device.Reboot()` (without a configured command) or `Device.FactoryReset()`: the caller
    /// should start the agent again (the binary re-executes itself).
    Restart,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The SQLite store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Start-up state could not be built.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// A built-in object's schema is missing from the embedded model.
    #[error(transparent)]
    Builtin(#[from] BuiltinError),
    /// A provider could not be registered.
    #[error("registering a provider: {0}")]
    Register(#[from] DmError),
    /// The control socket could not be opened.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The plugin host could not start.
    #[cfg(feature = "plugins")]
    #[error("plugin host: {0}")]
    Plugins(#[from] usp_runtime::RuntimeError),
}

/// Runs the agent until `shutdown` resolves or a device command asks for a restart.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<Exit, AgentError> {
    let started = Instant::now();
    let (mut store, opened) = Store::open(&config.database_path())?;
    let fresh = opened.is_fresh() || store.meta(boot::meta::FACTORY_RESET_PENDING)?.is_some();

    let pending: Arc<Mutex<Vec<StoredChange>>> = Arc::default();
    let hook: CommitHook = {
        let pending = Arc::clone(&pending);
        Arc::new(move |changes: &[StoredChange]| {
            pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(changes);
        })
    };
    let tables = local_agent::tables(Arc::clone(&hook))?;
    let mut stored_schema = (*Provider::schema(&tables)).clone();
    for def in standard_subtree(CONTROLLER_TRUST, &[])?.objects() {
        stored_schema.insert(def.clone());
    }
    let factory_file = config.factory_reset_file();
    let initial = boot::initial_rows(&store, &stored_schema, fresh, factory_file.as_deref())?;
    let (trust_rows, table_rows) = boot::split(initial.rows, CONTROLLER_TRUST);
    boot::restore(&tables, &table_rows);
    let controller_trust = ControllerTrustProvider::new(&trust_rows, tables.clone(), hook).await?;
    if fresh {
        boot::persist_fresh(&mut store, &boot::join([tables.snapshot(), trust_rows]))?;
    }
    let factory_endpoint =
        boot::factory_endpoint_id(&mut store, fresh, initial.endpoint_id.as_ref())?;
    let (endpoint_id, source) = config.endpoint_id_with(factory_endpoint.as_deref());
    if let Some(factory) = factory_endpoint.as_deref()
        && source != EndpointIdSource::FactoryResetFile
    {
        // The file's line is not lost silently: say which setting took its place.
        let line = initial
            .endpoint_id
            .as_ref()
            .map_or_else(String::new, |file| format!("line {}: ", file.line));
        tracing::info!(
            "factory-reset {line}Device.LocalAgent.EndpointID {factory:?} is overridden by {source} ({endpoint_id:?})"
        );
    }
    let cause = boot::take_boot_cause(
        &mut store,
        fresh,
        initial.boot_cause.as_ref().map(|file| file.value.as_str()),
    )?;
    // The file's [[mtp]] tables go into the MTP rows when they changed (or the rows are new);
    // otherwise the rows, as Controllers left them, rule (see builtin::mtp).
    let file_mtps = serde_json::to_string(&config.mtp).unwrap_or_default();
    if fresh || store.meta(boot::meta::MTP_SEED)?.as_deref() != Some(file_mtps.as_str()) {
        mtp::seed(&tables, &config.mtp).await;
        store.set_meta(boot::meta::MTP_SEED, Some(&file_mtps))?;
    }
    mtp::forget_links(&tables).await;
    drop_non_persistent_subscriptions(&tables).await;
    let (certificates, unusable) = Certificates::load(&config.controller_certificate_files());
    for error in unusable {
        tracing::error!(%error, "trusted certificates not listed in Device.LocalAgent.Certificate.");
    }
    certificate::sync_table(&tables, &certificates);
    forget_inherited_roles(&tables).await;

    let (changes_tx, changes) = mpsc::unbounded_channel();
    let mut dm = DataModel::new_tagged(Arc::new(move |provider, change| {
        let _ = changes_tx.send((provider, change));
    }));
    let (actions_tx, actions) = mpsc::unbounded_channel();
    let device = Arc::new(DeviceProvider::new(actions_tx.clone())?);
    dm.register(Arc::clone(&device) as Arc<dyn Provider>)?;
    dm.register(Arc::new(ReadOnly(DeviceInfoProvider::new(
        config.device_info.clone(),
        started,
    )?)))?;
    dm.register(Arc::new(ReadOnly(LocalAgentProvider::new(
        endpoint_id.clone(),
        config.device_info.software_version.clone(),
        SUPPORTED_PROTOCOLS.to_string(),
        started,
        tables.clone(),
    )?)))?;
    dm.register(Arc::new(LocalAgentTables::new(
        tables.clone(),
        actions_tx,
        certificates.clone(),
    )))?;
    dm.register(Arc::new(ReadOnly(MtpParents::new(tables.clone())?)))?;
    let trust = controller_trust.trust();
    dm.register(Arc::new(controller_trust))?;
    // The plugin host runs the providers registered above; it lives until `run` returns.
    #[cfg(feature = "plugins")]
    let plugin_host = plugins::load(&config, &mut dm).await?;
    device.announce_boot(&cause.command_key, &cause.cause, &cause.reason);

    let (mtp_tx, mtp) = mpsc::channel(256);
    let running = mtp::settings(&tables, &config.mtp).await;
    let links = routing::Links::new(&running);
    // Filled before the MTPs start, so their first MQTTConnect Records reach the Controllers
    // the factory-reset file or a Controller configured.
    let controller_topics = ControllerDirectory::new();
    controller_topics.replace(routing::mqtt_controller_rows(&tables).await);
    let mtps = Mtps::start_with_controllers(
        MtpSettings {
            endpoint_id: endpoint_id.clone(),
            max_record_size: config.agent.max_record_size,
            mtps: running,
        },
        mtp_tx,
        controller_topics.clone(),
    );
    let (local_tx, local) = mpsc::channel(64);
    let socket = config.control_socket();
    let server = ControlServer::bind(
        &socket,
        endpoint_id.clone(),
        config.agent.max_record_size,
        local_tx,
    )?;
    let (stop_server, server_stop) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server.serve(server_stop));

    let mut notifier = Notifier::new(tables.clone(), trust.clone());
    notifier.load().await;
    match store.pending_notifys() {
        Ok(stored) => notifier.restore(stored, Instant::now()),
        Err(error) => tracing::error!(%error, "could not read the pending Notifys"),
    }
    let mut actor = Actor {
        endpoint_id: endpoint_id.clone(),
        config,
        dm,
        store,
        hooks: Arc::new(Hooks::new(tables.clone())),
        tables,
        trust,
        certificates,
        certificate_roles: CertificateRoles::default(),
        mtps,
        pending,
        notifier,
        routes: HashMap::new(),
        links,
        mtp_changed: false,
        controller_topics,
        controllers_changed: false,
    };
    actor.persist();
    // The rows written at start (the config file's MTPs) are what the MTPs already run with,
    // and the Controller topics were read after them.
    actor.mtp_changed = false;
    actor.controllers_changed = false;
    tracing::info!(
        %endpoint_id,
        endpoint_id_from = %source,
        socket = %socket.display(),
        cause = %cause.cause,
        "usp-agent running"
    );
    let exit = actor
        .run(
            Inputs {
                local,
                mtp,
                changes,
                actions,
            },
            shutdown,
        )
        .await;
    stop_server.send_replace(true);
    if let Err(error) = server.await {
        tracing::warn!(%error, "control server task failed");
    }
    #[cfg(feature = "plugins")]
    drop(plugin_host);
    if let Err(error) = std::fs::remove_file(&socket) {
        tracing::debug!(%error, "control socket already gone");
    }
    Ok(exit)
}

/// Subscriptions with `Persistent` false do not survive a restart (TR-181).
async fn drop_non_persistent_subscriptions(tables: &MemoryProvider) {
    let Ok(numbers) = tables.instances(SUBSCRIPTION_TABLE).await else {
        return;
    };
    for number in numbers {
        let row = format!("{SUBSCRIPTION_TABLE}{number}.");
        if tables.value(&format!("{row}Persistent")).as_deref() != Some("true")
            && let Err(error) = tables.delete_instance(&row)
        {
            tracing::warn!(%error, %row, "could not drop a non-persistent subscription");
        }
    }
}

/// R-SEC.21: role decisions do not survive a reboot. `InheritedRole` holds the role a
/// Controller's certificate granted on its latest TLS connection, so it starts empty.
async fn forget_inherited_roles(tables: &MemoryProvider) {
    let Ok(numbers) = tables.instances(CONTROLLER_TABLE).await else {
        return;
    };
    for number in numbers {
        let path = format!("{CONTROLLER_TABLE}{number}.InheritedRole");
        if tables.value(&path).is_some_and(|roles| !roles.is_empty())
            && let Err(error) = tables.set_value(&path, "")
        {
            tracing::warn!(%error, %path, "could not clear an inherited role");
        }
    }
}
