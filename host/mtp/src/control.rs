//! Framing on the agent's local control socket (the Unix socket `uspctl` talks to): each frame
//! is a 4-byte big-endian length followed by that many bytes. Right after accepting, the agent
//! sends one hello frame holding its Endpoint ID (UTF-8); after that every frame in either
//! direction is one serialized USP Record. Also the socket's default place in the agent's state
//! directory.
//!
//! The agent's server (usp-agent) and `uspctl` (usp-controller) both use this module, so the
//! two sides of the socket share one definition without either crate depending on the other.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The agent's state directory when `[agent] state_dir` is unset, relative to its config file.
pub const DEFAULT_STATE_DIR: &str = "state";

/// The control socket's file name inside the state directory when `[agent] control_socket` is
/// unset.
pub const DEFAULT_SOCKET_NAME: &str = "control.sock";

/// The directory relative paths of an agent config file resolve against: the file's own
/// directory (`.` for a bare file name).
pub fn config_base_dir(config_file: &Path) -> PathBuf {
    match config_file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Where the control socket is: `configured` (`[agent] control_socket`) when set, else
/// [`DEFAULT_SOCKET_NAME`] in `state_dir`; relative paths resolve against `base_dir`, the
/// directory of the agent's config file.
pub fn socket_path(base_dir: &Path, state_dir: &Path, configured: Option<&Path>) -> PathBuf {
    match configured {
        Some(path) => base_dir.join(path),
        None => base_dir.join(state_dir).join(DEFAULT_SOCKET_NAME),
    }
}

/// A framing failure.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than the limit; the connection is closed.
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The hello frame is not UTF-8.
    #[error("hello frame is not an Endpoint ID")]
    BadHello,
    /// Reading or writing failed (including the peer closing mid-frame).
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let size = u32::from_be_bytes(header) as usize;
    if size > limit {
        return Err(FrameError::TooLarge { size, limit });
    }
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> Result<(), FrameError> {
    let size = u32::try_from(bytes.len()).map_err(|_| FrameError::TooLarge {
        size: bytes.len(),
        limit: u32::MAX as usize,
    })?;
    writer.write_all(&size.to_be_bytes()).await?;
    writer.write_all(bytes).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads the agent's hello frame and returns the Endpoint ID it carries.
pub async fn read_hello<R: AsyncRead + Unpin>(reader: &mut R) -> Result<String, FrameError> {
    let bytes = read_frame(reader, 4096).await?.ok_or_else(|| {
        FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "agent closed the control socket before its hello",
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| FrameError::BadHello)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_defaults_into_the_state_dir_and_resolves_against_the_config_dir() {
        let base = config_base_dir(Path::new("/etc/usp/agent.toml"));
        assert_eq!(base, PathBuf::from("/etc/usp"));
        assert_eq!(config_base_dir(Path::new("agent.toml")), PathBuf::from("."));
        assert_eq!(
            socket_path(&base, Path::new(DEFAULT_STATE_DIR), None),
            PathBuf::from("/etc/usp/state/control.sock")
        );
        assert_eq!(
            socket_path(&base, Path::new("var"), Some(Path::new("run/c.sock"))),
            PathBuf::from("/etc/usp/run/c.sock")
        );
        assert_eq!(
            socket_path(&base, Path::new("var"), Some(Path::new("/run/x.sock"))),
            PathBuf::from("/run/x.sock")
        );
    }

    #[tokio::test]
    async fn frames_round_trip_and_clean_close_is_none() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_frame(&mut a, b"os::agent").await.unwrap();
        write_frame(&mut a, &[1, 2, 3]).await.unwrap();
        drop(a);
        assert_eq!(read_hello(&mut b).await.unwrap(), "os::agent");
        assert_eq!(read_frame(&mut b, 16).await.unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(read_frame(&mut b, 16).await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_reading_it() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&1_000_000u32.to_be_bytes()).await.unwrap();
        let err = read_frame(&mut b, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLarge {
                size: 1_000_000,
                limit: 1024
            }
        ));
    }

    #[tokio::test]
    async fn truncated_frame_is_an_io_error() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"abc").await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame(&mut b, 1024).await,
            Err(FrameError::Io(_))
        ));
    }
}
