//! Where a Record the agent starts (a Notify, an OnBoardRequest) goes to a Controller
//! (digest §6.1): the Controller's enabled `Controller.{i}.MTP.{j}` rows by `Order` (1 is the
//! highest priority), each usable only while the agent MTP it needs is up; then the path the
//! Controller's last Record came on; then its topic in the agent's MQTT config. Answers never
//! come here: they go back on the path of their request.
//!
//! [`Links`] follows the MTP events to know what is up; [`controller_mtps`] reads the rows;
//! [`choose`] is the pure decision, tested without sockets. [`mqtt_controller_rows`] gives the
//! MQTT MTPs the same rows (their answers to requests without a reply-to, and their MQTTConnect
//! Records, go to these topics).

use std::collections::HashSet;

use usp_dm::{MemoryProvider, Provider};
use usp_mtp::{
    ControllerTarget, MqttControllerRow, MtpConfig, MtpEvent, Protocol, ReplyPath, TransportConfig,
};

use crate::builtin::local_agent::CONTROLLER_TABLE;
use crate::builtin::mtp::MTP_TABLE;

/// One enabled `Controller.{i}.MTP.{j}` row, as far as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControllerMtp {
    /// `Order`; ties keep the instance order.
    pub order: u32,
    /// What the row says about reaching the Controller.
    pub via: Via,
}

/// The protocol part of a `Controller.{i}.MTP.{j}` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Via {
    /// `MQTT.Topic` through `MQTT.AgentMTPReference`'s MTP, or else the first MQTT MTP up.
    Mqtt {
        topic: String,
        agent_mtp: Option<String>,
    },
    /// `STOMP.Destination` through the first STOMP MTP up.
    Stomp { destination: String },
    /// A WebSocket session with the Controller (it connected to us, or we to it).
    WebSocket,
    /// A UDS connection from the Controller.
    Uds,
}

/// Where one Record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The path the Controller's last Record came on.
    Reply(ReplyPath),
    /// A transport target.
    Target(ControllerTarget),
}

/// The agent's MTPs as their events describe them: which are up, and which peers hold
/// sessions on them.
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// Every configured MTP (enabled or not), in configuration order.
    protocols: Vec<(String, Protocol)>,
    /// The Controller a WebSocket client MTP connects to, by MTP name.
    ws_clients: Vec<(String, String)>,
    up: HashSet<String>,
    sessions: HashSet<(String, String)>,
}

impl Links {
    /// Nothing up yet; the MTPs that run.
    pub(crate) fn new(mtps: &[MtpConfig]) -> Links {
        let mut links = Links::default();
        links.reconfigure(mtps);
        links
    }

    /// The MTPs that run now; what is known about MTPs still running is kept.
    pub(crate) fn reconfigure(&mut self, mtps: &[MtpConfig]) {
        self.protocols.clear();
        self.ws_clients.clear();
        for mtp in mtps {
            let protocol = match &mtp.transport {
                TransportConfig::Mqtt(_) => Protocol::Mqtt,
                TransportConfig::Stomp(_) => Protocol::Stomp,
                TransportConfig::WebSocketServer(_) => Protocol::WebSocket,
                TransportConfig::WebSocketClient(client) => {
                    self.ws_clients
                        .push((mtp.name.clone(), client.controller_endpoint_id.clone()));
                    Protocol::WebSocket
                }
                TransportConfig::Uds(_) => Protocol::Uds,
            };
            self.protocols.push((mtp.name.clone(), protocol));
        }
        let names: HashSet<String> = self
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        self.up.retain(|name| names.contains(name));
        self.sessions.retain(|(name, _)| names.contains(name));
    }

    /// Follows one MTP event.
    pub(crate) fn on_event(&mut self, event: &MtpEvent) {
        match event {
            MtpEvent::Up { mtp, .. } => {
                self.up.insert(mtp.clone());
            }
            MtpEvent::Down { mtp, .. } => {
                self.up.remove(mtp);
                self.sessions.retain(|(on, _)| on != mtp);
            }
            MtpEvent::PeerConnected { mtp, endpoint_id } => {
                self.sessions.insert((mtp.clone(), endpoint_id.clone()));
            }
            MtpEvent::PeerDisconnected { mtp, endpoint_id } => {
                self.sessions.remove(&(mtp.clone(), endpoint_id.clone()));
            }
            MtpEvent::Record(_) => {}
        }
    }

    fn is_up(&self, mtp: &str) -> bool {
        self.up.contains(mtp)
    }

    fn first_up(&self, protocol: Protocol) -> Option<&str> {
        self.protocols
            .iter()
            .find(|(name, p)| *p == protocol && self.is_up(name))
            .map(|(name, _)| name.as_str())
    }

    /// An MTP of `protocol` that holds a live session with `endpoint_id`.
    fn session_with(&self, protocol: Protocol, endpoint_id: &str) -> Option<&str> {
        self.protocols
            .iter()
            .filter(|(name, p)| *p == protocol && self.is_up(name))
            .map(|(name, _)| name.as_str())
            .find(|name| {
                self.sessions
                    .contains(&((*name).to_string(), endpoint_id.to_string()))
                    || self
                        .ws_clients
                        .iter()
                        .any(|(client, controller)| client == name && controller == endpoint_id)
            })
    }
}

/// The enabled `MTP.{j}` rows of the Controller row `controller` (`Device.LocalAgent.Controller.2`),
/// by `Order` then instance number. A row with an unknown Protocol or no topic/destination is
/// left out. `MQTT.AgentMTPReference` names an agent MTP through the `Alias` of the
/// `Device.LocalAgent.MTP.{k}` row it references, which is how this agent names its MTPs.
pub(crate) async fn controller_mtps(
    tables: &MemoryProvider,
    controller: &str,
) -> Vec<ControllerMtp> {
    let table = format!("{controller}.MTP.");
    let mut rows = Vec::new();
    for number in tables.instances(&table).await.unwrap_or_default() {
        let value = |name: &str| {
            tables
                .value(&format!("{table}{number}.{name}"))
                .unwrap_or_default()
        };
        if value("Enable") != "true" {
            continue;
        }
        let via = match value("Protocol").as_str() {
            "MQTT" => {
                let reference = value("MQTT.AgentMTPReference");
                let agent_mtp = reference
                    .strip_prefix(MTP_TABLE)
                    .and_then(|_| {
                        tables.value(&format!("{}.Alias", reference.trim_end_matches('.')))
                    })
                    .filter(|alias| !alias.is_empty());
                Via::Mqtt {
                    topic: value("MQTT.Topic"),
                    agent_mtp,
                }
            }
            "STOMP" => Via::Stomp {
                destination: value("STOMP.Destination"),
            },
            "WebSocket" => Via::WebSocket,
            "UDS" => Via::Uds,
            _ => continue,
        };
        if matches!(&via, Via::Mqtt { topic, .. } if topic.is_empty())
            || matches!(&via, Via::Stomp { destination } if destination.is_empty())
        {
            continue;
        }
        // Order starts at 1; 0 (a row that never had one) and nonsense sort last.
        let order = value("Order")
            .parse()
            .ok()
            .filter(|order| *order > 0)
            .unwrap_or(u32::MAX);
        rows.push((order, number, ControllerMtp { order, via }));
    }
    rows.sort_by_key(|(order, number, _)| (*order, *number));
    rows.into_iter().map(|(_, _, row)| row).collect()
}

/// Whether a stored change at `path` can change [`mqtt_controller_rows`]: a Controller row, or
/// an agent MTP row (whose `Alias` an `AgentMTPReference` resolves to).
pub(crate) fn touches_controller_topics(path: &str) -> bool {
    path.starts_with(CONTROLLER_TABLE) || path.starts_with(MTP_TABLE)
}

/// The MQTT rows of every enabled Controller with an Endpoint ID, Controller by Controller in
/// instance order, each Controller's rows by `Order`: what the MQTT MTPs answer and announce
/// themselves to (see `usp_mtp::ControllerDirectory`).
pub(crate) async fn mqtt_controller_rows(tables: &MemoryProvider) -> Vec<MqttControllerRow> {
    let mut rows = Vec::new();
    for number in tables.instances(CONTROLLER_TABLE).await.unwrap_or_default() {
        let controller = format!("{CONTROLLER_TABLE}{number}");
        let value = |name: &str| tables.value(&format!("{controller}.{name}"));
        let Some(endpoint_id) = value("EndpointID").filter(|id| !id.is_empty()) else {
            continue;
        };
        if value("Enable").as_deref() != Some("true") {
            continue;
        }
        for row in controller_mtps(tables, &controller).await {
            if let Via::Mqtt { topic, agent_mtp } = row.via {
                rows.push(MqttControllerRow {
                    endpoint_id: endpoint_id.clone(),
                    topic,
                    agent_mtp,
                });
            }
        }
    }
    rows
}

/// The first usable way to `endpoint_id`: its rows in order, then `last_reply`, then the
/// configured target.
pub(crate) fn choose(
    rows: &[ControllerMtp],
    endpoint_id: &str,
    links: &Links,
    last_reply: Option<&ReplyPath>,
    configured: Option<ControllerTarget>,
) -> Option<Route> {
    let from_rows = rows.iter().find_map(|row| match &row.via {
        Via::Mqtt { topic, agent_mtp } => {
            let mtp = match agent_mtp {
                Some(name) => links.is_up(name).then_some(name.as_str()),
                None => links.first_up(Protocol::Mqtt),
            }?;
            Some(ControllerTarget::Mqtt {
                mtp: mtp.to_string(),
                topic: topic.clone(),
            })
        }
        Via::Stomp { destination } => Some(ControllerTarget::Stomp {
            mtp: links.first_up(Protocol::Stomp)?.to_string(),
            destination: destination.clone(),
        }),
        Via::WebSocket => Some(ControllerTarget::WebSocket {
            mtp: links
                .session_with(Protocol::WebSocket, endpoint_id)?
                .to_string(),
            endpoint_id: endpoint_id.to_string(),
        }),
        Via::Uds => Some(ControllerTarget::Uds {
            mtp: links.session_with(Protocol::Uds, endpoint_id)?.to_string(),
            endpoint_id: endpoint_id.to_string(),
        }),
    });
    from_rows
        .map(Route::Target)
        .or_else(|| last_reply.cloned().map(Route::Reply))
        .or_else(|| configured.map(Route::Target))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;
    use usp_mtp::LinkInfo;

    const CONFIG: &str = r#"
        [[mtp]]
        name = "broker-a"
        protocol = "mqtt"
        broker_address = "127.0.0.1"
        response_topic = "agent"

        [[mtp]]
        name = "broker-b"
        protocol = "mqtt"
        broker_address = "127.0.0.1"
        response_topic = "agent"

        [[mtp]]
        name = "ws"
        protocol = "websocket-server"
        port = 0

        [[mtp]]
        name = "uds"
        protocol = "uds"
        path = "usp.sock"
    "#;

    fn links(up: &[&str]) -> Links {
        let config: crate::config::Config = toml::from_str(CONFIG).unwrap();
        let mut links = Links::new(&config.mtp);
        for mtp in up {
            links.on_event(&MtpEvent::Up {
                mtp: (*mtp).to_string(),
                info: LinkInfo::default(),
            });
        }
        links
    }

    fn mqtt(order: u32, topic: &str, agent_mtp: Option<&str>) -> ControllerMtp {
        ControllerMtp {
            order,
            via: Via::Mqtt {
                topic: topic.to_string(),
                agent_mtp: agent_mtp.map(str::to_string),
            },
        }
    }

    fn connected(links: &mut Links, mtp: &str, endpoint_id: &str) {
        links.on_event(&MtpEvent::PeerConnected {
            mtp: mtp.to_string(),
            endpoint_id: endpoint_id.to_string(),
        });
    }

    fn target(route: Option<Route>) -> ControllerTarget {
        match route {
            Some(Route::Target(target)) => target,
            other => panic!("expected a target, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn mqtt_controller_rows_are_the_enabled_controllers_mqtt_rows_with_a_topic() {
        use std::sync::Arc;
        use usp_dm::ParamValues;

        let tables = crate::builtin::local_agent::tables(Arc::new(|_| {})).unwrap();
        let params = |pairs: &[(&str, &str)]| -> ParamValues {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
                .collect()
        };
        tables
            .add_instance(MTP_TABLE, &params(&[("Alias", "broker-b")]))
            .unwrap();
        let controllers = [
            ("proto::a", "true"),
            ("proto::off", "false"),
            ("proto::b", "true"),
            ("proto::c", "true"),
        ];
        for (endpoint_id, enable) in controllers {
            tables
                .add_instance(
                    CONTROLLER_TABLE,
                    &params(&[("EndpointID", endpoint_id), ("Enable", enable)]),
                )
                .unwrap();
        }
        // (`Protocol` is a unique key of a Controller's MTP table: one MQTT row each.)
        let rows = [
            ("1", "WebSocket", "", "1", ""),
            ("1", "MQTT", "a/topic", "2", "Device.LocalAgent.MTP.1"),
            ("2", "MQTT", "off/topic", "1", ""),
            ("3", "MQTT", "", "1", ""),
            ("4", "MQTT", "c/topic", "1", ""),
        ];
        for (controller, protocol, topic, order, reference) in rows {
            tables
                .add_instance(
                    &format!("{CONTROLLER_TABLE}{controller}.MTP."),
                    &params(&[
                        ("Enable", "true"),
                        ("Protocol", protocol),
                        ("MQTT.Topic", topic),
                        ("Order", order),
                        ("MQTT.AgentMTPReference", reference),
                    ]),
                )
                .unwrap();
        }
        let row = |endpoint_id: &str, topic: &str, agent_mtp: Option<&str>| MqttControllerRow {
            endpoint_id: endpoint_id.into(),
            topic: topic.into(),
            agent_mtp: agent_mtp.map(str::to_string),
        };
        assert_eq!(
            mqtt_controller_rows(&tables).await,
            vec![
                row("proto::a", "a/topic", Some("broker-b")),
                row("proto::c", "c/topic", None)
            ],
            "a disabled Controller, a row without topic and a WebSocket row give nothing"
        );
        assert!(touches_controller_topics(
            "Device.LocalAgent.Controller.1.MTP.1.MQTT.Topic"
        ));
        assert!(touches_controller_topics("Device.LocalAgent.MTP.1.Alias"));
        assert!(!touches_controller_topics(
            "Device.LocalAgent.Subscription.1.Enable"
        ));
    }

    #[test]
    fn the_first_row_whose_mtp_is_up_wins() {
        let mut links = links(&["broker-a", "ws", "uds"]);
        connected(&mut links, "uds", "ctrl");
        let rows = [
            ControllerMtp {
                order: 1,
                via: Via::WebSocket,
            },
            ControllerMtp {
                order: 2,
                via: Via::Uds,
            },
            mqtt(3, "ctrl/topic", None),
        ];
        assert_eq!(
            target(choose(&rows, "ctrl", &links, None, None)),
            ControllerTarget::Uds {
                mtp: "uds".into(),
                endpoint_id: "ctrl".into()
            },
            "no WebSocket session with ctrl: the UDS row is next"
        );
        connected(&mut links, "ws", "ctrl");
        assert_eq!(
            target(choose(&rows, "ctrl", &links, None, None)),
            ControllerTarget::WebSocket {
                mtp: "ws".into(),
                endpoint_id: "ctrl".into()
            }
        );
        links.on_event(&MtpEvent::PeerDisconnected {
            mtp: "ws".into(),
            endpoint_id: "ctrl".into(),
        });
        links.on_event(&MtpEvent::PeerDisconnected {
            mtp: "uds".into(),
            endpoint_id: "ctrl".into(),
        });
        assert_eq!(
            target(choose(&rows, "ctrl", &links, None, None)),
            ControllerTarget::Mqtt {
                mtp: "broker-a".into(),
                topic: "ctrl/topic".into()
            }
        );
    }

    #[test]
    fn an_agent_mtp_reference_pins_the_broker() {
        let rows = [mqtt(1, "t", Some("broker-b"))];
        assert_eq!(
            choose(&rows, "ctrl", &links(&["broker-a"]), None, None),
            None
        );
        assert_eq!(
            target(choose(
                &rows,
                "ctrl",
                &links(&["broker-a", "broker-b"]),
                None,
                None
            )),
            ControllerTarget::Mqtt {
                mtp: "broker-b".into(),
                topic: "t".into()
            }
        );
    }

    #[test]
    fn a_broker_that_goes_down_is_skipped_until_it_is_back() {
        let mut links = links(&["broker-a"]);
        let configured = ControllerTarget::Mqtt {
            mtp: "broker-a".into(),
            topic: "configured".into(),
        };
        let rows = [mqtt(1, "t", None)];
        links.on_event(&MtpEvent::Down {
            mtp: "broker-a".into(),
            reason: "gone".into(),
        });
        assert_eq!(
            target(choose(
                &rows,
                "ctrl",
                &links,
                None,
                Some(configured.clone())
            )),
            configured,
            "nothing usable in the rows: the configured topic (the MTP queues until it is back)"
        );
    }

    #[test]
    fn without_usable_rows_the_configured_topic_is_used() {
        let links = links(&["broker-a"]);
        let configured = ControllerTarget::Mqtt {
            mtp: "broker-a".into(),
            topic: "configured".into(),
        };
        assert_eq!(
            choose(&[], "ctrl", &links, None, Some(configured.clone())),
            Some(Route::Target(configured))
        );
        assert_eq!(choose(&[], "ctrl", &links, None, None), None);
    }
}
