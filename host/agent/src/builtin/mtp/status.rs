//! The live `Status` values of the MTP rows, written from the MTP events (never stored).

use usp_dm::{MemoryProvider, Provider};
use usp_mtp::LinkInfo;

use super::{MTP_TABLE, row_by_alias};

/// Records an MTP event in the `Status` values of its rows: `up` with what was negotiated, or
/// down.
pub async fn show_link(tables: &MemoryProvider, mtp: &str, up: Option<&LinkInfo>) {
    let Some(row) = row_by_alias(tables, MTP_TABLE, mtp).await else {
        return;
    };
    let mut writes = vec![(
        format!("{row}Status"),
        if up.is_some() { "Up" } else { "Down" }.to_string(),
    )];
    let reference = |param: &str| {
        tables
            .value(&format!("{row}{param}"))
            .filter(|value| !value.is_empty())
            .map(|value| format!("{}.", value.trim_end_matches('.')))
    };
    match tables.value(&format!("{row}Protocol")).as_deref() {
        Some("MQTT") => {
            if let Some(client) = reference("MQTT.Reference") {
                let status = if up.is_some() {
                    "Connected"
                } else {
                    "Connecting"
                };
                writes.push((format!("{client}Status"), status.to_string()));
            }
            let configured = tables.value(&format!("{row}MQTT.ResponseTopicConfigured"));
            if let Some(topic) = up
                .and_then(|info| info.reply_to.clone())
                .filter(|topic| Some(topic) != configured.as_ref())
            {
                writes.push((format!("{row}MQTT.ResponseTopicDiscovered"), topic));
            }
        }
        Some("STOMP") => {
            if let Some(connection) = reference("STOMP.Reference") {
                let status = if up.is_some() { "Enabled" } else { "Error" };
                writes.push((format!("{connection}Status"), status.to_string()));
            }
            if let Some(destination) = up.and_then(|info| info.destination_from_server.clone()) {
                writes.push((format!("{row}STOMP.DestinationFromServer"), destination));
            }
        }
        _ => {}
    }
    for (path, value) in writes {
        if tables.value(&path).as_deref() != Some(value.as_str())
            && let Err(error) = tables.set_value(&path, &value)
        {
            tracing::debug!(%error, path, "status not recorded");
        }
    }
}

/// Marks every MTP row down: at start nothing is connected yet, whatever the store says.
pub async fn forget_links(tables: &MemoryProvider) {
    for number in tables.instances(MTP_TABLE).await.unwrap_or_default() {
        if let Some(alias) = tables.value(&format!("{MTP_TABLE}{number}.Alias")) {
            show_link(tables, &alias, None).await;
        }
    }
}
