//! The only Records this crate writes itself (the MTP-specific Connect Records and Disconnect,
//! R-MTP.6/7) and the one check it makes on received bytes: that they decode as a Record at
//! all, which decides between passing them on and the MTP's "unextractable Record" handling
//! (WebSocket close 1003, R-WS.16; UDS Type-2 error; MQTT/STOMP drop).

use prost::Message as _;
use usp_codec::usp_proto::usp_record::Record as WireRecord;
use usp_codec::{MqttProtocol, Record, RecordBody, UspErrorCode};

use crate::config::MqttVersion;

/// Which Connect Record an MTP sends once its channel is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectKind {
    WebSocket,
    Mqtt {
        version: MqttVersion,
        subscribed_topic: String,
    },
    Stomp {
        subscribed_destination: String,
    },
    Uds,
}

/// The Connect Record from `from_id` to `to_id` (R-MTP.6).
pub(crate) fn connect(kind: &ConnectKind, from_id: &str, to_id: &str) -> Vec<u8> {
    let body = match kind {
        ConnectKind::WebSocket => RecordBody::WebSocketConnect,
        ConnectKind::Mqtt {
            version,
            subscribed_topic,
        } => RecordBody::MqttConnect {
            version: match version {
                MqttVersion::V3_1_1 => MqttProtocol::V3_1_1,
                MqttVersion::V5 => MqttProtocol::V5,
            },
            subscribed_topic: subscribed_topic.clone(),
        },
        ConnectKind::Stomp {
            subscribed_destination,
        } => RecordBody::StompConnect {
            subscribed_destination: subscribed_destination.clone(),
        },
        ConnectKind::Uds => RecordBody::UdsConnect,
    };
    Record::new(from_id, to_id, body).encode()
}

/// The Disconnect Record sent before an MTP is dropped on purpose (R-MTP.7): the agent ends
/// every session context with the peer, hence 7105 (R-MTP.9).
pub(crate) fn disconnect(from_id: &str, to_id: &str, reason: &str) -> Vec<u8> {
    let body = RecordBody::Disconnect {
        reason: reason.to_string(),
        reason_code: UspErrorCode::SessionContextTerminated.code(),
    };
    Record::new(from_id, to_id, body).encode()
}

/// The `from_id` of a Record, used to pick a controller's configured topic when a request names
/// no reply-to.
pub(crate) fn from_id(bytes: &[u8]) -> Option<String> {
    WireRecord::decode(bytes).ok().map(|r| r.from_id)
}

/// The MQTT version an MQTTConnect Record announces, when `bytes` is one.
pub(crate) fn mqtt_connect_version(bytes: &[u8]) -> Option<MqttVersion> {
    match Record::decode(bytes).ok()?.body {
        RecordBody::MqttConnect { version, .. } => Some(match version {
            MqttProtocol::V3_1_1 => MqttVersion::V3_1_1,
            MqttProtocol::V5 => MqttVersion::V5,
        }),
        _ => None,
    }
}

/// Whether `bytes` decode as a Record with a record type; anything else is "unextractable".
/// Records with bad field values still go to the agent, which may owe an Error (R-MTP.5).
pub(crate) fn is_extractable(bytes: &[u8]) -> bool {
    WireRecord::decode(bytes).is_ok_and(|r| r.record_type.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_connect_carries_version_and_topic() {
        let bytes = connect(
            &ConnectKind::Mqtt {
                version: MqttVersion::V3_1_1,
                subscribed_topic: "usp/agent".into(),
            },
            "proto::a",
            "proto::c",
        );
        let r = Record::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            (r.from_id.as_str(), r.to_id.as_str()),
            ("proto::a", "proto::c")
        );
        assert_eq!(
            r.body,
            RecordBody::MqttConnect {
                version: MqttProtocol::V3_1_1,
                subscribed_topic: "usp/agent".into()
            }
        );
    }

    #[test]
    fn disconnect_uses_a_71xx_code() {
        let r = Record::decode(&disconnect("a", "b", "bye")).unwrap();
        assert_eq!(
            r.body,
            RecordBody::Disconnect {
                reason: "bye".into(),
                reason_code: 7105
            }
        );
    }

    #[test]
    fn records_with_bad_fields_still_reach_the_agent() {
        let no_payload = Record::new("a", "b", RecordBody::Msg(Vec::new())).encode();
        assert!(Record::decode(&no_payload).is_err());
        assert!(is_extractable(&no_payload));
    }

    #[test]
    fn garbage_and_empty_records_are_unextractable() {
        assert!(!is_extractable(b"\xff\xff\xff"));
        assert!(!is_extractable(b""));
        assert!(is_extractable(&connect(&ConnectKind::Uds, "a", "b")));
        assert_eq!(
            from_id(&connect(&ConnectKind::Uds, "a", "b")).as_deref(),
            Some("a")
        );
    }
}
