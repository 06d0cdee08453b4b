//! The Notifier's clocks besides retries: the `Periodic!` schedule of each Recipient that
//! subscribed to it, and the `TimeToLive` expiry of subscriptions.

use std::time::{Duration, Instant};

use usp_dm::{Args, DataModel, structural_match};

use super::matching::Note;
use super::subscription::NotifType;
use super::{Notifier, Outbound, periodic, unix_now};

const PERIODIC_EVENT: &str = "Device.LocalAgent.Periodic!";

impl Notifier {
    /// Deletes the subscriptions whose `TimeToLive` has run out (from the table too, which
    /// persists the deletion).
    pub(super) fn expire_due(&mut self, now: Instant) {
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
    }

    /// Fires the `Periodic!` schedules that are due.
    pub(super) async fn periodic_due(&mut self, dm: &DataModel, now: Instant) -> Vec<Outbound> {
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
    pub(super) fn schedule_periodic(&mut self, now: Instant, fire: bool) -> Vec<String> {
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
}
