//! How uspctl reaches an agent. [`Transport`] carries one request Msg to the agent and returns
//! the Msg that answers it. The control socket is the local transport (trusted, full access);
//! [`Remote`] goes over a network MTP (`--ws`, `--mqtt`, `--stomp`) as a Controller the agent must know.

use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;
use usp_codec::Record;
use usp_codec::msg;
use usp_mtp::control::{read_frame, read_hello, write_frame};
use usp_proto::usp;

use super::CliError;
use crate::client::{ControllerClient, ControllerOptions, Endpoint};

/// Largest answer uspctl accepts (a full `dump` of a large model fits easily).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A connection to one agent.
pub trait Transport {
    /// Sends `request` and returns the answer with the same msg_id.
    async fn exchange(
        &mut self,
        request: &usp::Msg,
        timeout: Duration,
    ) -> Result<usp::Msg, CliError>;
}

/// The agent's local control socket.
pub struct ControlSocket {
    stream: UnixStream,
    agent_id: String,
    controller_id: String,
}

impl ControlSocket {
    /// Connects and reads the agent's hello (its Endpoint ID).
    pub async fn connect(path: &Path, controller_id: &str) -> Result<ControlSocket, CliError> {
        let mut stream =
            UnixStream::connect(path)
                .await
                .map_err(|source| CliError::SocketConnect {
                    path: path.to_path_buf(),
                    source,
                })?;
        let agent_id = read_hello(&mut stream)
            .await
            .map_err(|source| CliError::NoHello {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(ControlSocket {
            stream,
            agent_id,
            controller_id: controller_id.to_string(),
        })
    }
}

impl ControlSocket {
    async fn round_trip(&mut self, record: Vec<u8>) -> Result<Vec<u8>, CliError> {
        write_frame(&mut self.stream, &record).await?;
        match read_frame(&mut self.stream, MAX_ANSWER).await? {
            Some(answer) => Ok(answer),
            None => Err(CliError::ClosedWithoutAnswer),
        }
    }
}

impl Transport for ControlSocket {
    async fn exchange(
        &mut self,
        request: &usp::Msg,
        timeout: Duration,
    ) -> Result<usp::Msg, CliError> {
        let record = Record::for_msg(&self.controller_id, &self.agent_id, request).encode();
        let sent_id = msg::msg_id(request).unwrap_or_default().to_string();
        let answer = tokio::time::timeout(timeout, self.round_trip(record))
            .await
            .map_err(|source| CliError::NoAnswerWithin { timeout, source })??;
        let record = Record::decode(&answer).map_err(CliError::NotARecord)?;
        let reply = record.msg().map_err(CliError::NoMsg)?;
        if msg::msg_id(&reply) != Some(sent_id.as_str()) {
            return Err(CliError::WrongMsgId {
                answered: msg::msg_id(&reply).map(str::to_string),
                expected: sent_id,
            });
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
    ) -> Result<Remote, CliError> {
        let mut options = ControllerOptions::new(controller_id, agent_id, endpoint);
        options.timeout = timeout;
        let (client, _events) = ControllerClient::connect(options)
            .await
            .map_err(CliError::Unreachable)?;
        Ok(Remote { client })
    }
}

impl Transport for Remote {
    async fn exchange(
        &mut self,
        request: &usp::Msg,
        _timeout: Duration,
    ) -> Result<usp::Msg, CliError> {
        self.client
            .send(request.clone())
            .await
            .map_err(CliError::NoRemoteAnswer)
    }
}
