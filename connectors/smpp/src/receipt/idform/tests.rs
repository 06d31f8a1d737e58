//! Unit and property tests for [`super`].

use super::*;
use proptest::prelude::*;

#[test]
fn agree_on_known_pairs() {
    assert_eq!(id_forms_agree("0A1B", "a1b"), Some(IdForm::AsIs));
    assert_eq!(id_forms_agree("007", "7"), Some(IdForm::AsIs));
    assert_eq!(id_forms_agree("1A", "26"), Some(IdForm::HexToDecimal));
    assert_eq!(id_forms_agree("0x1a", "0026"), Some(IdForm::HexToDecimal));
    assert_eq!(id_forms_agree("26", "1A"), Some(IdForm::DecimalToHex));
    assert_eq!(id_forms_agree("255", "000FF"), Some(IdForm::DecimalToHex));
    assert_eq!(id_forms_agree("abc", "abd"), None);
    assert_eq!(id_forms_agree("", ""), None);
    assert_eq!(id_forms_agree("12", "  "), None);
    // Not convertible: different ids stay different.
    assert_eq!(id_forms_agree("msg-1", "msg-2"), None);
}

#[test]
fn shapes() {
    assert_eq!(shape("0123"), Shape::Decimal);
    assert_eq!(shape(" 42 "), Shape::Decimal);
    assert_eq!(shape("1a2B"), Shape::Hex);
    assert_eq!(shape("0x10"), Shape::PrefixedHex);
    assert_eq!(shape("0X"), Shape::Other);
    assert_eq!(shape(""), Shape::Other);
    assert_eq!(shape("+12"), Shape::Other);
    assert_eq!(shape("1f-2e"), Shape::Other);
    assert_eq!(shape("xyz"), Shape::Other);
    // 2^128 needs 39 digits and does not fit; 33 hex digits neither.
    assert_eq!(
        shape("340282366920938463463374607431768211456"),
        Shape::Other
    );
    assert_eq!(shape(&"f".repeat(33)), Shape::Other);
    assert_eq!(shape(&"f".repeat(32)), Shape::Hex);
}

fn feed(l: &mut IdFormLearner, submits: &[&str], receipts: &[&str]) -> Option<IdForm> {
    for s in submits {
        l.observe_submit_id(s);
    }
    for r in receipts {
        l.observe_unmatched_receipt_id(r);
    }
    l.proposal()
}

#[test]
fn learns_hex_to_decimal_after_the_window() {
    let mut l = IdFormLearner::new(3);
    // Hex submits, some all-digit by chance.
    assert_eq!(
        feed(&mut l, &["1f3a", "2000", "ff01"], &["8000", "123"]),
        None
    );
    assert_eq!(
        l.observe_unmatched_receipt_id("77"),
        Some(IdForm::HexToDecimal)
    );
    // Sticky: later evidence does not flip it.
    assert_eq!(
        feed(&mut l, &["1", "2", "3"], &["a", "b", "c"]),
        Some(IdForm::HexToDecimal)
    );
    l.reset();
    assert_eq!(l.proposal(), None);
}

#[test]
fn learns_decimal_to_hex() {
    let mut l = IdFormLearner::new(3);
    assert_eq!(
        feed(&mut l, &["100", "101", "102"], &["64", "65", "6A"]),
        Some(IdForm::DecimalToHex)
    );
    // Receipts first, submits after: the proposal comes with the last submit.
    let mut l = IdFormLearner::new(2);
    assert_eq!(l.observe_unmatched_receipt_id("ff"), None);
    assert_eq!(l.observe_unmatched_receipt_id("10"), None);
    assert_eq!(l.observe_submit_id("255"), None);
    assert_eq!(l.observe_submit_id("16"), Some(IdForm::DecimalToHex));
}

#[test]
fn no_proposal_without_a_base_mismatch() {
    // Same base on both sides: unmatched receipts are unknown messages, not a form problem.
    let mut l = IdFormLearner::new(3);
    assert_eq!(feed(&mut l, &["a1", "b2", "c3"], &["d4", "e5", "f6"]), None);
    let mut l = IdFormLearner::new(3);
    assert_eq!(feed(&mut l, &["11", "12", "13"], &["14", "15", "16"]), None);
    // An id of another shape in a window blocks until it leaves the window.
    let mut l = IdFormLearner::new(3);
    assert_eq!(
        feed(&mut l, &["a1", "b2", "c3"], &["1", "uuid-x", "3"]),
        None
    );
    assert_eq!(l.observe_unmatched_receipt_id("4"), None);
    assert_eq!(
        l.observe_unmatched_receipt_id("5"),
        Some(IdForm::HexToDecimal)
    );
    // Windows not yet full.
    let mut l = IdFormLearner::default();
    let hex: Vec<String> = (0..19).map(|i| format!("a{i}")).collect();
    let dec: Vec<String> = (0..19).map(|i| i.to_string()).collect();
    for (s, r) in hex.iter().zip(&dec) {
        l.observe_submit_id(s);
        l.observe_unmatched_receipt_id(r);
    }
    assert_eq!(l.proposal(), None);
    l.observe_submit_id("a19");
    assert_eq!(
        l.observe_unmatched_receipt_id("19"),
        Some(IdForm::HexToDecimal)
    );
}

#[test]
fn prefixed_receipt_ids_block_decimal_to_hex() {
    let mut l = IdFormLearner::new(2);
    assert_eq!(feed(&mut l, &["1", "2"], &["0xa", "0xb"]), None);
    let mut l = IdFormLearner::new(2);
    assert_eq!(
        feed(&mut l, &["0x1", "0x2"], &["1", "2"]),
        Some(IdForm::HexToDecimal)
    );
}

#[test]
fn zero_window_means_one() {
    let mut l = IdFormLearner::new(0);
    assert_eq!(
        feed(&mut l, &["abc"], &["2748"]),
        Some(IdForm::HexToDecimal)
    );
}

proptest! {
    /// The form found for a generated pair really makes the keys agree, and a pair written in
    /// two bases always agrees under some form.
    #[test]
    fn agree_is_sound_and_complete(n in any::<u128>(), upper in any::<bool>(), zeros in 0usize..4, prefix in any::<bool>()) {
        let pad = "0".repeat(zeros);
        let hex = if upper { format!("{n:X}") } else { format!("{n:x}") };
        let hex = if prefix { format!("0x{pad}{hex}") } else { format!("{pad}{hex}") };
        let dec = format!("{pad}{n}");
        let bare = hex.trim_start_matches("0x");
        // A `0x` receipt id only ever matches the same spelling: forms apply to submit ids.
        for (s, r) in [(&hex[..], &dec[..]), (&dec, bare), (&hex, &hex), (&dec, &dec)] {
            let form = id_forms_agree(s, r);
            prop_assert!(form.is_some(), "{s} / {r}");
            if let Some(f) = form {
                prop_assert_eq!(match_key(&normalise_message_id(s, f)), match_key(r));
            }
        }
        if n >= 10 && !prefix {
            // Letters or different digits: never AsIs across bases.
            prop_assert_ne!(id_forms_agree(&hex, &dec), Some(IdForm::AsIs));
        }
    }

    #[test]
    fn agree_never_panics_and_is_sound(s in "\\PC{0,40}", r in "\\PC{0,40}") {
        if let Some(f) = id_forms_agree(&s, &r) {
            prop_assert_eq!(match_key(&normalise_message_id(&s, f)), match_key(&r));
        }
    }

    /// Random hex submit ids against decimal receipts: learned after exactly `window`
    /// observations of each side; the reverse setting gives DecimalToHex.
    #[test]
    fn learner_finds_the_base(ids in proptest::collection::vec(any::<u64>(), 1..60), window in 1usize..25) {
        // Force a letter into the hex side so the shapes are unambiguous.
        let hex: Vec<String> = ids.iter().map(|n| format!("{n:x}f")).collect();
        let dec: Vec<String> = ids.iter().map(|n| n.to_string()).collect();
        let mut a = IdFormLearner::new(window);
        let mut b = IdFormLearner::new(window);
        for (i, (h, d)) in hex.iter().zip(&dec).enumerate() {
            a.observe_submit_id(h);
            let pa = a.observe_unmatched_receipt_id(d);
            b.observe_submit_id(d);
            let pb = b.observe_unmatched_receipt_id(h);
            let expect = i + 1 >= window;
            prop_assert_eq!(pa, expect.then_some(IdForm::HexToDecimal));
            prop_assert_eq!(pb, expect.then_some(IdForm::DecimalToHex));
        }
    }

    /// Arbitrary ids on both sides: never panics, and any proposal matches the windows' shapes.
    #[test]
    fn learner_proposals_follow_shapes(
        submits in proptest::collection::vec("[0-9a-fA-Fx-]{0,12}", 0..40),
        receipts in proptest::collection::vec("[0-9a-fA-Fx-]{0,12}", 0..40),
    ) {
        let mut l = IdFormLearner::new(5);
        for s in &submits {
            l.observe_submit_id(s);
        }
        for r in &receipts {
            l.observe_unmatched_receipt_id(r);
        }
        if let Some(form) = l.proposal() {
            let last = |v: &Vec<String>| v.iter().rev().take(5).map(|s| shape(s)).collect::<Vec<_>>();
            let (sub, rec) = (last(&submits), last(&receipts));
            prop_assert_eq!(sub.len(), 5);
            let all_dec = |v: &[Shape]| v.iter().all(|&s| s == Shape::Decimal);
            let hexish = |v: &[Shape], prefix_ok: bool| {
                v.iter().all(|&s| s != Shape::Other && (prefix_ok || s != Shape::PrefixedHex))
                    && v.iter().any(|&s| s != Shape::Decimal)
            };
            match form {
                IdForm::HexToDecimal => prop_assert!(hexish(&sub, true) && all_dec(&rec)),
                IdForm::DecimalToHex => prop_assert!(all_dec(&sub) && hexish(&rec, false)),
                _ => prop_assert!(false, "unexpected {form:?}"),
            }
        }
    }
}
