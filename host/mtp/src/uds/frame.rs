//! UDS MTP framing (USP 1.3): a header of the sync bytes `_USP` and a 4-byte big-endian length,
//! then one or more TLVs (1-byte type, 4-byte big-endian length, value). No I/O.

use bytes::{Buf, BufMut, BytesMut};

/// The sync bytes that open every frame.
pub(crate) const SYNC: [u8; 4] = *b"_USP";
const HEADER: usize = 8;
const TLV_HEADER: usize = 5;

/// One TLV of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tlv {
    /// Type 1: the sender's Endpoint ID.
    Handshake(String),
    /// Type 2: an error text; the receiver closes the connection.
    Error(String),
    /// Type 3: a USP Record.
    Record(Vec<u8>),
    /// Any other type: ignored.
    Unknown(u8),
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The frame does not start with `_USP`.
    #[error("frame does not start with the _USP sync bytes")]
    BadSync,
    /// The announced length exceeds what this endpoint accepts.
    #[error("frame of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    /// A TLV's length runs past the end of the frame.
    #[error("TLV length runs past the end of the frame")]
    TruncatedTlv,
    /// A Handshake or Error TLV is not UTF-8.
    #[error("TLV type {0} is not UTF-8")]
    NotUtf8(u8),
}

/// Encodes one frame holding `tlv`.
pub(crate) fn encode(tlv: &Tlv) -> Vec<u8> {
    let (kind, value): (u8, &[u8]) = match tlv {
        Tlv::Handshake(id) => (1, id.as_bytes()),
        Tlv::Error(text) => (2, text.as_bytes()),
        Tlv::Record(bytes) => (3, bytes),
        Tlv::Unknown(kind) => (*kind, &[]),
    };
    let body = TLV_HEADER + value.len();
    let mut out = Vec::with_capacity(HEADER + body);
    out.put_slice(&SYNC);
    out.put_u32(body as u32);
    out.put_u8(kind);
    out.put_u32(value.len() as u32);
    out.put_slice(value);
    out
}

/// Takes one complete frame off the front of `buf`. `Ok(None)` means more bytes are needed.
/// `max_body` bounds the announced length so a peer cannot make us buffer without limit.
pub(crate) fn decode(buf: &mut BytesMut, max_body: usize) -> Result<Option<Vec<Tlv>>, FrameError> {
    if buf.len() < HEADER {
        if !SYNC.starts_with(&buf[..buf.len().min(4)]) {
            return Err(FrameError::BadSync);
        }
        return Ok(None);
    }
    if buf[..4] != SYNC {
        return Err(FrameError::BadSync);
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > max_body {
        return Err(FrameError::TooLarge(len, max_body));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    buf.advance(HEADER);
    let mut body = buf.split_to(len);
    let mut tlvs = Vec::new();
    while !body.is_empty() {
        if body.len() < TLV_HEADER {
            return Err(FrameError::TruncatedTlv);
        }
        let kind = body.get_u8();
        let vlen = body.get_u32() as usize;
        if body.len() < vlen {
            return Err(FrameError::TruncatedTlv);
        }
        let value = body.split_to(vlen);
        let text = || String::from_utf8(value.to_vec()).map_err(|_| FrameError::NotUtf8(kind));
        tlvs.push(match kind {
            1 => Tlv::Handshake(text()?),
            2 => Tlv::Error(text()?),
            3 => Tlv::Record(value.to_vec()),
            other => Tlv::Unknown(other),
        });
    }
    Ok(Some(tlvs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Option<Vec<Tlv>>, FrameError> {
        decode(&mut BytesMut::from(bytes), 1 << 20)
    }

    #[test]
    fn handshake_round_trips() {
        let bytes = encode(&Tlv::Handshake("proto::agent".into()));
        assert_eq!(&bytes[..4], b"_USP");
        assert_eq!(
            decode_all(&bytes).unwrap(),
            Some(vec![Tlv::Handshake("proto::agent".into())])
        );
    }

    #[test]
    fn partial_frame_needs_more_bytes() {
        let bytes = encode(&Tlv::Record(vec![1, 2, 3]));
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode(&mut buf, 1024), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn two_frames_in_one_read_decode_in_order() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&encode(&Tlv::Record(vec![1])));
        buf.extend_from_slice(&encode(&Tlv::Error("bad".into())));
        assert_eq!(
            decode(&mut buf, 64).unwrap(),
            Some(vec![Tlv::Record(vec![1])])
        );
        assert_eq!(
            decode(&mut buf, 64).unwrap(),
            Some(vec![Tlv::Error("bad".into())])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn several_tlvs_in_one_frame_and_unknown_types() {
        let mut buf = BytesMut::new();
        buf.put_slice(b"_USP");
        buf.put_u32(5 + 2 + 5);
        buf.put_u8(9);
        buf.put_u32(2);
        buf.put_slice(b"xx");
        buf.put_u8(3);
        buf.put_u32(0);
        assert_eq!(
            decode(&mut buf, 64).unwrap(),
            Some(vec![Tlv::Unknown(9), Tlv::Record(vec![])])
        );
    }

    #[test]
    fn wrong_sync_is_rejected_early() {
        assert_eq!(decode_all(b"GET "), Err(FrameError::BadSync));
        assert_eq!(decode_all(b"_USX\0\0\0\0"), Err(FrameError::BadSync));
    }

    #[test]
    fn oversize_length_is_rejected_before_buffering() {
        let mut buf = BytesMut::from(&b"_USP\xff\xff\xff\xff"[..]);
        assert_eq!(
            decode(&mut buf, 1024),
            Err(FrameError::TooLarge(0xffff_ffff, 1024))
        );
    }

    #[test]
    fn tlv_running_past_the_frame_is_rejected() {
        let mut buf = BytesMut::new();
        buf.put_slice(b"_USP");
        buf.put_u32(6);
        buf.put_u8(3);
        buf.put_u32(100);
        buf.put_u8(0);
        assert_eq!(decode(&mut buf, 64), Err(FrameError::TruncatedTlv));
    }

    #[test]
    fn non_utf8_handshake_is_rejected() {
        let mut buf = BytesMut::new();
        buf.put_slice(b"_USP");
        buf.put_u32(6);
        buf.put_u8(1);
        buf.put_u32(1);
        buf.put_u8(0xff);
        assert_eq!(decode(&mut buf, 64), Err(FrameError::NotUtf8(1)));
    }
}
