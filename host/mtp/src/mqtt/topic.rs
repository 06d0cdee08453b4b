//! MQTT topic bookkeeping without I/O: which filters to SUBSCRIBE after CONNACK (R-MQTT.15),
//! which exact topic the agent announces as its reply-to (R-MQTT.21), when publishing may start
//! (only after a successful SUBACK, R-MQTT.17), where a response goes (Response Topic,
//! `/reply-to=` suffix, or the controller's configured topic; R-MQTT.25/26), how an outgoing
//! PUBLISH carries the reply-to for each protocol version (R-MQTT.23/24), and which controllers
//! are not written to after a protocol version mismatch (R-MQTT.26a).
//!
//! The controllers and their topics are passed in by the caller (`known`): the data model's
//! `Controller.{i}.MTP.{j}.MQTT.Topic` rows first, then the config file (see
//! [`crate::directory`]). They change while a connection is up.
//!
//! A 3.1.1 PUBLISH without a `/reply-to=` suffix breaks R-MQTT.22 (every PUBLISH carries a
//! reply-to), and the spec takes it for a version mismatch between brokers (a 5.0 Response
//! Topic lost on the way). R-MQTT.26a: if a mismatch is encountered and the sender's reply-to
//! topic is known, handle the error and cease communication until the sender fixes it. Read
//! literally, that silences a known Controller with a configured topic too. This MTP answers
//! such a Controller on its configured topic instead, deliberately: 3.1.1 gives a Controller no
//! reply topic but configuration (the spec's notes on MQTT 3.1.1 CONNECT), Controller libraries
//! such as usp-js publish without a reply-to and expect the answer on the topic the agent's
//! `Controller.{i}.MTP.{j}.MQTT.Topic` holds for them, and obuspa answers there. What stays a
//! mismatch: such a PUBLISH from a sender with no configured topic (dropped: there is nowhere to
//! answer), and an MQTTConnect Record naming another version (the sender's topic is silenced).

use std::collections::HashSet;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::config::{MqttConfig, MqttController, MqttVersion};

/// The 3.1.1 topic suffix that carries the reply-to topic (R-MQTT.24).
const REPLY_TO: &str = "/reply-to=";

/// Escaped inside a `/reply-to=` value: `/` (so the value is one topic level) and `%`.
const REPLY_TO_ESCAPES: &AsciiSet = &CONTROLS.add(b'/').add(b'%');

/// Why the MTP cannot go on with this broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TopicError {
    /// No subscription from configuration or broker (R-MQTT.16).
    #[error("no topic to subscribe to: configure a subscription or a response topic")]
    NoTopic,
    /// The broker refused every subscription (R-MQTT.17).
    #[error("the broker refused every subscription")]
    SubscribeRefused,
    /// R-MQTT.26a: a 3.1.1 PUBLISH without a `/reply-to=` suffix from a sender the agent knows
    /// no topic for, most likely one speaking MQTT 5.0 whose Response Topic the 3.1.1 broker
    /// session cannot carry.
    #[error(
        "MQTT 3.1.1 PUBLISH on {topic:?} has no /reply-to= topic and its sender has no configured topic: the sender's MQTT version does not match"
    )]
    VersionMismatch {
        /// The topic the PUBLISH came on.
        topic: String,
    },
    /// R-MQTT.26a: a controller's MQTTConnect Record names another MQTT version than this
    /// connection speaks.
    #[error(
        "MQTTConnect Record from {from_id} says MQTT {theirs:?}, this connection speaks {ours:?}"
    )]
    ConnectVersionMismatch {
        /// The controller.
        from_id: String,
        /// The version its Record names.
        theirs: MqttVersion,
        /// Ours.
        ours: MqttVersion,
    },
}

/// R-MQTT.26a: the configured topics of controllers whose MQTTConnect Record named another MQTT
/// version. Nothing is published to them until they send a PUBLISH with a reply-to or a
/// matching MQTTConnect Record. Kept across broker connections: reconnecting fixes nothing on
/// the controller's side.
#[derive(Debug, Default)]
pub(crate) struct Silenced {
    topics: HashSet<String>,
}

impl Silenced {
    /// Whether Records to `topic` are held back.
    pub(crate) fn contains(&self, topic: &str) -> bool {
        self.topics.contains(topic)
    }
}

/// Topic state of one MQTT connection.
#[derive(Debug)]
pub(crate) struct Topics {
    version: MqttVersion,
    subscriptions: Vec<String>,
    configured_reply_to: Option<String>,
    reply_to: Option<String>,
    ready: bool,
}

fn is_exact(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}

impl Topics {
    pub(crate) fn new(cfg: &MqttConfig) -> Self {
        Topics {
            version: cfg.protocol_version,
            subscriptions: cfg
                .subscriptions
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect(),
            configured_reply_to: cfg.response_topic.clone().filter(|t| is_exact(t)),
            reply_to: None,
            ready: false,
        }
    }

    /// After CONNACK: the filters to SUBSCRIBE, given the broker's Response Information and
    /// `subscribe-topic` user properties (MQTT 5; both empty with 3.1.1).
    pub(crate) fn on_connack(
        &mut self,
        response_information: Option<&str>,
        subscribe_topics: &[String],
    ) -> Result<Vec<String>, TopicError> {
        self.ready = false;
        let response_information = response_information.filter(|t| is_exact(t));
        self.reply_to = response_information
            .map(str::to_string)
            .or_else(|| subscribe_topics.iter().find(|t| is_exact(t)).cloned())
            .or_else(|| self.configured_reply_to.clone())
            .or_else(|| self.subscriptions.iter().find(|t| is_exact(t)).cloned());
        let mut filters: Vec<String> = Vec::new();
        let mut add = |f: String| {
            if !f.is_empty() && !filters.contains(&f) {
                filters.push(f);
            }
        };
        self.subscriptions.iter().cloned().for_each(&mut add);
        subscribe_topics.iter().cloned().for_each(&mut add);
        if let Some(t) = response_information {
            add(t.to_string());
        }
        if let Some(t) = &self.configured_reply_to {
            match self.version {
                // 3.1.1 requests arrive on `<topic>/reply-to=...`; `#` also matches `<topic>`.
                MqttVersion::V3_1_1 => add(format!("{t}/#")),
                MqttVersion::V5 => add(t.clone()),
            }
        }
        if filters.is_empty() || self.reply_to.is_none() {
            return Err(TopicError::NoTopic);
        }
        Ok(filters)
    }

    /// After SUBACK: publishing may start if any subscription succeeded.
    pub(crate) fn on_suback(&mut self, granted: &[bool]) -> Result<(), TopicError> {
        if granted.iter().any(|ok| *ok) {
            self.ready = true;
            Ok(())
        } else {
            Err(TopicError::SubscribeRefused)
        }
    }

    /// Whether PUBLISH is allowed (a SUBACK with a success arrived on this connection).
    pub(crate) fn ready(&self) -> bool {
        self.ready
    }

    /// The exact topic the agent is reachable on.
    pub(crate) fn reply_to(&self) -> Option<&str> {
        self.reply_to.as_deref()
    }

    /// What to do with a received PUBLISH: where its response goes ([`Topics::reply_topic`]).
    /// On a 3.1.1 connection without a `/reply-to=` suffix the answer goes to the sender's
    /// configured topic in `known`; a sender without one is a version mismatch (R-MQTT.26a; see
    /// the module docs). A PUBLISH with a reply-to from a silenced controller lifts the
    /// silence: the mismatch is fixed. One without a reply-to leaves a silence as it is.
    pub(crate) fn on_publish(
        &self,
        silenced: &mut Silenced,
        known: &[MqttController],
        topic: &str,
        response_topic: Option<&str>,
        from_id: Option<&str>,
    ) -> Result<Option<String>, TopicError> {
        let own = from_id
            .and_then(|id| controller(known, id))
            .map(|c| &c.topic);
        if self.version == MqttVersion::V3_1_1 && suffix_reply_to(topic).is_none() {
            return match own {
                Some(own) => Ok(Some(own.clone())),
                None => Err(TopicError::VersionMismatch {
                    topic: topic.to_string(),
                }),
            };
        }
        let reply = self.reply_topic(known, topic, response_topic, from_id);
        if let Some(own) = own
            && (response_topic.is_some_and(is_exact) || suffix_reply_to(topic).is_some())
        {
            silenced.topics.remove(own);
        }
        Ok(reply)
    }

    /// A controller's MQTTConnect Record: a version other than ours silences its configured
    /// topic until a Record with the right version comes (R-MQTT.26a).
    pub(crate) fn on_connect_record(
        &self,
        silenced: &mut Silenced,
        known: &[MqttController],
        from_id: &str,
        version: MqttVersion,
    ) -> Result<(), TopicError> {
        let own = controller(known, from_id).map(|c| c.topic.clone());
        if version != self.version {
            if let Some(own) = own {
                silenced.topics.insert(own);
            }
            return Err(TopicError::ConnectVersionMismatch {
                from_id: from_id.to_string(),
                theirs: version,
                ours: self.version,
            });
        }
        if let Some(own) = own {
            silenced.topics.remove(&own);
        }
        Ok(())
    }

    /// Where the response to a request goes: its Response Topic (5.0), else its `/reply-to=`
    /// suffix (3.1.1), else the configured topic of the controller named by `from_id`, or of the
    /// only controller. `None` when no return path is known.
    fn reply_topic(
        &self,
        known: &[MqttController],
        topic: &str,
        response_topic: Option<&str>,
        from_id: Option<&str>,
    ) -> Option<String> {
        if let Some(t) = response_topic.filter(|t| is_exact(t)) {
            return Some(t.to_string());
        }
        if let Some(decoded) = suffix_reply_to(topic) {
            return Some(decoded);
        }
        let by_id = from_id.and_then(|id| controller(known, id));
        let only = match known {
            [one] => Some(one),
            _ => None,
        };
        by_id.or(only).map(|c| c.topic.clone())
    }

    /// The PUBLISH topic and Response Topic property for a Record to `dest`: MQTT 5 puts the
    /// reply-to in the property, 3.1.1 in a `/reply-to=` suffix.
    pub(crate) fn publish_target(&self, dest: &str) -> (String, Option<String>) {
        match (self.version, &self.reply_to) {
            (MqttVersion::V5, reply_to) => (dest.to_string(), reply_to.clone()),
            (MqttVersion::V3_1_1, Some(reply_to)) => {
                let encoded = utf8_percent_encode(reply_to, REPLY_TO_ESCAPES);
                (format!("{dest}{REPLY_TO}{encoded}"), None)
            }
            (MqttVersion::V3_1_1, None) => (dest.to_string(), None),
        }
    }
}

/// The controller of `known` with this Endpoint ID.
fn controller<'a>(known: &'a [MqttController], endpoint_id: &str) -> Option<&'a MqttController> {
    known.iter().find(|c| c.endpoint_id == endpoint_id)
}

/// The topic in a `/reply-to=` suffix of `topic`, if there is a usable one.
fn suffix_reply_to(topic: &str) -> Option<String> {
    let (_, encoded) = topic.rsplit_once(REPLY_TO)?;
    let decoded = percent_decode_str(encoded).decode_utf8_lossy().into_owned();
    is_exact(&decoded).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: MqttVersion) -> MqttConfig {
        MqttConfig {
            broker_address: "127.0.0.1".into(),
            broker_port: 1883,
            protocol_version: version,
            tls: None,
            client_id: String::new(),
            username: None,
            password: None,
            keep_alive_secs: 60,
            connect_retry_time: 5,
            connect_retry_interval_multiplier: 2000,
            connect_retry_max_interval: 30720,
            subscriptions: vec![],
            response_topic: Some("usp/agent".into()),
            publish_qos: 1,
            controllers: vec![
                MqttController {
                    endpoint_id: "proto::c1".into(),
                    topic: "usp/c1".into(),
                },
                MqttController {
                    endpoint_id: "proto::c2".into(),
                    topic: "usp/c2".into(),
                },
            ],
        }
    }

    fn known() -> Vec<MqttController> {
        config(MqttVersion::V5).controllers
    }

    #[test]
    fn v5_prefers_response_information_and_subscribes_every_source() {
        let mut t = Topics::new(&config(MqttVersion::V5));
        let filters = t
            .on_connack(Some("broker/assigned"), &["usp/extra".to_string()])
            .unwrap();
        assert_eq!(filters, vec!["usp/extra", "broker/assigned", "usp/agent"]);
        assert_eq!(t.reply_to(), Some("broker/assigned"));
    }

    #[test]
    fn v5_uses_subscribe_topic_property_when_no_response_information() {
        let mut t = Topics::new(&config(MqttVersion::V5));
        t.on_connack(
            None,
            &["usp/+/x".to_string(), "usp/from-broker".to_string()],
        )
        .unwrap();
        assert_eq!(t.reply_to(), Some("usp/from-broker"));
    }

    #[test]
    fn v311_subscribes_the_configured_topic_as_a_wildcard() {
        let mut t = Topics::new(&config(MqttVersion::V3_1_1));
        assert_eq!(t.on_connack(None, &[]).unwrap(), vec!["usp/agent/#"]);
        assert_eq!(t.reply_to(), Some("usp/agent"));
    }

    #[test]
    fn no_topic_from_any_source_is_an_error() {
        let mut cfg = config(MqttVersion::V5);
        cfg.response_topic = None;
        let mut t = Topics::new(&cfg);
        assert_eq!(t.on_connack(None, &[]), Err(TopicError::NoTopic));
    }

    #[test]
    fn publishing_waits_for_a_successful_suback() {
        let mut t = Topics::new(&config(MqttVersion::V5));
        t.on_connack(None, &[]).unwrap();
        assert!(!t.ready());
        assert_eq!(t.on_suback(&[false]), Err(TopicError::SubscribeRefused));
        assert!(!t.ready());
        t.on_suback(&[false, true]).unwrap();
        assert!(t.ready());
        t.on_connack(None, &[]).unwrap();
        assert!(!t.ready(), "a new connection must subscribe again");
    }

    #[test]
    fn v311_publish_topic_carries_encoded_reply_to() {
        let mut t = Topics::new(&config(MqttVersion::V3_1_1));
        t.on_connack(None, &[]).unwrap();
        assert_eq!(
            t.publish_target("usp/c1"),
            ("usp/c1/reply-to=usp%2Fagent".to_string(), None)
        );
    }

    #[test]
    fn v5_publish_carries_response_topic_property() {
        let mut t = Topics::new(&config(MqttVersion::V5));
        t.on_connack(None, &[]).unwrap();
        assert_eq!(
            t.publish_target("usp/c1"),
            ("usp/c1".to_string(), Some("usp/agent".to_string()))
        );
    }

    #[test]
    fn reply_goes_to_response_topic_then_suffix_then_controller() {
        let t = Topics::new(&config(MqttVersion::V5));
        assert_eq!(
            t.reply_topic(&known(), "usp/agent", Some("ctrl/inbox"), None)
                .as_deref(),
            Some("ctrl/inbox")
        );
        assert_eq!(
            t.reply_topic(
                &known(),
                "usp/agent/reply-to=usp%2Fcontrollers%2Foui:00256D:x",
                None,
                None
            )
            .as_deref(),
            Some("usp/controllers/oui:00256D:x")
        );
        assert_eq!(
            t.reply_topic(&known(), "usp/agent", None, Some("proto::c2"))
                .as_deref(),
            Some("usp/c2")
        );
        assert_eq!(
            t.reply_topic(&known(), "usp/agent", None, Some("proto::zz")),
            None
        );
    }

    #[test]
    fn single_controller_is_the_fallback_for_unknown_senders() {
        let t = Topics::new(&config(MqttVersion::V5));
        let mut known = known();
        known.truncate(1);
        assert_eq!(
            t.reply_topic(&known, "usp/agent", None, None).as_deref(),
            Some("usp/c1")
        );
    }

    #[test]
    fn v311_publish_without_reply_to_from_a_known_controller_is_answered_on_its_configured_topic() {
        let t = Topics::new(&config(MqttVersion::V3_1_1));
        let mut silenced = Silenced::default();
        assert_eq!(
            t.on_publish(
                &mut silenced,
                &known(),
                "usp/agent",
                None,
                Some("proto::c2")
            ),
            Ok(Some("usp/c2".to_string()))
        );
        assert!(
            silenced.topics.is_empty(),
            "no mismatch: nobody is silenced"
        );
        // A Response Topic cannot reach a 3.1.1 session; only the suffix counts.
        assert_eq!(
            t.on_publish(
                &mut silenced,
                &known(),
                "usp/agent",
                Some("ctrl/inbox"),
                Some("proto::c2")
            ),
            Ok(Some("usp/c2".to_string()))
        );
        assert_eq!(
            t.on_publish(
                &mut silenced,
                &known(),
                "usp/agent/reply-to=usp%2Fc2%2Fnew",
                None,
                Some("proto::c2")
            ),
            Ok(Some("usp/c2/new".to_string())),
            "a reply-to still wins over the configured topic"
        );
    }

    #[test]
    fn v311_publish_without_reply_to_leaves_a_version_mismatch_silence_in_place() {
        let t = Topics::new(&config(MqttVersion::V3_1_1));
        let mut silenced = Silenced::default();
        assert!(
            t.on_connect_record(&mut silenced, &known(), "proto::c1", MqttVersion::V5)
                .is_err()
        );
        assert_eq!(
            t.on_publish(
                &mut silenced,
                &known(),
                "usp/agent",
                None,
                Some("proto::c1")
            ),
            Ok(Some("usp/c1".to_string()))
        );
        assert!(
            silenced.contains("usp/c1"),
            "the answer is held back until the controller fixes its version"
        );
        t.on_publish(
            &mut silenced,
            &known(),
            "usp/agent/reply-to=usp%2Fc1",
            None,
            Some("proto::c1"),
        )
        .unwrap();
        assert!(
            !silenced.contains("usp/c1"),
            "a reply-to fixes the mismatch"
        );
    }

    #[test]
    fn mqtt_connect_record_with_another_version_silences_the_sender_until_one_matches() {
        let t = Topics::new(&config(MqttVersion::V5));
        let mut silenced = Silenced::default();
        assert_eq!(
            t.on_connect_record(&mut silenced, &known(), "proto::c1", MqttVersion::V3_1_1),
            Err(TopicError::ConnectVersionMismatch {
                from_id: "proto::c1".into(),
                theirs: MqttVersion::V3_1_1,
                ours: MqttVersion::V5,
            })
        );
        assert!(silenced.contains("usp/c1"));
        assert_eq!(
            t.on_connect_record(&mut silenced, &known(), "proto::c1", MqttVersion::V5),
            Ok(())
        );
        assert!(!silenced.contains("usp/c1"));
    }

    #[test]
    fn v311_publish_without_reply_to_from_an_unknown_sender_is_a_version_mismatch_that_silences_nobody()
     {
        let t = Topics::new(&config(MqttVersion::V3_1_1));
        let mut silenced = Silenced::default();
        assert_eq!(
            t.on_publish(
                &mut silenced,
                &known(),
                "usp/agent",
                None,
                Some("proto::zz")
            ),
            Err(TopicError::VersionMismatch {
                topic: "usp/agent".into()
            })
        );
        assert!(
            t.on_publish(&mut silenced, &known(), "usp/agent/reply-to=", None, None)
                .is_err(),
            "an empty reply-to is no reply-to"
        );
        assert!(silenced.topics.is_empty());
    }

    #[test]
    fn v5_publish_without_response_topic_falls_back_to_the_controller_topic() {
        let t = Topics::new(&config(MqttVersion::V5));
        let mut silenced = Silenced::default();
        assert_eq!(
            t.on_publish(
                &mut silenced,
                &known(),
                "usp/agent",
                None,
                Some("proto::c1")
            ),
            Ok(Some("usp/c1".to_string()))
        );
        assert!(silenced.topics.is_empty());
    }

    #[test]
    fn wildcard_reply_to_is_not_trusted() {
        let t = Topics::new(&config(MqttVersion::V5));
        assert_eq!(
            t.reply_topic(&known(), "usp/agent", Some("ctrl/#"), Some("proto::c1"))
                .as_deref(),
            Some("usp/c1")
        );
    }
}
