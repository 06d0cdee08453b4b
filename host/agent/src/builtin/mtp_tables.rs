//! The agent's MTP configuration as TR-181 data, so that Controllers read and change it with
//! USP: `Device.LocalAgent.MTP.{i}` (stored with the other LocalAgent tables) and the objects
//! its rows reference, `Device.MQTT.Client.{i}` (with `Subscription.{i}`),
//! `Device.STOMP.Connection.{i}` and `Device.UnixDomainSockets.UnixDomainSocket.{i}`, stored
//! here; [`MtpParents`] serves their parents' `*NumberOfEntries`.
//!
//! Who decides: the config file's `[[mtp]]` tables are written into these rows (matched by
//! `Alias` = the MTP's `name`) at the first start and whenever the file's `[[mtp]]` tables
//! change; otherwise the rows, as Controllers left them, rule. [`settings`] turns the rows back
//! into the MTPs to run, taking from the file what TR-181 does not hold (TLS files, the listen
//! address, the file's `[[mtp.controllers]]`, WebSocket client MTPs). The Controllers' own
//! `Controller.{i}.MTP.{j}.MQTT.Topic` rows reach the MQTT MTPs apart from these settings, through
//! `usp_mtp::ControllerDirectory` (see `agent::routing`), so that changing one restarts nothing. The agent applies a committed
//! change of these rows at once (see [`touches`]); `Status` values follow the MTP events
//! ([`show_link`]).

use std::sync::Arc;

use async_trait::async_trait;
use usp_dm::{
    Args, GetRequest, GetResponse, MemoryProvider, OperateOutcome, ParamValues, Provider,
    ProviderError, Schema, Transaction,
};
use usp_mtp::{
    LinkInfo, MqttConfig, MqttVersion, MtpConfig, StompConfig, TransportConfig, UdsConfig, UdsMode,
    WsServerConfig,
};

use super::local_agent::MTP_TABLE;
use super::{BuiltinError, ReadOnlyTransaction, answer_get, no_tables, standard_subtree};

/// `Device.MQTT.Client.`
pub const MQTT_CLIENT_TABLE: &str = "Device.MQTT.Client.";
/// `Device.STOMP.Connection.`
pub const STOMP_TABLE: &str = "Device.STOMP.Connection.";
/// `Device.UnixDomainSockets.UnixDomainSocket.`
pub const UDS_TABLE: &str = "Device.UnixDomainSockets.UnixDomainSocket.";

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

fn values(pairs: &[(&str, String)]) -> ParamValues {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_string(), value.clone()))
        .collect()
}

fn yes_no(flag: bool) -> String {
    flag.to_string()
}

/// The row of `table` whose `Alias` is `alias` (`Device.MQTT.Client.2.`).
async fn row_by_alias(tables: &MemoryProvider, table: &str, alias: &str) -> Option<String> {
    let numbers = tables.instances(table).await.ok()?;
    numbers
        .into_iter()
        .map(|number| format!("{table}{number}."))
        .find(|row| tables.value(&format!("{row}Alias")).as_deref() == Some(alias))
}

/// Writes `params` into the row of `table` with `Alias` = `alias`, adding it if absent; returns
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
/// data model is logged; [`settings`] then runs that MTP as the file says.
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

/// Why a `LocalAgent.MTP.{i}` row cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RowError {
    /// `Protocol` names nothing this agent speaks.
    #[error("{row}Protocol {protocol:?} is not one of MQTT, STOMP, WebSocket, UDS")]
    Protocol {
        /// The row.
        row: String,
        /// The value.
        protocol: String,
    },
    /// A reference (`MQTT.Reference`, …) leads nowhere.
    #[error("{row}{param} {value:?} is not a row of {table}")]
    Reference {
        /// The row.
        row: String,
        /// The parameter.
        param: &'static str,
        /// Its value.
        value: String,
        /// The table it must point into.
        table: &'static str,
    },
    /// A value does not fit the transport.
    #[error("{path} {value:?}: {why}")]
    Value {
        /// The parameter path.
        path: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// Reads one stored row's parameters.
struct Row<'a> {
    tables: &'a MemoryProvider,
    row: String,
}

impl Row<'_> {
    fn text(&self, name: &str) -> String {
        self.tables
            .value(&format!("{}{name}", self.row))
            .unwrap_or_default()
    }

    fn optional(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|value| !value.is_empty())
    }

    fn flag(&self, name: &str) -> bool {
        self.text(name) == "true"
    }

    fn number<T: std::str::FromStr>(&self, name: &str, fallback: T) -> Result<T, RowError> {
        let text = self.text(name);
        if text.is_empty() {
            return Ok(fallback);
        }
        text.parse().map_err(|_| RowError::Value {
            path: format!("{}{name}", self.row),
            value: text,
            why: "out of range for this transport",
        })
    }

    fn referenced(&self, param: &'static str, table: &'static str) -> Result<Row<'_>, RowError> {
        let value = self.text(param);
        let target = format!("{}.", value.trim_end_matches('.'));
        let exists =
            value.starts_with(table) && self.tables.value(&format!("{target}Alias")).is_some();
        if !exists {
            return Err(RowError::Reference {
                row: self.row.clone(),
                param,
                value,
                table,
            });
        }
        Ok(Row {
            tables: self.tables,
            row: target,
        })
    }
}

/// A transport's settings with every serde default, for rows the config file does not know.
fn defaults<T: serde::de::DeserializeOwned>(required: &str) -> Option<T> {
    toml::from_str(required).ok()
}

/// The MTPs to run: one per `LocalAgent.MTP.{i}` row (see the module docs), then the file's
/// MTPs that have no row (WebSocket clients, rows that could not be written). A row that
/// cannot run is logged and left out; its `Status` says `Error`.
pub async fn settings(tables: &MemoryProvider, file: &[MtpConfig]) -> Vec<MtpConfig> {
    let mut mtps = Vec::new();
    for number in tables.instances(MTP_TABLE).await.unwrap_or_default() {
        let row = Row {
            tables,
            row: format!("{MTP_TABLE}{number}."),
        };
        let name = row
            .optional("Alias")
            .unwrap_or_else(|| format!("mtp-{number}"));
        let base = file.iter().find(|mtp| mtp.name == name);
        match from_row(&row, base.map(|mtp| &mtp.transport)).await {
            Ok((transport, enabled)) => mtps.push(MtpConfig {
                name,
                enable: row.flag("Enable") && enabled,
                transport,
            }),
            Err(error) => {
                tracing::error!(%error, mtp = %name, "MTP not started");
                let _ = tables.set_value(&format!("{}Status", row.row), "Error");
            }
        }
    }
    for mtp in file {
        if !mtps.iter().any(|running| running.name == mtp.name) {
            mtps.push(mtp.clone());
        }
    }
    mtps
}

/// A row's transport, starting from the file's settings of the same name and protocol; and
/// whether the referenced row (MQTT client, STOMP connection) is enabled.
async fn from_row(
    row: &Row<'_>,
    base: Option<&TransportConfig>,
) -> Result<(TransportConfig, bool), RowError> {
    let protocol = row.text("Protocol");
    match protocol.as_str() {
        "MQTT" => {
            let client = row.referenced("MQTT.Reference", MQTT_CLIENT_TABLE)?;
            let mut mqtt = match base {
                Some(TransportConfig::Mqtt(mqtt)) => mqtt.clone(),
                _ => defaults("broker_address = \"\"").ok_or_else(|| missing(row, "MQTT"))?,
            };
            mqtt.broker_address = client.text("BrokerAddress");
            mqtt.broker_port = client.number("BrokerPort", mqtt.broker_port)?;
            mqtt.protocol_version = match client.text("ProtocolVersion").as_str() {
                "3.1.1" => MqttVersion::V3_1_1,
                "5.0" | "" => MqttVersion::V5,
                other => {
                    return Err(RowError::Value {
                        path: format!("{}ProtocolVersion", client.row),
                        value: other.to_string(),
                        why: "this agent speaks MQTT 3.1.1 and 5.0",
                    });
                }
            };
            mqtt.tls = match client.text("TransportProtocol").as_str() {
                "TLS" => Some(mqtt.tls.unwrap_or_default()),
                "TCP/IP" | "" => None,
                other => {
                    return Err(RowError::Value {
                        path: format!("{}TransportProtocol", client.row),
                        value: other.to_string(),
                        why: "this agent connects with TCP/IP or TLS",
                    });
                }
            };
            mqtt.client_id = client.text("ClientID");
            mqtt.username = client.optional("Username");
            mqtt.password = client.optional("Password");
            mqtt.keep_alive_secs = client.number("KeepAliveTime", mqtt.keep_alive_secs)?;
            mqtt.connect_retry_time = client.number("ConnectRetryTime", mqtt.connect_retry_time)?;
            mqtt.connect_retry_interval_multiplier = client.number(
                "ConnectRetryIntervalMultiplier",
                mqtt.connect_retry_interval_multiplier,
            )?;
            mqtt.connect_retry_max_interval =
                client.number("ConnectRetryMaxInterval", mqtt.connect_retry_max_interval)?;
            mqtt.subscriptions = subscriptions(&client).await;
            mqtt.response_topic = row.optional("MQTT.ResponseTopicConfigured");
            mqtt.publish_qos = row.number("MQTT.PublishQoS", mqtt.publish_qos)?;
            if mqtt.publish_qos > 2 {
                return Err(RowError::Value {
                    path: format!("{}MQTT.PublishQoS", row.row),
                    value: mqtt.publish_qos.to_string(),
                    why: "MQTT QoS is 0, 1 or 2",
                });
            }
            Ok((TransportConfig::Mqtt(mqtt), client.flag("Enable")))
        }
        "STOMP" => {
            let connection = row.referenced("STOMP.Reference", STOMP_TABLE)?;
            let mut stomp = match base {
                Some(TransportConfig::Stomp(stomp)) => stomp.clone(),
                _ => defaults("host = \"\"").ok_or_else(|| missing(row, "STOMP"))?,
            };
            stomp.host = connection.text("Host");
            stomp.port = connection.number("Port", stomp.port)?;
            stomp.username = connection.optional("Username");
            stomp.password = connection.optional("Password");
            stomp.virtual_host = connection.optional("VirtualHost");
            stomp.enable_heartbeats = connection.flag("EnableHeartbeats");
            stomp.outgoing_heartbeat =
                connection.number("OutgoingHeartbeat", stomp.outgoing_heartbeat)?;
            stomp.incoming_heartbeat =
                connection.number("IncomingHeartbeat", stomp.incoming_heartbeat)?;
            stomp.server_retry_initial_interval = connection.number(
                "ServerRetryInitialInterval",
                stomp.server_retry_initial_interval,
            )?;
            stomp.server_retry_interval_multiplier = connection.number(
                "ServerRetryIntervalMultiplier",
                stomp.server_retry_interval_multiplier,
            )?;
            stomp.server_retry_max_interval =
                connection.number("ServerRetryMaxInterval", stomp.server_retry_max_interval)?;
            stomp.tls = connection
                .flag("EnableEncryption")
                .then(|| stomp.tls.clone().unwrap_or_default());
            stomp.destination = row.optional("STOMP.Destination");
            Ok((TransportConfig::Stomp(stomp), connection.flag("Enable")))
        }
        "WebSocket" => {
            let mut ws: WsServerConfig = match base {
                Some(TransportConfig::WebSocketServer(ws)) => ws.clone(),
                _ => defaults("").ok_or_else(|| missing(row, "WebSocket"))?,
            };
            ws.port = row.number("WebSocket.Port", ws.port)?;
            if let Some(path) = row.optional("WebSocket.Path") {
                ws.path = path;
            }
            ws.keep_alive_secs = row.number("WebSocket.KeepAliveInterval", ws.keep_alive_secs)?;
            if row.flag("WebSocket.EnableEncryption") {
                if ws.tls.is_none() {
                    return Err(RowError::Value {
                        path: format!("{}WebSocket.EnableEncryption", row.row),
                        value: "true".to_string(),
                        why: "a TLS server needs the certificate files of an [[mtp]] of the same name in the config file",
                    });
                }
            } else {
                ws.tls = None;
            }
            Ok((TransportConfig::WebSocketServer(ws), true))
        }
        "UDS" => {
            let socket = row.referenced("UDS.UnixDomainSocketRef", UDS_TABLE)?;
            let mode = match socket.text("Mode").as_str() {
                "Connect" => UdsMode::Connect,
                _ => UdsMode::Listen,
            };
            let path = socket.text("Path");
            if path.is_empty() {
                return Err(RowError::Value {
                    path: format!("{}Path", socket.row),
                    value: path,
                    why: "a Unix domain socket needs a path",
                });
            }
            Ok((
                TransportConfig::Uds(UdsConfig {
                    path: path.into(),
                    mode,
                }),
                true,
            ))
        }
        _ => Err(RowError::Protocol {
            row: row.row.clone(),
            protocol,
        }),
    }
}

fn missing(row: &Row<'_>, protocol: &'static str) -> RowError {
    RowError::Value {
        path: format!("{}Protocol", row.row),
        value: protocol.to_string(),
        why: "no default settings for this transport",
    }
}

async fn subscriptions(client: &Row<'_>) -> Vec<String> {
    let table = format!("{}Subscription.", client.row);
    let mut topics = Vec::new();
    for number in client.tables.instances(&table).await.unwrap_or_default() {
        let row = Row {
            tables: client.tables,
            row: format!("{table}{number}."),
        };
        if row.flag("Enable")
            && let Some(topic) = row.optional("Topic")
        {
            topics.push(topic);
        }
    }
    topics
}

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

/// Serves `Device.MQTT.`, `Device.STOMP.` and `Device.UnixDomainSockets.` (their
/// `*NumberOfEntries`) over the stored tables.
pub struct MtpParents {
    schema: Arc<Schema>,
    tables: MemoryProvider,
}

const PARENTS: &[(&str, &str, &str)] = &[
    ("Device.MQTT.", "ClientNumberOfEntries", MQTT_CLIENT_TABLE),
    ("Device.STOMP.", "ConnectionNumberOfEntries", STOMP_TABLE),
    (
        "Device.UnixDomainSockets.",
        "UnixDomainSocketNumberOfEntries",
        UDS_TABLE,
    ),
];

impl MtpParents {
    /// The provider over `tables` (the LocalAgent tables, which hold the MTP tables too).
    pub fn new(tables: MemoryProvider) -> Result<Self, BuiltinError> {
        let schema = PARENTS
            .iter()
            .map(|(object, count, _)| super::standard_object(object, &[count], &[], &[]))
            .collect::<Result<Schema, _>>()?;
        Ok(MtpParents {
            schema: Arc::new(schema),
            tables,
        })
    }
}

#[async_trait]
impl Provider for MtpParents {
    fn name(&self) -> &str {
        "builtin MTP objects"
    }

    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
        Err(no_tables(table))
    }

    async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
        let mut counts = Vec::new();
        for (object, count, table) in PARENTS {
            let entries = self.tables.instances(table).await.map_or(0, |n| n.len());
            counts.push((*object, *count, entries.to_string()));
        }
        answer_get(&self.schema, requests, |object, name| {
            counts
                .iter()
                .find(|(o, c, _)| *o == object && *c == name)
                .map(|(_, _, value)| value.clone())
        })
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
        Ok(Box::new(ReadOnlyTransaction))
    }

    async fn operate(
        &self,
        command: &str,
        _command_key: &str,
        _input: Args,
    ) -> Result<OperateOutcome, ProviderError> {
        Err(super::no_command(command))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use crate::builtin::local_agent;

    const FILE: &str = r#"
        [[mtp]]
        name = "broker"
        protocol = "mqtt"
        broker_address = "127.0.0.1"
        broker_port = 1884
        response_topic = "usp/agent"
        subscriptions = ["usp/extra"]
        [[mtp.controllers]]
        endpoint_id = "self::ctrl"
        topic = "usp/ctrl"

        [[mtp]]
        name = "ws"
        protocol = "websocket-server"
        port = 8080
        keep_alive_secs = 0

        [[mtp]]
        name = "uds"
        protocol = "uds"
        path = "/run/usp.sock"

        [[mtp]]
        name = "stomp"
        protocol = "stomp"
        host = "broker.example"
        destination = "agent"
        [mtp.tls]

        [[mtp]]
        name = "to-ctrl"
        protocol = "websocket-client"
        host = "ctrl.example"
        port = 443
        controller_endpoint_id = "self::ctrl"
    "#;

    fn file() -> Vec<MtpConfig> {
        toml::from_str::<crate::config::Config>(FILE).unwrap().mtp
    }

    async fn seeded() -> MemoryProvider {
        let tables = local_agent::tables(Arc::new(|_| {})).unwrap();
        seed(&tables, &file()).await;
        tables
    }

    fn transport<'a>(mtps: &'a [MtpConfig], name: &str) -> &'a TransportConfig {
        &mtps.iter().find(|mtp| mtp.name == name).unwrap().transport
    }

    #[tokio::test]
    async fn the_file_written_into_the_tables_reads_back_as_the_file() {
        let tables = seeded().await;
        assert_eq!(
            tables
                .value("Device.LocalAgent.MTP.1.MQTT.Reference")
                .as_deref(),
            Some("Device.MQTT.Client.1")
        );
        assert_eq!(
            tables.value("Device.MQTT.Client.1.BrokerPort").as_deref(),
            Some("1884")
        );
        assert_eq!(
            tables
                .value("Device.UnixDomainSockets.UnixDomainSocket.1.Path")
                .as_deref(),
            Some("/run/usp.sock")
        );
        let mut expected = file();
        // TR-181 cannot say "no keep-alive": the default applies.
        if let TransportConfig::WebSocketServer(ws) = &mut expected[1].transport {
            ws.keep_alive_secs = 60;
        }
        assert_eq!(settings(&tables, &file()).await, expected);
    }

    #[tokio::test]
    async fn seeding_again_updates_the_rows_in_place() {
        let tables = seeded().await;
        let mut changed = file();
        if let TransportConfig::Mqtt(mqtt) = &mut changed[0].transport {
            mqtt.broker_port = 1999;
            mqtt.subscriptions = vec!["a".into(), "b".into()];
        }
        seed(&tables, &changed).await;
        assert_eq!(tables.instances(MQTT_CLIENT_TABLE).await.unwrap(), vec![1]);
        assert_eq!(tables.instances(MTP_TABLE).await.unwrap().len(), 4);
        let mtps = settings(&tables, &file()).await;
        let TransportConfig::Mqtt(mqtt) = transport(&mtps, "broker") else {
            panic!("not MQTT");
        };
        assert_eq!(mqtt.broker_port, 1999);
        assert_eq!(mqtt.subscriptions, vec!["a".to_string(), "b".to_string()]);
    }

    #[tokio::test]
    async fn controller_changes_to_the_rows_are_what_runs() {
        let tables = seeded().await;
        tables
            .set_value("Device.MQTT.Client.1.BrokerAddress", "10.0.0.1")
            .unwrap();
        tables
            .set_value("Device.MQTT.Client.1.ProtocolVersion", "3.1.1")
            .unwrap();
        tables
            .set_value("Device.LocalAgent.MTP.2.WebSocket.Port", "9090")
            .unwrap();
        tables
            .set_value("Device.LocalAgent.MTP.3.Enable", "false")
            .unwrap();
        tables
            .set_value("Device.STOMP.Connection.1.EnableEncryption", "false")
            .unwrap();
        let mtps = settings(&tables, &file()).await;
        let TransportConfig::Mqtt(mqtt) = transport(&mtps, "broker") else {
            panic!("not MQTT");
        };
        assert_eq!(mqtt.broker_address, "10.0.0.1");
        assert_eq!(mqtt.protocol_version, MqttVersion::V3_1_1);
        assert_eq!(
            mqtt.controllers.len(),
            1,
            "controllers still come from the file"
        );
        let TransportConfig::WebSocketServer(ws) = transport(&mtps, "ws") else {
            panic!("not WebSocket");
        };
        assert_eq!(ws.port, 9090);
        assert!(!mtps.iter().find(|mtp| mtp.name == "uds").unwrap().enable);
        let TransportConfig::Stomp(stomp) = transport(&mtps, "stomp") else {
            panic!("not STOMP");
        };
        assert_eq!(stomp.tls, None);
        assert!(
            matches!(
                transport(&mtps, "to-ctrl"),
                TransportConfig::WebSocketClient(_)
            ),
            "WebSocket clients run from the file"
        );
    }

    #[tokio::test]
    async fn publish_qos_is_seeded_as_0_and_a_controller_setting_1_or_2_is_what_runs() {
        let tables = seeded().await;
        // obuspa's default: a QoS 0 answer draws no PUBACK for a stock broker to hold the next
        // request behind (issue 11).
        assert_eq!(
            tables
                .value("Device.LocalAgent.MTP.1.MQTT.PublishQoS")
                .as_deref(),
            Some("0")
        );
        for qos in [1, 2] {
            tables
                .set_value("Device.LocalAgent.MTP.1.MQTT.PublishQoS", &qos.to_string())
                .unwrap();
            let mtps = settings(&tables, &file()).await;
            let TransportConfig::Mqtt(mqtt) = transport(&mtps, "broker") else {
                panic!("not MQTT");
            };
            assert_eq!(mqtt.publish_qos, qos);
        }
    }

    #[tokio::test]
    async fn a_row_added_by_a_controller_runs_with_default_settings() {
        let tables = seeded().await;
        let socket = values(&[("Path", "/tmp/other.sock".to_string())]);
        tables.add_instance(UDS_TABLE, &socket).unwrap();
        let row = values(&[
            ("Alias", "extra".to_string()),
            ("Enable", yes_no(true)),
            ("Protocol", "UDS".to_string()),
            (
                "UDS.UnixDomainSocketRef",
                "Device.UnixDomainSockets.UnixDomainSocket.2".to_string(),
            ),
        ]);
        tables.add_instance(MTP_TABLE, &row).unwrap();
        let mtps = settings(&tables, &file()).await;
        assert_eq!(
            transport(&mtps, "extra"),
            &TransportConfig::Uds(UdsConfig {
                path: "/tmp/other.sock".into(),
                mode: UdsMode::Listen
            })
        );
    }

    #[tokio::test]
    async fn a_row_that_cannot_run_says_why_and_shows_error() {
        let tables = seeded().await;
        tables
            .set_value(
                "Device.LocalAgent.MTP.1.MQTT.Reference",
                "Device.MQTT.Client.7",
            )
            .unwrap();
        tables
            .set_value("Device.LocalAgent.MTP.3.Protocol", "CoAP")
            .unwrap();
        let mtps = settings(&tables, &file()).await;
        // The file's settings run instead, so the agent keeps a way in.
        assert_eq!(transport(&mtps, "broker"), &file()[0].transport);
        assert_eq!(
            tables.value("Device.LocalAgent.MTP.1.Status").as_deref(),
            Some("Error")
        );
        let row = Row {
            tables: &tables,
            row: "Device.LocalAgent.MTP.3.".into(),
        };
        assert_eq!(
            from_row(&row, None).await.unwrap_err().to_string(),
            "Device.LocalAgent.MTP.3.Protocol \"CoAP\" is not one of MQTT, STOMP, WebSocket, UDS"
        );
    }

    #[tokio::test]
    async fn link_events_show_in_the_status_values() {
        let tables = seeded().await;
        let info = LinkInfo {
            reply_to: Some("discovered/topic".into()),
            ..LinkInfo::default()
        };
        show_link(&tables, "broker", Some(&info)).await;
        assert_eq!(
            tables.value("Device.LocalAgent.MTP.1.Status").as_deref(),
            Some("Up")
        );
        assert_eq!(
            tables.value("Device.MQTT.Client.1.Status").as_deref(),
            Some("Connected")
        );
        assert_eq!(
            tables
                .value("Device.LocalAgent.MTP.1.MQTT.ResponseTopicDiscovered")
                .as_deref(),
            Some("discovered/topic")
        );
        show_link(&tables, "broker", None).await;
        assert_eq!(
            tables.value("Device.LocalAgent.MTP.1.Status").as_deref(),
            Some("Down")
        );
    }

    #[test]
    fn status_values_are_not_configuration() {
        assert!(is_live_status("Device.MQTT.Client.1.Status"));
        assert!(!is_live_status("Device.LocalAgent.Controller.1.Status"));
        assert!(touches("Device.MQTT.Client.1.BrokerPort"));
        assert!(touches("Device.LocalAgent.MTP.2."));
        assert!(!touches("Device.LocalAgent.MTP.2.Status"));
        assert!(!touches(
            "Device.LocalAgent.MTP.1.MQTT.ResponseTopicDiscovered"
        ));
        assert!(!touches("Device.LocalAgent.Controller.1.Enable"));
    }
}
