//! The alerting rules, the dashboard and the runbook stay true to the code: every alert's
//! and every panel's expression is PromQL, every metric they read is one the engine or its
//! SMPP connector records, every alert has its section in the runbook, and every metric
//! recorded is listed in the configuration guide.

use std::collections::BTreeSet;

const ALERTS: &str = include_str!("../../deploy/monitoring/alerts.yml");
const DASHBOARD: &str = include_str!("../../deploy/monitoring/grafana-dashboard.json");
const RUNBOOK: &str = include_str!("../../docs/operations.md");
const CONFIGURATION: &str = include_str!("../../docs/configuration.md");
const SOURCES: [&str; 2] = [
    include_str!("../src/metrics.rs"),
    include_str!("../../connectors/smpp/src/metrics.rs"),
];

/// Every `pigeon_…` name in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("pigeon_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        // A longer identifier that only contains the prefix (`my_pigeon_x`) is not a name.
        let word_start =
            at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        if word_start {
            out.insert(tail[..end].trim_end_matches('_').to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// The metrics the code records: the string literals of the metrics modules that are a
/// `pigeon_…` name.
fn recorded() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for source in SOURCES {
        for literal in source.split('"').skip(1).step_by(2) {
            let name_chars = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
            if literal.starts_with("pigeon_") && literal.chars().all(name_chars) {
                out.insert(literal.to_owned());
            }
        }
    }
    out
}

/// A histogram's series are named after it (`_bucket`, `_sum`, `_count`).
fn base(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// The alerts, with the runbook each names.
fn alerts() -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for line in ALERTS.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            out.push((name.trim().to_owned(), None));
        } else if let Some(link) = line.strip_prefix("runbook: ") {
            let last = out.last_mut().expect("a runbook before any alert");
            last.1 = Some(link.trim_matches('"').to_owned());
        }
    }
    out
}

/// Every alert's expression: a one-line `expr: ...`, or the lines of an `expr: |` block
/// (those indented deeper than the key).
fn expressions() -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = ALERTS.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line.find("expr:") else {
            continue;
        };
        let value = line[at + "expr:".len()..].trim();
        if value != "|" {
            out.push(value.to_owned());
            continue;
        }
        let mut block = Vec::new();
        while let Some(next) = lines.next_if(|l| l.len() - l.trim_start().len() > at) {
            block.push(next.trim());
        }
        out.push(block.join(" "));
    }
    out
}

#[test]
fn every_alert_expression_is_promql() {
    let exprs = expressions();
    assert_eq!(exprs.len(), alerts().len(), "{exprs:#?}");
    for e in &exprs {
        if let Err(why) = promql_parser::parser::parse(e) {
            panic!("not PromQL: {e}\n{why}");
        }
    }
    // The check itself: a broken expression is refused.
    assert!(promql_parser::parser::parse("sum by (instance (x)").is_err());
}

#[test]
fn every_metric_an_alert_reads_is_recorded() {
    let recorded = recorded();
    assert!(recorded.len() > 40, "{recorded:?}");
    let used = names(ALERTS);
    assert!(used.len() > 15, "{used:?}");
    let unknown: Vec<&String> = used
        .iter()
        .filter(|n| !recorded.contains(base(n)) && !recorded.contains(n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "alerts read metrics nothing records: {unknown:?}"
    );
}

/// The expression of every panel's query, with Grafana's interval variable as Prometheus
/// would get it.
fn panel_expressions() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut out = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a query's expr");
            out.push(expr.replace("$__rate_interval", "5m"));
        }
    }
    out
}

#[test]
fn every_dashboard_query_is_promql_on_recorded_metrics() {
    let exprs = panel_expressions();
    assert!(exprs.len() > 20, "{exprs:#?}");
    let recorded = recorded();
    for e in &exprs {
        if let Err(why) = promql_parser::parser::parse(e) {
            panic!("not PromQL: {e}\n{why}");
        }
        for name in names(e) {
            assert!(
                recorded.contains(base(&name)) || recorded.contains(&name),
                "{name} in {e}: nothing records it"
            );
        }
        // Every query follows the instance picked at the top of the dashboard.
        assert!(e.contains(r#"instance=~"$instance""#), "{e}");
    }
}

#[test]
fn every_alert_has_its_section_in_the_runbook() {
    let sections: BTreeSet<String> = RUNBOOK
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let alerts = alerts();
    assert!(alerts.len() > 15, "{alerts:?}");
    let mut seen = BTreeSet::new();
    for (name, runbook) in &alerts {
        assert!(seen.insert(name), "{name} twice");
        let want = format!("docs/operations.md#{}", name.to_lowercase());
        assert_eq!(runbook.as_deref(), Some(want.as_str()), "{name}");
        assert!(
            sections.contains(&name.to_lowercase()),
            "no section for {name}"
        );
    }
    // And no section for an alert that no longer exists.
    let names: BTreeSet<String> = alerts.iter().map(|(n, _)| n.to_lowercase()).collect();
    let orphans: Vec<&String> = sections
        .iter()
        .filter(|s| s.starts_with("pigeon") && !names.contains(*s))
        .collect();
    assert!(
        orphans.is_empty(),
        "runbook sections without an alert: {orphans:?}"
    );
}

#[test]
fn every_recorded_metric_is_listed_in_the_configuration_guide() {
    let listed = names(CONFIGURATION);
    let missing: Vec<String> = recorded()
        .into_iter()
        .filter(|n| !listed.contains(base(n)))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}
