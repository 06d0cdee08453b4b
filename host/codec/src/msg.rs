//! USP Messages: decoding, and builders whose header `msg_type` is derived from the body so the
//! two can never disagree (R-MSG.10 makes the body authoritative anyway).

use prost::Message as _;
use usp_proto::usp::{self, body::MsgBody, header::MsgType, request::ReqType, response::RespType};

use crate::error_code::UspErrorCode;

/// Why a payload is not a usable Msg.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// The payload is not a protobuf `Msg`.
    #[error("message could not be parsed: {0}")]
    Undecodable(String),
    /// The Msg has no header or no msg_id.
    #[error("message has no msg_id")]
    MissingMsgId,
    /// The Msg has no body, or its body holds no request/response/error (R-ENC.5).
    #[error("message has no body")]
    MissingBody,
    /// The record carries no Msg at all (a Connect or Disconnect record).
    #[error("record does not carry a message")]
    NotAMsgRecord,
}

/// Decodes and checks a serialized Msg: it must have a msg_id and a body.
pub fn decode(payload: &[u8]) -> Result<usp::Msg, MsgError> {
    let msg = usp::Msg::decode(payload).map_err(|err| MsgError::Undecodable(err.to_string()))?;
    if msg_id(&msg).is_none() {
        return Err(MsgError::MissingMsgId);
    }
    if msg
        .body
        .as_ref()
        .and_then(|body| body.msg_body.as_ref())
        .is_none()
    {
        return Err(MsgError::MissingBody);
    }
    Ok(msg)
}

/// The msg_id, if present and non-empty.
pub fn msg_id(msg: &usp::Msg) -> Option<&str> {
    msg.header
        .as_ref()
        .map(|header| header.msg_id.as_str())
        .filter(|id| !id.is_empty())
}

/// True when the Msg body is a Request.
pub fn is_request(msg: &usp::Msg) -> bool {
    matches!(
        msg.body.as_ref().and_then(|body| body.msg_body.as_ref()),
        Some(MsgBody::Request(_))
    )
}

/// The header type that matches a request body.
pub fn request_type(req: &ReqType) -> MsgType {
    match req {
        ReqType::Get(_) => MsgType::Get,
        ReqType::GetSupportedDm(_) => MsgType::GetSupportedDm,
        ReqType::GetInstances(_) => MsgType::GetInstances,
        ReqType::Set(_) => MsgType::Set,
        ReqType::Add(_) => MsgType::Add,
        ReqType::Delete(_) => MsgType::Delete,
        ReqType::Operate(_) => MsgType::Operate,
        ReqType::Notify(_) => MsgType::Notify,
        ReqType::GetSupportedProtocol(_) => MsgType::GetSupportedProto,
        ReqType::Register(_) => MsgType::Register,
        ReqType::Deregister(_) => MsgType::Deregister,
    }
}

/// The header type that matches a response body.
pub fn response_type(resp: &RespType) -> MsgType {
    match resp {
        RespType::GetResp(_) => MsgType::GetResp,
        RespType::GetSupportedDmResp(_) => MsgType::GetSupportedDmResp,
        RespType::GetInstancesResp(_) => MsgType::GetInstancesResp,
        RespType::SetResp(_) => MsgType::SetResp,
        RespType::AddResp(_) => MsgType::AddResp,
        RespType::DeleteResp(_) => MsgType::DeleteResp,
        RespType::OperateResp(_) => MsgType::OperateResp,
        RespType::NotifyResp(_) => MsgType::NotifyResp,
        RespType::GetSupportedProtocolResp(_) => MsgType::GetSupportedProtoResp,
        RespType::RegisterResp(_) => MsgType::RegisterResp,
        RespType::DeregisterResp(_) => MsgType::DeregisterResp,
    }
}

fn build(msg_id: &str, msg_type: MsgType, body: MsgBody) -> usp::Msg {
    usp::Msg {
        header: Some(usp::Header {
            msg_id: msg_id.to_string(),
            msg_type: msg_type as i32,
        }),
        body: Some(usp::Body {
            msg_body: Some(body),
        }),
    }
}

/// A request Msg.
pub fn request(msg_id: &str, req: ReqType) -> usp::Msg {
    let msg_type = request_type(&req);
    build(
        msg_id,
        msg_type,
        MsgBody::Request(usp::Request {
            req_type: Some(req),
        }),
    )
}

/// A response Msg answering `msg_id`.
pub fn response(msg_id: &str, resp: RespType) -> usp::Msg {
    let msg_type = response_type(&resp);
    build(
        msg_id,
        msg_type,
        MsgBody::Response(usp::Response {
            resp_type: Some(resp),
        }),
    )
}

/// An Error Msg answering `msg_id`.
pub fn error(
    msg_id: &str,
    code: UspErrorCode,
    message: &str,
    param_errs: Vec<usp::error::ParamError>,
) -> usp::Msg {
    build(
        msg_id,
        MsgType::Error,
        MsgBody::Error(usp::Error {
            err_code: code.code(),
            err_msg: message.to_string(),
            param_errs,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_type_follows_the_body() {
        let msg = request("a", ReqType::GetInstances(usp::GetInstances::default()));
        assert_eq!(msg.header.unwrap().msg_type, MsgType::GetInstances as i32);
        let msg = response("a", RespType::SetResp(usp::SetResp::default()));
        assert_eq!(msg.header.unwrap().msg_type, MsgType::SetResp as i32);
    }

    #[test]
    fn msg_without_id_is_rejected() {
        let mut msg = request("x", ReqType::Get(usp::Get::default()));
        msg.header = None;
        assert_eq!(decode(&msg.encode_to_vec()), Err(MsgError::MissingMsgId));
    }

    #[test]
    fn msg_without_body_is_rejected() {
        let mut msg = request("x", ReqType::Get(usp::Get::default()));
        msg.body = Some(usp::Body { msg_body: None });
        assert_eq!(decode(&msg.encode_to_vec()), Err(MsgError::MissingBody));
    }
}
