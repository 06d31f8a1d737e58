//! The lenient `deliver_sm` reader (`session/lenient.rs`) and the receipt reading after it,
//! through `pigeon_smpp::fuzzing`, as the session runs them on a `deliver_sm` rusmpp refuses.
//!
//! Input: one frame, read twice:
//! - as it is (the reader skips the header, so any bytes are a frame to it);
//! - behind a sound `deliver_sm` header (command_length = its length), also through
//!   `SessionCodec`: when rusmpp decodes it, the lenient reader must accept it too and find
//!   the same esm_class and short_message (the two readers may differ on TLVs: rusmpp reads a
//!   TLV value by its type, not its length, and the lenient reader drops unprintable ids).
//!
//! Checks, besides no panic: the lenient reader's receipted_message_id is printable ASCII of
//! 1..=64 characters, fields never come from outside the frame, a receipt read carries a
//! non-empty message id.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon_smpp::fuzzing::{lenient_deliver_sm, strict_deliver_sm, DeliverView};

fn check(frame: &[u8], d: &DeliverView) {
    assert!(d.short_message.len() <= frame.len().saturating_sub(16));
    if let Some(p) = &d.payload {
        assert!(p.len() <= frame.len().saturating_sub(16));
    }
    if let Some(id) = &d.tlvs.receipted_message_id {
        assert!(!id.is_empty() && id.len() <= 64);
        assert!(id.bytes().all(|b| b.is_ascii_graphic()));
    }
    if let Some(Ok(r)) = &d.receipt {
        assert!(!r.message_id.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(d) = lenient_deliver_sm(data) {
        check(data, &d);
    }
    if !(16..=8192).contains(&data.len()) {
        return;
    }
    let mut frame = data.to_vec();
    let len = u32::try_from(frame.len()).unwrap();
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame[4..8].copy_from_slice(&5u32.to_be_bytes());
    let lenient = lenient_deliver_sm(&frame);
    if let Some(d) = &lenient {
        check(&frame, d);
    }
    if let Some(strict) = strict_deliver_sm(&frame) {
        let lenient = lenient.expect("lenient reader refuses a deliver_sm rusmpp decodes");
        assert_eq!(strict.esm_class, lenient.esm_class);
        assert_eq!(strict.short_message, lenient.short_message);
    }
});
