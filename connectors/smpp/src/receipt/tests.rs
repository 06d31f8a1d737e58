//! Unit and property tests for [`super`].

use super::*;
use proptest::prelude::*;

const TYPICAL: &str = "id:0123456789 sub:001 dlvrd:001 submit date:2401311200 \
done date:2401311201 stat:DELIVRD err:000 text:Your account was";

fn no_tlvs() -> ReceiptTlvs {
    ReceiptTlvs::default()
}

#[test]
fn message_state_round_trip() {
    for st in ReceiptState::ALL {
        assert_eq!(
            ReceiptState::from_message_state(st.message_state()),
            Some(st)
        );
        assert_eq!(ReceiptState::from_stat_text(st.stat_text()), Some(st));
        assert_eq!(st.stat_text().len(), 7);
    }
    assert_eq!(ReceiptState::from_message_state(0), None);
    assert_eq!(ReceiptState::from_message_state(10), None);
    assert!(ReceiptState::Delivered.is_final());
    assert!(!ReceiptState::Enroute.is_final());
}

#[test]
fn typical_text() {
    let r = parse_receipt(TYPICAL.as_bytes(), &no_tlvs()).unwrap();
    assert_eq!(
        r,
        Receipt {
            message_id: "0123456789".into(),
            state: ReceiptState::Delivered,
            error_code: Some(0)
        }
    );
    let f = parse_receipt_fields(TYPICAL);
    assert_eq!(f.sub, Some(1));
    assert_eq!(f.dlvrd, Some(1));
    assert_eq!(f.submit_date, Some("2401311200"));
    assert_eq!(f.done_date, Some("2401311201"));
    assert_eq!(f.text, Some("Your account was"));
}

#[test]
fn dialects() {
    let cases: &[(&str, &str, ReceiptState, Option<u32>)] = &[
        // Upper-case keys, no sub, dates with seconds.
        (
            "ID:AbC12 DLVRD:1 SUBMIT DATE:240131120059 DONE DATE:240131120100 STAT:undeliv ERR:11",
            "AbC12",
            ReceiptState::Undeliverable,
            Some(11),
        ),
        // Extra fields, fields reordered, text cut short.
        (
            "stat:EXPIRED foo:bar id:77 err:0x0B text:Yo",
            "77",
            ReceiptState::Expired,
            Some(11),
        ),
        // Spelled-out states, underscored dates, no err, no text.
        (
            "id:9 submit_date:2401311200 stat:Delivered",
            "9",
            ReceiptState::Delivered,
            None,
        ),
        (
            "id:9 stat:UNDELIVERABLE err:abc",
            "9",
            ReceiptState::Undeliverable,
            None,
        ),
        ("id:9 stat:rejected", "9", ReceiptState::Rejected, None),
        // Space after the colon.
        ("id: 42 stat: ACCEPTD", "42", ReceiptState::Accepted, None),
        // text: with a fake stat inside it is not read.
        (
            "id:5 stat:ENROUTE text:stat:DELIVRD",
            "5",
            ReceiptState::Enroute,
            None,
        ),
    ];
    for (text, id, st, err) in cases {
        let r =
            parse_receipt(text.as_bytes(), &no_tlvs()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&r.message_id, id, "{text}");
        assert_eq!(r.state, *st, "{text}");
        assert_eq!(r.error_code, *err, "{text}");
    }
}

#[test]
fn tlvs_win() {
    let tlvs = ReceiptTlvs {
        receipted_message_id: Some("ff01".into()),
        message_state: Some(5),
        network_error_code: Some((3, 0x22)),
    };
    let r = parse_receipt(TYPICAL.as_bytes(), &tlvs).unwrap();
    assert_eq!(r.message_id, "ff01");
    assert_eq!(r.state, ReceiptState::Undeliverable);
    assert_eq!(r.error_code, Some(0x22));
    // TLVs only, no text at all.
    let r = parse_receipt(b"", &tlvs).unwrap();
    assert_eq!(r.message_id, "ff01");
    // Invalid message_state falls back to text.
    let bad = ReceiptTlvs {
        message_state: Some(42),
        ..tlvs.clone()
    };
    assert_eq!(
        parse_receipt(TYPICAL.as_bytes(), &bad).unwrap().state,
        ReceiptState::Delivered
    );
    assert_eq!(
        parse_receipt(b"", &bad),
        Err(ReceiptError::UnknownState("message_state 42".into()))
    );
}

#[test]
fn errors() {
    assert_eq!(
        parse_receipt(b"stat:DELIVRD", &no_tlvs()),
        Err(ReceiptError::MissingId)
    );
    assert_eq!(
        parse_receipt(b"id: stat:DELIVRD", &no_tlvs()),
        Err(ReceiptError::MissingId)
    );
    assert_eq!(
        parse_receipt(b"id:1 err:0", &no_tlvs()),
        Err(ReceiptError::MissingState)
    );
    assert_eq!(
        parse_receipt(b"id:1 stat:WEIRD", &no_tlvs()),
        Err(ReceiptError::UnknownState("WEIRD".into()))
    );
    assert_eq!(parse_receipt(b"", &no_tlvs()), Err(ReceiptError::MissingId));
    assert!(parse_receipt(&[0xff, 0xfe, b':', 0], &no_tlvs()).is_err());
}

#[test]
fn format_canonical() {
    let s = format_receipt_text(&ReceiptText {
        id: "abc",
        sub: 1,
        dlvrd: 1,
        submit_date: "2401311200",
        done_date: "2401311201",
        state: ReceiptState::Delivered,
        err: 0,
        text: "0123456789012345678901234",
    });
    assert_eq!(
        s,
        "id:abc sub:001 dlvrd:001 submit date:2401311200 done date:2401311201 stat:DELIVRD \
         err:000 text:01234567890123456789"
    );
}

#[test]
fn id_forms() {
    assert_eq!(normalise_message_id("0x1F", IdForm::HexToDecimal), "31");
    assert_eq!(normalise_message_id("ff", IdForm::HexToDecimal), "255");
    assert_eq!(normalise_message_id("zz", IdForm::HexToDecimal), "zz");
    assert_eq!(normalise_message_id("255", IdForm::DecimalToHex), "ff");
    assert_eq!(normalise_message_id("12a", IdForm::DecimalToHex), "12a");
    assert_eq!(normalise_message_id(" AbC ", IdForm::Lowercase), "abc");
    assert_eq!(normalise_message_id(" AbC ", IdForm::AsIs), "AbC");
    assert_eq!(match_key("000AbC"), "abc");
    assert_eq!(match_key("0000"), "0");
    assert_eq!(match_key(""), "");
    // Vonage-style: hex in the response, decimal in the receipt.
    assert_eq!(
        match_key(&normalise_message_id("0B0C", IdForm::HexToDecimal)),
        match_key(&normalise_message_id("2828", IdForm::AsIs))
    );
}

fn state() -> impl Strategy<Value = ReceiptState> {
    proptest::sample::select(ReceiptState::ALL.to_vec())
}

proptest! {
    #[test]
    fn format_then_parse(
        id in "[A-Za-z0-9-]{1,40}",
        sub in 0u32..1000,
        dlvrd in 0u32..1000,
        submit in "[0-9]{10}([0-9]{2})?",
        done in "[0-9]{10}([0-9]{2})?",
        st in state(),
        err in 0u32..1000,
        text in "\\PC{0,30}",
    ) {
        let r = ReceiptText { id: &id, sub, dlvrd, submit_date: &submit, done_date: &done, state: st, err, text: &text };
        let s = format_receipt_text(&r);
        let parsed = parse_receipt(s.as_bytes(), &ReceiptTlvs::default()).unwrap();
        prop_assert_eq!(parsed, Receipt { message_id: id.clone(), state: st, error_code: Some(err) });
        let f = parse_receipt_fields(&s);
        prop_assert_eq!(f.sub, Some(sub));
        prop_assert_eq!(f.dlvrd, Some(dlvrd));
        prop_assert_eq!(f.submit_date, Some(submit.as_str()));
        prop_assert_eq!(f.done_date, Some(done.as_str()));
        let cut: String = text.chars().take(RECEIPT_TEXT_CHARS).collect();
        prop_assert_eq!(f.text.unwrap_or(""), cut.as_str());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_receipt(&bytes, &ReceiptTlvs::default());
    }

    #[test]
    fn keyish_text_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("id:".to_owned()), Just("stat:".to_owned()), Just("submit".to_owned()),
            Just("date:".to_owned()), Just("text:".to_owned()), Just(" ".to_owned()),
            Just("done".to_owned()), Just("err:".to_owned()), "\\PC{0,6}",
        ], 0..30)) {
        let s: String = parts.concat();
        let _ = parse_receipt(s.as_bytes(), &ReceiptTlvs::default());
    }

    #[test]
    fn hex_decimal_inverse(n in any::<u128>()) {
        let hex = format!("{n:X}");
        let dec = normalise_message_id(&hex, IdForm::HexToDecimal);
        prop_assert_eq!(&dec, &n.to_string());
        prop_assert_eq!(normalise_message_id(&dec, IdForm::DecimalToHex), hex.to_lowercase());
    }
}
