//! How uspctl reaches an agent. [`Transport`] carries one USP Record to the agent and returns
//! the Record that answers it; the control socket is the local transport, and the network MTPs
//! (`--mqtt`, `--ws`, `--stomp`) plug in as further implementations of the same trait.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::UnixStream;
use usp_agent::control::frame::{read_frame, read_hello, write_frame};
use usp_codec::Record;
use usp_codec::msg;
use usp_proto::usp;

/// Largest answer uspctl accepts (a full `dump` of a large model fits easily).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A connection to one agent that exchanges Records.
pub trait Transport {
    /// The agent's Endpoint ID (the `to_id` of our Records).
    fn agent_id(&self) -> &str;

    /// Sends one Record and returns the next Record received.
    async fn round_trip(&mut self, record: Vec<u8>) -> anyhow::Result<Vec<u8>>;
}

/// The agent's local control socket.
pub struct ControlSocket {
    stream: UnixStream,
    agent_id: String,
}

impl ControlSocket {
    /// Connects and reads the agent's hello (its Endpoint ID).
    pub async fn connect(path: &Path) -> anyhow::Result<ControlSocket> {
        let mut stream = UnixStream::connect(path).await.with_context(|| {
            format!(
                "cannot connect to the agent's control socket {} (is usp-agent running with this config?)",
                path.display()
            )
        })?;
        let agent_id = read_hello(&mut stream)
            .await
            .with_context(|| format!("no hello on control socket {}", path.display()))?;
        Ok(ControlSocket { stream, agent_id })
    }
}

impl Transport for ControlSocket {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }

    async fn round_trip(&mut self, record: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        write_frame(&mut self.stream, &record).await?;
        match read_frame(&mut self.stream, MAX_ANSWER).await? {
            Some(answer) => Ok(answer),
            None => bail!("the agent closed the control socket without answering"),
        }
    }
}

/// Sends `request` from `controller_id` and returns the agent's answering Msg.
pub async fn exchange(
    transport: &mut impl Transport,
    controller_id: &str,
    request: &usp::Msg,
    timeout: Duration,
) -> anyhow::Result<usp::Msg> {
    let record = Record::for_msg(controller_id, transport.agent_id(), request).encode();
    let sent_id = msg::msg_id(request).unwrap_or_default().to_string();
    let answer = tokio::time::timeout(timeout, transport.round_trip(record))
        .await
        .with_context(|| format!("no answer from the agent within {timeout:?}"))??;
    let record = Record::decode(&answer).context("the agent's answer is not a USP Record")?;
    let reply = record
        .msg()
        .context("the agent's answer does not carry a USP Msg")?;
    if msg::msg_id(&reply) != Some(sent_id.as_str()) {
        bail!(
            "the agent answered msg_id {:?}, expected {sent_id:?}",
            msg::msg_id(&reply)
        );
    }
    Ok(reply)
}
