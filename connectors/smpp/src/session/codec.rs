//! Framing for the session: rusmpp's codec per PDU, with the frame boundaries kept by us.
//!
//! Role: cut the byte stream into PDUs by `command_length` and let rusmpp decode each one
//! alone. A PDU rusmpp rejects no longer ends the stream (tokio-util stops a `Framed` after
//! any decoder error): it comes out as [`Frame::Malformed`] with its header, and a
//! `deliver_sm` keeps its raw bytes so the task can still acknowledge it and read the receipt
//! leniently (see `lenient.rs`). Only framing faults — a `command_length` below 16 or above
//! the maximum — are errors, since after those the stream cannot be trusted.

use bytes::{Bytes, BytesMut};
use rusmpp::tokio_codec::{CommandCodec, EncodeError};
use rusmpp::{Command, CommandId};
use tokio_util::codec::{Decoder, Encoder};

/// Smallest PDU: the header alone.
const HEADER_LENGTH: usize = 16;
/// Largest PDU accepted (rusmpp's default too); larger means garbage or a hostile peer.
pub(super) const MAX_LENGTH: usize = 8192;

/// One PDU read from the peer.
// The large variant is the common one; boxing it would cost an allocation per PDU.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Frame {
    /// Decoded by rusmpp.
    Command(Command),
    /// Well framed, but rusmpp could not decode it.
    Malformed(Malformed),
}

/// A PDU rusmpp rejected: its header, why, and (for a `deliver_sm` only) the whole PDU.
#[derive(Debug)]
pub(super) struct Malformed {
    pub command_id: u32,
    pub sequence_number: u32,
    /// rusmpp's reason (field names and limits, never field contents).
    pub error: String,
    /// The whole PDU, header included; kept for `deliver_sm` only.
    pub raw: Option<Bytes>,
}

impl Malformed {
    pub fn is_deliver_sm(&self) -> bool {
        self.command_id == u32::from(CommandId::DeliverSm)
    }
}

/// Why the byte stream cannot be read any further.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("command_length {0} is outside 16..={MAX_LENGTH}")]
    Length(usize),
}

/// rusmpp's [`CommandCodec`] behind our own framing.
#[derive(Debug)]
pub(super) struct SessionCodec {
    inner: CommandCodec,
}

impl SessionCodec {
    pub fn new() -> Self {
        Self {
            inner: CommandCodec::new().without_max_length(),
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        word.copy_from_slice(s);
    }
    u32::from_be_bytes(word)
}

impl Decoder for SessionCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let length = usize::try_from(be_u32(src, 0)).unwrap_or(usize::MAX);
        if !(HEADER_LENGTH..=MAX_LENGTH).contains(&length) {
            return Err(FrameError::Length(length));
        }
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        let mut pdu = src.split_to(length);
        let command_id = be_u32(&pdu, 4);
        let sequence_number = be_u32(&pdu, 12);
        // Receipts are the PDUs sloppy SMSCs get wrong; keep their bytes for a second try.
        let raw =
            (command_id == u32::from(CommandId::DeliverSm)).then(|| Bytes::copy_from_slice(&pdu));
        let error = match self.inner.decode(&mut pdu) {
            Ok(Some(cmd)) => return Ok(Some(Frame::Command(cmd))),
            Ok(None) => "pdu shorter than its command_length".to_owned(),
            Err(e) => e.to_string(),
        };
        Ok(Some(Frame::Malformed(Malformed {
            command_id,
            sequence_number,
            error,
            raw,
        })))
    }
}

impl Encoder<Command> for SessionCodec {
    type Error = FrameError;

    fn encode(&mut self, cmd: Command, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.inner.encode(&cmd, dst).map_err(|e| match e {
            EncodeError::Io(io) => FrameError::Io(io),
            other => FrameError::Io(std::io::Error::other(other.to_string())),
        })
    }
}

/// Whether `buf` (a read buffer) already holds one whole PDU, so reading it cannot block.
pub(super) fn holds_frame(buf: &[u8]) -> bool {
    buf.len() >= 4 && buf.len() >= usize::try_from(be_u32(buf, 0)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::{CommandStatus, Pdu};

    fn encode(cmd: Command) -> BytesMut {
        let mut buf = BytesMut::new();
        SessionCodec::new().encode(cmd, &mut buf).unwrap();
        buf
    }

    #[test]
    fn frames_split_and_partial() {
        let mut buf = encode(Command::new(CommandStatus::EsmeRok, 7, Pdu::EnquireLink));
        buf.extend_from_slice(&encode(Command::new(
            CommandStatus::EsmeRok,
            8,
            Pdu::Unbind,
        )));
        let tail = buf.split_off(20);
        let mut codec = SessionCodec::new();
        assert!(holds_frame(&buf));
        let Some(Frame::Command(c)) = codec.decode(&mut buf).unwrap() else {
            panic!("no frame")
        };
        assert_eq!(c.sequence_number(), 7);
        assert!(!holds_frame(&buf));
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&tail);
        let Some(Frame::Command(c)) = codec.decode(&mut buf).unwrap() else {
            panic!("no frame")
        };
        assert_eq!(c.id(), CommandId::Unbind);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut codec = SessionCodec::new();
        let mut short = BytesMut::from(&[0, 0, 0, 8, 0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut short),
            Err(FrameError::Length(8))
        ));
        let mut huge = BytesMut::from(&[0, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(
            codec.decode(&mut huge),
            Err(FrameError::Length(_))
        ));
    }

    #[test]
    fn undecodable_pdu_is_a_frame_and_the_stream_goes_on() {
        // submit_sm_resp whose message_id has no terminating nul.
        let mut buf = BytesMut::from(
            &[
                0, 0, 0, 19, 0x80, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c',
            ][..],
        );
        buf.extend_from_slice(&encode(Command::new(
            CommandStatus::EsmeRok,
            4,
            Pdu::EnquireLink,
        )));
        let mut codec = SessionCodec::new();
        let Some(Frame::Malformed(m)) = codec.decode(&mut buf).unwrap() else {
            panic!("expected a malformed frame")
        };
        assert_eq!(m.command_id, 0x8000_0004);
        assert_eq!(m.sequence_number, 3);
        assert!(m.raw.is_none());
        assert!(!m.is_deliver_sm());
        let Some(Frame::Command(c)) = codec.decode(&mut buf).unwrap() else {
            panic!("stream did not go on")
        };
        assert_eq!(c.sequence_number(), 4);
    }

    #[test]
    fn undecodable_deliver_sm_keeps_its_bytes() {
        // receipted_message_id without its nul.
        let tlvs = [0x00, 0x1E, 0x00, 0x02, b'A', b'B'];
        let pdu = crate::session::lenient::tests::deliver_sm_bytes(5, b"id:AB", &tlvs);
        let mut buf = BytesMut::from(&pdu[..]);
        let Some(Frame::Malformed(m)) = SessionCodec::new().decode(&mut buf).unwrap() else {
            panic!("rusmpp decoded it after all")
        };
        assert!(m.is_deliver_sm());
        assert_eq!(m.sequence_number, 5);
        assert_eq!(m.raw.as_deref(), Some(&pdu[..]));
        // The same receipt with a proper nul decodes normally.
        let tlvs = [0x00, 0x1E, 0x00, 0x03, b'A', b'B', 0];
        let pdu = crate::session::lenient::tests::deliver_sm_bytes(6, b"id:AB", &tlvs);
        let mut buf = BytesMut::from(&pdu[..]);
        assert!(matches!(
            SessionCodec::new().decode(&mut buf).unwrap(),
            Some(Frame::Command(_))
        ));
    }
}
