//! The data-model actor: the one task that owns the [`DataModel`] and the [`Store`]. Records
//! from the control socket (and the MTPs), changes pushed by providers and device actions all
//! arrive over channels and are handled one at a time, in order, like obuspa's single
//! data-model thread but without locks around the model.
//!
//! Per Record (R-MTP.5, R-E2E.1): oversized Records are dropped; [`record::classify`] drops
//! what is not for us and builds the Error answers R-MTP.5 allows; a Msg from an endpoint that
//! is not an enabled `Device.LocalAgent.Controller.{i}` is dropped with a log line unless its
//! certificate or its MTP grants it a role, or `ControllerTrust.UntrustedRole` names a role to
//! serve it under (empty by default, see `builtin::controller_trust`), or the config's
//! `serve_untrusted` asks for it.
//! A sender's roles are worked out in one place, `Actor::context`. The handlers' committed
//! writes are written to SQLite in one transaction before the response leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use usp_codec::Record;
use usp_codec::record::{self, Inbound};
use usp_dm::{Change, DataModel, DmError, MemoryProvider, ProviderId, StoredChange};
use usp_mtp::{
    ControllerDirectory, ControllerTarget, MtpEvent, MtpSettings, Mtps, PeerAuth, ReplyPath,
    TransportConfig,
};

use super::Exit;
use super::access::{RbacAccess, find_controller};
use super::hooks::Hooks;
use super::routing::{self, Links, Route};
use crate::boot::{self, BootCause};
use crate::builtin::certificate::Certificates;
use crate::builtin::controller_trust::{ORIGINATOR, TrustHandle};
use crate::builtin::device::DeviceAction;
use crate::builtin::mtp;
use crate::config::Config;
use crate::control::server::LocalRecord;
use crate::messages::{self, AllowAll, RequestContext, Role};
use crate::notify::{DeviceIdentity, Notifier, Outbound};
use crate::rbac::{CertificateRoles, access_for};
use crate::store::Store;

/// Where a Record came from, and how its answer goes back.
pub(crate) enum Origin {
    /// The local control socket: trusted (full access), answered on this channel.
    Local(oneshot::Sender<Vec<u8>>),
    /// An MTP: answered on the same path; the TLS peer, if any, must name the sender.
    Mtp { reply: ReplyPath, peer: PeerAuth },
}

/// The actor's state. See the module docs.
pub(crate) struct Actor {
    pub endpoint_id: String,
    pub config: Config,
    pub dm: DataModel,
    pub store: Store,
    pub tables: MemoryProvider,
    pub hooks: Arc<Hooks>,
    pub trust: TrustHandle,
    /// The certificates `Device.LocalAgent.Certificate.{i}` lists, for credential matching.
    pub certificates: Certificates,
    /// The roles granted to the certificate chains seen so far.
    pub certificate_roles: CertificateRoles,
    pub mtps: Mtps,
    /// Rows the memory providers committed since the last write to the store. Filled by their
    /// commit hooks (called synchronously inside the handlers), drained after each message.
    pub pending: Arc<Mutex<Vec<StoredChange>>>,
    /// Subscriptions, pending Notify retries and timers; fed every change, sends nothing itself.
    pub notifier: Notifier,
    /// The last reply path of each Controller (by Endpoint ID): where its Notifys go when none
    /// of its `MTP.{j}` rows is usable (see [`routing`]).
    pub routes: HashMap<String, ReplyPath>,
    /// Which MTPs are up and which peers hold sessions on them.
    pub links: Links,
    /// A committed change touched the MTP rows: the MTPs are reconfigured once the answer to
    /// the change is out (it may have to leave over an MTP about to restart).
    pub mtp_changed: bool,
    /// The Controllers' MQTT topics the MQTT MTPs read (shared with them).
    pub controller_topics: ControllerDirectory,
    /// A committed change touched the Controller or MTP rows: the MQTT MTPs get the new
    /// Controller topics once the event is handled.
    pub controllers_changed: bool,
}

/// The channels the actor listens on.
pub(crate) struct Inputs {
    pub local: mpsc::Receiver<LocalRecord>,
    pub mtp: mpsc::Receiver<MtpEvent>,
    pub changes: mpsc::UnboundedReceiver<(ProviderId, Change)>,
    pub actions: mpsc::UnboundedReceiver<DeviceAction>,
}

impl Actor {
    /// Runs until `shutdown` resolves or a device action asks for a restart.
    pub(crate) async fn run(
        mut self,
        mut inputs: Inputs,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Exit {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    self.mtps.shutdown().await;
                    return Exit::Shutdown;
                }
                Some(local) = inputs.local.recv() => {
                    self.on_record(local.bytes, Origin::Local(local.answer)).await;
                }
                Some(event) = inputs.mtp.recv() => self.on_mtp_event(event).await,
                Some((provider, change)) = inputs.changes.recv() => self.on_change(provider, change).await,
                () = until(self.notifier.next_deadline()) => {
                    let outbound = self.notifier.due(&self.dm, Instant::now()).await;
                    self.persist();
                    self.send_notifys(outbound).await;
                }
                Some(action) = inputs.actions.recv() => {
                    if let Some(exit) = self.on_action(action).await {
                        // The answer to Reboot()/FactoryReset() and the Disconnect records
                        // go out before the process is replaced.
                        self.mtps.shutdown().await;
                        return exit;
                    }
                }
            }
            if std::mem::take(&mut self.controllers_changed) {
                self.controller_topics
                    .replace(routing::mqtt_controller_rows(&self.tables).await);
            }
        }
    }

    /// Writes what the memory providers committed, in one SQLite transaction, then the
    /// notifier's changes to the pending Notifys of persistent subscriptions.
    pub(crate) fn persist(&mut self) {
        let (saved, removed) = self.notifier.take_journal();
        if let Err(error) = self.store.save_notifys(&saved, &removed) {
            tracing::error!(%error, "could not persist the pending Notifys");
        }
        let changes = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.mtp_changed |= changes.iter().any(|change| mtp::touches(change.path()));
        self.controllers_changed |= changes
            .iter()
            .any(|change| routing::touches_controller_topics(change.path()));
        if let Err(error) = self.store.commit(&changes) {
            // The change is live in memory but not durable; the next successful commit does
            // not repair it, so say loudly which rows are at risk.
            tracing::error!(%error, rows = changes.len(), "could not persist a committed change set");
        }
    }

    async fn on_mtp_event(&mut self, event: MtpEvent) {
        self.links.on_event(&event);
        match event {
            MtpEvent::Record(record) => {
                let origin = Origin::Mtp {
                    reply: record.reply,
                    peer: record.peer,
                };
                self.on_record(record.bytes, origin).await;
            }
            MtpEvent::Up { mtp, info } => {
                tracing::info!(%mtp, ?info, "MTP up");
                mtp::show_link(&self.tables, &mtp, Some(&info)).await;
            }
            MtpEvent::Down { mtp, reason } => {
                tracing::warn!(%mtp, %reason, "MTP down");
                mtp::show_link(&self.tables, &mtp, None).await;
            }
            MtpEvent::PeerConnected { mtp, endpoint_id } => {
                tracing::info!(%mtp, peer = %endpoint_id, "peer connected");
            }
            MtpEvent::PeerDisconnected { mtp, endpoint_id } => {
                tracing::info!(%mtp, peer = %endpoint_id, "peer disconnected");
                if self
                    .routes
                    .get(&endpoint_id)
                    .is_some_and(|reply| reply.mtp() == mtp)
                {
                    self.routes.remove(&endpoint_id);
                }
            }
        }
    }

    async fn on_record(&mut self, bytes: Vec<u8>, origin: Origin) {
        if bytes.len() > self.config.agent.max_record_size {
            tracing::warn!(
                size = bytes.len(),
                limit = self.config.agent.max_record_size,
                "record larger than agent.max_record_size dropped"
            );
            return;
        }
        match record::classify(&bytes, &self.endpoint_id) {
            Inbound::Drop(reason) => tracing::info!(%reason, "record dropped"),
            Inbound::Control(record) => {
                tracing::debug!(from = %record.from_id, "connect/disconnect record");
            }
            Inbound::Reject { reply } => self.respond(origin, reply.encode()).await,
            Inbound::Msg { from_id, msg } => {
                let Some(ctx) = self.context(&from_id, &origin).await else {
                    return;
                };
                if let Origin::Mtp { reply, .. } = &origin
                    && self.routes.get(&from_id) != Some(reply)
                {
                    // A new way to reach the Controller (first contact since the start, or a
                    // new session): what it has not acknowledged goes out again now.
                    self.routes.insert(from_id.clone(), reply.clone());
                    self.notifier.reachable(&from_id, Instant::now());
                }
                let reply = ORIGINATOR
                    .scope(from_id.clone(), messages::handle(&mut self.dm, &ctx, msg))
                    .await;
                for msg_id in self.hooks.take_notify_resps() {
                    self.notifier.on_notify_resp(&msg_id);
                }
                self.persist();
                if let Some(reply) = reply {
                    let answer = Record::for_msg(&self.endpoint_id, &from_id, &reply).encode();
                    self.respond(origin, answer).await;
                }
                if std::mem::take(&mut self.mtp_changed) {
                    self.reconfigure_mtps().await;
                }
            }
        }
    }

    /// Who the sender is and what it may do; `None` (after a log line) when its Record must
    /// be dropped. Roles: a Controller's `AssignedRole`, its `InheritedRole` (set here from
    /// the certificate of a TLS connection it presented one on), and what `[access] mtp_roles`
    /// grants the MTP; an endpoint that is not a Controller gets only the certificate and MTP
    /// roles, or the Untrusted role when configured so.
    async fn context(&mut self, from_id: &str, origin: &Origin) -> Option<RequestContext> {
        let base = RequestContext::new(from_id).with_hooks(Arc::clone(&self.hooks) as _);
        let Origin::Mtp { reply, peer } = origin else {
            return Some(base.with_access(Arc::new(AllowAll)));
        };
        // R-SEC.0a: a peer certificate presented by the controller itself must name from_id.
        if let PeerAuth::Endpoint(certificate) = peer
            && !certificate.names_endpoint(from_id)
        {
            tracing::warn!(from = %from_id, via = %reply, "record dropped: the peer certificate does not name its from_id");
            return None;
        }
        let trust = self.trust.current();
        // R-SEC.25: the roles a ControllerTrust.Credential gives the certificate chain the
        // controller itself presented on this connection (a broker's certificate vouches for
        // nobody). `None`: no such certificate, the Controller's InheritedRole stands.
        let certified = match peer {
            PeerAuth::Endpoint(certificate) => Some(self.certificate_roles.roles(
                &trust,
                &self.tables,
                &self.certificates,
                &certificate.chain,
            )),
            PeerAuth::None | PeerAuth::Broker(_) => None,
        };
        let mtp_roles = self.config.access.mtp_roles(reply.mtp());
        let role = match find_controller(&self.tables, from_id) {
            Some(mut known) => {
                if let Some(granted) = certified {
                    known.inherit(&self.tables, granted);
                }
                let mut role = known.role();
                role.references.extend_from_slice(mtp_roles);
                role
            }
            // An endpoint that is not a Controller holds only what its way in grants.
            None if certified
                .as_ref()
                .is_some_and(|granted| !granted.is_empty())
                || !mtp_roles.is_empty() =>
            {
                Role {
                    references: certified
                        .unwrap_or_default()
                        .into_iter()
                        .chain(mtp_roles.iter().cloned())
                        .collect(),
                }
            }
            None => {
                match untrusted_role(trust.untrusted_roles(), self.config.agent.serve_untrusted) {
                    Some(role) => role,
                    None => {
                        tracing::warn!(
                            from = %from_id,
                            via = %reply,
                            "record from an endpoint that is not an enabled Device.LocalAgent.Controller. dropped (set Device.LocalAgent.ControllerTrust.UntrustedRole to serve it under that role)"
                        );
                        return None;
                    }
                }
            }
        };
        let access = access_for(&self.dm, &trust, &role.references).await;
        Some(
            base.with_role(role)
                .with_access(Arc::new(RbacAccess(access))),
        )
    }

    /// Applies the `TriggerConfigSettings` of the subscriptions that fired (USP 1.3
    /// `TriggerAction` Config / NotifyAndConfig), one transaction per subscription.
    async fn apply_trigger_writes(&mut self) {
        for write in self.notifier.take_trigger_writes() {
            match apply_settings(&self.dm, &write.settings).await {
                Ok(0) => {}
                Ok(written) => {
                    tracing::info!(subscription = %write.subscription, written, "TriggerConfigSettings applied");
                }
                Err(error) => {
                    tracing::warn!(subscription = %write.subscription, %error, "TriggerConfigSettings not applied");
                }
            }
        }
    }

    /// Restarts the MTPs whose rows changed (see `builtin::mtp`).
    async fn reconfigure_mtps(&mut self) {
        let running = mtp::settings(&self.tables, &self.config.mtp).await;
        tracing::info!(
            mtps = running.len(),
            "MTP configuration changed; applying it"
        );
        self.links.reconfigure(&running);
        self.mtps
            .update(MtpSettings {
                endpoint_id: self.endpoint_id.clone(),
                max_record_size: self.config.agent.max_record_size,
                mtps: running,
            })
            .await;
    }

    async fn respond(&self, origin: Origin, answer: Vec<u8>) {
        match origin {
            Origin::Local(answer_to) => {
                let _ = answer_to.send(answer);
            }
            Origin::Mtp { reply, .. } => {
                if let Err(error) = self.mtps.send(&reply, answer).await {
                    tracing::warn!(%error, via = %reply, "could not send the answer");
                }
            }
        }
    }

    async fn on_change(&mut self, provider: ProviderId, change: Change) {
        let outbound = self
            .notifier
            .on_change(&self.dm, &change, Instant::now())
            .await;
        self.apply_trigger_writes().await;
        self.persist();
        self.send_notifys(outbound).await;
        if let Change::OperationComplete { token, result } = change {
            let Some(request) = self.hooks.finish(provider, token) else {
                tracing::debug!(token, "completion of an operation without a Request row");
                return;
            };
            let outbound = self
                .notifier
                .on_operation_complete(
                    &self.dm,
                    &request.started.command,
                    &request.started.command_key,
                    result.clone(),
                    Instant::now(),
                )
                .await;
            self.send_notifys(outbound).await;
            let status = match &result {
                Ok(_) => "Success",
                Err(error) => {
                    tracing::info!(command = %request.started.command, %error, "async command failed");
                    "Error"
                }
            };
            let status_path = format!("{}Status", request.row);
            if let Err(error) = self.tables.set_value(&status_path, status) {
                tracing::warn!(%error, "could not update {status_path}");
            }
            if let Err(error) = self.tables.delete_instance(&request.row) {
                tracing::warn!(%error, row = %request.row, "could not remove the Request row");
            }
            self.persist();
        }
    }

    /// Sends Notifys: to the Controller's last reply path, else to its configured MQTT topic.
    /// One that cannot be routed now is dropped (a NotifRetry one is retried later).
    async fn send_notifys(&self, outbound: Vec<Outbound>) {
        for out in outbound {
            let bytes = Record::for_msg(&self.endpoint_id, &out.endpoint_id, &out.msg).encode();
            let rows = routing::controller_mtps(&self.tables, &out.recipient).await;
            let route = routing::choose(
                &rows,
                &out.endpoint_id,
                &self.links,
                self.routes.get(&out.endpoint_id),
                self.configured_target(&out.endpoint_id),
            );
            let sent = match route {
                Some(Route::Reply(reply)) => self.mtps.send(&reply, bytes).await,
                Some(Route::Target(target)) => self.mtps.send_to_controller(&target, bytes).await,
                None => {
                    tracing::debug!(to = %out.endpoint_id, "no route to the Controller yet; Notify not sent");
                    continue;
                }
            };
            if let Err(error) = sent {
                tracing::warn!(%error, to = %out.endpoint_id, "could not send a Notify");
            }
        }
    }

    /// The MQTT topic configured for a Controller (`[[mtp.controllers]]`), if any.
    fn configured_target(&self, endpoint_id: &str) -> Option<ControllerTarget> {
        self.config.mtp.iter().find_map(|mtp| match &mtp.transport {
            TransportConfig::Mqtt(mqtt) => mqtt
                .controllers
                .iter()
                .find(|controller| controller.endpoint_id == endpoint_id)
                .map(|controller| ControllerTarget::Mqtt {
                    mtp: mtp.name.clone(),
                    topic: controller.topic.clone(),
                }),
            _ => None,
        })
    }

    async fn on_action(&mut self, action: DeviceAction) -> Option<Exit> {
        match action {
            DeviceAction::Reboot {
                command_key,
                cause,
                reason,
            } => {
                self.record_cause(&cause, &command_key, &reason);
                match self.config.commands.reboot.clone() {
                    Some(argv) => {
                        run_command("reboot", &argv).await;
                        None
                    }
                    None => {
                        tracing::info!(
                            "Device.Reboot(): no [commands] reboot configured; restarting the agent"
                        );
                        Some(Exit::Restart)
                    }
                }
            }
            DeviceAction::SendOnBoardRequest { controller } => {
                let info = &self.config.device_info;
                let identity = DeviceIdentity {
                    oui: info.manufacturer_oui.clone(),
                    product_class: info.product_class.clone(),
                    serial_number: info.serial_number.clone(),
                };
                match self
                    .notifier
                    .on_board_request(&controller, &identity, Instant::now())
                {
                    Some(out) => self.send_notifys(vec![out]).await,
                    None => {
                        tracing::warn!(%controller, "OnBoardRequest: the Controller has no EndpointID")
                    }
                }
                None
            }
            DeviceAction::FactoryReset {
                command_key,
                cause,
                reason,
            } => {
                if let Err(error) = self.store.clear().and_then(|()| {
                    self.store
                        .set_meta(boot::meta::FACTORY_RESET_PENDING, Some("1"))
                }) {
                    tracing::error!(%error, "Device.FactoryReset(): could not reset the store");
                    return None;
                }
                self.record_cause(&cause, &command_key, &reason);
                if let Some(argv) = self.config.commands.factory_reset.clone() {
                    run_command("factory_reset", &argv).await;
                }
                tracing::info!("Device.FactoryReset(): restarting the agent with factory defaults");
                Some(Exit::Restart)
            }
        }
    }

    fn record_cause(&mut self, cause: &str, command_key: &str, reason: &str) {
        let cause = BootCause {
            cause: cause.to_string(),
            command_key: command_key.to_string(),
            reason: reason.to_string(),
        };
        if let Err(error) = boot::record_boot_cause(&mut self.store, &cause) {
            tracing::error!(%error, "could not record the boot cause");
        }
    }
}

/// Resolves at `deadline`; never when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs a configured device command to completion and logs how it ended.
async fn run_command(key: &str, argv: &[String]) {
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    match tokio::process::Command::new(program)
        .args(args)
        .status()
        .await
    {
        Ok(status) if status.success() => tracing::info!(command = ?argv, "[commands] {key} ran"),
        Ok(status) => tracing::error!(command = ?argv, %status, "[commands] {key} failed"),
        Err(error) => tracing::error!(command = ?argv, %error, "[commands] {key} could not start"),
    }
}

/// Writes `(parameter path, value)` pairs in one transaction; returns how many were written.
/// A value a parameter already holds is not written again: a subscription whose settings touch
/// what it watches would otherwise fire itself for ever.
async fn apply_settings(dm: &DataModel, settings: &[(String, String)]) -> Result<usize, DmError> {
    let mut writes = Vec::new();
    for (path, value) in settings {
        let Some((object, name)) = path.rsplit_once('.') else {
            return Err(DmError::UnknownParam { path: path.clone() });
        };
        for resolved in dm.resolve_str(&format!("{object}.")).await?.objects {
            if dm.read_param(&resolved, name).await.ok().as_deref() == Some(value.as_str()) {
                continue;
            }
            dm.check_write(&resolved, name, value)?;
            writes.push((resolved, name, value));
        }
    }
    if writes.is_empty() {
        return Ok(0);
    }
    let mut tx = dm.begin();
    for (resolved, name, value) in &writes {
        tx.set(resolved, name, value).await?;
    }
    tx.commit().await?;
    Ok(writes.len())
}

/// The role an endpoint outside the Controller table, with no certificate or MTP role, is
/// served under; `None` drops its Records. Digest §8.2: `ControllerTrust.UntrustedRole` is
/// what is assigned to unknown Controllers, so naming a role there is what serves them (with
/// exactly that role's permissions). `serve_untrusted` (configuration) serves them even while
/// the list is empty, then with no permission at all.
fn untrusted_role(untrusted: &[String], serve_untrusted: bool) -> Option<Role> {
    (serve_untrusted || !untrusted.is_empty()).then(|| Role {
        references: untrusted.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTRUSTED: &str = "Device.LocalAgent.ControllerTrust.Role.2";

    #[test]
    fn an_unknown_endpoint_is_dropped_while_untrusted_role_is_empty() {
        assert!(untrusted_role(&[], false).is_none());
    }

    #[test]
    fn an_unknown_endpoint_is_served_under_a_non_empty_untrusted_role() {
        let role = untrusted_role(&[UNTRUSTED.to_string()], false);
        assert_eq!(
            role.map(|role| role.references),
            Some(vec![UNTRUSTED.to_string()])
        );
    }

    #[test]
    fn serve_untrusted_serves_an_unknown_endpoint_even_without_a_role() {
        let role = untrusted_role(&[], true);
        assert_eq!(role.map(|role| role.references), Some(Vec::new()));
    }
}
