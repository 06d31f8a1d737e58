//! What one `submit_sm` carries and what it adds to the stats: its payload and concatenation
//! header (UDH, else SAR TLVs), complete messages after reassembly, codings, and the
//! `(destination, text)` digest that tells unique messages from duplicates. Text is decoded
//! with `pigeon_smpp::encoding`, hashed, and dropped; it is never stored or logged.

use std::borrow::Cow;

use pigeon_smpp::encoding::{decode, parse_part, Coding};
use rusmpp::pdus::SubmitSm;
use rusmpp::tlvs::TlvValue;

use super::reassembly::Concat;
use super::server::CarrierShared;
use super::stats::{pair_digest, Counters};

/// UDHI bit of `esm_class`.
const ESM_UDHI: u8 = 0x40;

/// The concatenation header (if any) and the payload without UDH; `None` when the UDH is
/// malformed.
pub(crate) fn split(sm: &SubmitSm) -> Option<(Option<Concat>, &[u8])> {
    let body = message_payload(sm).unwrap_or_else(|| sm.short_message().as_ref());
    let udhi = u8::from(sm.esm_class) & ESM_UDHI != 0;
    let part = parse_part(body, udhi).ok()?;
    let concat = part
        .concat
        .map(|(reference, total, seq)| Concat {
            reference,
            total,
            seq,
        })
        .or_else(|| sar_concat(sm));
    Some((concat, part.payload))
}

/// Counts the message `sm` completes (itself, or the concatenated message it finishes).
pub(crate) fn count_message(
    carrier: &CarrierShared,
    sm: &SubmitSm,
    concat: Option<Concat>,
    payload: &[u8],
) {
    let source = sm.source_addr.as_str().as_bytes();
    let destination = sm.destination_addr.as_str().as_bytes();
    let (payload, segments) = match concat {
        Some(c) if c.is_multipart() => {
            match carrier.reassembly.offer(source, destination, c, payload) {
                Some(done) => (Cow::Owned(done.payload), done.segments),
                None => return,
            }
        }
        _ => (Cow::Borrowed(payload), 1),
    };
    let counters = &carrier.counters;
    let data_coding = u8::from(sm.data_coding);
    Counters::incr(&counters.messages);
    if let Some(observe) = &carrier.observer {
        observe.tell(&carrier.cfg.name, sm.destination_addr.as_str());
    }
    counters.count_coding(data_coding);
    if segments > 1 {
        Counters::add(&counters.segments_reassembled, u64::from(segments));
    }
    let digest = match Coding::from_data_coding(data_coding).map(|c| decode(c, &payload)) {
        Some(Ok(text)) => pair_digest(destination, text.as_bytes()),
        // Undecodable or unknown coding: the raw bytes, tagged so they never equal a text.
        _ => {
            let mut raw = Vec::with_capacity(payload.len() + 2);
            raw.extend_from_slice(&[0xFF, data_coding]);
            raw.extend_from_slice(&payload);
            pair_digest(destination, &raw)
        }
    };
    if carrier.pairs.insert(digest) {
        Counters::incr(&counters.unique_pairs);
    } else {
        Counters::incr(&counters.duplicate_pairs);
    }
}

/// The `message_payload` TLV, used instead of `short_message` when present.
fn message_payload(sm: &SubmitSm) -> Option<&[u8]> {
    sm.tlvs().iter().find_map(|tlv| match tlv.value() {
        Some(TlvValue::MessagePayload(p)) => Some(p.value.as_ref()),
        _ => None,
    })
}

/// Concatenation info carried in SAR TLVs, for ESMEs that split without a UDH.
fn sar_concat(sm: &SubmitSm) -> Option<Concat> {
    let (mut reference, mut total, mut seq) = (None, None, None);
    for tlv in sm.tlvs() {
        match tlv.value() {
            Some(TlvValue::SarMsgRefNum(r)) => reference = Some(*r),
            Some(TlvValue::SarTotalSegments(t)) => total = Some(*t),
            Some(TlvValue::SarSegmentSeqnum(s)) => seq = Some(*s),
            _ => {}
        }
    }
    Some(Concat {
        reference: reference?,
        total: total?,
        seq: seq?,
    })
}
