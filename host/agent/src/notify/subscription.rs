//! `Device.LocalAgent.Subscription.{i}` rows as typed [`Subscription`]s, and the
//! [`SubscriptionIndex`] that finds the subscriptions a changed path may concern without
//! scanning them all.
//!
//! The index is keyed by the supported form of each `ReferenceList` entry (instance numbers,
//! `*` and search expressions all become `{i}`): a changed path can only match an entry whose
//! key is a prefix of the changed path's supported form (object entries cover everything below
//! them), so a lookup costs one hash probe per segment of the changed path, whatever the number
//! of subscriptions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use usp_codec::path::{Leaf, Path, Segment};

/// `NotifType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifType {
    /// A parameter's value changed.
    ValueChange,
    /// An instance was created.
    ObjectCreation,
    /// An instance was deleted.
    ObjectDeletion,
    /// An asynchronous command finished.
    OperationComplete,
    /// An event fired.
    Event,
}

impl NotifType {
    fn parse(text: &str) -> Option<NotifType> {
        Some(match text {
            "ValueChange" => NotifType::ValueChange,
            "ObjectCreation" => NotifType::ObjectCreation,
            "ObjectDeletion" => NotifType::ObjectDeletion,
            "OperationComplete" => NotifType::OperationComplete,
            "Event" => NotifType::Event,
            _ => return None,
        })
    }
}

/// What a triggered subscription does (`TriggerAction`, USP 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TriggerAction {
    /// Send the Notify (the default).
    #[default]
    Notify,
    /// Apply `TriggerConfigSettings` instead of notifying.
    Config,
    /// Both.
    NotifyAndConfig,
}

impl TriggerAction {
    fn parse(text: &str) -> TriggerAction {
        match text {
            "Config" => TriggerAction::Config,
            "NotifyAndConfig" => TriggerAction::NotifyAndConfig,
            _ => TriggerAction::Notify,
        }
    }

    /// Whether a Notify goes out.
    pub fn notifies(self) -> bool {
        self != TriggerAction::Config
    }

    /// Whether `TriggerConfigSettings` are applied.
    pub fn configures(self) -> bool {
        self != TriggerAction::Notify
    }
}

/// `TriggerConfigSettings`: comma-separated `Path=Value` items, a value optionally in double
/// quotes (which may then hold commas). Items without `=` are left out.
pub fn parse_trigger_settings(text: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in text.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                current.push(ch);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            _ => current.push(ch),
        }
    }
    items.push(current);
    items
        .iter()
        .filter_map(|item| {
            let (path, value) = item.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value);
            Some((path.trim().to_string(), value.to_string()))
        })
        .filter(|(path, _)| !path.is_empty())
        .collect()
}

/// One enabled, well-formed subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its row (`Device.LocalAgent.Subscription.3.`).
    pub row: String,
    /// `ID`: the Notify's `subscription_id`.
    pub id: String,
    /// `Recipient` (`Device.LocalAgent.Controller.1`, no final dot).
    pub recipient: String,
    /// `NotifType`.
    pub notif_type: NotifType,
    /// `ReferenceList`, parsed.
    pub references: Vec<Path>,
    /// `NotifRetry`: Notify with `send_resp` and retries until a NotifyResp.
    pub notif_retry: bool,
    /// `NotifExpiration` in seconds (0: retry until delivered).
    pub notif_expiration: u64,
    /// `Persistent`: the subscription, and its Notifys still waiting for a NotifyResp,
    /// survive a restart.
    pub persistent: bool,
    /// `TimeToLive` in seconds (0: forever).
    pub time_to_live: u64,
    /// `TriggerAction`.
    pub trigger_action: TriggerAction,
    /// `TriggerConfigSettings`, parsed.
    pub trigger_settings: Vec<(String, String)>,
}

impl Subscription {
    /// The subscription a row describes, or `None` when it is disabled or cannot fire (no
    /// recipient, unknown type, no usable reference). `value` reads the row's parameters.
    pub fn from_row(row: &str, value: impl Fn(&str) -> Option<String>) -> Option<Subscription> {
        if value("Enable").as_deref() != Some("true") {
            return None;
        }
        let recipient = value("Recipient").unwrap_or_default();
        if recipient.is_empty() {
            return None;
        }
        let notif_type = NotifType::parse(&value("NotifType").unwrap_or_default())?;
        let references: Vec<Path> = value("ReferenceList")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .filter_map(|item| match Path::parse(item) {
                Ok(path) => Some(path),
                Err(error) => {
                    tracing::warn!(row, %error, "ReferenceList entry ignored");
                    None
                }
            })
            .collect();
        if references.is_empty() {
            return None;
        }
        let number = |name: &str| value(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(Subscription {
            row: row.to_string(),
            id: value("ID").unwrap_or_default(),
            recipient: recipient.trim_end_matches('.').to_string(),
            notif_type,
            references,
            notif_retry: value("NotifRetry").as_deref() == Some("true"),
            notif_expiration: number("NotifExpiration"),
            persistent: value("Persistent").as_deref() == Some("true"),
            time_to_live: number("TimeToLive"),
            trigger_action: TriggerAction::parse(&value("TriggerAction").unwrap_or_default()),
            trigger_settings: parse_trigger_settings(
                &value("TriggerConfigSettings").unwrap_or_default(),
            ),
        })
    }
}

/// The index key of a reference: its supported form, every instance selector as `{i}`.
fn key_of(reference: &Path) -> Option<String> {
    let mut key = String::new();
    for segment in &reference.segments {
        match segment {
            Segment::Name(name) => key.push_str(name),
            Segment::Instance(_)
            | Segment::Wildcard
            | Segment::Search(_)
            | Segment::Placeholder => key.push_str("{i}"),
            // Reference following can land anywhere: such entries are not indexed (and not
            // supported in ReferenceList by this agent).
            Segment::Follow(_) => return None,
        }
        key.push('.');
    }
    if let Leaf::Param(name) | Leaf::Command(name) | Leaf::Event(name) = &reference.leaf {
        key.push_str(name);
    }
    Some(key)
}

/// The supported form of a concrete path (`Device.IP.Interface.3.Name` →
/// `Device.IP.Interface.{i}.Name`).
pub(crate) fn supported(concrete: &str) -> String {
    usp_dm::memory::supported_path(concrete)
}

/// Subscriptions by row, and their references by key.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    by_row: BTreeMap<String, Arc<Subscription>>,
    /// Key → (row, index into its `references`).
    by_key: HashMap<String, Vec<(String, usize)>>,
}

impl SubscriptionIndex {
    /// Nothing indexed.
    pub fn new() -> SubscriptionIndex {
        SubscriptionIndex::default()
    }

    /// The number of indexed subscriptions.
    pub fn len(&self) -> usize {
        self.by_row.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_row.is_empty()
    }

    /// Adds or replaces the subscription of its row.
    pub fn insert(&mut self, subscription: Subscription) {
        self.remove(&subscription.row);
        for (index, reference) in subscription.references.iter().enumerate() {
            if let Some(key) = key_of(reference) {
                self.by_key
                    .entry(key)
                    .or_default()
                    .push((subscription.row.clone(), index));
            }
        }
        self.by_row
            .insert(subscription.row.clone(), Arc::new(subscription));
    }

    /// Removes the subscription of a row, if indexed.
    pub fn remove(&mut self, row: &str) -> Option<Arc<Subscription>> {
        let removed = self.by_row.remove(row)?;
        for reference in &removed.references {
            if let Some(key) = key_of(reference)
                && let Some(entries) = self.by_key.get_mut(&key)
            {
                entries.retain(|(other, _)| other != row);
                if entries.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
        Some(removed)
    }

    /// The subscription of a row.
    pub fn get(&self, row: &str) -> Option<&Arc<Subscription>> {
        self.by_row.get(row)
    }

    /// Every indexed subscription.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Subscription>> {
        self.by_row.values()
    }

    /// The (subscription, reference index) pairs of type `notif_type` whose key is a prefix of
    /// the supported form of `changed`: the candidates a structural match must still confirm.
    pub fn candidates(
        &self,
        notif_type: NotifType,
        changed: &str,
    ) -> Vec<(Arc<Subscription>, usize)> {
        let supported = supported(changed);
        let mut found = Vec::new();
        let mut probe = |key: &str| {
            for (row, index) in self.by_key.get(key).into_iter().flatten() {
                if let Some(subscription) = self.by_row.get(row)
                    && subscription.notif_type == notif_type
                {
                    found.push((Arc::clone(subscription), *index));
                }
            }
        };
        for (at, _) in supported.match_indices('.') {
            probe(&supported[..=at]);
        }
        if !supported.ends_with('.') {
            probe(&supported);
        }
        found
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    fn row(values: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let values: HashMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| values.get(name).cloned()
    }

    fn subscription(row_path: &str, notif_type: &str, references: &str) -> Subscription {
        Subscription::from_row(
            row_path,
            row(&[
                ("Enable", "true"),
                ("ID", "s"),
                ("Recipient", "Device.LocalAgent.Controller.1"),
                ("NotifType", notif_type),
                ("ReferenceList", references),
            ]),
        )
        .unwrap()
    }

    #[test]
    fn rows_become_subscriptions_only_when_they_can_fire() {
        let base = [
            ("Enable", "true"),
            ("Recipient", "Device.LocalAgent.Controller.1."),
            ("NotifType", "ValueChange"),
            (
                "ReferenceList",
                "Device.LocalAgent.SoftwareVersion, Device..Bad",
            ),
            ("NotifRetry", "true"),
            ("NotifExpiration", "30"),
        ];
        let parsed = Subscription::from_row("S.1.", row(&base)).unwrap();
        assert_eq!(parsed.recipient, "Device.LocalAgent.Controller.1");
        assert_eq!(parsed.references.len(), 1);
        assert!(parsed.notif_retry);
        assert_eq!(parsed.notif_expiration, 30);
        for (name, value) in [
            ("Enable", "false"),
            ("Recipient", ""),
            ("NotifType", "Sometimes"),
            ("ReferenceList", "Device..Bad"),
        ] {
            let mut changed = base.to_vec();
            changed.retain(|(k, _)| *k != name);
            changed.push((name, value));
            assert!(
                Subscription::from_row("S.1.", row(&changed)).is_none(),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn candidates_come_from_every_prefix_of_the_changed_path() {
        let mut index = SubscriptionIndex::new();
        index.insert(subscription(
            "S.1.",
            "ValueChange",
            "Device.IP.Interface.*.Stats.",
        ));
        index.insert(subscription(
            "S.2.",
            "ValueChange",
            "Device.IP.Interface.2.Name",
        ));
        index.insert(subscription(
            "S.3.",
            "ValueChange",
            r#"Device.IP.Interface.[Name=="x"]."#,
        ));
        index.insert(subscription(
            "S.4.",
            "ObjectCreation",
            "Device.IP.Interface.",
        ));
        index.insert(subscription("S.5.", "ValueChange", "Device.DeviceInfo."));
        let rows = |changed: &str, notif_type| {
            let mut rows: Vec<String> = index
                .candidates(notif_type, changed)
                .iter()
                .map(|(s, _)| s.row.clone())
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(
            rows(
                "Device.IP.Interface.7.Stats.BytesSent",
                NotifType::ValueChange
            ),
            ["S.1.", "S.3."]
        );
        assert_eq!(
            rows("Device.IP.Interface.7.Name", NotifType::ValueChange),
            ["S.2.", "S.3."]
        );
        assert_eq!(
            rows("Device.IP.Interface.7.", NotifType::ObjectCreation),
            ["S.4."]
        );
        assert!(rows("Device.Time.Status", NotifType::ValueChange).is_empty());
    }

    #[test]
    fn replacing_and_removing_rows_updates_the_index() {
        let mut index = SubscriptionIndex::new();
        index.insert(subscription("S.1.", "ValueChange", "Device.A."));
        index.insert(subscription("S.1.", "ValueChange", "Device.B."));
        assert!(
            index
                .candidates(NotifType::ValueChange, "Device.A.X")
                .is_empty()
        );
        assert_eq!(
            index.candidates(NotifType::ValueChange, "Device.B.X").len(),
            1
        );
        assert!(index.remove("S.1.").is_some());
        assert!(index.is_empty());
        assert!(
            index
                .candidates(NotifType::ValueChange, "Device.B.X")
                .is_empty()
        );
    }

    #[test]
    fn trigger_settings_are_path_value_items_with_optional_quotes() {
        assert_eq!(
            parse_trigger_settings(
                "Device.A.Enable=true, Device.B.Name=\"x, y\",junk,Device.C.Count=3"
            ),
            vec![
                ("Device.A.Enable".to_string(), "true".to_string()),
                ("Device.B.Name".to_string(), "x, y".to_string()),
                ("Device.C.Count".to_string(), "3".to_string()),
            ]
        );
        assert!(parse_trigger_settings("").is_empty());
        assert!(TriggerAction::parse("NotifyAndConfig").configures());
        assert!(TriggerAction::parse("NotifyAndConfig").notifies());
        assert!(!TriggerAction::parse("Config").notifies());
        assert!(!TriggerAction::parse("").configures());
    }
}
