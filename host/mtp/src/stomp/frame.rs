//! STOMP 1.2 frames without I/O: encoding (header escaping, `content-length`) and incremental
//! decoding of frames and heart-beat EOLs from a byte buffer.

use bytes::{Buf, BytesMut};

/// Most bytes a command line plus headers may take; bigger means a broken or hostile peer.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// One STOMP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command (`CONNECT`, `SEND`, `MESSAGE`, …).
    pub command: String,
    /// Headers in the order they appear; a repeated name's first value counts.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What the decoder took off the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// One or more EOLs between frames: a heart-beat.
    Heartbeat,
    /// A complete frame.
    Frame(Frame),
}

/// Why bytes are not a STOMP frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The command line and headers exceed the limit.
    #[error("frame headers exceed {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    /// The body exceeds the limit.
    #[error("frame body of {0} bytes exceeds the limit of {1}")]
    BodyTooLarge(usize, usize),
    /// A header line has no colon, or the frame is not UTF-8 where it must be.
    #[error("malformed header line {0:?}")]
    BadHeader(String),
    /// An undefined escape sequence in a header (STOMP 1.2 makes it fatal).
    #[error("undefined escape sequence in header {0:?}")]
    BadEscape(String),
    /// `content-length` is not a number.
    #[error("invalid content-length {0:?}")]
    BadContentLength(String),
    /// The body is not followed by NUL.
    #[error("frame body is not terminated by NUL")]
    MissingNul,
}

/// Whether headers of this command are escaped (all but CONNECT and CONNECTED).
fn escaped(command: &str) -> bool {
    command != "CONNECT" && command != "CONNECTED"
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, FrameError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            _ => return Err(FrameError::BadEscape(s.to_string())),
        }
    }
    Ok(out)
}

impl Frame {
    /// A frame with this command, no headers and no body.
    pub fn new(command: &str) -> Self {
        Frame {
            command: command.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The first value of header `name` (STOMP 1.2: repeated headers keep the first).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The wire form; a non-empty body gets a `content-length` header.
    pub fn encode(&self) -> Vec<u8> {
        let esc = escaped(&self.command);
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(self.command.as_bytes());
        out.push(b'\n');
        for (k, v) in &self.headers {
            let (k, v) = if esc {
                (escape(k), escape(v))
            } else {
                (k.clone(), v.clone())
            };
            out.extend_from_slice(k.as_bytes());
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        if !self.body.is_empty() && self.get("content-length").is_none() {
            out.extend_from_slice(format!("content-length:{}\n", self.body.len()).as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out.push(0);
        out
    }
}

/// Takes one frame or heart-beat off the front of `buf`; `Ok(None)` means more bytes are needed.
pub fn decode(buf: &mut BytesMut, max_body: usize) -> Result<Option<Parsed>, FrameError> {
    let eols = buf
        .iter()
        .take_while(|b| **b == b'\n' || **b == b'\r')
        .count();
    if eols > 0 {
        buf.advance(eols);
        return Ok(Some(Parsed::Heartbeat));
    }
    let Some(head_end) = find_head_end(buf) else {
        if buf.len() > MAX_HEADER_BYTES {
            return Err(FrameError::HeadersTooLarge);
        }
        return Ok(None);
    };
    let (head_len, sep_len) = head_end;
    if head_len > MAX_HEADER_BYTES {
        return Err(FrameError::HeadersTooLarge);
    }
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| FrameError::BadHeader("<not UTF-8>".to_string()))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let command = lines.next().unwrap_or_default().to_string();
    let esc = escaped(&command);
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| FrameError::BadHeader(line.to_string()))?;
        if esc {
            headers.push((unescape(k)?, unescape(v)?));
        } else {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let body_start = head_len + sep_len;
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| FrameError::BadContentLength(v.clone()))
        })
        .transpose()?;
    let body_len = match length {
        Some(len) => {
            if len > max_body {
                return Err(FrameError::BodyTooLarge(len, max_body));
            }
            if buf.len() < body_start + len + 1 {
                return Ok(None);
            }
            if buf[body_start + len] != 0 {
                return Err(FrameError::MissingNul);
            }
            len
        }
        None => match buf[body_start..].iter().position(|b| *b == 0) {
            Some(len) if len > max_body => return Err(FrameError::BodyTooLarge(len, max_body)),
            Some(len) => len,
            None if buf.len() - body_start > max_body => {
                return Err(FrameError::BodyTooLarge(buf.len() - body_start, max_body));
            }
            None => return Ok(None),
        },
    };
    let body = buf[body_start..body_start + body_len].to_vec();
    buf.advance(body_start + body_len + 1);
    Ok(Some(Parsed::Frame(Frame {
        command,
        headers,
        body,
    })))
}

/// Length of the command and header lines, and of the blank-line separator after them.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> Result<Option<Parsed>, FrameError> {
        decode(&mut BytesMut::from(bytes), 1024)
    }

    #[test]
    fn send_frame_round_trips_with_binary_body() {
        let f = Frame::new("SEND")
            .header("destination", "/queue/a")
            .header("endpoint-id", "proto::x")
            .body(vec![0, 1, 2, 0xff]);
        let wire = f.encode();
        assert!(wire.windows(22).any(|w| w == b"endpoint-id:proto\\c\\cx"));
        let Some(Parsed::Frame(back)) = one(&wire).unwrap() else {
            panic!("no frame")
        };
        assert_eq!(back.get("content-length"), Some("4"));
        assert_eq!(back.body, vec![0, 1, 2, 0xff]);
        assert_eq!(back.get("endpoint-id"), Some("proto::x"));
    }

    #[test]
    fn connected_headers_are_not_unescaped() {
        let Some(Parsed::Frame(f)) = one(b"CONNECTED\nversion:1.2\nserver:a\\b\n\n\0").unwrap()
        else {
            panic!("no frame")
        };
        assert_eq!(f.get("server"), Some("a\\b"));
    }

    #[test]
    fn frame_without_content_length_ends_at_nul_and_crlf_is_accepted() {
        let Some(Parsed::Frame(f)) = one(b"MESSAGE\r\ndestination:/q\r\n\r\nhello\0").unwrap()
        else {
            panic!("no frame")
        };
        assert_eq!(f.get("destination"), Some("/q"));
        assert_eq!(f.body, b"hello");
    }

    #[test]
    fn heartbeats_and_partial_frames() {
        let mut buf = BytesMut::from(&b"\n\r\nMESSAGE\ncontent-length:3\n\nab"[..]);
        assert_eq!(decode(&mut buf, 64), Ok(Some(Parsed::Heartbeat)));
        assert_eq!(decode(&mut buf, 64), Ok(None));
        buf.extend_from_slice(b"c\0");
        let Some(Parsed::Frame(f)) = decode(&mut buf, 64).unwrap() else {
            panic!("no frame")
        };
        assert_eq!(f.body, b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn repeated_header_keeps_the_first_value() {
        let Some(Parsed::Frame(f)) = one(b"MESSAGE\nfoo:1\nfoo:2\n\n\0").unwrap() else {
            panic!("no frame")
        };
        assert_eq!(f.get("foo"), Some("1"));
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(
            one(b"MESSAGE\nnocolon\n\n\0"),
            Err(FrameError::BadHeader(_))
        ));
        assert!(matches!(
            one(b"MESSAGE\na:\\x\n\n\0"),
            Err(FrameError::BadEscape(_))
        ));
        assert!(matches!(
            one(b"MESSAGE\ncontent-length:zz\n\n\0"),
            Err(FrameError::BadContentLength(_))
        ));
        assert_eq!(
            one(b"MESSAGE\ncontent-length:1\n\nab"),
            Err(FrameError::MissingNul)
        );
    }

    #[test]
    fn oversize_body_is_refused_before_it_arrives() {
        assert_eq!(
            one(b"MESSAGE\ncontent-length:5000\n\n"),
            Err(FrameError::BodyTooLarge(5000, 1024))
        );
        let mut big = b"MESSAGE\n\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 2000));
        assert!(matches!(one(&big), Err(FrameError::BodyTooLarge(..))));
    }

    #[test]
    fn endless_headers_are_refused() {
        let big = vec![b'a'; MAX_HEADER_BYTES + 10];
        assert_eq!(one(&big), Err(FrameError::HeadersTooLarge));
    }
}
