//! The config file's `[[mtp]]` tables written into the MTP rows (matched by `Alias`), at the
//! first start and whenever the file's `[[mtp]]` tables change.

use usp_dm::{MemoryProvider, ParamValues, Provider, ProviderError};
use usp_mtp::{MqttConfig, MqttVersion, MtpConfig, StompConfig, TransportConfig, UdsMode};

use super::{MQTT_CLIENT_TABLE, MTP_TABLE, STOMP_TABLE, UDS_TABLE, row_by_alias};

pub(super) fn values(pairs: &[(&str, String)]) -> ParamValues {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_string(), value.clone()))
        .collect()
}

pub(super) fn yes_no(flag: bool) -> String {
    flag.to_string()
}

/// the row (`Device.MQTT.Client.2.`).
async fn upsert(
    tables: &MemoryProvider,
    table: &str,
    alias: &str,
    params: ParamValues,
) -> Result<String, ProviderError> {
    if let Some(row) = row_by_alias(tables, table, alias).await {
        for (name, value) in &params {
            if tables.value(&format!("{row}{name}")).as_deref() != Some(value) {
                tables.set_value(&format!("{row}{name}"), value)?;
            }
        }
        return Ok(row);
    }
    let mut params = params;
    params.insert("Alias".to_string(), alias.to_string());
    let number = tables.add_instance(table, &params)?;
    Ok(format!("{table}{number}."))
}

/// Writes the config file's MTPs into the tables (see the module docs). WebSocket client MTPs
/// have no `LocalAgent.MTP.{i}` form and stay in the file only. A row that does not fit the
/// data model is logged; [`settings`](fn@super::settings) then runs that MTP as the file says.
pub async fn seed(tables: &MemoryProvider, mtps: &[MtpConfig]) {
    for mtp in mtps {
        if let Err(error) = seed_one(tables, mtp).await {
            tracing::error!(mtp = %mtp.name, %error, "the MTP could not be written into Device.LocalAgent.MTP.; it runs as the config file says");
        }
    }
}

async fn seed_one(tables: &MemoryProvider, mtp: &MtpConfig) -> Result<(), ProviderError> {
    let name = mtp.name.as_str();
    let mut row = vec![
        ("Enable", yes_no(mtp.enable)),
        ("Status", "Down".to_string()),
    ];
    match &mtp.transport {
        TransportConfig::Mqtt(mqtt) => {
            let client =
                upsert(tables, MQTT_CLIENT_TABLE, name, mqtt_client_row(name, mqtt)).await?;
            for number in tables.instances(&format!("{client}Subscription.")).await? {
                tables.delete_instance(&format!("{client}Subscription.{number}."))?;
            }
            for topic in &mqtt.subscriptions {
                let subscription = values(&[("Enable", yes_no(true)), ("Topic", topic.clone())]);
                tables.add_instance(&format!("{client}Subscription."), &subscription)?;
            }
            row.extend([
                ("Protocol", "MQTT".to_string()),
                ("MQTT.Reference", client.trim_end_matches('.').to_string()),
                (
                    "MQTT.ResponseTopicConfigured",
                    mqtt.response_topic.clone().unwrap_or_default(),
                ),
                ("MQTT.PublishQoS", mqtt.publish_qos.to_string()),
            ]);
        }
        TransportConfig::Stomp(stomp) => {
            let connection = upsert(tables, STOMP_TABLE, name, stomp_row(stomp)).await?;
            row.extend([
                ("Protocol", "STOMP".to_string()),
                (
                    "STOMP.Reference",
                    connection.trim_end_matches('.').to_string(),
                ),
                (
                    "STOMP.Destination",
                    stomp.destination.clone().unwrap_or_default(),
                ),
            ]);
        }
        TransportConfig::WebSocketServer(ws) => {
            row.extend([
                ("Protocol", "WebSocket".to_string()),
                ("WebSocket.Port", ws.port.to_string()),
                ("WebSocket.Path", ws.path.clone()),
                ("WebSocket.EnableEncryption", yes_no(ws.tls.is_some())),
            ]);
            // TR-181 has no "no keep-alive" (KeepAliveInterval is at least 1): 0 keeps the default.
            if ws.keep_alive_secs > 0 {
                row.push((
                    "WebSocket.KeepAliveInterval",
                    ws.keep_alive_secs.to_string(),
                ));
            }
        }
        TransportConfig::Uds(uds) => {
            let mode = match uds.mode {
                UdsMode::Listen => "Listen",
                UdsMode::Connect => "Connect",
            };
            let socket = values(&[
                ("Mode", mode.to_string()),
                ("Path", uds.path.display().to_string()),
            ]);
            let socket = upsert(tables, UDS_TABLE, name, socket).await?;
            row.extend([
                ("Protocol", "UDS".to_string()),
                (
                    "UDS.UnixDomainSocketRef",
                    socket.trim_end_matches('.').to_string(),
                ),
            ]);
        }
        TransportConfig::WebSocketClient(_) => return Ok(()),
    }
    upsert(tables, MTP_TABLE, name, values(&row)).await?;
    Ok(())
}

fn mqtt_client_row(name: &str, mqtt: &MqttConfig) -> ParamValues {
    let version = match mqtt.protocol_version {
        MqttVersion::V3_1_1 => "3.1.1",
        MqttVersion::V5 => "5.0",
    };
    let transport = if mqtt.tls.is_some() { "TLS" } else { "TCP/IP" };
    values(&[
        ("Name", name.to_string()),
        ("Enable", yes_no(true)),
        ("Status", "Disabled".to_string()),
        ("ProtocolVersion", version.to_string()),
        ("BrokerAddress", mqtt.broker_address.clone()),
        ("BrokerPort", mqtt.broker_port.to_string()),
        ("TransportProtocol", transport.to_string()),
        ("KeepAliveTime", mqtt.keep_alive_secs.to_string()),
        ("ClientID", mqtt.client_id.clone()),
        ("Username", mqtt.username.clone().unwrap_or_default()),
        ("Password", mqtt.password.clone().unwrap_or_default()),
        ("ConnectRetryTime", mqtt.connect_retry_time.to_string()),
        (
            "ConnectRetryIntervalMultiplier",
            mqtt.connect_retry_interval_multiplier.to_string(),
        ),
        (
            "ConnectRetryMaxInterval",
            mqtt.connect_retry_max_interval.to_string(),
        ),
    ])
}

fn stomp_row(stomp: &StompConfig) -> ParamValues {
    values(&[
        ("Enable", yes_no(true)),
        ("Status", "Disabled".to_string()),
        ("Host", stomp.host.clone()),
        ("Port", stomp.port.to_string()),
        ("Username", stomp.username.clone().unwrap_or_default()),
        ("Password", stomp.password.clone().unwrap_or_default()),
        (
            "VirtualHost",
            stomp.virtual_host.clone().unwrap_or_default(),
        ),
        ("EnableHeartbeats", yes_no(stomp.enable_heartbeats)),
        ("OutgoingHeartbeat", stomp.outgoing_heartbeat.to_string()),
        ("IncomingHeartbeat", stomp.incoming_heartbeat.to_string()),
        (
            "ServerRetryInitialInterval",
            stomp.server_retry_initial_interval.to_string(),
        ),
        (
            "ServerRetryIntervalMultiplier",
            stomp.server_retry_interval_multiplier.to_string(),
        ),
        (
            "ServerRetryMaxInterval",
            stomp.server_retry_max_interval.to_string(),
        ),
        ("EnableEncryption", yes_no(stomp.tls.is_some())),
    ])
}
