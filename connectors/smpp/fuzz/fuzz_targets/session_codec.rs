//! Bytes from an SMSC through the session's own reader (`pigeon_smpp::fuzzing::session_decode`:
//! `SessionCodec` polled by tokio-util's framed read loop, as the socket task polls it), in
//! reads of arbitrary sizes, some not ready yet. Every `deliver_sm` goes on to the receipt
//! reading the task does (rusmpp's TLVs, or the lenient reader for PDUs rusmpp refuses).
//!
//! Input: the first byte `k`; the next `k % 8` bytes are read sizes (cycled; 0 is a read that
//! is not ready; none means one read of everything); the rest is the stream.
//!
//! Checks, besides no panic:
//! - frames are contiguous from the start of the stream, each exactly `command_length` long,
//!   with `command_length` in 16..=8192;
//! - the header the session acts on (id, status, sequence number) is the frame's own;
//! - a malformed `deliver_sm` keeps exactly its frame's bytes, other malformed frames none;
//! - a clean end consumed the whole stream; an error only where the stream really is broken
//!   (a `command_length` outside 16..=8192, or a stream ending inside a PDU);
//! - the result does not depend on how reads split the stream;
//! - a read is never left waiting while the buffer holds a whole PDU;
//! - a receipt read carries a non-empty message id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon_smpp::fuzzing::{session_decode, StreamSeen};

const DELIVER_SM: u32 = 0x0000_0005;

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn check(stream: &[u8], seen: &StreamSeen) {
    assert!(
        !seen.stalled_with_frame,
        "read waited with a whole pdu buffered"
    );
    let mut at = 0;
    for f in &seen.frames {
        assert_eq!(f.start, at, "frames are not contiguous");
        let len = usize::try_from(be_u32(&stream[at..at + 4])).unwrap();
        assert!(
            (16..=8192).contains(&len),
            "frame with command_length {len}"
        );
        assert_eq!(
            f.end - f.start,
            len,
            "frame does not match its command_length"
        );
        let frame = &stream[f.start..f.end];
        assert_eq!(f.sequence_number, be_u32(&frame[12..16]));
        if f.decoded {
            assert_eq!(f.command_id, be_u32(&frame[4..8]), "command id changed");
            assert_eq!(f.command_status, Some(be_u32(&frame[8..12])));
            assert!(f.raw.is_none());
        } else {
            assert_eq!(f.command_id, be_u32(&frame[4..8]));
            if f.command_id == DELIVER_SM {
                assert_eq!(
                    f.raw.as_deref(),
                    Some(frame),
                    "raw deliver_sm is not its frame"
                );
            } else {
                assert!(f.raw.is_none());
                assert!(f.deliver.is_none());
            }
        }
        if let Some(Some(Ok(r))) = f.deliver.as_ref().map(|d| &d.receipt) {
            assert!(!r.message_id.is_empty());
        }
        at = f.end;
    }
    let rest = &stream[at..];
    match &seen.error {
        None => assert!(
            rest.is_empty(),
            "clean end with {} bytes unread",
            rest.len()
        ),
        Some(e) => {
            let broken = rest.len() < 4 || {
                let len = usize::try_from(be_u32(rest)).unwrap();
                !(16..=8192).contains(&len) || rest.len() < len
            };
            assert!(broken, "error on a sound stream: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 8).min(rest.len());
    let (chunks, stream) = rest.split_at(k);
    let seen = session_decode(stream, chunks);
    check(stream, &seen);
    if !chunks.is_empty() {
        let whole = session_decode(stream, &[]);
        assert_eq!(
            whole, seen,
            "decoding depends on how reads split the stream"
        );
    }
});
