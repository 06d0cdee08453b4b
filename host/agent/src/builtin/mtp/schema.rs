//! What of the MTP tables is served (the TR-181 objects trimmed to the implemented
//! parameters), and which stored paths are MTP configuration and which live status.

use usp_dm::Schema;

use super::{MQTT_CLIENT_TABLE, MTP_TABLE, STOMP_TABLE, UDS_TABLE};
use crate::builtin::{BuiltinError, standard_subtree};

/// The parameters served per object: what the agent implements, nothing more.
const SERVED: &[(&str, &[&str])] = &[
    (
        "Device.MQTT.Client.{i}.",
        &[
            "Alias",
            "Name",
            "Enable",
            "Status",
            "ProtocolVersion",
            "BrokerAddress",
            "BrokerPort",
            "TransportProtocol",
            "KeepAliveTime",
            "ClientID",
            "Username",
            "Password",
            "ConnectRetryTime",
            "ConnectRetryIntervalMultiplier",
            "ConnectRetryMaxInterval",
        ],
    ),
    (
        "Device.MQTT.Client.{i}.Subscription.{i}.",
        &["Alias", "Enable", "Topic"],
    ),
    (
        "Device.STOMP.Connection.{i}.",
        &[
            "Alias",
            "Enable",
            "Status",
            "Host",
            "Port",
            "Username",
            "Password",
            "VirtualHost",
            "EnableHeartbeats",
            "OutgoingHeartbeat",
            "IncomingHeartbeat",
            "ServerRetryInitialInterval",
            "ServerRetryIntervalMultiplier",
            "ServerRetryMaxInterval",
            "EnableEncryption",
        ],
    ),
    (
        "Device.UnixDomainSockets.UnixDomainSocket.{i}.",
        &["Alias", "Mode", "Path"],
    ),
];

/// Parameters the agent writes itself from the MTP events (supported paths): live state, not
/// configuration, and never stored (the tables are built with them volatile).
pub const LIVE_STATUS: &[&str] = &[
    "Device.LocalAgent.MTP.{i}.Status",
    "Device.LocalAgent.MTP.{i}.MQTT.ResponseTopicDiscovered",
    "Device.LocalAgent.MTP.{i}.STOMP.DestinationFromServer",
    "Device.MQTT.Client.{i}.Status",
    "Device.STOMP.Connection.{i}.Status",
];

/// The stored tables' schema (merged into the LocalAgent tables' provider).
pub fn schema() -> Result<Schema, BuiltinError> {
    let mut schema = Schema::new();
    for (path, params) in SERVED {
        for def in standard_subtree(path, &[])?.objects() {
            if def.path != *path {
                continue;
            }
            let mut def = def.clone();
            def.params
                .retain(|param| params.contains(&param.name.as_str()));
            schema.insert(def);
        }
    }
    Ok(schema)
}

fn in_mtp_tables(path: &str) -> bool {
    [MTP_TABLE, MQTT_CLIENT_TABLE, STOMP_TABLE, UDS_TABLE]
        .iter()
        .any(|table| path.starts_with(table))
}

/// Whether `path` is one of the [`LIVE_STATUS`] values of the MTP rows.
pub fn is_live_status(path: &str) -> bool {
    in_mtp_tables(path) && LIVE_STATUS.contains(&usp_dm::memory::supported_path(path).as_str())
}

/// Whether a stored row at `path` is MTP configuration (not a status value).
pub fn touches(path: &str) -> bool {
    in_mtp_tables(path) && !is_live_status(path)
}
