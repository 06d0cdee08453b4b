//! Framing on the control socket: each frame is a 4-byte big-endian length followed by that
//! many bytes. Right after accepting, the agent sends one hello frame holding its Endpoint ID
//! (UTF-8); after that every frame in either direction is one serialized USP Record.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
