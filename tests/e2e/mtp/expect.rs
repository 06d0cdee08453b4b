//! What the tests accept as a correct answer: a GetResp with the requested values, or an
//! Error with a given code, each for the msg_id that was asked.

use anyhow::{Context, bail};
use usp_codec::usp_proto::usp::{self, body::MsgBody, response::RespType};

/// The agent's `Device.DeviceInfo.Manufacturer` under the test configuration's defaults.
pub const MANUFACTURER: &str = "Example";

/// The GetResp in `msg`, which must answer `msg_id`.
pub fn get_resp<'m>(msg: &'m usp::Msg, msg_id: &str) -> anyhow::Result<&'m usp::GetResp> {
    let id = usp_codec::msg::msg_id(msg).unwrap_or_default();
    if id != msg_id {
        bail!("answer to msg_id {id:?}, expected {msg_id:?}: {msg:?}");
    }
    match msg.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
        Some(MsgBody::Response(usp::Response {
            resp_type: Some(RespType::GetResp(resp)),
        })) => Ok(resp),
        _ => bail!("not a GetResp: {msg:?}"),
    }
}

/// The value of parameter `name` (relative to the resolved object) in a GetResp answering
/// `msg_id` without error.
pub fn param(msg: &usp::Msg, msg_id: &str, name: &str) -> anyhow::Result<String> {
    let resp = get_resp(msg, msg_id)?;
    let result = resp
        .req_path_results
        .first()
        .context("GetResp without a requested path result")?;
    if result.err_code != 0 {
        bail!(
            "{} failed: {} {}",
            result.requested_path,
            result.err_code,
            result.err_msg
        );
    }
    result
        .resolved_path_results
        .iter()
        .find_map(|resolved| resolved.result_params.get(name).cloned())
        .with_context(|| format!("no {name} in {resp:?}"))
}

/// Checks `msg` is an Error with `code` answering `msg_id`.
pub fn error(msg: &usp::Msg, msg_id: &str, code: u32) -> anyhow::Result<()> {
    let id = usp_codec::msg::msg_id(msg).unwrap_or_default();
    match msg.body.as_ref().and_then(|b| b.msg_body.as_ref()) {
        Some(MsgBody::Error(error)) if id == msg_id && error.err_code == code => Ok(()),
        _ => bail!("expected Error {code} for msg_id {msg_id:?}, got {msg:?}"),
    }
}
