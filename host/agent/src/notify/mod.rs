//! Subscriptions and notifications (digest §9, TR-181 `Device.LocalAgent.Subscription.{i}`):
//! the [`Notifier`] turns pushed [`Change`]s, completed commands and agent events into Notify
//! Msgs for the subscribed Controllers, and keeps the retries, `Periodic!` schedules and
//! `TimeToLive` expiries. It does no network I/O: the data-model actor feeds it and sends the
//! [`Outbound`] Msgs it returns.
//!
//! - [`subscription`]: typed rows and the index that finds candidate subscriptions per path.
//! - [`retry`]: the R-NOT.1..4 retry windows.
//! - [`periodic`]: `Periodic!` fire times.
//!
//! How the actor drives it:
//! - at boot, [`Notifier::load`], then [`Notifier::on_event`] with `Device.` / `Boot!`;
//! - every [`Change`] from the data model's sink goes to [`Notifier::on_change`] (this includes
//!   the Subscription table's own rows, which keeps the index current);
//! - an async command's end goes to [`Notifier::on_operation_complete`];
//! - `Controller.{i}.SendOnBoardRequest()` goes to [`Notifier::on_board_request`];
//! - a NotifyResp goes to [`Notifier::on_notify_resp`];
//! - the Notifys of `Persistent` subscriptions that wait for a NotifyResp are journaled
//!   ([`Notifier::take_journal`], written to the store by the actor) and taken back after a
//!   restart ([`Notifier::restore`]);
//! - at [`Notifier::next_deadline`], [`Notifier::due`] sends retries and `Periodic!` events and
//!   deletes expired subscriptions.
//!
//! ValueChange is event-driven: providers push their changes and committed Controller writes
//! are pushed by the engine, so a Notify leaves as soon as the actor handles the change (no
//! polling). Parameters whose values change without a push are marked `value-change: will
//! ignore` in their schema and never notified.
//!
//! Access (digest §8.2): a subscription runs with its Recipient's roles. A Notify goes out only
//! when the Recipient has the `n` letter on the element (`Param`, `Obj`, `InstantiatedObj`,
//! `CommandEvent`); ValueChange also needs `Param` `r`, and secured values go out empty to a
//! Recipient without a secured role.

pub mod periodic;
pub mod retry;
pub mod subscription;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use usp_codec::path::{Leaf, Path};
use usp_codec::usp_proto::usp;
use usp_dm::{
    Args, Change, DataModel, MemoryProvider, ParamValues, Provider, ProviderError, ReadRequest,
    structural_match,
};
use usp_rbac::{Access, ParamRead};

use crate::builtin::local_agent::{CONTROLLER_TABLE, SUBSCRIPTION_TABLE};
use crate::messages::notify::{self as build, Envelope};
use crate::rbac::{TrustHandle, access_for, split_list};
use crate::store::StoredNotify;
use retry::RetryPolicy;
use subscription::{NotifType, Subscription, SubscriptionIndex, supported};

const PERIODIC_EVENT: &str = "Device.LocalAgent.Periodic!";

/// A Notify ready to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// The Recipient's row (`Device.LocalAgent.Controller.1`).
    pub recipient: String,
    /// The Recipient's Endpoint ID: the Record's `to_id`.
    pub endpoint_id: String,
    /// The Notify.
    pub msg: usp::Msg,
}

/// The `TriggerConfigSettings` a triggered subscription applies (`TriggerAction` Config or
/// NotifyAndConfig), already limited to what its Recipient may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerWrite {
    /// The subscription row, for the log.
    pub subscription: String,
    /// `(parameter path, value)` pairs, in the order given.
    pub settings: Vec<(String, String)>,
}

/// What an OnBoardRequest says about the device (`Device.DeviceInfo.` values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// `ManufacturerOUI`.
    pub oui: String,
    /// `ProductClass`.
    pub product_class: String,
    /// `SerialNumber`.
    pub serial_number: String,
}

/// A Notify sent with `send_resp` and not yet answered.
struct Pending {
    out: Outbound,
    retries: u32,
    due: Instant,
    give_up: Option<Instant>,
    policy: RetryPolicy,
    /// From a `Persistent` subscription: kept in the store across restarts.
    durable: bool,
}

impl Pending {
    fn stored(&self, msg_id: &str) -> StoredNotify {
        let left = |at: Instant| at.saturating_duration_since(Instant::now()).as_secs();
        StoredNotify {
            msg_id: msg_id.to_string(),
            recipient: self.out.recipient.clone(),
            endpoint_id: self.out.endpoint_id.clone(),
            msg: prost::Message::encode_to_vec(&self.out.msg),
            retries: self.retries,
            give_up: self
                .give_up
                .map(|at| unix_now().saturating_add(i64::try_from(left(at)).unwrap_or(i64::MAX))),
        }
    }
}

/// What the Recipient is allowed, and how to retry towards it; built once per batch.
struct Recipient {
    endpoint_id: String,
    access: Access,
    policy: RetryPolicy,
}

/// What a matched subscription is told.
enum Note {
    ValueChange {
        path: String,
        value: String,
    },
    Creation {
        path: String,
        keys: BTreeMap<String, String>,
    },
    Deletion {
        path: String,
    },
    Event {
        object: String,
        name: String,
        args: Args,
    },
    Complete {
        command: String,
        key: String,
        result: Result<Args, ProviderError>,
    },
}

/// The notification state machine. See the module docs.
pub struct Notifier {
    tables: MemoryProvider,
    trust: TrustHandle,
    index: SubscriptionIndex,
    pending: BTreeMap<String, Pending>,
    /// Changes to the durable pending Notifys not yet written: `Some` to write, `None` to
    /// delete (see [`Notifier::take_journal`]).
    journal: BTreeMap<String, Option<StoredNotify>>,
    msg_prefix: String,
    next_msg: u64,
    expires: BTreeMap<String, Instant>,
    periodic: BTreeMap<String, Instant>,
    trigger_writes: Vec<TriggerWrite>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A triggered subscription's settings that its Recipient may write (digest §8.2:
/// subscriptions run with the Recipient's permissions); the others are logged and left out.
fn trigger_write(subscription: &Subscription, access: &Access) -> TriggerWrite {
    let settings = subscription
        .trigger_settings
        .iter()
        .filter(|(path, _)| {
            let allowed = access.can_write_param(path);
            if !allowed {
                tracing::warn!(subscription = %subscription.row, path, "TriggerConfigSettings item left out: the Recipient may not write it");
            }
            allowed
        })
        .cloned()
        .collect();
    TriggerWrite {
        subscription: subscription.row.clone(),
        settings,
    }
}

/// The `subscription_id` of a Notify sent for a subscription (an OnBoardRequest has none).
fn subscription_of(msg: &usp::Msg) -> Option<&str> {
    let Some(usp::body::MsgBody::Request(request)) =
        msg.body.as_ref().and_then(|body| body.msg_body.as_ref())
    else {
        return None;
    };
    match &request.req_type {
        Some(usp::request::ReqType::Notify(notify)) if !notify.subscription_id.is_empty() => {
            Some(&notify.subscription_id)
        }
        _ => None,
    }
}

/// The row (`…Subscription.3.`) a path under the Subscription table belongs to.
fn subscription_row(path: &str) -> Option<String> {
    let rest = path.strip_prefix(SUBSCRIPTION_TABLE)?;
    let number = rest.split('.').next()?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{SUBSCRIPTION_TABLE}{number}."))
}

impl Notifier {
    /// A notifier over the agent's stored tables (`Controller.{i}`, `Subscription.{i}`) and
    /// the published trust. Call [`Notifier::load`] before use.
    pub fn new(tables: MemoryProvider, trust: TrustHandle) -> Notifier {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        Notifier {
            tables,
            trust,
            index: SubscriptionIndex::new(),
            pending: BTreeMap::new(),
            journal: BTreeMap::new(),
            msg_prefix: format!("notify-{}-", &nonce[..8]),
            next_msg: 1,
            expires: BTreeMap::new(),
            periodic: BTreeMap::new(),
            trigger_writes: Vec::new(),
        }
    }

    /// Reads every Subscription row (after the store was restored).
    pub async fn load(&mut self) {
        let numbers = self
            .tables
            .instances(SUBSCRIPTION_TABLE)
            .await
            .unwrap_or_default();
        for number in numbers {
            self.refresh(&format!("{SUBSCRIPTION_TABLE}{number}."));
        }
        self.schedule_periodic(Instant::now(), false);
    }

    /// The number of active subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.index.len()
    }

    /// The number of Notifys waiting for a NotifyResp.
    pub fn awaiting_response(&self) -> usize {
        self.pending.len()
    }

    fn refresh(&mut self, row: &str) {
        let before = self
            .index
            .get(row)
            .map(|old| (old.recipient.clone(), old.id.clone()));
        self.reindex(row);
        if let Some((recipient, id)) = before {
            let still_retrying = self
                .index
                .get(row)
                .is_some_and(|now| now.recipient == recipient && now.id == id && now.notif_retry);
            if !still_retrying {
                self.forget_notifys_of(&recipient, &id);
            }
        }
    }

    /// Forgets a deleted or expired subscription row, and the retries of its Notifys.
    fn unindex(&mut self, row: &str) {
        self.expires.remove(row);
        if let Some(gone) = self.index.remove(row) {
            self.forget_notifys_of(&gone.recipient, &gone.id);
        }
    }

    /// Stops retrying the Notifys of a subscription that was deleted, disabled, re-addressed or
    /// told not to retry: nobody asked for them any more.
    fn forget_notifys_of(&mut self, recipient: &str, subscription_id: &str) {
        let orphans: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, pending)| {
                pending.out.recipient == recipient
                    && subscription_of(&pending.out.msg) == Some(subscription_id)
            })
            .map(|(msg_id, _)| msg_id.clone())
            .collect();
        for msg_id in orphans {
            tracing::debug!(
                msg_id,
                subscription_id,
                "retries stopped: the subscription is gone"
            );
            self.stop_retrying(&msg_id);
        }
    }

    /// Whether a retrying subscription `(recipient, id)` exists.
    fn retrying_subscription(&self, recipient: &str, subscription_id: &str) -> bool {
        self.index.iter().any(|subscription| {
            subscription.recipient == recipient
                && subscription.id == subscription_id
                && subscription.notif_retry
        })
    }

    fn reindex(&mut self, row: &str) {
        let tables = &self.tables;
        let parsed = Subscription::from_row(row, |name| tables.value(&format!("{row}{name}")));
        self.expires.remove(row);
        match parsed {
            Some(subscription) => {
                if subscription.time_to_live > 0 {
                    let created = self
                        .tables
                        .value(&format!("{row}CreationDate"))
                        .and_then(|value| periodic::phase_of(&value))
                        .unwrap_or_else(unix_now);
                    let age = u64::try_from(unix_now() - created).unwrap_or(0);
                    let left = subscription.time_to_live.saturating_sub(age);
                    self.expires
                        .insert(row.to_string(), Instant::now() + Duration::from_secs(left));
                }
                self.index.insert(subscription);
            }
            None => {
                self.index.remove(row);
            }
        }
    }

    fn next_msg_id(&mut self) -> String {
        let msg_id = format!("{}{}", self.msg_prefix, self.next_msg);
        self.next_msg += 1;
        msg_id
    }

    fn envelope(&mut self, subscription: &Subscription) -> Envelope {
        Envelope {
            msg_id: self.next_msg_id(),
            subscription_id: subscription.id.clone(),
            send_resp: subscription.notif_retry,
        }
    }

    /// Keeps `out` for retries until its NotifyResp (R-NOT.1..4), or until `give_up`; a
    /// `durable` one is also journaled for the store.
    fn await_response(
        &mut self,
        msg_id: String,
        out: Outbound,
        policy: RetryPolicy,
        give_up: Option<Instant>,
        durable: bool,
        now: Instant,
    ) {
        let pending = Pending {
            out,
            retries: 0,
            due: now + policy.wait(1, rand::random()),
            give_up,
            policy,
            durable,
        };
        if durable {
            self.journal
                .insert(msg_id.clone(), Some(pending.stored(&msg_id)));
        }
        self.pending.insert(msg_id, pending);
    }

    /// Forgets a pending Notify (answered, expired or undeliverable).
    fn stop_retrying(&mut self, msg_id: &str) {
        if let Some(pending) = self.pending.remove(msg_id)
            && pending.durable
        {
            self.journal.insert(msg_id.to_string(), None);
        }
    }

    /// Takes back the Notifys of persistent subscriptions that a previous run left waiting
    /// for their NotifyResp: each is resent at once (same msg_id), then retried on its
    /// Recipient's schedule until answered or past its `NotifExpiration`.
    pub fn restore(&mut self, stored: Vec<StoredNotify>, now: Instant) {
        let unix = unix_now();
        for notify in stored {
            let give_up = match notify.give_up {
                Some(at) if at <= unix => {
                    self.journal.insert(notify.msg_id, None);
                    continue;
                }
                Some(at) => Some(now + Duration::from_secs(u64::try_from(at - unix).unwrap_or(0))),
                None => None,
            };
            let msg = match usp_codec::msg::decode(&notify.msg) {
                Ok(msg) => msg,
                Err(error) => {
                    tracing::warn!(%error, msg_id = %notify.msg_id, "stored Notify dropped: it does not decode");
                    self.journal.insert(notify.msg_id, None);
                    continue;
                }
            };
            if let Some(id) = subscription_of(&msg)
                && !self.retrying_subscription(&notify.recipient, id)
            {
                tracing::info!(msg_id = %notify.msg_id, "stored Notify dropped: its subscription is gone");
                self.journal.insert(notify.msg_id, None);
                continue;
            }
            let value = |name: &str| self.tables.value(&format!("{}.{name}", notify.recipient));
            let policy = RetryPolicy::from_values(
                value("USPNotifRetryMinimumWaitInterval").as_deref(),
                value("USPNotifRetryIntervalMultiplier").as_deref(),
            );
            self.pending.insert(
                notify.msg_id,
                Pending {
                    out: Outbound {
                        recipient: notify.recipient,
                        endpoint_id: notify.endpoint_id,
                        msg,
                    },
                    retries: notify.retries,
                    due: now,
                    give_up,
                    policy,
                    durable: true,
                },
            );
        }
    }

    /// The Controller `endpoint_id` can be reached on a new path (its first Record since the
    /// start, or a new session): its unanswered Notifys are retried now rather than at their
    /// scheduled time, since the earlier sends may not have reached it.
    pub fn reachable(&mut self, endpoint_id: &str, now: Instant) {
        for pending in self.pending.values_mut() {
            if pending.out.endpoint_id == endpoint_id {
                pending.due = pending.due.min(now);
            }
        }
    }

    /// The configuration changes triggered subscriptions asked for since the last call; the
    /// actor applies them.
    pub fn take_trigger_writes(&mut self) -> Vec<TriggerWrite> {
        std::mem::take(&mut self.trigger_writes)
    }

    /// The changes to the stored pending Notifys since the last call: the Notifys to write
    /// (insert or replace), and the msg_ids to delete.
    pub fn take_journal(&mut self) -> (Vec<StoredNotify>, Vec<String>) {
        let mut saved = Vec::new();
        let mut removed = Vec::new();
        for (msg_id, change) in std::mem::take(&mut self.journal) {
            match change {
                Some(notify) => saved.push(notify),
                None => removed.push(msg_id),
            }
        }
        (saved, removed)
    }

    async fn recipient(&self, dm: &DataModel, row: &str) -> Option<Recipient> {
        let value = |name: &str| self.tables.value(&format!("{row}.{name}"));
        if value("Enable").as_deref() != Some("true") {
            return None;
        }
        let endpoint_id = value("EndpointID").filter(|id| !id.is_empty())?;
        let mut roles = split_list(&value("AssignedRole").unwrap_or_default());
        roles.extend(split_list(&value("InheritedRole").unwrap_or_default()));
        let trust = self.trust.current();
        Some(Recipient {
            endpoint_id,
            access: access_for(dm, &trust, &roles).await,
            policy: RetryPolicy::from_values(
                value("USPNotifRetryMinimumWaitInterval").as_deref(),
                value("USPNotifRetryIntervalMultiplier").as_deref(),
            ),
        })
    }

    /// The subscriptions of `notif_type` that `changed` matches now (one per subscription).
    async fn matching(
        &self,
        dm: &DataModel,
        notif_type: NotifType,
        changed: &str,
    ) -> Vec<Arc<Subscription>> {
        let mut found: Vec<Arc<Subscription>> = Vec::new();
        for (subscription, index) in self.index.candidates(notif_type, changed) {
            if found.iter().any(|other| other.row == subscription.row) {
                continue;
            }
            let Some(reference) = subscription.references.get(index) else {
                continue;
            };
            if reference_matches(dm, notif_type, reference, changed).await {
                found.push(subscription);
            }
        }
        found
    }

    /// Builds, registers (for retries) and returns the Notifys of one batch.
    async fn deliver(
        &mut self,
        dm: &DataModel,
        subscriptions: Vec<Arc<Subscription>>,
        note: impl Fn(&Subscription, &Access) -> Option<Note>,
        now: Instant,
    ) -> Vec<Outbound> {
        let mut recipients: HashMap<String, Option<Recipient>> = HashMap::new();
        let mut outbound = Vec::new();
        for subscription in subscriptions {
            if !recipients.contains_key(&subscription.recipient) {
                let recipient = self.recipient(dm, &subscription.recipient).await;
                recipients.insert(subscription.recipient.clone(), recipient);
            }
            let Some(Some(recipient)) = recipients.get(&subscription.recipient) else {
                continue;
            };
            let Some(note) = note(&subscription, &recipient.access) else {
                continue;
            };
            if subscription.trigger_action.configures() {
                self.trigger_writes
                    .push(trigger_write(&subscription, &recipient.access));
            }
            if !subscription.trigger_action.notifies() {
                continue;
            }
            let envelope = self.envelope(&subscription);
            let msg = match note {
                Note::ValueChange { path, value } => build::value_change(&envelope, &path, &value),
                Note::Creation { path, keys } => build::object_creation(&envelope, &path, keys),
                Note::Deletion { path } => build::object_deletion(&envelope, &path),
                Note::Event { object, name, args } => build::event(&envelope, &object, &name, args),
                Note::Complete {
                    command,
                    key,
                    result,
                } => build::operation_complete(&envelope, &command, &key, result),
            };
            let out = Outbound {
                recipient: subscription.recipient.clone(),
                endpoint_id: recipient.endpoint_id.clone(),
                msg,
            };
            if subscription.notif_retry {
                // R-NOT.1..4: retry until the NotifyResp, or until NotifExpiration.
                let give_up = (subscription.notif_expiration > 0)
                    .then(|| now + Duration::from_secs(subscription.notif_expiration));
                self.await_response(
                    envelope.msg_id.clone(),
                    out.clone(),
                    recipient.policy,
                    give_up,
                    subscription.persistent,
                    now,
                );
            }
            outbound.push(out);
        }
        outbound
    }

    /// A change pushed by a provider or committed by a message.
    pub async fn on_change(
        &mut self,
        dm: &DataModel,
        change: &Change,
        now: Instant,
    ) -> Vec<Outbound> {
        let outbound = self.notify_change(dm, change, now).await;
        let path = match change {
            Change::ValueChanged { path, .. }
            | Change::ObjectCreated { path }
            | Change::ObjectDeleted { path } => path.as_str(),
            Change::Event { .. } | Change::OperationComplete { .. } => "",
        };
        if path.starts_with(SUBSCRIPTION_TABLE) || path.starts_with(CONTROLLER_TABLE) {
            self.schedule_periodic(now, false);
        }
        outbound
    }

    async fn notify_change(
        &mut self,
        dm: &DataModel,
        change: &Change,
        now: Instant,
    ) -> Vec<Outbound> {
        match change {
            Change::ValueChanged { path, value } => {
                if let Some(row) = subscription_row(path) {
                    self.refresh(&row);
                }
                if path.ends_with(".PeriodicNotifInterval") || path.ends_with(".PeriodicNotifTime")
                {
                    let row = path.rsplit_once('.').map_or("", |(row, _)| row);
                    self.periodic.remove(row);
                }
                // Parameters whose schema says value changes are ignored (counters, uptime)
                // are never notified, even when a write changed them.
                let ignored = param_def(dm, path)
                    .is_some_and(|def| def.value_change == usp_dm::ValueChange::WillIgnore);
                if ignored {
                    return Vec::new();
                }
                let subscriptions = self.matching(dm, NotifType::ValueChange, path).await;
                if subscriptions.is_empty() {
                    return Vec::new();
                }
                let secured = param_is_secured(dm, path);
                let (path, value) = (path.clone(), value.clone());
                self.deliver(
                    dm,
                    subscriptions,
                    |_, access| {
                        if !access.can_notify_value_change(&path) {
                            return None;
                        }
                        let value = match access.read_param(&path, secured) {
                            ParamRead::Hidden => return None,
                            ParamRead::Empty => String::new(),
                            ParamRead::Value => value.clone(),
                        };
                        Some(Note::ValueChange {
                            path: path.clone(),
                            value,
                        })
                    },
                    now,
                )
                .await
            }
            Change::ObjectCreated { path } => {
                if let Some(row) = subscription_row(path)
                    && row == *path
                {
                    self.refresh(&row);
                }
                // A subscription is not told about its own creation: it did not exist yet.
                let subscriptions: Vec<_> = self
                    .matching(dm, NotifType::ObjectCreation, path)
                    .await
                    .into_iter()
                    .filter(|subscription| subscription.row != *path)
                    .collect();
                if subscriptions.is_empty() {
                    return Vec::new();
                }
                let keys = unique_keys(dm, path).await;
                let path = path.clone();
                self.deliver(
                    dm,
                    subscriptions,
                    |_, access| {
                        access.can_notify_creation(&path).then(|| Note::Creation {
                            path: path.clone(),
                            keys: keys
                                .iter()
                                .filter(|(name, _)| access.can_read_param(&format!("{path}{name}")))
                                .map(|(name, value)| (name.clone(), value.clone()))
                                .collect(),
                        })
                    },
                    now,
                )
                .await
            }
            Change::ObjectDeleted { path } => {
                if let Some(row) = subscription_row(path)
                    && row == *path
                {
                    self.unindex(&row);
                }
                let subscriptions = self.matching(dm, NotifType::ObjectDeletion, path).await;
                let path = path.clone();
                self.deliver(
                    dm,
                    subscriptions,
                    |_, access| {
                        access
                            .can_notify_deletion(&path)
                            .then(|| Note::Deletion { path: path.clone() })
                    },
                    now,
                )
                .await
            }
            Change::Event { object, name, args } => {
                self.on_event(dm, object, name, args.clone(), now).await
            }
            // Completions are matched to their Request row by the actor, which then calls
            // `on_operation_complete` with the command path and key.
            Change::OperationComplete { .. } => Vec::new(),
        }
    }

    /// An event (`Device.` / `Boot!`, `Device.LocalAgent.` / `Periodic!`, a plugin's event).
    /// For `Device.Boot!`, each Recipient's Notify carries its own `ParameterMap` (from its
    /// enabled `Controller.{i}.BootParameter.{i}` rows, values it may read).
    pub async fn on_event(
        &mut self,
        dm: &DataModel,
        object: &str,
        name: &str,
        args: Args,
        now: Instant,
    ) -> Vec<Outbound> {
        let path = format!("{object}{name}");
        let subscriptions = self.matching(dm, NotifType::Event, &path).await;
        if subscriptions.is_empty() {
            return Vec::new();
        }
        let mut maps = HashMap::new();
        if path == "Device.Boot!" {
            for subscription in &subscriptions {
                if !maps.contains_key(&subscription.recipient)
                    && let Some(recipient) = self.recipient(dm, &subscription.recipient).await
                {
                    let map = self
                        .parameter_map(dm, &subscription.recipient, &recipient.access)
                        .await;
                    maps.insert(subscription.recipient.clone(), map);
                }
            }
        }
        let (object, name) = (object.to_string(), name.to_string());
        self.deliver(
            dm,
            subscriptions,
            |subscription, access| {
                if !access.can_notify_command_event(&path) {
                    return None;
                }
                let mut args = args.clone();
                if let Some(map) = maps.get(&subscription.recipient) {
                    args.insert("ParameterMap".to_string(), map.clone());
                }
                Some(Note::Event {
                    object: object.clone(),
                    name: name.clone(),
                    args,
                })
            },
            now,
        )
        .await
    }

    /// An asynchronous command finished (`command` is its concrete path, `command_key` the
    /// Controller's key).
    pub async fn on_operation_complete(
        &mut self,
        dm: &DataModel,
        command: &str,
        command_key: &str,
        result: Result<Args, ProviderError>,
        now: Instant,
    ) -> Vec<Outbound> {
        let subscriptions = self
            .matching(dm, NotifType::OperationComplete, command)
            .await;
        self.deliver(
            dm,
            subscriptions,
            |_, access| {
                access
                    .can_notify_command_event(command)
                    .then(|| Note::Complete {
                        command: command.to_string(),
                        key: command_key.to_string(),
                        result: result.clone(),
                    })
            },
            now,
        )
        .await
    }

    /// `Controller.{i}.SendOnBoardRequest()` for the Controller row `controller`
    /// (`Device.LocalAgent.Controller.1`): an OnBoardRequest with the device's identity,
    /// retried on the Controller's `USPNotifRetry*` schedule until its NotifyResp and never
    /// expired (R-NOT.5, R-NOT.6, R-NOT.6a), across restarts too (it is journaled like the
    /// Notifys of persistent subscriptions). `None` when the row has no Endpoint ID.
    pub fn on_board_request(
        &mut self,
        controller: &str,
        identity: &DeviceIdentity,
        now: Instant,
    ) -> Option<Outbound> {
        let value = |name: &str| self.tables.value(&format!("{controller}.{name}"));
        let endpoint_id = value("EndpointID").filter(|id| !id.is_empty())?;
        let policy = RetryPolicy::from_values(
            value("USPNotifRetryMinimumWaitInterval").as_deref(),
            value("USPNotifRetryIntervalMultiplier").as_deref(),
        );
        let msg_id = self.next_msg_id();
        let out = Outbound {
            recipient: controller.to_string(),
            endpoint_id,
            msg: build::on_board_request(
                &msg_id,
                &identity.oui,
                &identity.product_class,
                &identity.serial_number,
            ),
        };
        self.await_response(msg_id, out.clone(), policy, None, true, now);
        Some(out)
    }

    /// A NotifyResp for the Notify with this msg_id: no more retries (R-NOT.9: the
    /// subscription id it carries is not checked).
    pub fn on_notify_resp(&mut self, msg_id: &str) {
        self.stop_retrying(msg_id);
    }

    /// When [`Notifier::due`] has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retries = self.pending.values().map(|pending| pending.due);
        let periodic = self.periodic.values().copied();
        let expiries = self.expires.values().copied();
        retries.chain(periodic).chain(expiries).min()
    }

    /// Retries whose time has come, `Periodic!` events that are due, expired subscriptions
    /// (deleted from the table, which persists the deletion).
    pub async fn due(&mut self, dm: &DataModel, now: Instant) -> Vec<Outbound> {
        let mut outbound = Vec::new();
        let mut dropped = Vec::new();
        for (msg_id, pending) in &mut self.pending {
            if pending.due > now {
                continue;
            }
            if pending.give_up.is_some_and(|give_up| give_up <= now) {
                dropped.push(msg_id.clone());
                continue;
            }
            // A deleted or disabled Controller can no longer answer (its Records are dropped).
            let recipient_enabled = self
                .tables
                .value(&format!("{}.Enable", pending.out.recipient))
                .is_some_and(|enable| enable == "true");
            if !recipient_enabled {
                dropped.push(msg_id.clone());
                continue;
            }
            pending.retries += 1;
            pending.due = now + pending.policy.wait(pending.retries + 1, rand::random());
            if pending.durable {
                self.journal
                    .insert(msg_id.clone(), Some(pending.stored(msg_id)));
            }
            outbound.push(pending.out.clone());
        }
        for msg_id in dropped {
            tracing::info!(msg_id, "Notify given up without a NotifyResp");
            self.stop_retrying(&msg_id);
        }

        let expired: Vec<String> = self
            .expires
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(row, _)| row.clone())
            .collect();
        for row in expired {
            self.unindex(&row);
            if let Err(error) = self.tables.delete_instance(&row) {
                tracing::warn!(%error, row, "could not delete an expired subscription");
            }
        }

        outbound.extend(self.periodic_due(dm, now).await);
        outbound
    }

    /// Fires the `Periodic!` schedules that are due.
    async fn periodic_due(&mut self, dm: &DataModel, now: Instant) -> Vec<Outbound> {
        let fired_rows = self.schedule_periodic(now, true);
        if fired_rows.is_empty() {
            return Vec::new();
        }
        let subscriptions = self.matching(dm, NotifType::Event, PERIODIC_EVENT).await;
        let fired = subscriptions
            .into_iter()
            .filter(|s| fired_rows.contains(&s.recipient))
            .collect();
        self.deliver(
            dm,
            fired,
            |_, access| {
                access
                    .can_notify_command_event(PERIODIC_EVENT)
                    .then(|| Note::Event {
                        object: "Device.LocalAgent.".to_string(),
                        name: "Periodic!".to_string(),
                        args: Args::new(),
                    })
            },
            now,
        )
        .await
    }

    /// Keeps a `Periodic!` schedule for every Recipient with a subscription to it and a
    /// `PeriodicNotifInterval` (and none for the others), so that [`Notifier::next_deadline`]
    /// knows the next fire time. With `fire`, the schedules that are due move on to their next
    /// fire time and their Recipients are returned.
    fn schedule_periodic(&mut self, now: Instant, fire: bool) -> Vec<String> {
        let recipients: Vec<String> = self
            .index
            .iter()
            .filter(|s| s.notif_type == NotifType::Event)
            .filter(|s| {
                s.references
                    .iter()
                    .any(|r| structural_match(r, PERIODIC_EVENT))
            })
            .map(|s| s.recipient.clone())
            .collect();
        self.periodic.retain(|row, _| recipients.contains(row));
        let mut fired_rows = Vec::new();
        for row in recipients {
            let value = |name: &str| self.tables.value(&format!("{row}.{name}"));
            let interval: u64 = value("PeriodicNotifInterval")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if interval == 0 {
                self.periodic.remove(&row);
                continue;
            }
            let unix = unix_now();
            let phase = value("PeriodicNotifTime")
                .and_then(|v| periodic::phase_of(&v))
                .unwrap_or(unix);
            let next = now + Duration::from_secs(periodic::seconds_to_next(unix, interval, phase));
            match self.periodic.get(&row) {
                None => {
                    self.periodic.insert(row, next);
                }
                Some(at) if fire && *at <= now => {
                    self.periodic.insert(row.clone(), next);
                    fired_rows.push(row);
                }
                Some(_) => {}
            }
        }
        fired_rows
    }

    /// The `ParameterMap` of `Boot!` for one Recipient: a JSON object of the values its enabled
    /// `BootParameter.{i}.ParameterName` patterns resolve to (patterns that match nothing, or
    /// values it may not read, are left out).
    async fn parameter_map(&self, dm: &DataModel, recipient: &str, access: &Access) -> String {
        let table = format!("{recipient}.BootParameter.");
        let numbers = self.tables.instances(&table).await.unwrap_or_default();
        let mut map = serde_json::Map::new();
        for number in numbers {
            let row = format!("{table}{number}.");
            let value = |name: &str| {
                self.tables
                    .value(&format!("{row}{name}"))
                    .unwrap_or_default()
            };
            if value("Enable") != "true" {
                continue;
            }
            let Ok(resolution) = dm.resolve_str(&value("ParameterName")).await else {
                continue;
            };
            let Leaf::Param(name) = &resolution.leaf else {
                continue;
            };
            let requests: Vec<ReadRequest> = resolution
                .objects
                .iter()
                .map(|object| ReadRequest {
                    object: object.path.clone(),
                    supported: object.supported.clone(),
                    params: vec![name.clone()],
                })
                .collect();
            for (request, answer) in requests.iter().zip(dm.read(&requests).await) {
                let path = format!("{}{name}", request.object);
                let Ok(mut values) = answer else { continue };
                let shown = match access.read_param(&path, param_is_secured(dm, &path)) {
                    ParamRead::Hidden => continue,
                    ParamRead::Empty => String::new(),
                    ParamRead::Value => values.remove(name).unwrap_or_default(),
                };
                map.insert(path, serde_json::Value::String(shown));
            }
        }
        serde_json::Value::Object(map).to_string()
    }
}

/// Whether a reference confirms a candidate: a structural match, then the data for search
/// expressions. ObjectCreation references name tables (the new instance's table, or the
/// instances themselves with a wildcard); ObjectDeletion is matched on the text only, since the
/// deleted instance can no longer be evaluated.
async fn reference_matches(
    dm: &DataModel,
    notif_type: NotifType,
    reference: &Path,
    changed: &str,
) -> bool {
    if !structural_match(reference, changed) {
        return false;
    }
    match notif_type {
        NotifType::ObjectDeletion => true,
        NotifType::ObjectCreation => {
            let depth = changed.trim_end_matches('.').split('.').count();
            let reference_depth = reference.segments.len();
            let names_the_table = matches!(reference.leaf, Leaf::Object)
                && (reference_depth + 1 == depth || reference_depth == depth);
            names_the_table && data_matches(dm, reference, changed).await
        }
        _ => data_matches(dm, reference, changed).await,
    }
}

async fn data_matches(dm: &DataModel, reference: &Path, changed: &str) -> bool {
    let needs_data = reference.has_follow()
        || reference
            .segments
            .iter()
            .any(|segment| matches!(segment, usp_codec::path::Segment::Search(_)));
    if !needs_data {
        return true;
    }
    dm.reference_matches(reference, changed)
        .await
        .unwrap_or(false)
}

fn param_def<'a>(dm: &'a DataModel, path: &str) -> Option<&'a usp_dm::ParamDef> {
    let (object, name) = path.rsplit_once('.')?;
    dm.object_def(&supported(&format!("{object}.")))?
        .param(name)
}

fn param_is_secured(dm: &DataModel, path: &str) -> bool {
    param_def(dm, path).is_some_and(|def| def.secured)
}

/// The unique-key values of a new instance (every key's parameters).
async fn unique_keys(dm: &DataModel, instance: &str) -> BTreeMap<String, String> {
    let table_supported = supported(instance);
    let Some(def) = dm.object_def(&table_supported) else {
        return BTreeMap::new();
    };
    let mut names: Vec<String> = def.unique_keys.iter().flatten().cloned().collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return BTreeMap::new();
    }
    let request = ReadRequest {
        object: instance.to_string(),
        supported: table_supported,
        params: names,
    };
    match dm.read(std::slice::from_ref(&request)).await.pop() {
        Some(Ok(values)) => values.into_iter().collect::<ParamValues>(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use std::sync::Mutex;

    use usp_codec::usp_proto::usp::body::MsgBody;
    use usp_codec::usp_proto::usp::notify::Notification;
    use usp_codec::usp_proto::usp::request::ReqType;
    use usp_dm::{ChangeSink, CommitHook, DmError, Snapshot};

    use super::*;
    use crate::builtin::local_agent;
    use crate::rbac::ControllerTrustProvider;

    const FULL: &str = "Device.LocalAgent.ControllerTrust.Role.1";
    const RECIPIENT: &str = "Device.LocalAgent.Controller.1";

    struct Fx {
        dm: DataModel,
        tables: MemoryProvider,
        changes: Arc<Mutex<Vec<Change>>>,
        notifier: Notifier,
    }

    impl Fx {
        /// A data model with the LocalAgent tables and ControllerTrust, and Controller.1
        /// (`ctrl`) holding `roles`.
        async fn new(roles: &str) -> Fx {
            let changes: Arc<Mutex<Vec<Change>>> = Arc::default();
            let sink = Arc::clone(&changes);
            let mut dm = DataModel::new(ChangeSink::new(move |change| {
                sink.lock().unwrap().push(change)
            }));
            let hook: CommitHook = Arc::new(|_| {});
            let tables = local_agent::tables(hook.clone()).unwrap();
            let trust = ControllerTrustProvider::new(&Snapshot::default(), tables.clone(), hook)
                .await
                .unwrap();
            dm.register(Arc::new(tables.clone())).unwrap();
            dm.register(Arc::new(trust.clone())).unwrap();
            let controller: ParamValues = [
                ("EndpointID", "ctrl"),
                ("Enable", "true"),
                ("AssignedRole", roles),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            tables.add_instance(CONTROLLER_TABLE, &controller).unwrap();
            let mut notifier = Notifier::new(tables.clone(), trust.trust());
            notifier.load().await;
            let fx = Fx {
                dm,
                tables,
                changes,
                notifier,
            };
            fx.changes.lock().unwrap().clear();
            fx
        }

        /// Feeds every pushed change to the notifier.
        async fn pump(&mut self, now: Instant) -> Vec<Outbound> {
            let changes = std::mem::take(&mut *self.changes.lock().unwrap());
            let mut out = Vec::new();
            for change in changes {
                out.extend(self.notifier.on_change(&self.dm, &change, now).await);
            }
            out
        }

        async fn add(&mut self, table: &str, params: &[(&str, &str)]) -> Result<u32, DmError> {
            let resolution = self.dm.resolve_str(table).await.unwrap();
            let params: ParamValues = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut tx = self.dm.begin();
            let number = tx.add(&resolution.objects[0], &params).await?;
            tx.commit().await?;
            Ok(number)
        }

        async fn set(&mut self, object: &str, name: &str, value: &str) {
            let resolution = self.dm.resolve_str(object).await.unwrap();
            let mut tx = self.dm.begin();
            tx.set(&resolution.objects[0], name, value).await.unwrap();
            tx.commit().await.unwrap();
        }

        async fn subscribe(
            &mut self,
            id: &str,
            notif_type: &str,
            references: &str,
            extra: &[(&str, &str)],
        ) -> Vec<Outbound> {
            let mut params = vec![
                ("Enable", "true"),
                ("ID", id),
                ("Recipient", RECIPIENT),
                ("NotifType", notif_type),
                ("ReferenceList", references),
            ];
            params.extend_from_slice(extra);
            self.add(SUBSCRIPTION_TABLE, &params).await.unwrap();
            self.pump(Instant::now()).await
        }
    }

    fn notify_of(out: &Outbound) -> usp::Notify {
        let Some(MsgBody::Request(request)) = out.msg.body.clone().and_then(|b| b.msg_body) else {
            panic!("not a request: {:?}", out.msg);
        };
        let Some(ReqType::Notify(notify)) = request.req_type else {
            panic!("not a Notify: {request:?}");
        };
        notify
    }

    fn msg_id(out: &Outbound) -> String {
        out.msg.header.as_ref().unwrap().msg_id.clone()
    }

    #[tokio::test]
    async fn tp_1_57_object_creation_names_the_instance_and_its_unique_keys() {
        let mut fx = Fx::new(FULL).await;
        let out = fx
            .subscribe(
                "sub-1",
                "ObjectCreation",
                "Device.LocalAgent.Subscription.",
                &[],
            )
            .await;
        // The subscription's own creation happened before it existed: nothing to report.
        assert!(out.is_empty());
        let out = fx
            .subscribe("sub-2", "ValueChange", "Device.LocalAgent.EndpointID", &[])
            .await;
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].endpoint_id, "ctrl");
        let notify = notify_of(&out[0]);
        assert_eq!(notify.subscription_id, "sub-1");
        assert!(!notify.send_resp);
        let Some(Notification::ObjCreation(creation)) = notify.notification else {
            panic!("expected ObjectCreation: {notify:?}");
        };
        assert_eq!(creation.obj_path, "Device.LocalAgent.Subscription.2.");
        assert_eq!(
            creation.unique_keys.get("ID").map(String::as_str),
            Some("sub-2")
        );
        assert_eq!(
            creation.unique_keys.get("Recipient").map(String::as_str),
            Some(RECIPIENT)
        );
    }

    #[tokio::test]
    async fn tp_1_54_value_change_is_retried_in_the_spec_windows_until_answered() {
        let mut fx = Fx::new(FULL).await;
        fx.subscribe(
            "vc",
            "ValueChange",
            "Device.LocalAgent.Controller.1.ProvisioningCode",
            &[("NotifRetry", "true")],
        )
        .await;
        let start = Instant::now();
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "abc")
            .await;
        let out = fx.pump(start).await;
        assert_eq!(out.len(), 1, "{out:?}");
        let notify = notify_of(&out[0]);
        assert!(notify.send_resp);
        let Some(Notification::ValueChange(change)) = &notify.notification else {
            panic!("expected ValueChange: {notify:?}");
        };
        assert_eq!(
            change.param_path,
            "Device.LocalAgent.Controller.1.ProvisioningCode"
        );
        assert_eq!(change.param_value, "abc");
        let first_id = msg_id(&out[0]);

        let first_retry = fx.notifier.next_deadline().unwrap() - start;
        assert!(
            (5.0..=10.0).contains(&first_retry.as_secs_f64()),
            "{first_retry:?}"
        );
        assert!(
            fx.notifier
                .due(&fx.dm, start + Duration::from_secs(4))
                .await
                .is_empty()
        );
        let at = start + first_retry;
        let retried = fx.notifier.due(&fx.dm, at).await;
        assert_eq!(retried.len(), 1);
        assert_eq!(msg_id(&retried[0]), first_id, "a retry reuses the msg_id");

        let second_retry = fx.notifier.next_deadline().unwrap() - at;
        assert!(
            (10.0..=20.0).contains(&second_retry.as_secs_f64()),
            "{second_retry:?}"
        );
        fx.notifier.on_notify_resp(&first_id);
        assert_eq!(fx.notifier.awaiting_response(), 0);
        assert!(
            fx.notifier
                .due(&fx.dm, at + Duration::from_secs(3600))
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn notif_expiration_stops_the_retries() {
        let mut fx = Fx::new(FULL).await;
        fx.subscribe(
            "vc",
            "ValueChange",
            "Device.LocalAgent.Controller.*.ProvisioningCode",
            &[("NotifRetry", "true"), ("NotifExpiration", "12")],
        )
        .await;
        let start = Instant::now();
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        assert_eq!(fx.pump(start).await.len(), 1);
        let late = start + Duration::from_secs(12);
        assert!(fx.notifier.due(&fx.dm, late).await.is_empty());
        assert_eq!(fx.notifier.awaiting_response(), 0);
    }

    #[tokio::test]
    async fn search_expression_references_follow_the_data() {
        let mut fx = Fx::new(FULL).await;
        fx.subscribe(
            "vc",
            "ValueChange",
            r#"Device.LocalAgent.Controller.[EndpointID=="ctrl"].ProvisioningCode"#,
            &[],
        )
        .await;
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "one")
            .await;
        assert_eq!(fx.pump(Instant::now()).await.len(), 1);
        fx.set("Device.LocalAgent.Controller.1.", "EndpointID", "other")
            .await;
        fx.pump(Instant::now()).await;
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "two")
            .await;
        assert!(fx.pump(Instant::now()).await.is_empty());
    }

    #[tokio::test]
    async fn notifications_need_the_recipients_notify_permission() {
        let mut fx = Fx::new(FULL).await;
        // A role that reads everything and may be notified of nothing.
        fx.add(
            "Device.LocalAgent.ControllerTrust.Role.",
            &[("Enable", "true"), ("Name", "Reader")],
        )
        .await
        .unwrap();
        fx.add(
            "Device.LocalAgent.ControllerTrust.Role.3.Permission.",
            &[
                ("Enable", "true"),
                ("Targets", "Device."),
                ("Param", "r---"),
                ("Obj", "r---"),
                ("InstantiatedObj", "r---"),
                ("CommandEvent", "r---"),
            ],
        )
        .await
        .unwrap();
        fx.set(
            "Device.LocalAgent.Controller.1.",
            "AssignedRole",
            "Device.LocalAgent.ControllerTrust.Role.3",
        )
        .await;
        fx.pump(Instant::now()).await;
        fx.subscribe("vc", "ValueChange", "Device.LocalAgent.Controller.1.", &[])
            .await;
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        assert!(fx.pump(Instant::now()).await.is_empty());

        fx.set(
            "Device.LocalAgent.ControllerTrust.Role.3.Permission.1.",
            "Param",
            "r--n",
        )
        .await;
        fx.pump(Instant::now()).await;
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "y")
            .await;
        assert_eq!(fx.pump(Instant::now()).await.len(), 1);
    }

    #[tokio::test]
    async fn object_deletion_and_disabled_subscriptions() {
        let mut fx = Fx::new(FULL).await;
        fx.subscribe(
            "del",
            "ObjectDeletion",
            "Device.LocalAgent.Subscription.*.",
            &[],
        )
        .await;
        fx.subscribe("other", "ValueChange", "Device.LocalAgent.EndpointID", &[])
            .await;
        fx.tables
            .delete_instance("Device.LocalAgent.Subscription.2.")
            .unwrap();
        let out = fx.pump(Instant::now()).await;
        assert_eq!(out.len(), 1);
        let Some(Notification::ObjDeletion(deletion)) = notify_of(&out[0]).notification else {
            panic!("expected ObjectDeletion");
        };
        assert_eq!(deletion.obj_path, "Device.LocalAgent.Subscription.2.");

        fx.set("Device.LocalAgent.Subscription.1.", "Enable", "false")
            .await;
        fx.pump(Instant::now()).await;
        assert_eq!(fx.notifier.subscriptions(), 0);
        fx.tables
            .add_instance(SUBSCRIPTION_TABLE, &ParamValues::new())
            .unwrap();
        fx.tables
            .delete_instance("Device.LocalAgent.Subscription.3.")
            .unwrap();
        assert!(fx.pump(Instant::now()).await.is_empty());
    }

    #[tokio::test]
    async fn boot_event_carries_each_recipients_parameter_map() {
        let mut fx = Fx::new(FULL).await;
        fx.tables
            .add_instance(
                "Device.LocalAgent.Controller.1.BootParameter.",
                &[
                    ("Enable".to_string(), "true".to_string()),
                    (
                        "ParameterName".to_string(),
                        "Device.LocalAgent.Controller.*.EndpointID".to_string(),
                    ),
                ]
                .into_iter()
                .collect(),
            )
            .unwrap();
        fx.subscribe("boot", "Event", "Device.Boot!", &[]).await;
        let args = Args::from([("Cause".to_string(), "LocalReboot".to_string())]);
        let out = fx
            .notifier
            .on_event(&fx.dm, "Device.", "Boot!", args, Instant::now())
            .await;
        assert_eq!(out.len(), 1);
        let Some(Notification::Event(event)) = notify_of(&out[0]).notification else {
            panic!("expected an Event");
        };
        assert_eq!(
            (event.obj_path.as_str(), event.event_name.as_str()),
            ("Device.", "Boot!")
        );
        assert_eq!(event.params["Cause"], "LocalReboot");
        assert_eq!(
            event.params["ParameterMap"],
            r#"{"Device.LocalAgent.Controller.1.EndpointID":"ctrl"}"#
        );
    }

    #[tokio::test]
    async fn periodic_event_fires_every_interval() {
        let mut fx = Fx::new(FULL).await;
        fx.set(
            "Device.LocalAgent.Controller.1.",
            "PeriodicNotifInterval",
            "60",
        )
        .await;
        fx.pump(Instant::now()).await;
        fx.subscribe("p", "Event", "Device.LocalAgent.Periodic!", &[])
            .await;
        let start = Instant::now();
        assert!(fx.notifier.due(&fx.dm, start).await.is_empty());
        let first = fx.notifier.next_deadline().unwrap();
        let wait = first - start;
        assert!(
            wait <= Duration::from_secs(60) && wait > Duration::from_secs(55),
            "{wait:?}"
        );
        let out = fx.notifier.due(&fx.dm, first).await;
        assert_eq!(out.len(), 1);
        let Some(Notification::Event(event)) = notify_of(&out[0]).notification else {
            panic!("expected Periodic!");
        };
        assert_eq!(event.event_name, "Periodic!");
        let second = fx.notifier.next_deadline().unwrap() - first;
        assert!((56..=64).contains(&second.as_secs()), "{second:?}");
    }

    #[tokio::test]
    async fn a_periodic_subscription_schedules_its_first_event_without_other_work() {
        let mut fx = Fx::new(FULL).await;
        fx.set(
            "Device.LocalAgent.Controller.1.",
            "PeriodicNotifInterval",
            "2",
        )
        .await;
        fx.pump(Instant::now()).await;
        assert_eq!(fx.notifier.next_deadline(), None);
        let before = Instant::now();
        fx.subscribe("p", "Event", "Device.LocalAgent.Periodic!", &[])
            .await;
        let first = fx.notifier.next_deadline().expect("a Periodic! fire time");
        assert!(
            first > before && first <= Instant::now() + Duration::from_secs(2),
            "{:?}",
            first - before
        );
        fx.tables
            .delete_instance("Device.LocalAgent.Subscription.1.")
            .unwrap();
        fx.pump(Instant::now()).await;
        assert_eq!(fx.notifier.next_deadline(), None);
    }

    fn identity() -> DeviceIdentity {
        DeviceIdentity {
            oui: "00D09E".into(),
            product_class: "Box".into(),
            serial_number: "42".into(),
        }
    }

    #[tokio::test]
    async fn on_board_request_is_retried_on_the_controllers_schedule_until_answered() {
        let mut fx = Fx::new(FULL).await;
        let row = "Device.LocalAgent.Controller.1.";
        fx.set(row, "USPNotifRetryMinimumWaitInterval", "2").await;
        fx.set(row, "USPNotifRetryIntervalMultiplier", "1500").await;
        fx.pump(Instant::now()).await;
        let start = Instant::now();
        let out = fx
            .notifier
            .on_board_request(RECIPIENT, &identity(), start)
            .unwrap();
        assert_eq!(out.endpoint_id, "ctrl");
        let notify = notify_of(&out);
        assert!(
            notify.send_resp,
            "R-NOT.6a: an OnBoardRequest wants a NotifyResp"
        );
        assert_eq!(notify.subscription_id, "", "R-NOT.7");
        let Some(Notification::OnBoardReq(request)) = &notify.notification else {
            panic!("expected OnBoardRequest: {notify:?}");
        };
        assert_eq!(
            (
                request.oui.as_str(),
                request.product_class.as_str(),
                request.serial_number.as_str()
            ),
            ("00D09E", "Box", "42")
        );
        let id = msg_id(&out);

        // m = 2 s, k = 1.5: the 1st retry waits 2–3 s, the 2nd 3–4.5 s.
        let first = fx.notifier.next_deadline().unwrap() - start;
        assert!((2.0..=3.0).contains(&first.as_secs_f64()), "{first:?}");
        let at = start + first;
        let retried = fx.notifier.due(&fx.dm, at).await;
        assert_eq!(retried.len(), 1);
        assert_eq!(msg_id(&retried[0]), id, "a retry reuses the msg_id");
        let second = fx.notifier.next_deadline().unwrap() - at;
        assert!((3.0..=4.5).contains(&second.as_secs_f64()), "{second:?}");

        // R-NOT.6a: it never expires; a week later it is still retried.
        let week = start + Duration::from_secs(7 * 86_400);
        assert_eq!(fx.notifier.due(&fx.dm, week).await.len(), 1);
        assert_eq!(fx.notifier.awaiting_response(), 1);
        // Nor does a restart end it: the next run takes it back.
        let (saved, _) = fx.notifier.take_journal();
        let mut next = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
        next.load().await;
        next.restore(saved, week);
        assert_eq!(next.awaiting_response(), 1);
        assert_eq!(msg_id(&next.due(&fx.dm, week).await[0]), id);
        fx.notifier.on_notify_resp(&id);
        assert_eq!(fx.notifier.awaiting_response(), 0);
        assert_eq!(fx.notifier.next_deadline(), None);
    }

    #[tokio::test]
    async fn retries_stop_when_the_controller_is_disabled() {
        let mut fx = Fx::new(FULL).await;
        let start = Instant::now();
        fx.notifier
            .on_board_request(RECIPIENT, &identity(), start)
            .unwrap();
        fx.set("Device.LocalAgent.Controller.1.", "Enable", "false")
            .await;
        fx.pump(start).await;
        let due = fx.notifier.next_deadline().unwrap();
        assert!(fx.notifier.due(&fx.dm, due).await.is_empty());
        assert_eq!(fx.notifier.awaiting_response(), 0);
    }

    #[tokio::test]
    async fn notifys_of_persistent_subscriptions_are_journaled_and_restored() {
        let mut fx = Fx::new(FULL).await;
        let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
        let kept = [
            ("NotifRetry", "true"),
            ("Persistent", "true"),
            ("NotifExpiration", "3600"),
        ];
        fx.subscribe("kept", "ValueChange", reference, &kept).await;
        fx.subscribe(
            "volatile",
            "ValueChange",
            reference,
            &[("NotifRetry", "true")],
        )
        .await;
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        let out = fx.pump(Instant::now()).await;
        assert_eq!(out.len(), 2);
        let kept = out
            .iter()
            .find(|out| notify_of(out).subscription_id == "kept")
            .unwrap();
        let (saved, removed) = fx.notifier.take_journal();
        assert!(removed.is_empty());
        assert_eq!(saved.len(), 1, "only the persistent subscription's Notify");
        assert_eq!(saved[0].msg_id, msg_id(kept));
        assert_eq!(saved[0].endpoint_id, "ctrl");
        let give_up = saved[0].give_up.unwrap() - unix_now();
        assert!((3599..=3600).contains(&give_up), "{give_up}");

        // The next run takes it back and resends it at once, with the same msg_id.
        let mut next = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
        next.load().await;
        let boot = Instant::now();
        next.restore(saved, boot);
        assert_eq!(next.next_deadline(), Some(boot));
        let resent = next.due(&fx.dm, boot).await;
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].msg, kept.msg);
        let (saved, _) = next.take_journal();
        assert_eq!(saved[0].retries, 1, "the retry count is kept up to date");

        // The Controller turns up: no waiting for the retry window.
        let contact = boot + Duration::from_millis(200);
        assert!(next.next_deadline().unwrap() > contact);
        next.reachable("other", contact);
        assert!(next.next_deadline().unwrap() > contact);
        next.reachable("ctrl", contact);
        assert_eq!(next.next_deadline(), Some(contact));
        next.on_notify_resp(&msg_id(kept));
        assert_eq!(next.take_journal(), (vec![], vec![msg_id(kept)]));
        assert_eq!(next.awaiting_response(), 0);
    }

    #[tokio::test]
    async fn retries_stop_when_their_subscription_is_deleted_disabled_or_stops_retrying() {
        let mut fx = Fx::new(FULL).await;
        let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
        let retry = [("NotifRetry", "true"), ("Persistent", "true")];
        for id in ["deleted", "disabled", "quiet", "kept"] {
            fx.subscribe(id, "ValueChange", reference, &retry).await;
        }
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        assert_eq!(fx.pump(Instant::now()).await.len(), 4);
        assert_eq!(fx.notifier.awaiting_response(), 4);
        fx.notifier.take_journal();

        let row = |id: &str| format!("{SUBSCRIPTION_TABLE}[ID==\"{id}\"].");
        fx.set(&row("disabled"), "Enable", "false").await;
        fx.set(&row("quiet"), "NotifRetry", "false").await;
        let resolution = fx.dm.resolve_str(&row("deleted")).await.unwrap();
        let mut tx = fx.dm.begin();
        tx.delete(&resolution.objects[0]).await.unwrap();
        tx.commit().await.unwrap();
        fx.pump(Instant::now()).await;

        assert_eq!(fx.notifier.awaiting_response(), 1);
        let (saved, removed) = fx.notifier.take_journal();
        assert!(saved.is_empty());
        assert_eq!(removed.len(), 3, "the store forgets them too");
        let later = Instant::now() + Duration::from_secs(3600);
        let retried = fx.notifier.due(&fx.dm, later).await;
        assert_eq!(retried.len(), 1);
        assert_eq!(notify_of(&retried[0]).subscription_id, "kept");
    }

    #[tokio::test]
    async fn stored_notifys_of_a_subscription_deleted_meanwhile_are_dropped() {
        let mut fx = Fx::new(FULL).await;
        let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
        let retry = [("NotifRetry", "true"), ("Persistent", "true")];
        fx.subscribe("gone", "ValueChange", reference, &retry).await;
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        let sent = fx.pump(Instant::now()).await;
        let (saved, _) = fx.notifier.take_journal();
        assert_eq!(saved.len(), 1);
        // The row goes while the agent is down: the next run must not resend its Notify.
        let row = format!("{SUBSCRIPTION_TABLE}[ID==\"gone\"].");
        let resolution = fx.dm.resolve_str(&row).await.unwrap();
        fx.tables
            .delete_instance(&resolution.objects[0].path)
            .unwrap();

        let mut next = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
        next.load().await;
        next.restore(saved, Instant::now());
        assert_eq!(next.awaiting_response(), 0);
        assert_eq!(next.take_journal(), (vec![], vec![msg_id(&sent[0])]));
    }

    #[tokio::test]
    async fn trigger_action_config_asks_for_its_settings_instead_of_notifying() {
        let mut fx = Fx::new(FULL).await;
        let reference = "Device.LocalAgent.Controller.1.ProvisioningCode";
        let settings = "Device.LocalAgent.Controller.1.PeriodicNotifInterval=600";
        fx.subscribe(
            "config",
            "ValueChange",
            reference,
            &[
                ("TriggerAction", "Config"),
                ("TriggerConfigSettings", settings),
            ],
        )
        .await;
        fx.subscribe(
            "both",
            "ValueChange",
            reference,
            &[
                ("TriggerAction", "NotifyAndConfig"),
                ("TriggerConfigSettings", settings),
            ],
        )
        .await;
        fx.notifier.take_trigger_writes();
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        let out = fx.pump(Instant::now()).await;
        assert_eq!(out.len(), 1, "Config alone sends no Notify");
        assert_eq!(notify_of(&out[0]).subscription_id, "both");
        let writes = fx.notifier.take_trigger_writes();
        assert_eq!(writes.len(), 2);
        assert!(writes.iter().all(|write| write.settings
            == vec![(
                "Device.LocalAgent.Controller.1.PeriodicNotifInterval".to_string(),
                "600".to_string()
            )]));
    }

    #[tokio::test]
    async fn trigger_settings_the_recipient_may_not_write_are_left_out() {
        let mut fx = Fx::new(FULL).await;
        // Role.1 minus write access to the Controller table's PeriodicNotifInterval.
        fx.add(
            "Device.LocalAgent.ControllerTrust.Role.1.Permission.",
            &[
                ("Enable", "true"),
                ("Order", "50"),
                (
                    "Targets",
                    "Device.LocalAgent.Controller.1.PeriodicNotifInterval",
                ),
                ("Param", "r--n"),
            ],
        )
        .await
        .unwrap();
        fx.subscribe(
            "config",
            "ValueChange",
            "Device.LocalAgent.Controller.1.ProvisioningCode",
            &[
                ("TriggerAction", "Config"),
                (
                    "TriggerConfigSettings",
                    "Device.LocalAgent.Controller.1.PeriodicNotifInterval=600,Device.LocalAgent.Controller.1.ControllerCode=\"c\"",
                ),
            ],
        )
        .await;
        fx.notifier.take_trigger_writes();
        fx.set("Device.LocalAgent.Controller.1.", "ProvisioningCode", "x")
            .await;
        fx.pump(Instant::now()).await;
        let writes = fx.notifier.take_trigger_writes();
        assert_eq!(
            writes[0].settings,
            vec![(
                "Device.LocalAgent.Controller.1.ControllerCode".to_string(),
                "c".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn stored_notifys_past_their_expiration_or_undecodable_are_dropped() {
        let fx = Fx::new(FULL).await;
        let mut notifier = Notifier::new(fx.tables.clone(), fx.notifier.trust.clone());
        let envelope = Envelope {
            msg_id: "old".into(),
            subscription_id: "s".into(),
            send_resp: true,
        };
        let expired = StoredNotify {
            msg_id: "old".into(),
            recipient: RECIPIENT.into(),
            endpoint_id: "ctrl".into(),
            msg: prost::Message::encode_to_vec(&build::object_deletion(&envelope, "Device.X.1.")),
            retries: 3,
            give_up: Some(unix_now() - 1),
        };
        let garbage = StoredNotify {
            msg_id: "bad".into(),
            msg: vec![0xff; 4],
            give_up: None,
            ..expired.clone()
        };
        notifier.restore(vec![expired, garbage], Instant::now());
        assert_eq!(notifier.awaiting_response(), 0);
        assert_eq!(
            notifier.take_journal(),
            (vec![], vec!["bad".to_string(), "old".to_string()])
        );
    }

    #[tokio::test]
    async fn parameters_marked_value_change_ignored_are_never_notified() {
        let mut fx = Fx::new(FULL).await;
        let mut object = usp_dm::ObjectDef::new("Device.X_Test.");
        object.params = vec![
            usp_dm::ParamDef::new("Counter", usp_dm::ValueType::UnsignedInt)
                .access(usp_dm::ParamAccess::ReadWrite)
                .value_change_ignored(),
            usp_dm::ParamDef::new("Name", usp_dm::ValueType::String)
                .access(usp_dm::ParamAccess::ReadWrite),
        ];
        let schema: usp_dm::Schema = std::iter::once(object).collect();
        fx.dm
            .register(Arc::new(MemoryProvider::new("test", schema)))
            .unwrap();
        fx.subscribe("x", "ValueChange", "Device.X_Test.", &[])
            .await;
        fx.set("Device.X_Test.", "Counter", "7").await;
        assert!(fx.pump(Instant::now()).await.is_empty());
        fx.set("Device.X_Test.", "Name", "n").await;
        assert_eq!(fx.pump(Instant::now()).await.len(), 1);
    }

    #[tokio::test]
    async fn time_to_live_deletes_the_subscription() {
        let mut fx = Fx::new(FULL).await;
        fx.subscribe(
            "ttl",
            "ValueChange",
            "Device.LocalAgent.",
            &[("TimeToLive", "10")],
        )
        .await;
        let deadline = fx.notifier.next_deadline().unwrap();
        assert!(deadline <= Instant::now() + Duration::from_secs(10));
        fx.notifier.due(&fx.dm, deadline).await;
        assert_eq!(fx.notifier.subscriptions(), 0);
        assert!(
            fx.tables
                .instances(SUBSCRIPTION_TABLE)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
