//! GetSupportedProtocol (TR-369 §"GetSupportedProtocol"): the USP versions this agent speaks.
//! The Controller's own list is informational; the answer does not depend on it.

use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::response::RespType;

/// The versions advertised, comma-separated "major.minor" (1.5 only once its behaviour is
/// implemented, digest §3.13).
pub const SUPPORTED_VERSIONS: &str = "1.0,1.1,1.2,1.3,1.4";

/// Answers a GetSupportedProtocol.
pub fn handle(msg_id: &str) -> usp::Msg {
    msg::response(
        msg_id,
        RespType::GetSupportedProtocolResp(usp::GetSupportedProtocolResp {
            agent_supported_protocol_versions: SUPPORTED_VERSIONS.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::gsp_resp;
    use super::*;

    #[test]
    fn advertises_versions_up_to_1_4() {
        let resp = gsp_resp(handle("p"));
        assert_eq!(
            resp.agent_supported_protocol_versions,
            "1.0,1.1,1.2,1.3,1.4"
        );
    }
}
