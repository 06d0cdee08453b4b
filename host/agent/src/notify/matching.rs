//! Matching what happened (a change pushed by a provider or committed by a message, an event,
//! a completed command) to the subscriptions it concerns, and keeping the subscription index
//! current as the Subscription and Controller rows change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use usp_codec::path::{Leaf, Path};
use usp_dm::{Args, Change, DataModel, ParamValues, ProviderError, ReadRequest, structural_match};
use usp_rbac::ParamRead;

use super::subscription::{NotifType, Subscription, supported};
use super::{Notifier, Outbound, periodic, unix_now};
use crate::builtin::local_agent::{CONTROLLER_TABLE, SUBSCRIPTION_TABLE};

/// What a matched subscription is told.
pub(super) enum Note {
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

/// The row (`…Subscription.3.`) a path under the Subscription table belongs to.
fn subscription_row(path: &str) -> Option<String> {
    let rest = path.strip_prefix(SUBSCRIPTION_TABLE)?;
    let number = rest.split('.').next()?;
    (!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{SUBSCRIPTION_TABLE}{number}."))
}

impl Notifier {
    pub(super) fn refresh(&mut self, row: &str) {
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
    pub(super) fn unindex(&mut self, row: &str) {
        self.expires.remove(row);
        if let Some(gone) = self.index.remove(row) {
            self.forget_notifys_of(&gone.recipient, &gone.id);
        }
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

    /// The subscriptions of `notif_type` that `changed` matches now (one per subscription).
    pub(super) async fn matching(
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

pub(super) fn param_is_secured(dm: &DataModel, path: &str) -> bool {
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
