//! Controller links written for the tests, one per MTP, that send whatever bytes a test builds
//! (garbage, a wrong `to_id`, a stranger's `from_id`, a bad field) and read the agent's Records
//! back: WebSocket through tokio-tungstenite (optionally over TLS with a client certificate),
//! UDS with its framing written here from the spec, MQTT 5.0 through rumqttc. The usp-mtp
//! controller client cannot do this: it only sends well-formed Records from its own identity.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use usp_codec::msg;
use usp_codec::usp_proto::usp::{self, request::ReqType};
use usp_codec::usp_proto::usp_record;
use usp_codec::{Record, RecordBody};

use super::harness::{AGENT_ID, ANSWER};

/// A link that moves Record bytes to and from the agent.
pub trait Link {
    /// Sends one Record (or whatever bytes the test calls a Record).
    async fn send(&mut self, bytes: Vec<u8>) -> anyhow::Result<()>;
    /// The next Record the agent sent, within [`ANSWER`].
    async fn recv(&mut self) -> anyhow::Result<Vec<u8>>;
}

/// A Get request Msg for `path`.
pub fn get_msg(msg_id: &str, path: &str) -> usp::Msg {
    msg::request(
        msg_id,
        ReqType::Get(usp::Get {
            param_paths: vec![path.to_string()],
            max_depth: 0,
        }),
    )
}

/// A Record from `from` to `to` holding a Get of `path`.
pub fn get_record(from: &str, to: &str, msg_id: &str, path: &str) -> Vec<u8> {
    Record::for_msg(from, to, &get_msg(msg_id, path)).encode()
}

/// A well-formed Get Record whose `payload_security` holds an enum value no endpoint knows:
/// the Record is extractable, so R-MTP.5 owes the sender an Error naming the msg_id.
pub fn bad_field_record(from: &str, msg_id: &str) -> Vec<u8> {
    let mut wire = usp_record::Record::decode(
        get_record(from, AGENT_ID, msg_id, "Device.LocalAgent.EndpointID").as_slice(),
    )
    .unwrap_or_default();
    wire.payload_security = 99;
    wire.encode_to_vec()
}

/// The next Record that carries a Msg (Connect Records are skipped), checked to come from the
/// test agent; returns its `to_id` and the Msg.
pub async fn recv_msg(link: &mut impl Link) -> anyhow::Result<(String, usp::Msg)> {
    recv_msg_from(link, AGENT_ID).await
}

/// [`recv_msg`] for an agent with the Endpoint ID `agent_id`.
pub async fn recv_msg_from(
    link: &mut impl Link,
    agent_id: &str,
) -> anyhow::Result<(String, usp::Msg)> {
    loop {
        let bytes = link.recv().await?;
        let record = Record::decode(&bytes).context("the agent sent an undecodable Record")?;
        if record.from_id != agent_id {
            bail!("Record from {:?}, not the agent", record.from_id);
        }
        if let RecordBody::Msg(_) = record.body {
            let msg = record.msg().context("the agent's Msg does not decode")?;
            return Ok((record.to_id, msg));
        }
    }
}

/// The msg_id of an answer.
pub fn msg_id(msg: &usp::Msg) -> String {
    msg::msg_id(msg).unwrap_or_default().to_string()
}

/// Anything tokio-tungstenite can run a session over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A WebSocket session to the agent's server.
pub struct WsLink {
    ws: WebSocketStream<Box<dyn Io>>,
}

impl WsLink {
    /// Connects to `ws://127.0.0.1:<port>/usp?eid=<eid>` offering `v1.usp` (R-WS.9/10); with
    /// `tls`, over TLS with that client identity (the URL scheme is then `wss`).
    pub async fn connect(
        port: u16,
        eid: &str,
        tls: Option<&usp_mtp::TlsConfig>,
    ) -> anyhow::Result<WsLink> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let (stream, scheme): (Box<dyn Io>, _) = match tls {
            None => (Box::new(tcp), "ws"),
            Some(tls) => {
                let config = usp_mtp::tls::client_config(tls)?;
                let name = usp_mtp::tls::server_name(tls, "127.0.0.1")?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                    .connect(name, tcp)
                    .await?;
                (Box::new(stream), "wss")
            }
        };
        let mut request =
            format!("{scheme}://127.0.0.1:{port}/usp?eid={eid}").into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("v1.usp"));
        let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(WsLink { ws })
    }

    /// Sends a text frame (Records travel only in binary frames, R-WS.14).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// Reads until the agent closes the session; returns its close code (`None`: no Close
    /// frame, the connection just ended).
    pub async fn close_code(&mut self) -> anyhow::Result<Option<CloseCode>> {
        tokio::time::timeout(ANSWER, async {
            while let Some(message) = self.ws.next().await {
                match message {
                    Ok(Message::Close(frame)) => return Ok(frame.map(|f| f.code)),
                    Ok(_) => {}
                    Err(_) => return Ok(None),
                }
            }
            Ok(None)
        })
        .await
        .context("the agent did not close the session")?
    }
}

impl Link for WsLink {
    async fn send(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        tokio::time::timeout(ANSWER, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
                    Some(Ok(Message::Close(frame))) => {
                        bail!("the agent closed the session: {frame:?}")
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => bail!("WebSocket session failed: {err}"),
                    None => bail!("the WebSocket session ended"),
                }
            }
        })
        .await
        .context("no Record from the agent")?
    }
}

/// UDS TLV types (USP 1.3 UDS binding).
pub const TLV_HANDSHAKE: u8 = 1;
/// An error; the sender closes the connection.
pub const TLV_ERROR: u8 = 2;
/// A USP Record.
pub const TLV_RECORD: u8 = 3;

/// One UDS frame holding one TLV: `_USP`, the 4-byte length of what follows, the type byte,
/// the 4-byte value length, the value.
pub fn uds_frame(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut frame = b"_USP".to_vec();
    frame.extend_from_slice(&(5 + value.len() as u32).to_be_bytes());
    frame.push(kind);
    frame.extend_from_slice(&(value.len() as u32).to_be_bytes());
    frame.extend_from_slice(value);
    frame
}

/// A connection to the agent's UDS MTP after the handshake.
pub struct UdsLink {
    stream: UnixStream,
}

impl UdsLink {
    /// Connects, sends our Endpoint ID and checks the test agent answers with its own.
    pub async fn connect(path: &Path, eid: &str) -> anyhow::Result<UdsLink> {
        UdsLink::connect_to(path, eid, AGENT_ID).await
    }

    /// [`UdsLink::connect`] to an agent with the Endpoint ID `agent_id`.
    pub async fn connect_to(path: &Path, eid: &str, agent_id: &str) -> anyhow::Result<UdsLink> {
        let mut link = UdsLink {
            stream: UnixStream::connect(path).await?,
        };
        link.send_raw(&uds_frame(TLV_HANDSHAKE, eid.as_bytes()))
            .await?;
        let (kind, value) = link.frame().await?;
        if kind != TLV_HANDSHAKE || value != agent_id.as_bytes() {
            bail!(
                "handshake answered with TLV {kind} {:?}",
                String::from_utf8_lossy(&value)
            );
        }
        Ok(link)
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The next frame's first TLV; `Ok` with type 0 when the agent closed the connection.
    pub async fn frame(&mut self) -> anyhow::Result<(u8, Vec<u8>)> {
        tokio::time::timeout(ANSWER, async {
            let mut header = [0u8; 8];
            match self.stream.read_exact(&mut header).await {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok((0, Vec::new()));
                }
                Err(err) => return Err(err.into()),
            }
            if &header[..4] != b"_USP" {
                bail!("frame without the _USP sync bytes: {header:?}");
            }
            let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            let mut body = vec![0u8; length as usize];
            self.stream.read_exact(&mut body).await?;
            if body.len() < 5 {
                bail!("frame of {} bytes holds no TLV", body.len());
            }
            let value_len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
            let value = body
                .get(5..5 + value_len)
                .context("TLV length past the frame")?
                .to_vec();
            Ok((body[0], value))
        })
        .await
        .context("no frame from the agent")?
    }

    /// Reads until the agent sends an Error TLV and closes; returns the error text.
    pub async fn error_then_close(&mut self) -> anyhow::Result<String> {
        let text = loop {
            match self.frame().await? {
                (TLV_ERROR, text) => break String::from_utf8_lossy(&text).into_owned(),
                (0, _) => bail!("the agent closed the connection without an Error TLV"),
                _ => {}
            }
        };
        match self.frame().await? {
            (0, _) => Ok(text),
            (kind, _) => bail!("TLV {kind} after the Error TLV instead of a close"),
        }
    }
}

impl Link for UdsLink {
    async fn send(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.send_raw(&uds_frame(TLV_RECORD, &bytes)).await
    }

    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            match self.frame().await? {
                (TLV_RECORD, record) => return Ok(record),
                (TLV_ERROR, text) => {
                    bail!(
                        "the agent sent an Error TLV: {}",
                        String::from_utf8_lossy(&text)
                    )
                }
                (0, _) => bail!("the agent closed the UDS connection"),
                _ => {}
            }
        }
    }
}

/// An MQTT 5.0 session through the broker: subscribed to its own topic (SUBACK awaited), it
/// publishes to the agent's topic with that topic as Response Topic and Content Type `usp.msg`.
pub struct MqttLink {
    client: AsyncClient,
    agent_topic: String,
    own_topic: String,
    incoming: mpsc::Receiver<Publish>,
    task: tokio::task::JoinHandle<()>,
}

/// A PUBLISH the agent sent, with the MQTT 5 properties TP-469 11.12 checks.
#[derive(Debug)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub response_topic: Option<String>,
    pub content_type: Option<String>,
}

impl MqttLink {
    /// Connects to the broker on `port` and subscribes to `own_topic`.
    pub async fn connect(
        port: u16,
        agent_topic: &str,
        own_topic: &str,
    ) -> anyhow::Result<MqttLink> {
        let mut options = MqttOptions::new(
            format!("e2e-raw-{}-{port}", std::process::id()),
            "127.0.0.1",
            port,
        );
        options.set_clean_start(true);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        client.subscribe(own_topic, QoS::AtLeastOnce).await?;
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let (incoming_tx, incoming) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let properties = publish.properties.unwrap_or_default();
                        let received = Publish {
                            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                            payload: publish.payload.to_vec(),
                            response_topic: properties.response_topic,
                            content_type: properties.content_type,
                        };
                        if incoming_tx.send(received).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        tokio::time::timeout(ANSWER, subscribed)
            .await
            .context("no SUBACK from the broker")?
            .context("the MQTT connection failed")?;
        Ok(MqttLink {
            client,
            agent_topic: agent_topic.to_string(),
            own_topic: own_topic.to_string(),
            incoming,
            task,
        })
    }
}

impl MqttLink {
    /// The next PUBLISH the agent sent, within [`ANSWER`].
    pub async fn recv_publish(&mut self) -> anyhow::Result<Publish> {
        tokio::time::timeout(ANSWER, self.incoming.recv())
            .await
            .context("no PUBLISH from the agent")?
            .context("the MQTT connection ended")
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Link for MqttLink {
    async fn send(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let properties = PublishProperties {
            response_topic: Some(self.own_topic.clone()),
            content_type: Some("usp.msg".to_string()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                self.agent_topic.clone(),
                QoS::AtLeastOnce,
                false,
                bytes,
                properties,
            )
            .await?;
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        Ok(self.recv_publish().await?.payload)
    }
}
