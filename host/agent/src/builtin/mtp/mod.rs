//! The agent's MTP configuration as TR-181 data, so that Controllers read and change it with
//! USP: `Device.LocalAgent.MTP.{i}` (stored with the other LocalAgent tables) and the objects
//! its rows reference, `Device.MQTT.Client.{i}` (with `Subscription.{i}`),
//! `Device.STOMP.Connection.{i}` and `Device.UnixDomainSockets.UnixDomainSocket.{i}`, stored
//! here; [`MtpParents`] serves their parents' `*NumberOfEntries`.
//!
//! Who decides: the config file's `[[mtp]]` tables are written into these rows (matched by
//! `Alias` = the MTP's `name`) at the first start and whenever the file's `[[mtp]]` tables
//! change; otherwise the rows, as Controllers left them, rule. [`settings()`] turns the rows back
//! into the MTPs to run, taking from the file what TR-181 does not hold (TLS files, the listen
//! address, the file's `[[mtp.controllers]]`, WebSocket client MTPs). The Controllers' own
//! `Controller.{i}.MTP.{j}.MQTT.Topic` rows reach the MQTT MTPs apart from these settings, through
//! `usp_mtp::ControllerDirectory` (see `agent::routing`), so that changing one restarts nothing.
//! The agent applies a committed change of these rows at once (see [`touches`]); `Status`
//! values follow the MTP events ([`show_link`]).
//!
//! Layout:
//! - `schema`: the served objects and parameters, and which stored paths are configuration
//!   and which live status;
//! - `seed`: the config file's `[[mtp]]` tables written into the rows;
//! - `settings`: the rows read back into the [`MtpConfig`](usp_mtp::MtpConfig)s to run;
//! - `status`: the live `Status` values, following the MTP events;
//! - `parents`: [`MtpParents`], the `*NumberOfEntries` of `Device.MQTT.`, `Device.STOMP.`,
//!   `Device.UnixDomainSockets.`.

mod parents;
mod schema;
mod seed;
mod settings;
mod status;
#[cfg(test)]
mod tests;

use usp_dm::{MemoryProvider, Provider};

pub use parents::MtpParents;
pub use schema::{LIVE_STATUS, is_live_status, schema, touches};
pub use seed::seed;
pub use settings::{RowError, settings};
pub use status::{forget_links, show_link};

/// The table of the agent's own MTPs.
pub const MTP_TABLE: &str = "Device.LocalAgent.MTP.";
/// `Device.MQTT.Client.`
pub const MQTT_CLIENT_TABLE: &str = "Device.MQTT.Client.";
/// `Device.STOMP.Connection.`
pub const STOMP_TABLE: &str = "Device.STOMP.Connection.";
/// `Device.UnixDomainSockets.UnixDomainSocket.`
pub const UDS_TABLE: &str = "Device.UnixDomainSockets.UnixDomainSocket.";

/// The row of `table` whose `Alias` is `alias` (`Device.MQTT.Client.2.`).
async fn row_by_alias(tables: &MemoryProvider, table: &str, alias: &str) -> Option<String> {
    let numbers = tables.instances(table).await.ok()?;
    numbers
        .into_iter()
        .map(|number| format!("{table}{number}."))
        .find(|row| tables.value(&format!("{row}Alias")).as_deref() == Some(alias))
}
