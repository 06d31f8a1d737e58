//! Router tests: building from a spec, resolution order, candidates, a 100,000-line file.

use std::io::Write;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

fn s(x: &str) -> String {
    x.to_owned()
}

fn spec() -> RouterSpec {
    RouterSpec {
        carriers: vec![s("a"), s("b"), s("c")],
        operators: vec![
            (
                s("uk"),
                vec![vec![(s("a"), 3), (s("b"), 1)], vec![(s("c"), 1)]],
            ),
            (s("fr"), ordered_route(&[s("b"), s("a")])),
            (s("cn"), vec![]),
        ],
        default_route: Some(vec![vec![(s("c"), 1)]]),
        prefixes: vec![(s("+44"), s("uk")), (s("33"), s("fr")), (s("+86"), s("cn"))],
        ..RouterSpec::default()
    }
}

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("pigeon-{}-{name}", std::process::id()));
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn resolution_order_is_porting_then_prefix_then_default() {
    let porting = TempFile::new("porting.csv", "number,operator\n+447911123456,fr\n");
    let r = Router::from_config(&RouterSpec {
        porting_files: vec![porting.0.clone()],
        ..spec()
    })
    .expect("valid");
    let uk = OperatorId(0);
    let fr = OperatorId(1);
    let cn = OperatorId(2);

    let ported = r.route("+447911123456").expect("routable");
    assert_eq!((ported.operator, ported.via), (Some(fr), Via::Ported));
    let by_prefix = r.route("+447911123457").expect("routable");
    assert_eq!((by_prefix.operator, by_prefix.via), (Some(uk), Via::Prefix));
    assert_ne!(ported.route, by_prefix.route);
    // cn is known but has no route of its own; +1 has no operator at all.
    let chinese = r.route("+8613800138000").expect("routable");
    assert_eq!((chinese.operator, chinese.via), (Some(cn), Via::Default));
    let american = r.route("+12125550123").expect("routable");
    assert_eq!((american.operator, american.via), (None, Via::Default));
    assert_eq!(chinese.route, american.route);

    assert_eq!(r.route("07911123456"), Err(NoRoute::InvalidNumber));
    assert_eq!(r.route("+440000000000"), Err(NoRoute::InvalidNumber));
    assert_eq!(NoRoute::InvalidNumber.code(), "invalid_number");
    assert_eq!(r.operator_name(uk), Some("uk"));
    assert_eq!(r.carrier_name(2), Some("c"));
    assert_eq!(r.stats().ported_numbers, 1);
}

#[test]
fn without_a_default_route_unknown_operators_have_none() {
    let r = Router::from_config(&RouterSpec {
        default_route: None,
        ..spec()
    })
    .expect("valid");
    assert_eq!(r.route("+12125550123"), Err(NoRoute::NoRoute));
    assert_eq!(r.route("+8613800138000"), Err(NoRoute::NoRoute));
    assert_eq!(NoRoute::NoRoute.code(), "no_route");
    assert!(r.route("+447911123456").is_ok());
}

#[test]
fn candidates_spread_the_first_tier_by_weight() {
    let r = Router::from_config(&spec()).expect("valid");
    let route = r.route("+447911123456").expect("routable").route;
    let mut cursor = RouteCursor::new();
    let mut out = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..4 {
        r.candidates(&mut cursor, route, |_| true, &mut out);
        firsts.push(out[0]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], 2, "the fallback tier comes last");
    }
    assert_eq!(firsts, [0, 0, 1, 0]);
    r.candidates(&mut cursor, route, |c| c == 2, &mut out);
    assert_eq!(out, [2]);

    // A rebuilt router gives the cursor a fresh start.
    let again = Router::from_config(&spec()).expect("valid");
    again.candidates(&mut cursor, route, |_| true, &mut out);
    assert_eq!(out, [0, 1, 2]);
}

#[test]
fn every_problem_in_a_spec_is_reported() {
    let prefixes = TempFile::new(
        "bad-prefixes.csv",
        "prefix,operator\n44,uk\n4x,uk\n33,mars\n",
    );
    let porting = TempFile::new("bad-porting.csv", "+447911123456,uk\n+447911123456,fr\n");
    let bad = RouterSpec {
        carriers: vec![s("a"), s("a"), s("")],
        operators: vec![
            (s("uk"), vec![vec![(s("a"), 0)], vec![]]),
            (s("fr"), vec![vec![(s("z"), 1), (s("a"), 1), (s("a"), 2)]]),
            (s("fr"), vec![]),
        ],
        default_route: Some(vec![]),
        prefixes: vec![(s("+44"), s("fr")), (s("0"), s("uk")), (s("1"), s("x"))],
        prefix_files: vec![prefixes.0.clone(), PathBuf::from("/nonexistent/pigeon.csv")],
        porting_files: vec![porting.0.clone()],
        receipt_failover: Vec::new(),
    };
    let errs = Router::from_config(&bad).expect_err("invalid");
    let all = errs.join("\n");
    let p = prefixes.0.display();
    let q = porting.0.display();
    for expected in [
        "carriers[1]: \"a\" given twice".to_owned(),
        "carriers[2]: empty name".to_owned(),
        "operators.uk: tier 1: carrier \"a\": weight must be at least 1".to_owned(),
        "operators.uk: tier 2: no carriers".to_owned(),
        "operators.fr: tier 1: unknown carrier \"z\"".to_owned(),
        "operators.fr: tier 1: carrier \"a\" already in this route".to_owned(),
        "operators[2]: \"fr\" given twice".to_owned(),
        "default_route: route is empty".to_owned(),
        "prefixes[\"0\"]: starts with 0 (a prefix starts with a country code)".to_owned(),
        "prefixes[\"1\"]: unknown operator \"x\"".to_owned(),
        format!("{p}:3: prefix \"4x\": not all digits"),
        format!("{p}:4: unknown operator \"mars\""),
        "/nonexistent/pigeon.csv: cannot read".to_owned(),
        format!("prefix +44: operator \"fr\" at prefixes[\"+44\"] but \"uk\" at {p}:2"),
        format!("ported number +********3456: operator \"uk\" at {q}:1 but \"fr\" at {q}:2"),
    ] {
        assert!(all.contains(&expected), "missing {expected:?} in\n{all}");
    }
    assert_eq!(errs.len(), 15, "{all}");
    assert!(!all.contains("447911123456"), "a number in clear: {all}");
}

#[test]
fn the_same_pair_twice_is_not_a_conflict() {
    let file = TempFile::new("dup.csv", "44,uk\n+44,uk\n");
    let r = Router::from_config(&RouterSpec {
        prefix_files: vec![file.0.clone()],
        ..spec()
    })
    .expect("valid");
    assert_eq!(r.stats().prefixes, 3);
}

#[test]
fn a_file_of_100_000_prefixes_loads() {
    let mut text = String::from("prefix,operator\n# generated\n");
    // Every 5-digit prefix 44000..=44999 and 7-digit 4470000..=4479999 (11,000), then
    // 89,000 more 8-digit prefixes under 861.
    for p in 44_000..45_000u64 {
        text.push_str(&format!("{p},uk\n"));
    }
    for p in 4_470_000..4_480_000u64 {
        text.push_str(&format!("+{p},fr\n"));
    }
    for p in 86_100_000..86_189_000u64 {
        text.push_str(&format!("{p},{}\n", if p % 2 == 0 { "uk" } else { "fr" }));
    }
    let file = TempFile::new("100k.csv", &text);
    let r = Router::from_config(&RouterSpec {
        prefix_files: vec![file.0.clone()],
        ..spec()
    })
    .expect("valid");
    let stats = r.stats();
    assert_eq!(stats.prefixes, 100_000 + 3);
    assert!(stats.table_bytes < 100_003 * 12, "{stats:?}");
    let fr = Some(OperatorId(1));
    let uk = Some(OperatorId(0));
    assert_eq!(r.route("+447911123456").expect("ok").operator, fr);
    assert_eq!(r.route("+442071234567").expect("ok").operator, uk);
    assert_eq!(r.route("+8613800138000").expect("ok").operator, fr);
    assert_eq!(r.route("+8613800238000").expect("ok").operator, uk);
    let beyond = r.route("+8619912345678").expect("ok");
    assert_eq!(beyond.operator, Some(OperatorId(2)), "only +86 matches");
}

proptest! {
    /// A ported number takes the porting table's operator whatever the prefixes say.
    #[test]
    fn porting_always_wins(
        prefixes in proptest::collection::vec(("[1-9][0-9]{0,6}", 0u16..3), 0..50),
        ported in proptest::collection::vec(("[1-9][0-9]{6,14}", 0u16..3), 1..20),
        others in proptest::collection::vec("[1-9][0-9]{6,14}", 0..20),
    ) {
        let ops = ["uk", "fr", "cn"];
        let prefixes = prefixes.iter().map(|(p, o)| (p.clone(), s(ops[usize::from(*o)]))).collect();
        // Keep one operator per number, as the porting file must.
        let mut numbers = std::collections::BTreeMap::new();
        for (n, o) in &ported {
            numbers.entry(n.clone()).or_insert(*o);
        }
        let text: String = numbers.iter().map(|(n, o)| format!("+{n},{}\n", ops[usize::from(*o)])).collect();
        let file = TempFile::new(&format!("porting-{}.csv", numbers.len()), &text);
        let mut spec = RouterSpec { prefixes, porting_files: vec![file.0.clone()], ..spec() };
        let sorted: std::collections::BTreeMap<_, _> = spec.prefixes.iter().cloned().collect();
        spec.prefixes = sorted.into_iter().collect();
        let r = Router::from_config(&spec).map_err(|e| TestCaseError::fail(e.join("\n")))?;
        for (n, o) in &numbers {
            let m = Msisdn::parse_shape(&format!("+{n}")).expect("shape");
            let got = r.resolve(m).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got.operator, Some(OperatorId(*o)));
        }
        for n in others.iter().filter(|n| !numbers.contains_key(*n)) {
            let m = Msisdn::parse_shape(&format!("+{n}")).expect("shape");
            let via = r.resolve(m).map_err(|e| TestCaseError::fail(e.to_string()))?.via;
            prop_assert_ne!(via, Via::Ported);
        }
    }
}

#[test]
fn receipt_failover_is_per_operator_with_a_default_and_off_otherwise() {
    let secs = std::time::Duration::from_secs;
    let r = Router::from_config(&RouterSpec {
        receipt_failover: vec![(s("uk"), secs(30))],
        ..spec()
    })
    .expect("valid");
    let uk = r.route("+447400900123").expect("uk");
    let fr = r.route("+33612345678").expect("fr");
    assert_eq!(r.receipt_failover(&uk), Some(secs(30)));
    assert_eq!(r.receipt_failover(&fr), None, "off unless configured");

    let r = Router::from_config(&RouterSpec {
        receipt_failover: vec![(s("uk"), secs(30)), (s("*"), secs(90))],
        ..spec()
    })
    .expect("valid");
    assert_eq!(r.receipt_failover(&fr), Some(secs(90)));
    assert_eq!(
        r.receipt_failover(&uk),
        Some(secs(30)),
        "the operator's own wins"
    );

    let errs = Router::from_config(&RouterSpec {
        receipt_failover: vec![(s("mars"), secs(1))],
        ..spec()
    })
    .expect_err("unknown operator");
    assert!(errs.iter().any(|e| e.contains("mars")), "{errs:?}");
}
