//! Hidden entry points for the fuzz targets in `fuzz/` (re-exported as `pigeon_smpp::fuzzing`):
//! the session's own read path, not a copy of it. Not an API; it may change at any time.
//!
//! - [`session_decode`]: bytes from a peer, delivered in chunks of given sizes (and with
//!   reads that are not ready yet), through a `tokio_util` framed reader around
//!   `SessionCodec` — the same `FramedImpl` read loop and decoder the socket task polls — up
//!   to the end of the stream or the first error (after which the task closes the session).
//!   Every `deliver_sm` goes on to the receipt reading the task does: rusmpp's TLVs when it
//!   decoded, the lenient reader when it did not.
//! - [`lenient_deliver_sm`]: `lenient.rs`'s reader plus the same receipt reading on one frame.
//! - [`strict_deliver_sm`]: the same frame as `SessionCodec` and rusmpp decode it, for
//!   comparing the two readers on frames both accept.
//!
//! Nothing here panics on any input; the fuzz targets assert the invariants.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use rusmpp::Pdu;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Decoder, FramedRead};

use super::codec::{holds_frame, Frame, SessionCodec};
use super::lenient::read_deliver_sm;
use super::pdu::{receipt_of, receipt_parts};
use crate::receipt::{Receipt, ReceiptError, ReceiptTlvs};

/// One frame the session's reader produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSeen {
    /// Where the frame lies in the stream: `start..end`.
    pub start: usize,
    pub end: usize,
    /// Whether rusmpp decoded it (else it came out as a malformed frame).
    pub decoded: bool,
    /// The header as the session sees it (from rusmpp's command when decoded).
    pub command_id: u32,
    pub command_status: Option<u32>,
    pub sequence_number: u32,
    /// The raw PDU a malformed frame kept (`deliver_sm` only).
    pub raw: Option<Bytes>,
    /// For a `deliver_sm`: what the task's receipt reading made of it.
    pub deliver: Option<DeliverView>,
}

/// A `deliver_sm` as one of the session's readers sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverView {
    pub esm_class: u8,
    pub short_message: Vec<u8>,
    pub tlvs: ReceiptTlvs,
    pub payload: Option<Vec<u8>>,
    /// `None`: not a receipt (mobile originated); else the receipt read, or why not.
    pub receipt: Option<Result<Receipt, ReceiptError>>,
}

impl DeliverView {
    fn new(esm_class: u8, sm: &[u8], payload: Option<&[u8]>, tlvs: ReceiptTlvs) -> Self {
        Self {
            esm_class,
            short_message: sm.to_vec(),
            receipt: receipt_of(esm_class, sm, payload, &tlvs),
            payload: payload.map(<[u8]>::to_vec),
            tlvs,
        }
    }
}

/// How the reader ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSeen {
    pub frames: Vec<FrameSeen>,
    /// The error that ended the stream (the session closes then); `None` for a clean end.
    pub error: Option<String>,
    /// A read returned "not ready" although the buffer already held a whole PDU (the task
    /// would then wait for the peer with a PDU in hand).
    pub stalled_with_frame: bool,
}

/// An `AsyncRead` handing out `data` in reads of the sizes in `chunks`, cycled; a size of 0
/// is a read that is not ready yet (it wakes itself, as a socket would once data arrive).
struct ChunkedReader<'a> {
    data: &'a [u8],
    pos: usize,
    chunks: &'a [u8],
    next: usize,
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let size = match self.chunks.get(self.next % self.chunks.len().max(1)) {
            None => rest.len(),
            Some(&size) => usize::from(size),
        };
        self.next = self.next.wrapping_add(1);
        if size == 0 && !rest.is_empty() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = size.min(rest.len()).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Polls `framed` once; the reader never waits on anything, so no runtime is needed.
fn poll_once<T: Stream + Unpin>(framed: &mut T) -> Poll<Option<T::Item>> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    Pin::new(framed).poll_next(&mut cx)
}

/// Reads `stream` as a session reads its socket: chunk sizes from `chunks` (cycled; 0 is a
/// read that is not ready; empty or all zero means one read of everything).
pub fn session_decode(stream: &[u8], chunks: &[u8]) -> StreamSeen {
    let chunks = if chunks.iter().all(|&c| c == 0) {
        &[]
    } else {
        chunks
    };
    let reader = ChunkedReader {
        data: stream,
        pos: 0,
        chunks,
        next: 0,
    };
    let mut framed = FramedRead::new(reader, SessionCodec::new());
    let mut seen = StreamSeen {
        frames: Vec::new(),
        error: None,
        stalled_with_frame: false,
    };
    let mut start = 0;
    loop {
        let ready_frame = holds_frame(framed.read_buffer());
        let item = match poll_once(&mut framed) {
            Poll::Pending => {
                seen.stalled_with_frame |= ready_frame;
                continue;
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(e))) => {
                seen.error = Some(e.to_string());
                break;
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        let end = framed.get_ref().pos - framed.read_buffer().len();
        seen.frames.push(frame_seen(item, start, end));
        start = end;
    }
    seen
}

fn frame_seen(frame: Frame, start: usize, end: usize) -> FrameSeen {
    match frame {
        Frame::Command(cmd) => {
            let deliver = match cmd.pdu() {
                Some(Pdu::DeliverSm(d)) => {
                    let (tlvs, payload) = receipt_parts(d);
                    let sm: &[u8] = d.short_message().as_ref();
                    Some(DeliverView::new(u8::from(d.esm_class), sm, payload, tlvs))
                }
                _ => None,
            };
            FrameSeen {
                start,
                end,
                decoded: true,
                command_id: u32::from(cmd.id()),
                command_status: Some(u32::from(cmd.status())),
                sequence_number: cmd.sequence_number(),
                raw: None,
                deliver,
            }
        }
        Frame::Malformed(m) => FrameSeen {
            start,
            end,
            decoded: false,
            command_id: m.command_id,
            command_status: None,
            sequence_number: m.sequence_number,
            deliver: m.raw.as_deref().and_then(lenient_deliver_sm),
            raw: m.raw,
        },
    }
}

/// What the session makes of a `deliver_sm` rusmpp refused: the lenient reader, then the
/// receipt reading. `None` when even the mandatory fields cannot be found.
pub fn lenient_deliver_sm(pdu: &[u8]) -> Option<DeliverView> {
    let d = read_deliver_sm(pdu)?;
    Some(DeliverView::new(
        d.esm_class,
        d.short_message,
        d.payload,
        d.tlvs,
    ))
}

/// The same frame through `SessionCodec` as a stream would bring it: `Some` only when rusmpp
/// decodes it as a `deliver_sm` with a body.
pub fn strict_deliver_sm(pdu: &[u8]) -> Option<DeliverView> {
    let mut buf = BytesMut::from(pdu);
    match SessionCodec::new().decode(&mut buf) {
        Ok(Some(Frame::Command(cmd))) => match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => {
                let (tlvs, payload) = receipt_parts(d);
                let sm: &[u8] = d.short_message().as_ref();
                Some(DeliverView::new(u8::from(d.esm_class), sm, payload, tlvs))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The receipt the session reads from a decoded `deliver_sm` (TLVs first, text second), or
/// `None` when it is not a receipt: the same code path the socket task runs.
pub fn deliver_sm_receipt(
    d: &rusmpp::pdus::DeliverSm,
) -> Option<Result<crate::receipt::Receipt, crate::receipt::ReceiptError>> {
    let (tlvs, payload) = receipt_parts(d);
    receipt_of(
        u8::from(d.esm_class),
        d.short_message().as_ref(),
        payload,
        &tlvs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::lenient::tests::deliver_sm_bytes;

    #[test]
    fn chunking_does_not_change_the_frames() {
        let mut stream = deliver_sm_bytes(1, b"id:AB stat:DELIVRD", &[0x00, 0x1E, 0x00, 0x02]);
        stream.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 2]);
        let whole = session_decode(&stream, &[]);
        assert_eq!(whole.frames.len(), 2);
        assert_eq!(whole.error, None);
        assert!(!whole.frames[0].decoded);
        assert_eq!(whole.frames[1].end, stream.len());
        for chunks in [&[1][..], &[0, 3], &[7, 0, 0, 1]] {
            assert_eq!(session_decode(&stream, chunks), whole, "{chunks:?}");
        }
        let receipt = whole.frames[0]
            .deliver
            .as_ref()
            .and_then(|d| d.receipt.clone());
        assert_eq!(
            receipt.map(|r| r.map(|r| r.message_id)),
            Some(Ok("AB".into()))
        );
    }

    #[test]
    fn a_cut_stream_ends_in_an_error() {
        let stream = [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0];
        let seen = session_decode(&stream, &[1]);
        assert!(seen.frames.is_empty());
        assert!(seen.error.is_some());
    }
}
