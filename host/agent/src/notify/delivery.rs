//! Building and registering the Notify Msgs of one batch: each matched subscription's
//! Recipient is looked up once (its Endpoint ID, access and retry policy), told only what it
//! may see, and its `TriggerConfigSettings` queued; `Boot!` carries each Recipient's
//! `ParameterMap`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use usp_codec::path::Leaf;
use usp_dm::{DataModel, Provider, ReadRequest};
use usp_rbac::{Access, ParamRead};

use super::matching::{Note, param_is_secured};
use super::retry::RetryPolicy;
use super::subscription::Subscription;
use super::{Notifier, Outbound, TriggerWrite};
use crate::builtin::controller_trust::split_list;
use crate::messages::notify::{self as build, Envelope};
use crate::rbac::access_for;

/// What the Recipient is allowed, and how to retry towards it; built once per batch.
pub(super) struct Recipient {
    endpoint_id: String,
    pub(super) access: Access,
    policy: RetryPolicy,
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

impl Notifier {
    pub(super) async fn recipient(&self, dm: &DataModel, row: &str) -> Option<Recipient> {
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

    fn envelope(&mut self, subscription: &Subscription) -> Envelope {
        Envelope {
            msg_id: self.next_msg_id(),
            subscription_id: subscription.id.clone(),
            send_resp: subscription.notif_retry,
        }
    }

    /// Builds, registers (for retries) and returns the Notifys of one batch.
    pub(super) async fn deliver(
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

    /// The `ParameterMap` of `Boot!` for one Recipient: a JSON object of the values its enabled
    /// `BootParameter.{i}.ParameterName` patterns resolve to (patterns that match nothing, or
    /// values it may not read, are left out).
    pub(super) async fn parameter_map(
        &self,
        dm: &DataModel,
        recipient: &str,
        access: &Access,
    ) -> String {
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
