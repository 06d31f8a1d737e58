//! Differential tests: the compiled check answers as `phonenumber` does.

use std::panic::{catch_unwind, AssertUnwindSafe};

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use proptest::prelude::*;
use regex::RegexBuilder;

use super::in_plan;
use crate::routing::Msisdn;

/// The crate's answer, as the engine asked it before; `None` where the crate panics.
fn reference(e164: &str) -> Option<bool> {
    catch_unwind(AssertUnwindSafe(|| {
        phonenumber::parse(None, e164).is_ok_and(|n| phonenumber::is_valid(&n))
    }))
    .ok()
}

/// Every number-type descriptor of a region that the check uses, the general one first.
fn descriptors(meta: &Metadata) -> impl Iterator<Item = &Descriptor> {
    let d = meta.descriptors();
    [
        Some(d.general()),
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
    .into_iter()
    .flatten()
}

/// Numbers in and around every example number of every region: the example, its last digit
/// changed, one digit shorter and longer, and with the national prefix in front.
fn neighbourhood() -> Vec<String> {
    let mut out = Vec::new();
    for meta in DATABASE.iter() {
        for example in descriptors(meta).filter_map(|d| d.example()) {
            let cc = meta.country_code();
            let base = format!("+{cc}{example}");
            let mut changed = base.clone();
            if let Some(last) = changed.pop() {
                let d = last.to_digit(10).unwrap_or(0);
                changed.push(char::from_digit((d + 1) % 10, 10).unwrap_or('0'));
            }
            out.push(base.clone());
            out.push(changed);
            out.push(base[..base.len() - 1].to_owned());
            out.push(format!("{base}7"));
            if let Some(p) = meta.national_prefix() {
                out.push(format!("+{cc}{p}{example}"));
            }
        }
    }
    out.retain(|n| Msisdn::parse_shape(n).is_ok());
    out
}

fn disagreements(numbers: impl IntoIterator<Item = String>) -> Vec<(String, bool)> {
    numbers
        .into_iter()
        .filter_map(|n| {
            let theirs = reference(&n)?;
            (in_plan(&n) != theirs).then_some((n, theirs))
        })
        .collect()
}

#[test]
fn every_pattern_of_the_metadata_compiles() {
    let mut failed = Vec::new();
    let mut check = |source: &str| {
        if RegexBuilder::new(source)
            .ignore_whitespace(true)
            .build()
            .is_err()
        {
            failed.push(source.to_owned());
        }
    };
    for meta in DATABASE.iter() {
        for d in descriptors(meta) {
            check(d.national_number().as_str());
        }
        if let Some(r) = meta.leading_digits() {
            check(r.as_str());
        }
        if let Some(r) = meta.national_prefix_for_parsing() {
            check(r.as_str());
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn agrees_with_phonenumber_around_every_example_number() {
    let numbers = neighbourhood();
    assert!(numbers.len() > 5_000, "{} numbers", numbers.len());
    let valid = numbers.iter().filter(|n| in_plan(n)).count();
    // Both answers occur, so agreement is not agreement on a constant.
    assert!(valid > 1_000 && valid < numbers.len() - 1_000, "{valid}");
    let wrong = disagreements(numbers);
    assert!(
        wrong.is_empty(),
        "{} disagreements: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
}

#[test]
fn the_engines_own_numbers_are_in_plan_or_not_as_expected() {
    for valid in [
        "+447400900123",
        "+447911123456",
        "+8613800138000",
        "+12015550123",
    ] {
        assert!(in_plan(valid), "{valid}");
    }
    for invalid in ["+441234", "+999123456789", "+4410000000000", "+8600000000"] {
        assert!(!in_plan(invalid), "{invalid}");
    }
}

fn any_code() -> impl Strategy<Value = u16> {
    let mut codes: Vec<u16> = DATABASE.iter().map(|m| m.country_code()).collect();
    codes.sort_unstable();
    codes.dedup();
    proptest::sample::select(codes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn agrees_with_phonenumber_on_random_numbers(code in any_code(), rest in "[0-9]{4,13}") {
        let n = format!("+{code}{rest}");
        prop_assume!(Msisdn::parse_shape(&n).is_ok());
        if let Some(theirs) = reference(&n) {
            prop_assert_eq!(in_plan(&n), theirs, "{}", n);
        }
    }
}
