//! The MTP rows read back into the [`MtpConfig`]s to run, completed from the config file with
//! what TR-181 does not hold; a row that cannot run says why ([`RowError`]).

use usp_dm::{MemoryProvider, Provider};
use usp_mtp::{MqttVersion, MtpConfig, TransportConfig, UdsConfig, UdsMode, WsServerConfig};

use super::{MQTT_CLIENT_TABLE, MTP_TABLE, STOMP_TABLE, UDS_TABLE};

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
pub(super) struct Row<'a> {
    pub(super) tables: &'a MemoryProvider,
    pub(super) row: String,
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
pub(super) async fn from_row(
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
