//! A `short_message` from an SMSC (an MO message or a receipt) through `parse_part` with and
//! without UDHI, then `decode` under every `data_coding` Pigeon speaks.
//!
//! Checks: no panic; the payload is a suffix of the input; a concatenation header is
//! consistent (1 <= seq <= total); UCS-2 and Latin-1 decodings are exact (they re-encode to
//! the payload).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon_smpp::encoding::{decode, parse_part, Coding};

fuzz_target!(|data: &[u8]| {
    for udhi in [false, true] {
        let Ok(part) = parse_part(data, udhi) else {
            assert!(udhi, "without UDHI every message is a payload");
            continue;
        };
        assert!(data.ends_with(part.payload));
        if let Some((_, total, seq)) = part.concat {
            assert!(seq >= 1 && seq <= total);
        }
        for dc in 0..=u8::MAX {
            let Some(coding) = Coding::from_data_coding(dc) else {
                continue;
            };
            let Ok(text) = decode(coding, part.payload) else {
                assert_ne!(coding, Coding::Latin1, "latin-1 decoding cannot fail");
                continue;
            };
            match coding {
                Coding::Ucs2 => {
                    let units: Vec<u8> =
                        text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
                    assert_eq!(units, part.payload);
                }
                Coding::Latin1 => {
                    let octets: Vec<u8> = text.chars().map(|c| c as u8).collect();
                    assert_eq!(octets, part.payload);
                }
                Coding::Gsm7 => assert!(text.chars().count() <= part.payload.len()),
            }
        }
    }
});
