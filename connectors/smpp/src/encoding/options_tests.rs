//! Tests for the per-carrier options: [`Alphabet`], [`Concatenation`], [`segment_with`],
//! [`reassemble`].

use super::*;
use proptest::prelude::*;

const ALPHABETS: [Alphabet; 3] = [Alphabet::Gsm7, Alphabet::Latin1, Alphabet::Ucs2Only];
const CONCATENATIONS: [Concatenation; 4] = [
    Concatenation::Udh8,
    Concatenation::Udh16,
    Concatenation::Sar,
    Concatenation::MessagePayload,
];

fn opts(alphabet: Alphabet, concatenation: Concatenation) -> SegmentOptions {
    SegmentOptions {
        alphabet,
        concatenation,
    }
}

/// (single, per part) limits in units, written out independently of the implementation.
fn limits(coding: Coding, c: Concatenation) -> (usize, usize) {
    let single = match coding {
        Coding::Gsm7 => 160,
        Coding::Ucs2 => 70,
        Coding::Latin1 => 140,
    };
    let part = match (c, coding) {
        (Concatenation::MessagePayload, _) => usize::MAX,
        (Concatenation::Udh8, Coding::Gsm7) => 153,
        (Concatenation::Udh8, Coding::Ucs2) => 67,
        (Concatenation::Udh8, Coding::Latin1) => 134,
        (_, Coding::Gsm7) => 152,
        (_, Coding::Ucs2) => 66,
        (_, Coding::Latin1) => 133,
    };
    (single, part)
}

fn units(coding: Coding, payload: &[u8]) -> usize {
    match coding {
        Coding::Ucs2 => payload.len() / 2,
        Coding::Gsm7 | Coding::Latin1 => payload.len(),
    }
}

#[test]
fn default_is_todays_behaviour() {
    assert_eq!(
        SegmentOptions::default(),
        opts(Alphabet::Gsm7, Concatenation::Udh8)
    );
    let text = format!("{}€{}", "a".repeat(152), "借");
    for r in [0u8, 7, 255] {
        assert_eq!(
            segment(&text, r),
            segment_with(&text, u16::from(r), &SegmentOptions::default())
        );
    }
}

#[test]
fn alphabet_choice() {
    let cases = [
        ("café 12.50 EUR", Coding::Gsm7, Coding::Gsm7, Coding::Ucs2),
        // ç and ` are Latin-1 but not GSM.
        ("Façade `x`", Coding::Ucs2, Coding::Latin1, Coding::Ucs2),
        // € is GSM (extension) but not Latin-1; with ç neither GSM nor Latin-1 carries both.
        ("10 € ça", Coding::Ucs2, Coding::Ucs2, Coding::Ucs2),
        ("借记", Coding::Ucs2, Coding::Ucs2, Coding::Ucs2),
        ("", Coding::Gsm7, Coding::Gsm7, Coding::Ucs2),
    ];
    for (text, gsm, latin, ucs) in cases {
        assert_eq!(Alphabet::Gsm7.choose(text), gsm, "{text}");
        assert_eq!(Alphabet::Latin1.choose(text), latin, "{text}");
        assert_eq!(Alphabet::Ucs2Only.choose(text), ucs, "{text}");
    }
    assert_eq!(Coding::from_data_coding(0x03), Some(Coding::Latin1));
}

#[test]
fn latin1_encoding_and_limits() {
    let o = opts(Alphabet::Latin1, Concatenation::Udh8);
    let s = segment_with("çÿ\u{80}", 1, &o);
    assert_eq!(s.coding, Coding::Latin1);
    assert_eq!(s.parts, vec![vec![0xE7, 0xFF, 0x80]]);
    assert_eq!(decode(Coding::Latin1, &s.parts[0]).unwrap(), "çÿ\u{80}");
    assert_eq!(segment_count_with(&"ç".repeat(140), &o), 1);
    assert_eq!(segment_count_with(&"ç".repeat(141), &o), 2);
    assert_eq!(segment_count_with(&"ç".repeat(268), &o), 2);
    assert_eq!(segment_count_with(&"ç".repeat(269), &o), 3);
    let o16 = opts(Alphabet::Latin1, Concatenation::Udh16);
    assert_eq!(segment_count_with(&"ç".repeat(266), &o16), 2);
    assert_eq!(segment_count_with(&"ç".repeat(267), &o16), 3);
}

#[test]
fn udh16_header_and_limits() {
    let o = opts(Alphabet::Gsm7, Concatenation::Udh16);
    let text = "a".repeat(161);
    let s = segment_with(&text, 0x1234, &o);
    assert_eq!(s.parts.len(), 2);
    assert_eq!(s.esm_class(), ESM_CLASS_UDHI);
    assert_eq!(s.parts[0][..7], [0x06, 0x08, 0x04, 0x12, 0x34, 2, 1]);
    assert_eq!(s.parts[0].len(), UDH16_LEN + 152);
    assert_eq!(s.parts[1][..7], [0x06, 0x08, 0x04, 0x12, 0x34, 2, 2]);
    assert_eq!(s.parts[1].len(), UDH16_LEN + 9);
    assert_eq!(
        parse_part(&s.parts[1], true).unwrap().concat,
        Some((0x1234, 2, 2))
    );
    assert_eq!(reassemble(&s).unwrap(), text);
    // 151 septets then an escape pair: the pair moves to part 2.
    let text = format!("{}€{}", "a".repeat(151), "b".repeat(10));
    let s = segment_with(&text, 1, &o);
    assert_eq!(s.parts[0].len(), UDH16_LEN + 151);
    assert_eq!(s.parts[1][7..9], [0x1B, 0x65]);
    // UCS-2: 66 units per part.
    let o = opts(Alphabet::Gsm7, Concatenation::Udh16);
    assert_eq!(segment_count_with(&"借".repeat(132), &o), 2);
    assert_eq!(segment_count_with(&"借".repeat(133), &o), 3);
}

#[test]
fn udh8_takes_the_low_octet_of_the_reference() {
    let s = segment_with(&"a".repeat(200), 0xAB12, &SegmentOptions::default());
    assert_eq!(s.parts[0][..6], [0x05, 0x00, 0x03, 0x12, 2, 1]);
}

#[test]
fn sar_parts_have_no_udh() {
    let o = opts(Alphabet::Gsm7, Concatenation::Sar);
    let text = format!("{}😀{}", "借".repeat(65), "x".repeat(70));
    let s = segment_with(&text, 0xBEEF, &o);
    assert_eq!(s.coding, Coding::Ucs2);
    assert_eq!(s.parts.len(), 3);
    assert_eq!(s.esm_class(), 0);
    assert!(!s.has_udh());
    assert_eq!(
        s.sar,
        Some(SarInfo {
            reference: 0xBEEF,
            total: 3
        })
    );
    // 65 units then a surrogate pair that would cross the 66-unit limit.
    assert_eq!(s.parts[0].len(), 65 * 2);
    assert_eq!(s.parts[1][..4], [0xD8, 0x3D, 0xDE, 0x00]);
    assert_eq!(s.sar_for_part(0), Some((0xBEEF, 3, 1)));
    assert_eq!(s.sar_for_part(2), Some((0xBEEF, 3, 3)));
    assert_eq!(s.sar_for_part(3), None);
    assert_eq!(reassemble(&s).unwrap(), text);
    // Fits one message: no SAR at all.
    let one = segment_with(&"a".repeat(160), 9, &o);
    assert_eq!((one.parts.len(), one.sar), (1, None));
    assert_eq!(one.sar_for_part(0), None);
    assert_eq!(segment_count_with(&"a".repeat(304), &o), 2);
    assert_eq!(segment_count_with(&"a".repeat(305), &o), 3);
}

#[test]
fn message_payload_is_one_unsplit_part() {
    let o = opts(Alphabet::Gsm7, Concatenation::MessagePayload);
    let text = "a".repeat(1000);
    let s = segment_with(&text, 5, &o);
    assert_eq!(s.parts, vec![vec![b'a'; 1000]]);
    assert!(s.payload_tlv);
    assert_eq!((s.esm_class(), s.sar), (0, None));
    assert_eq!(segment_count_with(&text, &o), 1);
    assert_eq!(reassemble(&s).unwrap(), text);
    assert!(segment_with("hi", 5, &o).payload_tlv);
}

#[test]
fn reassemble_rejects_inconsistent_parts() {
    let s = segment(&"a".repeat(400), 3);
    let mut swapped = s.clone();
    swapped.parts.swap(0, 1);
    assert_eq!(reassemble(&swapped), Err(EncodingError::BadConcatenation));
    let mut other_ref = s.clone();
    other_ref.parts[1][3] = 4;
    assert_eq!(reassemble(&other_ref), Err(EncodingError::BadConcatenation));
    let mut missing = s.clone();
    missing.parts.pop();
    assert_eq!(reassemble(&missing), Err(EncodingError::BadConcatenation));
    let mut sar = segment_with(
        &"a".repeat(400),
        3,
        &opts(Alphabet::Gsm7, Concatenation::Sar),
    );
    sar.parts.pop();
    assert_eq!(reassemble(&sar), Err(EncodingError::BadConcatenation));
    let mut payload = segment_with("x", 1, &opts(Alphabet::Gsm7, Concatenation::MessagePayload));
    payload.parts.push(Vec::new());
    assert_eq!(reassemble(&payload), Err(EncodingError::BadConcatenation));
    let mut split_pair = segment_with("😀", 1, &opts(Alphabet::Ucs2Only, Concatenation::Sar));
    split_pair.parts = vec![vec![0xD8, 0x3D], vec![0xDE, 0x00]];
    split_pair.sar = Some(SarInfo {
        reference: 1,
        total: 2,
    });
    assert_eq!(reassemble(&split_pair), Err(EncodingError::BadUcs2));
}

fn text_strategy() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        6 => proptest::char::range(' ', '~'),
        2 => proptest::sample::select("€[]{}^~\\|\u{0C}ΔΩ".chars().collect::<Vec<_>>()),
        3 => proptest::char::range('\u{0}', '\u{FF}'),
        1 => any::<char>(),
        1 => proptest::char::range('\u{1F600}', '\u{1F64F}'),
    ];
    prop_oneof![
        proptest::collection::vec(ch, 0..450),
        proptest::collection::vec(proptest::char::range('\u{A0}', '\u{FF}'), 0..400),
        proptest::collection::vec(proptest::char::range(' ', '~'), 0..400),
    ]
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn every_option_round_trips_within_limits(text in text_strategy(), reference in any::<u16>()) {
        for alphabet in ALPHABETS {
            for concatenation in CONCATENATIONS {
                let o = opts(alphabet, concatenation);
                let seg = segment_with(&text, reference, &o);
                prop_assert_eq!(seg.coding, alphabet.choose(&text));
                prop_assert_eq!(seg.parts.len(), segment_count_with(&text, &o));
                // Also checks numbering, and that every part decodes alone: nothing split.
                prop_assert_eq!(reassemble(&seg), Ok(text.clone()));
                let multi = seg.parts.len() > 1;
                let (single, part) = limits(seg.coding, concatenation);
                let limit = if multi { part } else { single };
                prop_assert_eq!(seg.payload_tlv, concatenation == Concatenation::MessagePayload);
                prop_assert_eq!(seg.sar.is_some(), multi && concatenation == Concatenation::Sar);
                for (i, p) in seg.parts.iter().enumerate() {
                    let parsed = parse_part(p, seg.has_udh()).unwrap();
                    if concatenation != Concatenation::MessagePayload {
                        prop_assert!(units(seg.coding, parsed.payload) <= limit);
                    }
                    match (multi, concatenation) {
                        (true, Concatenation::Udh8) => {
                            prop_assert_eq!(&p[..4], &[5, 0, 3, reference.to_be_bytes()[1]][..]);
                        }
                        (true, Concatenation::Udh16) => {
                            let [hi, lo] = reference.to_be_bytes();
                            prop_assert_eq!(&p[..5], &[6, 8, 4, hi, lo][..]);
                        }
                        (true, Concatenation::Sar) => {
                            let total = u8::try_from(seg.parts.len()).unwrap();
                            let seq = u8::try_from(i + 1).unwrap();
                            prop_assert_eq!(seg.sar_for_part(i), Some((reference, total, seq)));
                            prop_assert_eq!(seg.esm_class(), 0);
                        }
                        _ => prop_assert_eq!(seg.esm_class(), 0),
                    }
                }
            }
        }
    }

    #[test]
    fn alphabet_choice_is_as_documented(text in text_strategy()) {
        let all_gsm = text.chars().all(is_gsm7);
        let all_latin1 = text.chars().all(|c| u32::from(c) <= 0xFF);
        prop_assert_eq!(Alphabet::Gsm7.choose(&text), if all_gsm { Coding::Gsm7 } else { Coding::Ucs2 });
        let latin = Alphabet::Latin1.choose(&text);
        prop_assert_eq!(latin == Coding::Gsm7, all_gsm);
        prop_assert_eq!(latin == Coding::Latin1, !all_gsm && all_latin1);
        prop_assert_eq!(latin == Coding::Ucs2, !all_gsm && !all_latin1);
        prop_assert_eq!(Alphabet::Ucs2Only.choose(&text), Coding::Ucs2);
    }

    #[test]
    fn latin1_decode_is_total_and_inverts(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = decode(Coding::Latin1, &bytes).unwrap();
        prop_assert!(text.chars().all(is_latin1));
        let again = segment_with(&text, 0, &opts(Alphabet::Latin1, Concatenation::MessagePayload));
        if again.coding == Coding::Latin1 {
            prop_assert_eq!(&again.parts[0], &bytes);
        }
    }
}
