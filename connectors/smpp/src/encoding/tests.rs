//! Unit and property tests for [`super`].

use super::*;
use proptest::prelude::*;

/// Every character of GSM 03.38, written out independently of the encoder's tables.
const GSM_CHARS: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXT_CHARS: &str = "\u{0C}^{}\\[~]|€";

fn reassemble(seg: &Segmented) -> String {
    let udhi = seg.esm_class() & ESM_CLASS_UDHI != 0;
    let mut out = String::new();
    for (i, p) in seg.parts.iter().enumerate() {
        let part = parse_part(p, udhi).unwrap();
        if seg.parts.len() > 1 {
            let (_, total, seq) = part.concat.unwrap();
            assert_eq!(usize::from(total), seg.parts.len());
            assert_eq!(usize::from(seq), i + 1);
        } else {
            assert!(part.concat.is_none());
        }
        out.push_str(&decode(seg.coding, part.payload).unwrap());
    }
    out
}

fn payload_units(seg: &Segmented, p: &[u8]) -> usize {
    let payload = parse_part(p, seg.parts.len() > 1).unwrap().payload;
    match seg.coding {
        Coding::Gsm7 | Coding::Latin1 => payload.len(),
        Coding::Ucs2 => payload.len() / 2,
    }
}

#[test]
fn data_coding_round_trip() {
    for c in [Coding::Gsm7, Coding::Ucs2, Coding::Latin1] {
        assert_eq!(Coding::from_data_coding(c.data_coding()), Some(c));
    }
    assert_eq!(Coding::Gsm7.data_coding(), 0x00);
    assert_eq!(Coding::Ucs2.data_coding(), 0x08);
    assert_eq!(Coding::Latin1.data_coding(), 0x03);
    assert_eq!(Coding::from_data_coding(0x04), None);
}

#[test]
fn table_has_128_distinct_characters() {
    let mut all: Vec<char> = GSM_CHARS.chars().collect();
    assert_eq!(all.len(), 127); // 128 minus the escape
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 127);
    for c in GSM_CHARS.chars().chain(GSM_EXT_CHARS.chars()) {
        assert!(is_gsm7(c), "{c:?}");
    }
    assert!(!is_gsm7('\u{1B}'));
    assert!(!is_gsm7('ç'));
    assert!(!is_gsm7('`'));
}

#[test]
fn plain_ascii_is_gsm_single_part() {
    let s = segment("Your account was debited 12.50 EUR", 7);
    assert_eq!(s.coding, Coding::Gsm7);
    assert_eq!(s.parts.len(), 1);
    assert_eq!(s.esm_class(), 0);
    assert_eq!(&s.parts[0][..4], b"You\x72");
}

#[test]
fn extension_chars_are_escaped() {
    let s = segment("€[", 1);
    assert_eq!(s.parts, vec![vec![0x1B, 0x65, 0x1B, 0x3C]]);
    assert_eq!(decode(Coding::Gsm7, &s.parts[0]).unwrap(), "€[");
    let ff = segment("\u{0C}", 1);
    assert_eq!(ff.parts, vec![vec![0x1B, 0x0A]]);
}

#[test]
fn gsm_limits() {
    assert_eq!(segment_count(&"a".repeat(160)), 1);
    assert_eq!(segment_count(&"a".repeat(161)), 2);
    assert_eq!(segment_count(&"a".repeat(306)), 2);
    assert_eq!(segment_count(&"a".repeat(307)), 3);
    // 80 euro signs are 160 septets: one part; 81 need two.
    assert_eq!(segment_count(&"€".repeat(80)), 1);
    assert_eq!(segment_count(&"€".repeat(81)), 2);
    assert_eq!(segment_count(""), 1);
    assert_eq!(segment("", 0).parts, vec![Vec::<u8>::new()]);
}

#[test]
fn escape_pair_not_split() {
    // 152 septets then an escape pair: the pair must move to part 2.
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let s = segment(&text, 9);
    assert_eq!(s.parts.len(), 2);
    assert_eq!(s.parts[0][..6], [0x05, 0x00, 0x03, 9, 2, 1]);
    assert_eq!(s.parts[0].len(), 6 + 152);
    assert_eq!(s.parts[1][..8], [0x05, 0x00, 0x03, 9, 2, 2, 0x1B, 0x65]);
    assert_eq!(reassemble(&s), text);
}

#[test]
fn ucs2_limits_and_surrogates() {
    assert_eq!(choose_coding("借记 100 元"), Coding::Ucs2);
    assert_eq!(segment_count(&"借".repeat(70)), 1);
    assert_eq!(segment_count(&"借".repeat(71)), 2);
    assert_eq!(segment_count(&"😀".repeat(35)), 1);
    assert_eq!(segment_count(&"😀".repeat(36)), 2);
    // 66 units then a surrogate pair: the pair must move to part 2.
    let text = format!("{}😀xxxx", "借".repeat(66));
    let s = segment(&text, 3);
    assert_eq!(s.parts.len(), 2);
    assert_eq!(s.esm_class(), 0x40);
    assert_eq!(s.parts[0].len(), 6 + 66 * 2);
    assert_eq!(reassemble(&s), text);
    let e = segment("😀", 0);
    assert_eq!(e.parts, vec![vec![0xD8, 0x3D, 0xDE, 0x00]]);
}

#[test]
fn parse_part_variants() {
    assert_eq!(
        parse_part(&[5, 0, 3, 7, 2, 1, b'h'], true).unwrap(),
        Part {
            concat: Some((7, 2, 1)),
            payload: b"h"
        }
    );
    // 16-bit reference.
    assert_eq!(
        parse_part(&[6, 8, 4, 0x12, 0x34, 3, 2, b'x'], true).unwrap(),
        Part {
            concat: Some((0x1234, 3, 2)),
            payload: b"x"
        }
    );
    // Unknown IE skipped (0x24 national language, 1 byte), then concat.
    assert_eq!(
        parse_part(&[8, 0x24, 1, 0, 0, 3, 1, 1, 1, b'z'], true).unwrap(),
        Part {
            concat: Some((1, 1, 1)),
            payload: b"z"
        }
    );
    // Header without concatenation.
    assert_eq!(
        parse_part(&[3, 0x24, 1, 0, b'q'], true).unwrap(),
        Part {
            concat: None,
            payload: b"q"
        }
    );
    assert_eq!(parse_part(b"abc", false).unwrap().payload, b"abc");
    for bad in [
        &[][..],
        &[6, 0, 3, 1, 2, 1],    // header longer than message
        &[5, 0, 4, 1, 2, 1],    // element longer than header
        &[4, 0, 2, 1, 2, b'x'], // concat of wrong length
        &[5, 0, 3, 1, 0, 0],    // total 0
        &[5, 0, 3, 1, 2, 3],    // seq > total
        &[1, 0],                // element header truncated
    ] {
        assert_eq!(parse_part(bad, true), Err(EncodingError::BadUdh), "{bad:?}");
    }
}

#[test]
fn decode_errors() {
    assert_eq!(
        decode(Coding::Gsm7, &[0x80]),
        Err(EncodingError::BadSeptet(0x80))
    );
    assert_eq!(
        decode(Coding::Gsm7, &[b'a', 0x1B]),
        Err(EncodingError::BadSeptet(0x1B))
    );
    assert_eq!(decode(Coding::Ucs2, &[0]), Err(EncodingError::BadUcs2));
    assert_eq!(
        decode(Coding::Ucs2, &[0xD8, 0x3D]),
        Err(EncodingError::BadUcs2)
    );
    // Unknown extension code falls back to the default table.
    assert_eq!(decode(Coding::Gsm7, &[0x1B, b'A']).unwrap(), "A");
}

fn text_strategy() -> impl Strategy<Value = String> {
    let gsm: Vec<char> = GSM_CHARS.chars().collect();
    let ext: Vec<char> = GSM_EXT_CHARS.chars().collect();
    let ch = prop_oneof![
        6 => proptest::sample::select(gsm),
        2 => proptest::sample::select(ext),
        1 => any::<char>(),
        1 => proptest::char::range('\u{1F600}', '\u{1F64F}'),
    ];
    prop_oneof![
        proptest::collection::vec(ch.clone(), 0..400),
        // Mostly-GSM text: keep the GSM path well exercised.
        proptest::collection::vec(
            prop_oneof![
                8 => proptest::sample::select(GSM_CHARS.chars().collect::<Vec<_>>()),
                2 => proptest::sample::select(GSM_EXT_CHARS.chars().collect::<Vec<_>>()),
            ],
            0..500
        ),
    ]
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn round_trip_and_limits(text in text_strategy(), reference in any::<u8>()) {
        let seg = segment(&text, reference);
        prop_assert_eq!(seg.parts.len(), segment_count(&text));
        prop_assert_eq!(reassemble(&seg), text.clone());
        let multi = seg.parts.len() > 1;
        let limit = match (seg.coding, multi) {
            (Coding::Gsm7, false) => GSM7_SINGLE,
            (Coding::Gsm7, true) => GSM7_PART,
            (Coding::Ucs2, false) => UCS2_SINGLE,
            (Coding::Ucs2, true) => UCS2_PART,
            (Coding::Latin1, _) => unreachable!("the default alphabet never picks latin-1"),
        };
        for p in &seg.parts {
            prop_assert!(payload_units(&seg, p) <= limit);
            let payload = parse_part(p, multi).unwrap().payload;
            // Each part decodes alone: no split escape or surrogate pair.
            prop_assert!(decode(seg.coding, payload).is_ok());
            if multi {
                prop_assert_eq!(p[3], reference);
            }
        }
    }

    #[test]
    fn coding_choice(text in text_strategy()) {
        let all_gsm = text.chars().all(|c| GSM_CHARS.contains(c) || GSM_EXT_CHARS.contains(c));
        prop_assert_eq!(choose_coding(&text) == Coding::Gsm7, all_gsm);
    }

    #[test]
    fn parse_and_decode_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), udhi in any::<bool>()) {
        if let Ok(p) = parse_part(&bytes, udhi) {
            let _ = decode(Coding::Gsm7, p.payload);
            let _ = decode(Coding::Ucs2, p.payload);
        }
    }
}
