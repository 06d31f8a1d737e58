//! Engine text through `segment_with` under every alphabet and concatenation option.
//!
//! Checks: no panic; `reassemble` gives the text back (numbering consistent, every part
//! decodable alone, so no escape or surrogate pair split); the count helper agrees; no part
//! is over its limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon_smpp::encoding::{
    parse_part, reassemble, segment, segment_count_with, segment_with, Alphabet, Coding,
    Concatenation, SegmentOptions, MAX_PARTS,
};

const ALPHABETS: [Alphabet; 3] = [Alphabet::Gsm7, Alphabet::Latin1, Alphabet::Ucs2Only];
const CONCATENATIONS: [Concatenation; 4] = [
    Concatenation::Udh8,
    Concatenation::Udh16,
    Concatenation::Sar,
    Concatenation::MessagePayload,
];

/// Largest payload octets in one `short_message` of a split message (160 unpacked septets
/// with a 7-octet UDH is the most).
const MAX_SHORT_MESSAGE: usize = 160;

fuzz_target!(|input: (u16, &str)| {
    let (reference, text) = input;
    for alphabet in ALPHABETS {
        for concatenation in CONCATENATIONS {
            let opts = SegmentOptions {
                alphabet,
                concatenation,
            };
            let seg = segment_with(text, reference, &opts);
            assert_eq!(seg.parts.len(), segment_count_with(text, &opts));
            if seg.parts.len() > MAX_PARTS {
                // Callers must refuse such text; numbering saturates.
                continue;
            }
            assert_eq!(reassemble(&seg).as_deref(), Ok(text), "{opts:?}");
            if concatenation != Concatenation::MessagePayload {
                for p in &seg.parts {
                    let payload = parse_part(p, seg.has_udh()).map(|p| p.payload.len());
                    let len = payload.unwrap_or(usize::MAX);
                    let limit = match seg.coding {
                        Coding::Ucs2 => 140,
                        Coding::Gsm7 | Coding::Latin1 => MAX_SHORT_MESSAGE,
                    };
                    assert!(len <= limit, "{opts:?}: part payload {len} octets");
                }
            }
        }
    }
    assert_eq!(
        segment(text, reference as u8),
        segment_with(text, reference & 0xFF, &SegmentOptions::default())
    );
});
