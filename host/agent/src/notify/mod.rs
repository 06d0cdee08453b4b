//! Subscriptions and notifications (digest §9, TR-181 `Device.LocalAgent.Subscription.{i}`):
//! the [`Notifier`] turns pushed [`Change`](usp_dm::Change)s, completed commands and agent
//! events into Notify Msgs for the subscribed Controllers, and keeps the retries, `Periodic!`
//! schedules and `TimeToLive` expiries. It does no network I/O: the data-model actor feeds it
//! and sends the [`Outbound`] Msgs it returns.
//!
//! - [`subscription`]: typed rows and the index that finds candidate subscriptions per path.
//! - `matching` (private): a change, event or completion matched to the subscriptions it
//!   concerns, and the index kept current as Subscription rows change.
//! - `delivery` (private): the Notify Msgs of one batch, built per Recipient within its access.
//! - `pending` (private): the Notifys awaiting a NotifyResp, their retries and journal, and
//!   the OnBoardRequest.
//! - `schedules` (private): `Periodic!` schedules and `TimeToLive` expiries.
//! - [`retry`]: the R-NOT.1..4 retry windows.
//! - [`periodic`]: `Periodic!` fire times.
//!
//! How the actor drives it:
//! - at boot, [`Notifier::load`], then [`Notifier::on_event`] with `Device.` / `Boot!`;
//! - every `Change` from the data model's sink goes to [`Notifier::on_change`] (this includes
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

mod delivery;
mod matching;
mod pending;
pub mod periodic;
pub mod retry;
mod schedules;
pub mod subscription;

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use usp_codec::usp_proto::usp;
use usp_dm::{DataModel, MemoryProvider, Provider};

use crate::builtin::controller_trust::TrustHandle;
use crate::builtin::local_agent::SUBSCRIPTION_TABLE;
use crate::store::StoredNotify;
use pending::Pending;
use subscription::SubscriptionIndex;

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

    /// The configuration changes triggered subscriptions asked for since the last call; the
    /// actor applies them.
    pub fn take_trigger_writes(&mut self) -> Vec<TriggerWrite> {
        std::mem::take(&mut self.trigger_writes)
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
        let mut outbound = self.resend_due(now);
        self.expire_due(now);
        outbound.extend(self.periodic_due(dm, now).await);
        outbound
    }
}

#[cfg(test)]
mod tests;
