//! How uspctl reaches an agent. [`Transport`] carries one request Msg to the agent and returns
//! the Msg that answers it. The control socket is the local transport (trusted, full access);
//! [`Remote`] goes over a network MTP (`--ws`, `--mqtt`, `--stomp`) as a Controller the agent must know.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::UnixStream;
use usp_codec::Record;
use usp_codec::msg;
use usp_mtp::control::{read_frame, read_hello, write_frame};
use usp_proto::usp;

use crate::client::{ControllerClient, ControllerOptions, Endpoint};

/// Largest answer uspctl accepts (a full `dump` of a large model fits easily).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A connection to one agent.
pub trait Transport {
    /// Sends `request` and returns the answer with the same msg_id.
    async fn exchange(&mut self, request: &usp::Msg, timeout: Duration)
    -> anyhow::Result<usp::Msg>;
}

/// The agent's local control socket.
pub struct ControlSocket {
    stream: UnixStream,
    agent_id: String,
    controller_id: String,
}

impl ControlSocket {
    /// Connects and reads the agent's hello (its Endpoint ID).
    pub async fn connect(path: &Path, controller_id: &str) -> anyhow::Result<ControlSocket> {
        let mut stream = UnixStream::connect(path).await.with_context(|| {
            format!(
                "cannot connect to the agent's control socket {} (is usp-agent running with this config?)",
                path.display()
            )
        })?;
        let agent_id = read_hello(&mut stream)
            .await
            .with_context(|| format!("no hello on control socket {}", path.display()))?;
        Ok(ControlSocket {
            stream,
            agent_id,
            controller_id: controller_id.to_string(),
        })
    }
}

impl ControlSocket {
    async fn round_trip(&mut self, record: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        write_frame(&mut self.stream, &record).await?;
        match read_frame(&mut self.stream, MAX_ANSWER).await? {
            Some(answer) => Ok(answer),
            None => bail!("the agent closed the control socket without answering"),
        }
    }
}

impl Transport for ControlSocket {
    async fn exchange(
        &mut self,
        request: &usp::Msg,
        timeout: Duration,
    ) -> anyhow::Result<usp::Msg> {
        let record = Record::for_msg(&self.controller_id, &self.agent_id, request).encode();
        let sent_id = msg::msg_id(request).unwrap_or_default().to_string();
        let answer = tokio::time::timeout(timeout, self.round_trip(record))
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
}

/// A network MTP session, as a Controller ([`crate::client`]).
pub struct Remote {
    client: ControllerClient,
}

impl Remote {
    /// Opens the session.
    pub async fn connect(
        controller_id: &str,
        agent_id: &str,
        endpoint: Endpoint,
        timeout: Duration,
    ) -> anyhow::Result<Remote> {
        let mut options = ControllerOptions::new(controller_id, agent_id, endpoint);
        options.timeout = timeout;
        let (client, _events) = ControllerClient::connect(options)
            .await
            .context("cannot reach the agent")?;
        Ok(Remote { client })
    }
}

impl Transport for Remote {
    async fn exchange(
        &mut self,
        request: &usp::Msg,
        _timeout: Duration,
    ) -> anyhow::Result<usp::Msg> {
        self.client
            .send(request.clone())
            .await
            .context("no answer from the agent (is uspctl's --controller-id an enabled Device.LocalAgent.Controller.?)")
    }
}
