//! The only Records this crate writes itself (the MTP-specific Connect Records and Disconnect,
//! R-MTP.6/7) and the one check it makes on received bytes: that they decode as a Record at
//! all, which decides between passing them on and the MTP's "unextractable Record" handling
//! (WebSocket close 1003, R-WS.16; UDS Type-2 error; MQTT/STOMP drop).

use prost::Message as _;
use usp_codec::UspErrorCode;
use usp_codec::usp_proto::usp_record::{
    DisconnectRecord, MqttConnectRecord, Record, StompConnectRecord, UdsConnectRecord,
    WebSocketConnectRecord, mqtt_connect_record::MqttVersion as WireMqttVersion,
    record::RecordType,
};

use crate::config::MqttVersion;

/// The Record `version` written in Connect/Disconnect Records.
const RECORD_VERSION: &str = "1.4";

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

/// The Connect Record from `from_id` to `to_id`.
pub(crate) fn connect(kind: &ConnectKind, from_id: &str, to_id: &str) -> Vec<u8> {
    let record_type = match kind {
        ConnectKind::WebSocket => RecordType::WebsocketConnect(WebSocketConnectRecord {}),
        ConnectKind::Mqtt {
            version,
            subscribed_topic,
        } => RecordType::MqttConnect(MqttConnectRecord {
            version: match version {
                MqttVersion::V3_1_1 => WireMqttVersion::V311,
                MqttVersion::V5 => WireMqttVersion::V5,
            } as i32,
            subscribed_topic: subscribed_topic.clone(),
        }),
        ConnectKind::Stomp {
            subscribed_destination,
        } => RecordType::StompConnect(StompConnectRecord {
            version: 0,
            subscribed_destination: subscribed_destination.clone(),
        }),
        ConnectKind::Uds => RecordType::UdsConnect(UdsConnectRecord {}),
    };
    record(from_id, to_id, record_type)
}

/// The Disconnect Record sent before an MTP is dropped on purpose (R-MTP.7): the agent ends
/// every session context with the peer, hence 7105 (R-MTP.9).
pub(crate) fn disconnect(from_id: &str, to_id: &str, reason: &str) -> Vec<u8> {
    record(
        from_id,
        to_id,
        RecordType::Disconnect(DisconnectRecord {
            reason: reason.to_string(),
            reason_code: UspErrorCode::SessionContextTerminated.code(),
        }),
    )
}

fn record(from_id: &str, to_id: &str, record_type: RecordType) -> Vec<u8> {
    Record {
        version: RECORD_VERSION.to_string(),
        to_id: to_id.to_string(),
        from_id: from_id.to_string(),
        record_type: Some(record_type),
        ..Record::default()
    }
    .encode_to_vec()
}

/// The `from_id` of a Record, used to pick a controller's configured topic when a request names
/// no reply-to.
pub(crate) fn from_id(bytes: &[u8]) -> Option<String> {
    Record::decode(bytes).ok().map(|r| r.from_id)
}

/// Whether `bytes` decode as a Record with a record type; anything else is "unextractable".
pub(crate) fn is_extractable(bytes: &[u8]) -> bool {
    Record::decode(bytes).is_ok_and(|r| r.record_type.is_some())
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
        let Some(RecordType::MqttConnect(m)) = r.record_type else {
            panic!("not MQTTConnect")
        };
        assert_eq!(m.version, WireMqttVersion::V311 as i32);
        assert_eq!(m.subscribed_topic, "usp/agent");
    }

    #[test]
    fn disconnect_uses_a_71xx_code() {
        let r = Record::decode(disconnect("a", "b", "bye").as_slice()).unwrap();
        let Some(RecordType::Disconnect(d)) = r.record_type else {
            panic!("not Disconnect")
        };
        assert_eq!(d.reason_code, 7105);
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
