//! The USP rules for opening a WebSocket session, without I/O: the client URL with its
//! percent-encoded `eid=` query (R-WS.10b/c), and the checks each side makes on the other's
//! handshake (subprotocol `v1.usp`, R-WS.9..12a; the server's path).

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The subprotocol both sides must agree on.
pub const SUBPROTOCOL: &str = "v1.usp";

/// Characters escaped in the `eid` query value: `%` first of all (R-WS.10c), and whatever
/// would end or split the query item.
const EID_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'&')
    .add(b'#')
    .add(b'+')
    .add(b'=')
    .add(b'"')
    .add(b'<')
    .add(b'>');

/// Why a handshake is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The request is for another path.
    #[error("path {0:?} is not served here")]
    WrongPath(String),
    /// The peer did not offer or accept `v1.usp`.
    #[error("subprotocol v1.usp not negotiated")]
    NoSubprotocol,
    /// The client sent no usable `eid` query item.
    #[error("no eid in the request query")]
    NoEndpointId,
}

/// `ws[s]://host:port/path?eid=<own id>`.
pub fn client_url(host: &str, port: u16, path: &str, tls: bool, own_id: &str) -> String {
    let scheme = if tls { "wss" } else { "ws" };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = path.trim_start_matches('/');
    let (path, extra) = match path.split_once('?') {
        Some((p, q)) => (p, format!("{q}&")),
        None => (path, String::new()),
    };
    let eid = utf8_percent_encode(own_id, EID_ESCAPES);
    format!("{scheme}://{host}:{port}/{path}?{extra}eid={eid}")
}

/// Whether a comma-separated `Sec-WebSocket-Protocol` value offers `v1.usp`.
pub(crate) fn offers_usp(header: Option<&str>) -> bool {
    header.is_some_and(|h| h.split(',').any(|p| p.trim() == SUBPROTOCOL))
}

/// The `Sec-WebSocket-Extensions` answer to a client that offered `bbf-usp-protocol`: the
/// server names its own Endpoint ID (TP-469 7.11); `None` when the client did not offer it.
pub(crate) fn extension_answer(offered: Option<&str>, own_id: &str) -> Option<String> {
    offered
        .is_some_and(|h| {
            h.split(',')
                .any(|ext| ext.split(';').next().map(str::trim) == Some("bbf-usp-protocol"))
        })
        .then(|| format!("bbf-usp-protocol; eid=\"{own_id}\""))
}

/// The server's check of a request: right path, `v1.usp` offered, an `eid`. Returns the
/// client's Endpoint ID.
pub(crate) fn check_request(
    served_path: &str,
    path: &str,
    query: Option<&str>,
    protocols: Option<&str>,
) -> Result<String, HandshakeError> {
    if path.trim_end_matches('/') != served_path.trim_end_matches('/') {
        return Err(HandshakeError::WrongPath(path.to_string()));
    }
    if !offers_usp(protocols) {
        return Err(HandshakeError::NoSubprotocol);
    }
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|item| item.strip_prefix("eid="))
        .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
        .find(|eid| !eid.is_empty())
        .ok_or(HandshakeError::NoEndpointId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_url_carries_encoded_eid() {
        assert_eq!(
            client_url("127.0.0.1", 8080, "/usp", false, "proto::agent-1"),
            "ws://127.0.0.1:8080/usp?eid=proto::agent-1"
        );
        assert_eq!(
            client_url("ctrl.example", 443, "usp", true, "self::a%41b"),
            "wss://ctrl.example:443/usp?eid=self::a%2541b"
        );
    }

    #[test]
    fn client_url_keeps_other_query_items_and_brackets_ipv6() {
        assert_eq!(
            client_url("::1", 9, "/p?x=1", false, "proto::a"),
            "ws://[::1]:9/p?x=1&eid=proto::a"
        );
    }

    #[test]
    fn server_decodes_the_eid_it_was_sent() {
        let url = client_url("h", 1, "/usp", false, "self::a%41b&c");
        let query = url.split_once('?').map(|(_, q)| q);
        assert_eq!(
            check_request("/usp", "/usp", query, Some("v1.usp")),
            Ok("self::a%41b&c".to_string())
        );
    }

    #[test]
    fn server_refuses_missing_subprotocol_path_or_eid() {
        assert_eq!(
            check_request("/usp", "/usp", Some("eid=a"), None),
            Err(HandshakeError::NoSubprotocol)
        );
        assert_eq!(
            check_request("/usp", "/usp", Some("eid=a"), Some("v2.usp, mqtt")),
            Err(HandshakeError::NoSubprotocol)
        );
        assert_eq!(
            check_request("/usp", "/other", Some("eid=a"), Some("v1.usp")),
            Err(HandshakeError::WrongPath("/other".into()))
        );
        assert_eq!(
            check_request("/usp", "/usp", Some("x=1&eid="), Some("v1.usp")),
            Err(HandshakeError::NoEndpointId)
        );
    }

    #[test]
    fn extension_is_answered_only_when_offered() {
        assert_eq!(
            extension_answer(
                Some("permessage-deflate, bbf-usp-protocol; eid=\"c\""),
                "proto::a"
            ),
            Some("bbf-usp-protocol; eid=\"proto::a\"".to_string())
        );
        assert_eq!(
            extension_answer(Some("permessage-deflate"), "proto::a"),
            None
        );
        assert_eq!(extension_answer(None, "proto::a"), None);
    }

    #[test]
    fn subprotocol_may_be_one_of_several() {
        assert!(offers_usp(Some("foo, v1.usp")));
        assert!(!offers_usp(Some("v1.usp2")));
    }
}
