//! [`Mtps`]: the handle the agent holds. It starts one task per enabled MTP, routes outbound
//! Records to the right task, reconciles the running set with new settings, and shuts them all
//! down (each sending its Disconnect Records first, R-MTP.7).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{MtpConfig, MtpSettings, TransportConfig};
use crate::directory::ControllerDirectory;
use crate::event::{ControllerTarget, Dest, MtpEvent, ReplyPath};
use crate::link::{Ctx, Outbound};
use crate::{mqtt, stomp, uds, websocket};

/// Outbound Records queued per MTP before `send` waits: enough to absorb a burst of
/// notifications while a broker connection is re-established.
const OUTBOUND_QUEUE: usize = 256;

/// How long a stopping MTP may take to send its Disconnect Records and close.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a Record could not be handed to an MTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No running MTP has this name (unknown, disabled, or being replaced).
    #[error("no running MTP named {0:?}")]
    UnknownMtp(String),
    /// The MTP task has ended (shut down).
    #[error("MTP {0:?} has stopped")]
    Stopped(String),
}

/// A running MTP task.
#[derive(Debug)]
struct Running {
    config: MtpConfig,
    outbound: mpsc::Sender<Outbound>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The running MTPs and the settings they were started with.
#[derive(Debug)]
struct Registry {
    endpoint_id: String,
    max_record_size: usize,
    /// Shared with every task: the Controllers' topics from the agent's data model.
    controllers: ControllerDirectory,
    running: HashMap<String, Running>,
}

impl Drop for Registry {
    /// Dropping the last [`Mtps`] handle stops every task; each still sends its Disconnect
    /// Records, but nobody waits for them (use [`Mtps::shutdown`] for that).
    fn drop(&mut self) {
        for r in self.running.values() {
            r.stop.cancel();
        }
    }
}

/// Handle to every MTP of the agent. Cheap to clone; all clones drive the same tasks, and
/// dropping the last clone stops them.
///
/// Records arrive as [`MtpEvent::Record`] on the channel given to [`Mtps::start`]; answer them
/// with [`Mtps::send`] and the record's [`ReplyPath`].
#[derive(Debug, Clone)]
pub struct Mtps {
    // A tokio mutex: `update` and `shutdown` hold it while old tasks drain, so a `send` racing
    // a reconfiguration waits for the new task instead of hitting the old one.
    registry: Arc<Mutex<Registry>>,
    events: mpsc::Sender<MtpEvent>,
}

impl Mtps {
    /// Starts every enabled MTP in `settings`; their events go to `events`. Must be called
    /// inside a tokio runtime.
    pub fn start(settings: MtpSettings, events: mpsc::Sender<MtpEvent>) -> Mtps {
        Mtps::start_with_controllers(settings, events, ControllerDirectory::default())
    }

    /// [`Mtps::start`] with the Controllers' MQTT topics from the agent's data model: the MQTT
    /// MTPs read `controllers` whenever they need a Controller's topic, so the agent's later
    /// [`ControllerDirectory::replace`] takes effect without restarting anything.
    pub fn start_with_controllers(
        settings: MtpSettings,
        events: mpsc::Sender<MtpEvent>,
        controllers: ControllerDirectory,
    ) -> Mtps {
        let mut registry = Registry {
            endpoint_id: settings.endpoint_id.clone(),
            max_record_size: settings.max_record_size,
            controllers,
            running: HashMap::new(),
        };
        for config in settings.mtps.into_iter().filter(|m| m.enable) {
            if registry.running.contains_key(&config.name) {
                tracing::error!(mtp = %config.name, "duplicate MTP name; only the first is started");
                continue;
            }
            let running = spawn(&registry, config, events.clone());
            registry
                .running
                .insert(running.config.name.clone(), running);
        }
        Mtps {
            registry: Arc::new(Mutex::new(registry)),
            events,
        }
    }

    /// Applies new settings: MTPs whose configuration changed are stopped (Disconnect Records
    /// sent) and started again with the new values; removed or disabled ones are stopped; new
    /// ones are started; unchanged ones keep their connections. A change of the Endpoint ID or
    /// the record size limit restarts every MTP.
    pub async fn update(&self, settings: MtpSettings) {
        let mut registry = self.registry.lock().await;
        let global_change = registry.endpoint_id != settings.endpoint_id
            || registry.max_record_size != settings.max_record_size;
        let mut wanted: HashMap<String, MtpConfig> = HashMap::new();
        for m in settings.mtps.into_iter().filter(|m| m.enable) {
            if wanted.contains_key(&m.name) {
                tracing::error!(mtp = %m.name, "duplicate MTP name; only the first is started");
                continue;
            }
            wanted.insert(m.name.clone(), m);
        }
        let stale: Vec<String> = registry
            .running
            .iter()
            .filter(|(name, r)| global_change || wanted.get(*name) != Some(&r.config))
            .map(|(name, _)| name.clone())
            .collect();
        let stopping: Vec<Running> = stale
            .iter()
            .filter_map(|name| registry.running.remove(name))
            .collect();
        stop_all(stopping).await;
        registry.endpoint_id = settings.endpoint_id;
        registry.max_record_size = settings.max_record_size;
        for (name, config) in wanted {
            if !registry.running.contains_key(&name) {
                let running = spawn(&registry, config, self.events.clone());
                registry.running.insert(name, running);
            }
        }
    }

    /// Drops and re-establishes one MTP with its current settings (Disconnect Records first):
    /// `Device.MQTT.Client.{i}.ForceReconnect()`, `Controller.{i}.MTP.{j}.WebSocket.Reset()`.
    pub async fn reconnect(&self, mtp: &str) -> Result<(), SendError> {
        let mut registry = self.registry.lock().await;
        let old = registry
            .running
            .remove(mtp)
            .ok_or_else(|| SendError::UnknownMtp(mtp.to_string()))?;
        let config = old.config.clone();
        stop_all(vec![old]).await;
        let running = spawn(&registry, config, self.events.clone());
        registry.running.insert(mtp.to_string(), running);
        Ok(())
    }

    /// Queues `bytes` (a response Record) on the path its request came in on.
    pub async fn send(&self, reply: &ReplyPath, bytes: Vec<u8>) -> Result<(), SendError> {
        self.queue(&reply.mtp, reply.dest.clone(), bytes).await
    }

    /// Queues `bytes` (a notification Record) for a controller reached through `target`.
    pub async fn send_to_controller(
        &self,
        target: &ControllerTarget,
        bytes: Vec<u8>,
    ) -> Result<(), SendError> {
        self.queue(target.mtp(), target.dest(), bytes).await
    }

    /// Names of the running MTPs.
    pub async fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self.registry.lock().await.running.keys().cloned().collect();
        names.sort();
        names
    }

    /// Stops every MTP, each sending its Disconnect Records first (R-MTP.7), and waits for them
    /// (at most a few seconds each).
    pub async fn shutdown(&self) {
        let mut registry = self.registry.lock().await;
        let all: Vec<Running> = registry.running.drain().map(|(_, r)| r).collect();
        stop_all(all).await;
    }

    async fn queue(&self, mtp: &str, dest: Dest, bytes: Vec<u8>) -> Result<(), SendError> {
        let sender = {
            let registry = self.registry.lock().await;
            registry
                .running
                .get(mtp)
                .map(|r| r.outbound.clone())
                .ok_or_else(|| SendError::UnknownMtp(mtp.to_string()))?
        };
        sender
            .send(Outbound { dest, bytes })
            .await
            .map_err(|_| SendError::Stopped(mtp.to_string()))
    }
}

fn spawn(registry: &Registry, config: MtpConfig, events: mpsc::Sender<MtpEvent>) -> Running {
    let ctx = Ctx::new(
        &config.name,
        &registry.endpoint_id,
        registry.max_record_size,
        events,
    )
    .with_controllers(registry.controllers.clone());
    let (outbound, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = match config.transport.clone() {
        TransportConfig::Mqtt(c) => tokio::spawn(mqtt::run(c, ctx, rx, shutdown)),
        TransportConfig::Stomp(c) => tokio::spawn(stomp::run(c, ctx, rx, shutdown)),
        TransportConfig::WebSocketServer(c) => {
            tokio::spawn(websocket::run_server(c, ctx, rx, shutdown))
        }
        TransportConfig::WebSocketClient(c) => {
            tokio::spawn(websocket::run_client(c, ctx, rx, shutdown))
        }
        TransportConfig::Uds(c) => tokio::spawn(uds::run(c, ctx, rx, shutdown)),
    };
    Running {
        config,
        outbound,
        stop,
        task,
    }
}

async fn stop_all(running: Vec<Running>) {
    for r in &running {
        r.stop.cancel();
    }
    for r in running {
        let name = r.config.name;
        let abort = r.task.abort_handle();
        match tokio::time::timeout(STOP_GRACE, r.task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(mtp = %name, %err, "MTP task failed"),
            Err(_) => {
                tracing::warn!(mtp = %name, "MTP did not stop in time; aborting");
                abort.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{UdsConfig, UdsMode};

    fn uds(name: &str, enable: bool, dir: &std::path::Path) -> MtpConfig {
        MtpConfig {
            name: name.into(),
            enable,
            transport: TransportConfig::Uds(UdsConfig {
                path: dir.join(format!("{name}.sock")),
                mode: UdsMode::Listen,
            }),
        }
    }

    fn settings(mtps: Vec<MtpConfig>) -> MtpSettings {
        MtpSettings {
            endpoint_id: "proto::agent".into(),
            max_record_size: 1024,
            mtps,
        }
    }

    #[tokio::test]
    async fn disabled_mtps_do_not_run_and_unknown_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(8);
        let mtps = Mtps::start(
            settings(vec![
                uds("on", true, dir.path()),
                uds("off", false, dir.path()),
            ]),
            tx,
        );
        assert_eq!(mtps.running().await, vec!["on"]);
        let target = ControllerTarget::Uds {
            mtp: "off".into(),
            endpoint_id: "proto::c".into(),
        };
        assert_eq!(
            mtps.send_to_controller(&target, vec![1]).await,
            Err(SendError::UnknownMtp("off".into()))
        );
        mtps.shutdown().await;
        assert!(mtps.running().await.is_empty());
    }

    #[tokio::test]
    async fn update_starts_new_stops_removed_and_keeps_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(64);
        let mtps = Mtps::start(settings(vec![uds("a", true, dir.path())]), tx);
        mtps.update(settings(vec![
            uds("a", true, dir.path()),
            uds("b", true, dir.path()),
        ]))
        .await;
        assert_eq!(mtps.running().await, vec!["a", "b"]);
        mtps.update(settings(vec![uds("b", true, dir.path())]))
            .await;
        assert_eq!(mtps.running().await, vec!["b"]);
        mtps.shutdown().await;
    }

    #[tokio::test]
    async fn duplicate_names_start_once() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let mtps = Mtps::start(
            settings(vec![uds("a", true, dir.path()), uds("a", true, dir.path())]),
            tx,
        );
        assert_eq!(mtps.running().await, vec!["a"]);
        mtps.shutdown().await;
        drop(mtps);
        // Only one task ever reported: one Up, then the channel closes.
        let mut ups = 0;
        while let Some(ev) = rx.recv().await {
            ups += usize::from(matches!(ev, MtpEvent::Up { .. }));
        }
        assert_eq!(ups, 1);
    }

    #[tokio::test]
    async fn reconnect_restarts_one_mtp() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let mtps = Mtps::start(settings(vec![uds("a", true, dir.path())]), tx);
        assert!(matches!(rx.recv().await, Some(MtpEvent::Up { .. })));
        mtps.reconnect("a").await.unwrap();
        assert!(matches!(rx.recv().await, Some(MtpEvent::Up { .. })));
        assert_eq!(
            mtps.reconnect("zz").await,
            Err(SendError::UnknownMtp("zz".into()))
        );
        mtps.shutdown().await;
    }

    #[tokio::test]
    async fn dropping_the_last_handle_stops_the_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let mtps = Mtps::start(settings(vec![uds("a", true, dir.path())]), tx);
        assert!(matches!(rx.recv().await, Some(MtpEvent::Up { .. })));
        drop(mtps);
        // Every task owned a sender; the channel closes once all of them have ended.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while rx.recv().await.is_some() {}
        })
        .await;
        assert!(
            closed.is_ok(),
            "tasks still running after the handle was dropped"
        );
    }
}
