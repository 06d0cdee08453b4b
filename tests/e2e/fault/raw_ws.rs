//! A WebSocket client written by hand for one purpose: to send binary frames and never read a
//! byte, as a stuck or hostile controller would. (A real client library always reads.)

use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A session after the opening handshake.
pub struct RawSession {
    stream: TcpStream,
}

impl RawSession {
    /// Connects and completes the handshake (`v1.usp`, `eid=`), reading only the HTTP answer.
    pub async fn open(port: u16, endpoint_id: &str) -> anyhow::Result<RawSession> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!(
            "GET /usp?eid={endpoint_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v1.usp\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await? == 0 {
                bail!("the agent closed the connection during the handshake");
            }
            answer.push(byte[0]);
        }
        if !answer.starts_with(b"HTTP/1.1 101") {
            bail!(
                "handshake refused: {}",
                String::from_utf8_lossy(&answer)
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
        Ok(RawSession { stream })
    }

    /// Writes `payload` as masked binary frames for `duration` or until a write blocks for a
    /// second (the agent stopped reading). Returns how many frames were written.
    pub async fn send_for(&mut self, payload: &[u8], duration: Duration) -> usize {
        let frame = masked_binary_frame(payload);
        let end = Instant::now() + duration;
        let mut sent = 0;
        while Instant::now() < end {
            match tokio::time::timeout(Duration::from_secs(1), self.stream.write_all(&frame)).await
            {
                Ok(Ok(())) => sent += 1,
                _ => break,
            }
        }
        sent
    }
}

/// One FIN binary frame, masked as RFC 6455 requires of clients.
fn masked_binary_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x82];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
