//! USP Records: typed decode/encode over `usp_record::Record`, the Connect/Disconnect records,
//! and the receive-side checks of R-E2E.1 and R-MTP.5 (which bad Records get an Error answer
//! and which are silently dropped).

use prost::Message as _;
use usp_proto::usp_record::{
    self as wire, DisconnectRecord, MqttConnectRecord, NoSessionContextRecord, StompConnectRecord,
    UdsConnectRecord, WebSocketConnectRecord, mqtt_connect_record::MqttVersion, record::RecordType,
};

use crate::error_code::UspErrorCode;
use crate::msg::{self, MsgError};
use usp_proto::usp;

/// The Record `version` this endpoint writes.
pub const RECORD_VERSION: &str = "1.4";

/// The MQTT protocol version announced in an MQTTConnect record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttProtocol {
    /// MQTT 3.1.1.
    V3_1_1,
    /// MQTT 5.0.
    V5,
}

/// What a Record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// A NoSessionContext record holding a serialized `usp.Msg`.
    Msg(Vec<u8>),
    /// A SessionContext record (E2E sessions are not supported by this agent).
    SessionContext,
    /// WebSocketConnect.
    WebSocketConnect,
    /// MQTTConnect with the topic the sender can be reached on.
    MqttConnect {
        /// MQTT version of the sender's connection.
        version: MqttProtocol,
        /// Exact topic the sender subscribed to.
        subscribed_topic: String,
    },
    /// STOMPConnect with the destination the sender can be reached on.
    StompConnect {
        /// Destination the sender subscribed to.
        subscribed_destination: String,
    },
    /// UDSConnect.
    UdsConnect,
    /// Disconnect with a reason and a 71xx code (R-MTP.9).
    Disconnect {
        /// Human-readable reason.
        reason: String,
        /// The USP Record error code.
        reason_code: u32,
    },
}

/// A decoded Record: header fields plus its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// "Major.Minor" of the sender.
    pub version: String,
    /// Endpoint ID of the recipient.
    pub to_id: String,
    /// Endpoint ID of the sender.
    pub from_id: String,
    /// What the Record carries.
    pub body: RecordBody,
}

/// Why bytes are not a usable Record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not a protobuf `Record`.
    #[error("record could not be parsed: {0}")]
    Undecodable(String),
    /// No `record_type` was set (R-ENC.3).
    #[error("record has no record_type")]
    MissingRecordType,
    /// A required header field is empty.
    #[error("record field {0} is empty")]
    MissingField(&'static str),
    /// A NoSessionContext record with an empty payload (R-E2E.26).
    #[error("no_session_context record has an empty payload")]
    EmptyPayload,
    /// An enum field holds a value this endpoint does not know (R-ENC.2).
    #[error("record field {0} holds an unknown enum value {1}")]
    UnknownEnumValue(&'static str, i32),
}

impl RecordError {
    /// The USP Record error code (71xx) for this failure.
    pub fn code(&self) -> UspErrorCode {
        match self {
            RecordError::Undecodable(_) | RecordError::MissingRecordType => {
                UspErrorCode::RecordNotParsed
            }
            RecordError::MissingField(_)
            | RecordError::EmptyPayload
            | RecordError::UnknownEnumValue(..) => UspErrorCode::InvalidRecordValue,
        }
    }
}

impl Record {
    /// A NoSessionContext record carrying `msg`.
    pub fn for_msg(from_id: &str, to_id: &str, msg: &usp::Msg) -> Self {
        Record::new(from_id, to_id, RecordBody::Msg(msg.encode_to_vec()))
    }

    /// A record with the current version.
    pub fn new(from_id: &str, to_id: &str, body: RecordBody) -> Self {
        Record {
            version: RECORD_VERSION.to_string(),
            to_id: to_id.to_string(),
            from_id: from_id.to_string(),
            body,
        }
    }

    /// Parses a Record from MTP payload bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let raw =
            wire::Record::decode(bytes).map_err(|err| RecordError::Undecodable(err.to_string()))?;
        Record::try_from(raw)
    }

    /// Serializes the Record for an MTP.
    pub fn encode(&self) -> Vec<u8> {
        wire::Record::from(self).encode_to_vec()
    }

    /// The `usp.Msg` inside a NoSessionContext record.
    pub fn msg(&self) -> Result<usp::Msg, MsgError> {
        match &self.body {
            RecordBody::Msg(payload) => msg::decode(payload),
            _ => Err(MsgError::NotAMsgRecord),
        }
    }
}

impl TryFrom<wire::Record> for Record {
    type Error = RecordError;

    fn try_from(raw: wire::Record) -> Result<Self, RecordError> {
        let payload_security = raw.payload_security;
        if wire::record::PayloadSecurity::try_from(payload_security).is_err() {
            return Err(RecordError::UnknownEnumValue(
                "payload_security",
                payload_security,
            ));
        }
        let body = match raw.record_type.ok_or(RecordError::MissingRecordType)? {
            RecordType::NoSessionContext(record) if record.payload.is_empty() => {
                return Err(RecordError::EmptyPayload);
            }
            RecordType::NoSessionContext(record) => RecordBody::Msg(record.payload),
            RecordType::SessionContext(_) => RecordBody::SessionContext,
            RecordType::WebsocketConnect(_) => RecordBody::WebSocketConnect,
            RecordType::MqttConnect(record) => RecordBody::MqttConnect {
                version: match MqttVersion::try_from(record.version) {
                    Ok(MqttVersion::V311) => MqttProtocol::V3_1_1,
                    Ok(MqttVersion::V5) => MqttProtocol::V5,
                    Err(_) => {
                        return Err(RecordError::UnknownEnumValue(
                            "mqtt_connect.version",
                            record.version,
                        ));
                    }
                },
                subscribed_topic: record.subscribed_topic,
            },
            RecordType::StompConnect(record) => RecordBody::StompConnect {
                subscribed_destination: record.subscribed_destination,
            },
            RecordType::UdsConnect(_) => RecordBody::UdsConnect,
            RecordType::Disconnect(record) => RecordBody::Disconnect {
                reason: record.reason,
                reason_code: record.reason_code,
            },
        };
        if raw.to_id.is_empty() {
            return Err(RecordError::MissingField("to_id"));
        }
        if raw.from_id.is_empty() {
            return Err(RecordError::MissingField("from_id"));
        }
        Ok(Record {
            version: raw.version,
            to_id: raw.to_id,
            from_id: raw.from_id,
            body,
        })
    }
}

impl From<&Record> for wire::Record {
    fn from(record: &Record) -> Self {
        let record_type = match &record.body {
            RecordBody::Msg(payload) => RecordType::NoSessionContext(NoSessionContextRecord {
                payload: payload.clone(),
            }),
            RecordBody::SessionContext => RecordType::SessionContext(Default::default()),
            RecordBody::WebSocketConnect => RecordType::WebsocketConnect(WebSocketConnectRecord {}),
            RecordBody::MqttConnect {
                version,
                subscribed_topic,
            } => RecordType::MqttConnect(MqttConnectRecord {
                version: match version {
                    MqttProtocol::V3_1_1 => MqttVersion::V311,
                    MqttProtocol::V5 => MqttVersion::V5,
                } as i32,
                subscribed_topic: subscribed_topic.clone(),
            }),
            RecordBody::StompConnect {
                subscribed_destination,
            } => RecordType::StompConnect(StompConnectRecord {
                version: 0,
                subscribed_destination: subscribed_destination.clone(),
            }),
            RecordBody::UdsConnect => RecordType::UdsConnect(UdsConnectRecord {}),
            RecordBody::Disconnect {
                reason,
                reason_code,
            } => RecordType::Disconnect(DisconnectRecord {
                reason: reason.clone(),
                reason_code: *reason_code,
            }),
        };
        wire::Record {
            version: record.version.clone(),
            to_id: record.to_id.clone(),
            from_id: record.from_id.clone(),
            record_type: Some(record_type),
            ..Default::default()
        }
    }
}

/// What to do with bytes received on an MTP, after the checks of R-E2E.1 and R-MTP.5.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A well-formed Msg for this endpoint.
    Msg {
        /// Sender's Endpoint ID.
        from_id: String,
        /// The decoded Msg.
        msg: usp::Msg,
    },
    /// A well-formed non-Msg record (Connect, Disconnect) for this endpoint.
    Control(Record),
    /// The record is refused and the sender gets this Record back on the same path: an Error
    /// Msg (R-MTP.5) or a Disconnect (R-E2E.6a for session context records).
    Reject {
        /// The Record to send back to the sender.
        reply: Record,
    },
    /// Silently ignore the bytes (the reason is for the log only).
    Drop(String),
}

/// Classifies received bytes for the endpoint `own_id`.
///
/// R-MTP.5: an Error is sent only when the source is known, `to_id` is ours, the Record holds a
/// Request whose msg_id is extractable (the return path is the caller's concern); everything else
/// is dropped. Records for another endpoint are ignored (R-E2E.1); so are records from our own
/// Endpoint ID (R-ARC.2).
pub fn classify(bytes: &[u8], own_id: &str) -> Inbound {
    let raw = match wire::Record::decode(bytes) {
        Ok(raw) => raw,
        Err(err) => return Inbound::Drop(format!("undecodable record: {err}")),
    };
    if raw.to_id != own_id {
        return Inbound::Drop(format!("record to_id {:?} is not ours", raw.to_id));
    }
    if raw.from_id.is_empty() {
        return Inbound::Drop("record without from_id".to_string());
    }
    if raw.from_id == own_id {
        return Inbound::Drop("record from our own endpoint id".to_string());
    }
    let from_id = raw.from_id.clone();
    let embedded = match &raw.record_type {
        Some(RecordType::NoSessionContext(record)) => msg::decode(&record.payload).ok(),
        _ => None,
    };
    match Record::try_from(raw) {
        Ok(record) => match &record.body {
            RecordBody::Msg(_) => match record.msg() {
                Ok(msg) => Inbound::Msg { from_id, msg },
                Err(err) => Inbound::Drop(format!("record from {from_id}: {err}")),
            },
            RecordBody::SessionContext => Inbound::Reject {
                reply: Record::new(
                    own_id,
                    &from_id,
                    RecordBody::Disconnect {
                        reason: "session context is not supported by this agent".to_string(),
                        reason_code: UspErrorCode::SessionContextNotAllowed.code(),
                    },
                ),
            },
            _ => Inbound::Control(record),
        },
        Err(err) => reject_request(embedded, own_id, from_id, err.code(), &err.to_string()),
    }
}

fn reject_request(
    embedded: Option<usp::Msg>,
    own_id: &str,
    from_id: String,
    code: UspErrorCode,
    message: &str,
) -> Inbound {
    match embedded.filter(msg::is_request) {
        Some(request) => match msg::msg_id(&request) {
            Some(msg_id) => Inbound::Reject {
                reply: Record::for_msg(
                    own_id,
                    &from_id,
                    &msg::error(msg_id, code, message, Vec::new()),
                ),
            },
            None => Inbound::Drop(format!(
                "bad record from {from_id} without msg_id: {message}"
            )),
        },
        None => Inbound::Drop(format!("bad record from {from_id}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::request;

    fn get_msg(id: &str) -> usp::Msg {
        request(
            id,
            usp::request::ReqType::Get(usp::Get {
                param_paths: vec!["Device.".into()],
                max_depth: 0,
            }),
        )
    }

    #[test]
    fn msg_record_round_trips() {
        let record = Record::for_msg("proto::ctl", "proto::agent", &get_msg("1"));
        let decoded = Record::decode(&record.encode()).unwrap();
        assert_eq!(decoded, record);
        assert_eq!(decoded.msg().unwrap(), get_msg("1"));
    }

    #[test]
    fn connect_and_disconnect_records_round_trip() {
        for body in [
            RecordBody::WebSocketConnect,
            RecordBody::UdsConnect,
            RecordBody::MqttConnect {
                version: MqttProtocol::V5,
                subscribed_topic: "a/b".into(),
            },
            RecordBody::StompConnect {
                subscribed_destination: "/q/x".into(),
            },
            RecordBody::Disconnect {
                reason: "bye".into(),
                reason_code: 7105,
            },
        ] {
            let record = Record::new("a", "b", body);
            assert_eq!(Record::decode(&record.encode()).unwrap(), record);
        }
    }

    #[test]
    fn record_for_another_endpoint_is_dropped() {
        let bytes = Record::for_msg("ctl", "someone-else", &get_msg("1")).encode();
        assert!(matches!(classify(&bytes, "agent"), Inbound::Drop(_)));
    }

    #[test]
    fn garbage_is_dropped_without_answer() {
        assert!(matches!(
            classify(b"\xff\xff\xff garbage", "agent"),
            Inbound::Drop(_)
        ));
    }

    #[test]
    fn record_with_empty_from_id_is_dropped() {
        let bytes = Record::for_msg("", "agent", &get_msg("1")).encode();
        assert!(matches!(classify(&bytes, "agent"), Inbound::Drop(_)));
    }

    #[test]
    fn session_context_record_is_answered_with_disconnect_7106() {
        let mut raw = wire::Record::from(&Record::for_msg("ctl", "agent", &get_msg("7")));
        raw.record_type = Some(RecordType::SessionContext(wire::SessionContextRecord {
            session_id: 5,
            sequence_id: 1,
            ..Default::default()
        }));
        match classify(&raw.encode_to_vec(), "agent") {
            Inbound::Reject { reply } => {
                assert_eq!(
                    (reply.from_id.as_str(), reply.to_id.as_str()),
                    ("agent", "ctl")
                );
                assert!(matches!(
                    reply.body,
                    RecordBody::Disconnect {
                        reason_code: 7106,
                        ..
                    }
                ));
            }
            other => panic!("expected Reject, got {other:?}"),
        }
    }

    #[test]
    fn unknown_payload_security_with_request_is_answered_with_7104() {
        let mut raw = wire::Record::from(&Record::for_msg("ctl", "agent", &get_msg("9")));
        raw.payload_security = 7;
        match classify(&raw.encode_to_vec(), "agent") {
            Inbound::Reject { reply } => {
                assert_eq!(reply.to_id, "ctl");
                let reply = reply.msg().unwrap();
                assert_eq!(msg::msg_id(&reply), Some("9"));
                let Some(usp::body::MsgBody::Error(error)) = reply.body.and_then(|b| b.msg_body)
                else {
                    panic!("expected an Error body");
                };
                assert_eq!(error.err_code, 7104);
            }
            other => panic!("expected Reject, got {other:?}"),
        }
    }

    #[test]
    fn well_formed_msg_is_accepted() {
        let bytes = Record::for_msg("ctl", "agent", &get_msg("3")).encode();
        assert_eq!(
            classify(&bytes, "agent"),
            Inbound::Msg {
                from_id: "ctl".into(),
                msg: get_msg("3")
            }
        );
    }
}
