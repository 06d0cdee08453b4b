//! The agent's end of the control socket: accepts `uspctl` connections, greets each with the
//! agent's Endpoint ID, and forwards every Record frame to the data-model actor, writing the
//! answer back on the same connection. The socket file is created with mode 0600: whoever can
//! open it has full access to the data model.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use usp_mtp::control::{FrameError, read_frame, write_frame};

/// A Record from the control socket, with the channel its answer goes back on: what the server
/// hands the data-model actor.
pub(crate) struct LocalRecord {
    pub bytes: Vec<u8>,
    pub answer: oneshot::Sender<Vec<u8>>,
}

/// How long a stopping server waits for connections to write the answers they owe.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process is listening on the path.
    #[error("control socket {0} is in use by another agent")]
    InUse(PathBuf),
    /// Creating, binding or securing the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// The bound control socket.
pub(crate) struct ControlServer {
    listener: UnixListener,
    endpoint_id: String,
    limit: usize,
    /// Into the actor; bounded so a flood of local requests waits instead of growing memory.
    actor: mpsc::Sender<LocalRecord>,
}

impl ControlServer {
    /// Binds `path`, replacing a stale socket file left by an agent that is gone.
    pub(crate) fn bind(
        path: &Path,
        endpoint_id: String,
        limit: usize,
        actor: mpsc::Sender<LocalRecord>,
    ) -> Result<ControlServer, ControlError> {
        let io = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(ControlServer {
            listener,
            endpoint_id,
            limit,
            actor,
        })
    }

    /// Accepts connections until `stop` turns true; then stops accepting, lets every
    /// connection finish the answer it is waiting for (at most [`DRAIN_LIMIT`]), and returns.
    /// The agent stops this way before a restart, so the `Reboot()` answer still reaches uspctl.
    pub(crate) async fn serve(self, mut stop: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        let stopping = stop.clone();
        loop {
            tokio::select! {
                () = stopped(&mut stop) => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let endpoint_id = self.endpoint_id.clone();
                        let actor = self.actor.clone();
                        let limit = self.limit;
                        let stop = stopping.clone();
                        connections.spawn(async move {
                            if let Err(error) =
                                connection(stream, &endpoint_id, limit, actor, stop).await
                            {
                                tracing::info!(%error, "control connection closed");
                            }
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        let drained = tokio::time::timeout(DRAIN_LIMIT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("control connections still busy at shutdown; closed");
        }
    }
}

/// Resolves once the server is told to stop (or whoever could tell it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn connection(
    mut stream: UnixStream,
    endpoint_id: &str,
    limit: usize,
    actor: mpsc::Sender<LocalRecord>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), FrameError> {
    write_frame(&mut stream, endpoint_id.as_bytes()).await?;
    loop {
        let frame = tokio::select! {
            () = stopped(&mut stop) => return Ok(()),
            frame = read_frame(&mut stream, limit) => frame?,
        };
        let Some(bytes) = frame else {
            return Ok(());
        };
        let (answer, answered) = oneshot::channel();
        if actor.send(LocalRecord { bytes, answer }).await.is_err() {
            return Ok(());
        }
        if let Ok(reply) = answered.await {
            write_frame(&mut stream, &reply).await?;
        }
    }
}
