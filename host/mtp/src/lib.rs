//! Message transports (MTPs) for the USP agent: MQTT 3.1.1/5.0, WebSocket (client and server),
//! STOMP 1.2 and Unix domain sockets, with TLS. The crate moves Record bytes and writes only the
//! MTP-level Records (Connect, Disconnect); it knows nothing of USP Messages.
//!
//! Start reading at [`Mtps`]: the agent starts it with [`MtpSettings`] and an event channel,
//! receives [`MtpEvent`]s (Records with their [`ReplyPath`], link up/down), answers with
//! [`Mtps::send`], notifies with [`Mtps::send_to_controller`], reconfigures with
//! [`Mtps::update`] and stops with [`Mtps::shutdown`].
//!
//! ```no_run
//! use tokio::sync::mpsc;
//! use usp_mtp::{ControllerTarget, MtpEvent, MtpSettings, Mtps};
//!
//! # async fn handle(bytes: &[u8]) -> Option<Vec<u8>> { None }
//! # async fn example(text: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let settings: MtpSettings = toml::from_str(text)?;
//! let (events_tx, mut events) = mpsc::channel(256);
//! let mtps = Mtps::start(settings, events_tx);
//! let target = ControllerTarget::Mqtt { mtp: "mqtt".into(), topic: "usp/controller".into() };
//! while let Some(event) = events.recv().await {
//!     match event {
//!         MtpEvent::Record(record) => {
//!             // R-SEC.0a: with `record.peer` = PeerAuth::Endpoint(cert), the Record's
//!             // from_id must satisfy cert.names_endpoint(from_id).
//!             if let Some(response) = handle(&record.bytes).await {
//!                 mtps.send(&record.reply, response).await?;
//!             }
//!         }
//!         MtpEvent::Up { mtp, info } if mtp == "mqtt" => {
//!             mtps.send_to_controller(&target, b"boot notification".to_vec()).await?;
//!             let _ = info.client_id;
//!         }
//!         _ => {}
//!     }
//! }
//! mtps.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Layout:
//! - [`mtps`]: the handle: starts, routes to, reconfigures and stops the transport tasks.
//! - [`config`]: serde settings per MTP, named after their TR-181 parameters.
//! - [`directory`]: the Controllers' MQTT topics from the agent's data model, shared with the
//!   MQTT MTPs.
//! - [`event`]: what crosses the boundary with the agent (events, reply paths, targets).
//! - [`backoff`]: the reconnect waits every transport shares.
//! - [`tls`]: rustls configuration from PEM files; peer certificate identities (R-SEC.0a).
//! - [`control`]: the framing of the agent's local control socket, shared by the agent's server
//!   and `uspctl` (usp-controller).
//! - `link`: the context each transport task gets; the session table of server MTPs.
//! - `records`: Connect/Disconnect Records and the "is this a Record at all" check.
//! - [`mqtt`], [`websocket`], [`stomp`], `uds`: one transport each, protocol state machines in
//!   submodules without I/O, the event loop in the module root. The pieces a controller-side
//!   client reuses (usp-controller: the STOMP frame codec and session, the MQTT adapter over
//!   rumqttc for both versions with its quick ACKs, the WebSocket subprotocol) are public; the
//!   rest stays private.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, reason = "unit tests"))]

pub mod backoff;
pub mod config;
pub mod control;
pub mod directory;
pub mod event;
pub mod mqtt;
pub mod mtps;
pub mod stomp;
pub mod tls;
pub mod websocket;

mod link;
mod records;
mod uds;

pub use backoff::{Backoff, RetryPolicy};
pub use config::{
    MqttConfig, MqttController, MqttVersion, MtpConfig, MtpSettings, StompConfig, StompController,
    TlsConfig, TransportConfig, UdsConfig, UdsMode, WsClientConfig, WsServerConfig,
};
pub use directory::{ControllerDirectory, MqttControllerRow};
pub use event::{
    ControllerTarget, InboundRecord, LinkInfo, MtpEvent, PeerAuth, PeerCertificate, Protocol,
    ReplyPath,
};
pub use mtps::{Mtps, SendError};
