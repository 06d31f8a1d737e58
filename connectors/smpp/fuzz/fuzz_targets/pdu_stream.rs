//! Bytes from an SMSC through rusmpp's `CommandCodec`, the way a session's read path takes
//! them: buffer, decode until `Ok(None)`, stop at the first error (the session closes the
//! connection then). Every `deliver_sm` goes on to the receipt and UDH readers, as the session
//! hands it on.
//!
//! Two read paths:
//! - the stream as `tokio_util::codec::Framed` drives `CommandCodec`, all at once and one byte
//!   per read;
//! - frame by frame: cut by `command_length` first, each frame decoded alone (what the
//!   session's own codec does, so a field cannot be read from the next PDU).
//!
//! Checks: no panic anywhere, and the receipt and UDH readers' invariants. With
//! `PIGEON_FUZZ_STRICT_RUSMPP=1`, also two properties rusmpp 0.4.0 does not have (hence off by
//! default, so the fuzzer keeps looking for panics):
//! - the stream path gives the same commands however reads split it (it does not: a C-string
//!   or single TLV missing its end inside the frame is completed from the next PDU's bytes,
//!   and body bytes a PDU type does not use are read as the next header);
//! - every command with a body decoded from its own frame encodes and decodes back to itself
//!   (it does not: a TLV value is read by its type, not bounded by its `value_length`, and the
//!   single `sc_interface_version` TLV of a bind response accepts any tag).

#![no_main]

use std::sync::OnceLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pigeon_smpp::encoding::{decode, parse_part, Coding};
use rusmpp::{tokio_codec::CommandCodec, Command, Pdu};
use tokio_util::codec::{Decoder, Encoder};

/// Decoded commands, and whether the stream ended in a decode error.
fn read_stream<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<Command>, bool) {
    let mut codec = CommandCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(cmd)) => out.push(cmd),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// What the session does with an inbound `deliver_sm`.
fn hand_on(cmd: &Command) {
    let Some(Pdu::DeliverSm(d)) = cmd.pdu() else {
        return;
    };
    if let Some(Ok(r)) = pigeon_smpp::fuzzing::deliver_sm_receipt(d) {
        assert!(!r.message_id.is_empty());
    }
    let sm: &[u8] = d.short_message().as_ref();
    let esm = u8::from(d.esm_class);
    if let Ok(part) = parse_part(sm, esm & 0x40 != 0) {
        if let Some(coding) = Coding::from_data_coding(u8::from(d.data_coding)) {
            let _ = decode(coding, part.payload);
        }
    }
}

/// The frames of a stream, cut by `command_length` (16..=8192, rusmpp's default maximum);
/// stops at the first impossible length or at an incomplete frame.
fn frames(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
        let len = usize::try_from(len)
            .ok()
            .filter(|l| (16..=8192).contains(l))?;
        let (frame, rest) = data.split_at_checked(len)?;
        data = rest;
        Some(frame)
    })
}

fn strict_rusmpp() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("PIGEON_FUZZ_STRICT_RUSMPP").is_some())
}

fuzz_target!(|data: &[u8]| {
    let (whole, whole_err) = read_stream(std::iter::once(data));
    let (bytewise, bytewise_err) = read_stream(data.chunks(1));
    if strict_rusmpp() {
        assert_eq!(
            whole, bytewise,
            "decoding depends on how reads split the stream"
        );
        assert_eq!(whole_err, bytewise_err);
    }
    for cmd in whole.iter().chain(&bytewise) {
        hand_on(cmd);
    }
    for frame in frames(data) {
        let mut codec = CommandCodec::new();
        let mut buf = BytesMut::from(frame);
        let Ok(Some(cmd)) = codec.decode(&mut buf) else {
            continue;
        };
        hand_on(&cmd);
        // Encoding what was decoded, and decoding that, must not panic either.
        let mut out = BytesMut::new();
        codec.encode(&cmd, &mut out).expect("encoding into memory");
        let back = codec.decode(&mut out);
        // rusmpp leaves the body out when a body-less PDU (enquire_link, unbind, ...) comes
        // with body bytes, or the command id is unknown; the header alone re-encodes as the
        // bodied form, so there is nothing to compare then.
        if strict_rusmpp() && cmd.pdu().is_some() {
            let back = back.expect("re-decoding an encoded command");
            assert_eq!(
                back.as_ref(),
                Some(&cmd),
                "command does not survive encode + decode"
            );
            assert!(out.is_empty(), "re-encoded command not consumed whole");
        }
    }
});
