//! The Notifys sent with `send_resp` and not yet answered (R-NOT.1..4): their retries, the
//! journal that keeps those of `Persistent` subscriptions in the store across restarts, and
//! the OnBoardRequest (R-NOT.5..6a), retried the same way.

use std::time::{Duration, Instant};

use usp_codec::usp_proto::usp;

use super::retry::RetryPolicy;
use super::{DeviceIdentity, Notifier, Outbound, unix_now};
use crate::messages::notify as build;
use crate::store::StoredNotify;

/// A Notify sent with `send_resp` and not yet answered.
pub(super) struct Pending {
    out: Outbound,
    retries: u32,
    pub(super) due: Instant,
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

impl Notifier {
    /// Stops retrying the Notifys of a subscription that was deleted, disabled, re-addressed or
    /// told not to retry: nobody asked for them any more.
    pub(super) fn forget_notifys_of(&mut self, recipient: &str, subscription_id: &str) {
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

    pub(super) fn next_msg_id(&mut self) -> String {
        let msg_id = format!("{}{}", self.msg_prefix, self.next_msg);
        self.next_msg += 1;
        msg_id
    }

    /// Keeps `out` for retries until its NotifyResp (R-NOT.1..4), or until `give_up`; a
    /// `durable` one is also journaled for the store.
    pub(super) fn await_response(
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

    /// Resends the unanswered Notifys whose retry time has come, and gives up on those past
    /// their `NotifExpiration` or whose Recipient can no longer answer.
    pub(super) fn resend_due(&mut self, now: Instant) -> Vec<Outbound> {
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
        outbound
    }
}
