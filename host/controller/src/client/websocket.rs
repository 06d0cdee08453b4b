//! A controller's WebSocket session to an agent's WebSocket server: the request offers the
//! `v1.usp` subprotocol (R-WS.9/10) and carries our Endpoint ID as `eid=` in the query
//! (R-WS.10b/c); tungstenite refuses a server that does not echo the subprotocol (R-WS.12). Records go in
//! single binary frames (R-WS.14/14a); tungstenite reassembles fragmented ones and answers Pings.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use url::Url;

use super::ControllerError;
use usp_mtp::websocket::handshake::{SUBPROTOCOL, client_url};

/// Why a WebSocket session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The URL does not parse.
    #[error("invalid URL: {0}")]
    Url(#[source] url::ParseError),
    /// A `wss://` URL: this client speaks plain WebSocket only.
    #[error("wss:// is not supported by this controller client")]
    TlsUnsupported,
    /// A scheme other than `ws`.
    #[error("scheme {0:?} is not ws://")]
    Scheme(String),
    /// The URL names no host.
    #[error("URL has no host")]
    NoHost,
    /// The URL names no port and its scheme has no default.
    #[error("URL has no port")]
    NoPort,
    /// The URL with `eid=` added does not parse.
    #[error("invalid URL {url:?}: {source}")]
    WithEid {
        /// The URL as built.
        url: String,
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// The handshake failed (or tungstenite refused the request or the answer).
    #[error("{0}")]
    Handshake(#[source] Box<tokio_tungstenite::tungstenite::Error>),
}

impl From<tokio_tungstenite::tungstenite::Error> for WsError {
    fn from(err: tokio_tungstenite::tungstenite::Error) -> Self {
        WsError::Handshake(Box::new(err))
    }
}

/// Where the agent's WebSocket server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsEndpoint {
    /// `ws://host:port/path` (other query items are kept; `eid=` is added).
    pub url: String,
}

/// Opens the session and starts the task that moves Records between it and the channels.
pub(super) async fn open(
    endpoint: &WsEndpoint,
    controller_id: &str,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    incoming: mpsc::Sender<Bytes>,
) -> Result<JoinHandle<()>, ControllerError> {
    let failed = |reason: WsError| ControllerError::Connect {
        target: endpoint.url.clone(),
        reason: reason.into(),
    };
    let url = request_url(&endpoint.url, controller_id).map_err(failed)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| failed(err.into()))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    // Nagle's algorithm would hold small Records back behind unacknowledged ones, which is
    // exactly the pipelined pattern a load generator produces.
    let (stream, _response) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .map_err(|err| failed(err.into()))?;
    let (mut sink, mut source) = stream.split();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                out = outgoing.recv() => {
                    let Some(record) = out else { break };
                    if let Err(err) = sink.send(Message::Binary(record.into())).await {
                        tracing::warn!(%err, "WebSocket send failed; session closed");
                        break;
                    }
                }
                frame = source.next() => match frame {
                    Some(Ok(Message::Binary(data))) => {
                        if incoming.send(data).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(close))) => {
                        tracing::info!(?close, "the agent closed the WebSocket session");
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::warn!(%err, "WebSocket session failed");
                        break;
                    }
                    None => break,
                },
            }
        }
        // Best effort: the peer may already be gone.
        drop(sink.close().await);
    }))
}

/// The URL of `base` with `eid=<controller_id>` in its query.
fn request_url(base: &str, controller_id: &str) -> Result<Url, WsError> {
    let url = Url::parse(base).map_err(WsError::Url)?;
    match url.scheme() {
        "ws" => {}
        "wss" => return Err(WsError::TlsUnsupported),
        other => return Err(WsError::Scheme(other.to_string())),
    }
    let host = url.host_str().ok_or(WsError::NoHost)?;
    let port = url.port_or_known_default().ok_or(WsError::NoPort)?;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let full = client_url(
        host.trim_matches(['[', ']']),
        port,
        &path,
        false,
        controller_id,
    );
    Url::parse(&full).map_err(|source| WsError::WithEid { url: full, source })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn request_url_adds_encoded_eid_and_keeps_query() {
        assert_eq!(
            request_url("ws://127.0.0.1:9000/usp?x=1", "self::a%b")
                .unwrap()
                .as_str(),
            "ws://127.0.0.1:9000/usp?x=1&eid=self::a%25b"
        );
    }

    #[test]
    fn request_url_refuses_other_schemes() {
        assert!(request_url("http://127.0.0.1:9000/usp", "c").is_err());
    }
}
