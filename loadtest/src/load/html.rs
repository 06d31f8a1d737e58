//! The HTML report of a load-test run (`report.html`): one self-contained page rendered from
//! a [`RunSummary`] by [`render`]. Inline CSS and SVG only: no scripts, fonts, stylesheets or
//! images, so the file can be mailed, attached to a ticket or opened offline.
//!
//! The page shows, top to bottom:
//!
//! 1. the scenario, run id, start time and mode, a big PASSED / FAILED badge and the
//!    description;
//! 2. headline numbers: the offered profile, what was produced and how fast, the end-to-end
//!    rate and duration, and whether every event got exactly one terminal status;
//! 3. "Throughput over time": offered, produced, submitted and terminal per second as lines,
//!    with a dashed vertical line and a label at each injected event (engine restart,
//!    carrier outage);
//! 4. "Latency by stage": p50, p90, p99, p99.9 and max of every stage as bars on a log
//!    scale, and the same numbers as a table;
//! 5. "Outcomes" (terminal statuses by state) and "Counts" (throttled, failed, lost, ...),
//!    lost and duplicated events in red;
//! 6. the engine's CPU and memory, and the broker-alone and simulator-alone rates next to
//!    the engine's end-to-end rate, when the run measured them;
//! 7. the scenario's checks, expected against actual, in green or red;
//! 8. the exactly-once accounting, with a sample of the missing event ids.
//!
//! Every string taken from the summary is HTML-escaped. Charts cope with empty and all-zero
//! data ("no data", flat lines) and never divide by zero.

use std::fmt::Write as _;

use super::summary::{Check, Counts, Mark, RunSummary, Second, Stage};
use super::verify::Accounting;

/// Renders the whole page.
pub fn render(summary: &RunSummary) -> String {
    let title = if summary.scenario.is_empty() {
        "Pigeon load test".to_owned()
    } else {
        format!("Pigeon load test: {}", summary.scenario)
    };
    let mut page = String::with_capacity(32 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    for section in [
        header(summary),
        headline(summary),
        throughput(summary),
        latency(&summary.stages),
        outcomes(summary),
        engine(summary),
        machine(summary),
        checks(&summary.checks),
        accounting(&summary.accounting),
    ] {
        page.push_str(&section);
    }
    page.push_str("</body>\n</html>\n");
    page
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:960px;\
margin:2rem auto;padding:0 1rem;color:#202124;background:#fff}\
h1{margin:.2rem 0}\
h2{margin-top:2.2rem;padding-bottom:.3rem;border-bottom:1px solid #dadce0;font-size:1.25rem}\
h3{font-size:1rem;margin:1rem 0 .3rem}\
.meta,.desc{color:#5f6368}\
.badge{float:right;font-size:1.6rem;font-weight:700;padding:.4rem 1.1rem;border-radius:8px;color:#fff}\
.badge.pass{background:#188038}.badge.fail{background:#d93025}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:.8rem}\
.card{border:1px solid #dadce0;border-radius:8px;padding:.7rem .9rem}\
.card .k,.card .s{color:#5f6368;font-size:.85rem}\
.card .v{font-size:1.5rem;font-weight:600}\
.row{display:flex;flex-wrap:wrap;gap:0 2.5rem}\
table{border-collapse:collapse;margin:.5rem 0}\
th,td{padding:.25rem .7rem;border-bottom:1px solid #eee;text-align:left}\
.n{text-align:right;font-variant-numeric:tabular-nums}\
.good{color:#188038;font-weight:600}.bad{color:#d93025;font-weight:600}\
tr.pass td{background:#e6f4ea}tr.fail td{background:#fce8e6}\
.nodata{color:#5f6368;font-style:italic}\
svg{display:block;width:100%;height:auto}\
svg text{font-size:11px;fill:#3c4043}\
svg .gt{font-size:12px;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:3px}";

const NO_DATA: &str = "<p class=\"nodata\">no data</p>\n";

// ----------------------------------------------------------------------------- sections

/// Title, run id, start time, mode, badge and description.
fn header(s: &RunSummary) -> String {
    let (class, word) = if s.passed {
        ("pass", "PASSED")
    } else {
        ("fail", "FAILED")
    };
    let name = if s.scenario.is_empty() {
        "(unnamed scenario)"
    } else {
        &s.scenario
    };
    let mut out = String::from("<header>\n");
    let _ = writeln!(out, "<div class=\"badge {class}\">{word}</div>");
    let _ = writeln!(out, "<h1>{}</h1>", escape(name));
    let _ = writeln!(
        out,
        "<p class=\"meta\">run <code>{}</code> · started {} · mode {}</p>",
        escape(&s.run_id),
        escape(&s.started_at),
        escape(&s.mode)
    );
    if !s.description.is_empty() {
        let _ = writeln!(out, "<p class=\"desc\">{}</p>", escape(&s.description));
    }
    out.push_str("</header>\n");
    out
}

/// The four numbers people look at first.
fn headline(s: &RunSummary) -> String {
    let o = &s.offered;
    let produce_rate = if s.produce_seconds > 0.0 {
        s.produced as f64 / s.produce_seconds
    } else {
        0.0
    };
    let kind = if o.kind.is_empty() {
        "profile"
    } else {
        &o.kind
    };
    let a = &s.accounting;
    let cards = [
        (
            "Offered (peak)",
            fmt_rate(o.peak_rate),
            format!(
                "{kind}: {} debits over {} s",
                fmt_int(o.count),
                fmt_dec1(o.duration_s)
            ),
            "",
        ),
        (
            "Produced",
            fmt_int(s.produced),
            format!(
                "{} over {} s",
                fmt_rate(produce_rate),
                fmt_dec1(s.produce_seconds)
            ),
            "",
        ),
        (
            "End to end",
            fmt_rate(s.end_to_end_rate),
            format!("over {} s", fmt_dec1(s.end_to_end_seconds)),
            "",
        ),
        (
            "Exactly once",
            (if s.exactly_once { "yes" } else { "no" }).to_owned(),
            format!(
                "{} terminal of {} expected",
                fmt_int(a.terminal),
                fmt_int(a.expected)
            ),
            if s.exactly_once { "good" } else { "bad" },
        ),
    ];
    let mut out = String::from("<section>\n<div class=\"cards\">\n");
    for (key, value, sub, class) in cards {
        let _ = writeln!(
            out,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v {class}\">{}</div>\
             <div class=\"s\">{}</div></div>",
            escape(key),
            escape(&value),
            escape(&sub)
        );
    }
    out.push_str("</div>\n</section>\n");
    out
}

/// Offered, produced, submitted and terminal per second, with the injected events.
fn throughput(s: &RunSummary) -> String {
    let column = |f: fn(&Second) -> u64| -> Vec<(f64, f64)> {
        s.timeline
            .iter()
            .map(|p| (f64::from(p.t), f(p) as f64))
            .collect()
    };
    let series = [
        Series {
            name: "offered",
            color: "#9aa0a6",
            points: column(|p| p.offered),
        },
        Series {
            name: "produced",
            color: "#1a73e8",
            points: column(|p| p.produced),
        },
        Series {
            name: "submitted (carriers)",
            color: "#e37400",
            points: column(|p| p.submitted),
        },
        Series {
            name: "terminal (statuses seen)",
            color: "#188038",
            points: column(|p| p.terminal),
        },
    ];
    format!(
        "<section>\n<h2>Throughput over time</h2>\n{}</section>\n",
        line_chart(&series, &s.events, "seconds since start", "per second")
    )
}

/// Percentiles of every stage, as bars and as a table.
fn latency(stages: &[Stage]) -> String {
    let mut out = String::from("<section>\n<h2>Latency by stage</h2>\n");
    if stages.is_empty() {
        out.push_str(NO_DATA);
        out.push_str("</section>\n");
        return out;
    }
    const COLORS: [&str; 5] = ["#8ab4f8", "#4285f4", "#1967d2", "#a142f4", "#d93025"];
    let groups: Vec<BarGroup> = stages
        .iter()
        .map(|st| BarGroup {
            title: format!("{} · {} samples", stage_title(st), fmt_int(st.count)),
            bars: percentiles(st)
                .into_iter()
                .zip(COLORS)
                .map(|((label, value), color)| Bar {
                    label: label.to_owned(),
                    value,
                    text: format!("{} ms", fmt_dec1(value)),
                    color,
                })
                .collect(),
        })
        .collect();
    out.push_str(&bar_chart(&groups, Scale::Log, "milliseconds (log scale)"));

    out.push_str(
        "<table>\n<tr><th>Stage</th><th class=\"n\">count</th><th class=\"n\">p50</th>\
         <th class=\"n\">p90</th><th class=\"n\">p99</th><th class=\"n\">p99.9</th>\
         <th class=\"n\">max</th></tr>\n",
    );
    for st in stages {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            escape(&stage_title(st)),
            fmt_int(st.count)
        );
        for (_, value) in percentiles(st) {
            let _ = write!(out, "<td class=\"n\">{} ms</td>", fmt_dec1(value));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</section>\n");
    out
}

fn stage_title(st: &Stage) -> String {
    match (st.label.is_empty(), st.name.is_empty()) {
        (true, _) => st.name.clone(),
        (false, true) => st.label.clone(),
        (false, false) => format!("{} ({})", st.label, st.name),
    }
}

fn percentiles(st: &Stage) -> [(&'static str, f64); 5] {
    [
        ("p50", st.p50),
        ("p90", st.p90),
        ("p99", st.p99),
        ("p99.9", st.p999),
        ("max", st.max),
    ]
}

/// Terminal outcomes by state, and the counts.
fn outcomes(s: &RunSummary) -> String {
    let mut out = String::from("<section>\n<div class=\"row\">\n<div>\n<h2>Outcomes</h2>\n");
    if s.outcomes.is_empty() {
        out.push_str("<p class=\"nodata\">no terminal statuses</p>\n");
    } else {
        out.push_str(&state_table("state", &s.outcomes));
    }
    if !s.outcome_reasons.is_empty() {
        out.push_str("<h3>By reason</h3>\n");
        out.push_str(&state_table("state (reason)", &s.outcome_reasons));
    }
    out.push_str("</div>\n<div>\n<h2>Counts</h2>\n");
    out.push_str(&counts_table(&s.counts));
    out.push_str("</div>\n</div>\n</section>\n");
    out
}

fn counts_table(c: &Counts) -> String {
    // (name, value, red when above zero)
    let rows = [
        ("throttled", c.throttled, false),
        ("failed", c.failed, false),
        ("expired", c.expired, false),
        ("duplicate", c.duplicate, true),
        ("lost", c.lost, true),
        ("duplicate at carrier", c.duplicate_at_carrier, false),
        ("possible duplicate", c.possible_duplicate, false),
    ];
    let mut out = String::from("<table>\n");
    out.push_str(&count_rows(&rows));
    out.push_str("</table>\n");
    out
}

/// A two-column table of names (escaped) and counts.
fn state_table(heading: &str, counts: &std::collections::BTreeMap<String, u64>) -> String {
    let mut out = format!("<table>\n<tr><th>{heading}</th><th class=\"n\">count</th></tr>\n");
    for (name, n) in counts {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(name),
            fmt_int(*n)
        );
    }
    out.push_str("</table>\n");
    out
}

/// One table row per `(name, count, alarming)`; an alarming count above zero is red.
fn count_rows(rows: &[(&str, u64, bool)]) -> String {
    let mut out = String::new();
    for &(name, n, alarming) in rows {
        let class = if alarming && n > 0 { "n bad" } else { "n" };
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td class=\"{class}\">{}</td></tr>",
            fmt_int(n)
        );
    }
    out
}

/// Engine CPU and memory, and the baselines against the end-to-end rate; empty when the
/// run measured neither.
fn engine(s: &RunSummary) -> String {
    if s.engine.is_none() && s.baselines.is_none() {
        return String::new();
    }
    let mut out = String::from("<section>\n<h2>Engine</h2>\n");
    if let Some(e) = &s.engine {
        out.push_str("<table>\n");
        let rows = [
            ("CPU seconds", fmt_dec1(e.cpu_seconds)),
            (
                "CPU µs per notification",
                fmt_dec1(e.cpu_us_per_notification),
            ),
            ("peak RSS", format!("{} MB", fmt_dec1(e.peak_rss_mb))),
            ("restarts", fmt_int(u64::from(e.restarts))),
        ];
        let latency = e.latency.iter().flat_map(|l| {
            let p =
                |p50: f64, p99: f64| format!("p50 {} ms, p99 {} ms", fmt_dec1(p50), fmt_dec1(p99));
            [
                (
                    "produced → taken from the broker (as the engine measured it)",
                    p(l.broker_hop_p50_ms, l.broker_hop_p99_ms),
                ),
                (
                    "taken → handed to a carrier (the engine's own share)",
                    p(l.engine_p50_ms, l.engine_p99_ms),
                ),
            ]
        });
        for (name, value) in rows.into_iter().chain(latency) {
            let _ = writeln!(
                out,
                "<tr><td>{name}</td><td class=\"n\">{}</td></tr>",
                escape(&value)
            );
        }
        out.push_str("</table>\n");
    }
    if let Some(b) = &s.baselines {
        out.push_str("<h3>Compared with the parts alone</h3>\n");
        let bar = |label: &str, value: f64, color: &'static str| Bar {
            label: label.to_owned(),
            value,
            text: fmt_rate(value),
            color,
        };
        let group = BarGroup {
            title: "records per second on this machine".to_owned(),
            bars: vec![
                bar("engine end to end", s.end_to_end_rate, "#188038"),
                bar("broker consume alone", b.broker_consume_rate, "#9aa0a6"),
                bar("simulator submit alone", b.sim_submit_rate, "#e37400"),
            ],
        };
        out.push_str(&bar_chart(&[group], Scale::Linear, "per second"));
        let _ = writeln!(
            out,
            "<p>One record through the broker alone ({}, the engine's fetch wait of {} ms): \
             p50 {} ms, p99 {} ms: the hop every debit makes before the engine sees it, with \
             nothing else loading the machine.</p>",
            fmt_rate(b.broker_hop_rate),
            b.broker_hop_fetch_wait_ms,
            fmt_dec1(b.broker_hop_p50_ms),
            fmt_dec1(b.broker_hop_p99_ms)
        );
    }
    out.push_str("</section>\n");
    out
}

/// The machine's CPU while the debits flowed, part by part; empty when not measured.
fn machine(s: &RunSummary) -> String {
    let Some(m) = &s.machine else {
        return String::new();
    };
    let mut out = String::from("<section>\n<h2>The machine</h2>\n");
    let _ = writeln!(
        out,
        "<p>While the debits flowed ({} s on {} cores): {} % busy, {} CPU seconds. \
         Everything here shares the cores, so what the broker and pigeon-load take, the \
         engine cannot have.</p>",
        fmt_dec1(m.seconds),
        fmt_dec1(m.cores),
        fmt_dec1(m.busy_share * 100.0),
        fmt_dec1(m.busy_cpu_seconds)
    );
    let bar = |label: &str, value: f64, color: &'static str| Bar {
        label: label.to_owned(),
        value,
        text: format!("{} s", fmt_dec1(value)),
        color,
    };
    let mut bars = Vec::new();
    if let Some(v) = m.engine_cpu_seconds {
        bars.push(bar("engine", v, "#188038"));
    }
    if let Some(v) = m.broker_cpu_seconds {
        bars.push(bar("broker", v, "#9aa0a6"));
    }
    bars.push(bar("pigeon-load", m.harness_cpu_seconds, "#e37400"));
    bars.push(bar("the rest", m.rest_cpu_seconds(), "#dadce0"));
    let group = BarGroup {
        title: "CPU seconds while the debits flowed".to_owned(),
        bars,
    };
    out.push_str(&bar_chart(&[group], Scale::Linear, "CPU seconds"));
    out.push_str(
        "<p class=\"meta\">pigeon-load is the generator, the simulated carriers and the \
         status consumer; the rest is every other process of the machine.</p>\n</section>\n",
    );
    out
}

/// The scenario's expectations, expected against actual.
fn checks(checks: &[Check]) -> String {
    let mut out = String::from("<section>\n<h2>Checks</h2>\n");
    if checks.is_empty() {
        out.push_str("<p class=\"nodata\">no checks</p>\n</section>\n");
        return out;
    }
    out.push_str(
        "<table>\n<tr><th>check</th><th>expected</th><th>actual</th><th>result</th></tr>\n",
    );
    for c in checks {
        let (row, cell, word) = if c.passed {
            ("pass", "good", "pass")
        } else {
            ("fail", "bad", "fail")
        };
        let _ = writeln!(
            out,
            "<tr class=\"{row}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"{cell}\">{word}</td></tr>",
            escape(&c.name),
            escape(&c.expected),
            escape(&c.actual)
        );
    }
    out.push_str("</table>\n</section>\n");
    out
}

/// The exactly-once accounting.
fn accounting(a: &Accounting) -> String {
    let mut out = String::from("<section>\n<h2>Accounting</h2>\n<table>\n");
    let rows = [
        ("expected", a.expected, false),
        ("terminal", a.terminal, false),
        ("missing", a.missing, true),
        ("duplicated", a.duplicated, true),
    ];
    out.push_str(&count_rows(&rows));
    out.push_str("</table>\n");
    if a.missing_sample.is_empty() {
        out.push_str("<p>missing sample: none</p>\n");
    } else {
        out.push_str("<p>missing sample:</p>\n<ul>\n");
        for id in &a.missing_sample {
            let _ = writeln!(out, "<li><code>{}</code></li>", escape(id));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
    out
}

// ------------------------------------------------------------------------------- charts

/// One line of a [`line_chart`].
struct Series {
    name: &'static str,
    color: &'static str,
    /// (x, y), in any order.
    points: Vec<(f64, f64)>,
}

/// A line chart with round ticks on both axes, a legend, and a dashed vertical line with a
/// label at each mark. "no data" when no series has a point.
fn line_chart(series: &[Series], marks: &[Mark], x_title: &str, y_title: &str) -> String {
    if series.iter().all(|s| s.points.is_empty()) {
        return NO_DATA.to_owned();
    }
    let (w, h) = (900.0, 360.0);
    let (ml, mr, mt, mb) = (70.0, 20.0, 34.0, 62.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let x_max = finite_max(points().map(|p| p.0).chain(marks.iter().map(|m| m.t)));
    let y_max = finite_max(points().map(|p| p.1));
    let (xt, yt) = (nice_ticks(x_max, 8), nice_ticks(y_max, 5));
    let (x_top, y_top) = (axis_top(&xt), axis_top(&yt));
    let sx = |x: f64| ml + unit(x / x_top) * pw;
    let sy = |y: f64| mt + ph - unit(y / y_top) * ph;

    let mut out = svg_open(w, h, &format!("{y_title} over {x_title}"));
    // Grid and y ticks.
    for &v in &yt {
        let y = sy(v);
        let _ = writeln!(
            out,
            "<line x1=\"{ml}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ml + pw,
            ml - 6.0,
            y + 4.0,
            fmt_tick(v, tick_step(&yt))
        );
    }
    // X ticks.
    let base = mt + ph;
    for &v in &xt {
        let x = sx(v);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{base}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#5f6368\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            base + 5.0,
            base + 17.0,
            fmt_tick(v, tick_step(&xt))
        );
    }
    // Axes and their titles.
    let _ = writeln!(
        out,
        "<line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{base}\" stroke=\"#5f6368\"/>\
         <line x1=\"{ml}\" y1=\"{base}\" x2=\"{:.1}\" y2=\"{base}\" stroke=\"#5f6368\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        ml + pw,
        ml + pw / 2.0,
        base + 34.0,
        escape(x_title),
        mt + ph / 2.0,
        escape(y_title)
    );
    // Marks: dashed lines, labels on two alternating rows above the plot.
    for (i, m) in marks.iter().filter(|m| m.t.is_finite()).enumerate() {
        let x = sx(m.t);
        let label_y = if i % 2 == 0 { 12.0 } else { 25.0 };
        let (anchor, dx) = if x > ml + pw * 0.75 {
            ("end", -3.0)
        } else {
            ("start", 3.0)
        };
        let _ = writeln!(
            out,
            "<g><title>{} at {} s</title>\
             <line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{base}\" stroke=\"#d93025\" \
             stroke-dasharray=\"5 4\"/>\
             <text x=\"{:.1}\" y=\"{label_y}\" text-anchor=\"{anchor}\" fill=\"#d93025\">{}</text></g>",
            escape(&m.what),
            fmt_dec1(m.t),
            label_y + 3.0,
            x + dx,
            escape(&shorten(&m.what, 28))
        );
    }
    // One polyline per series, then the legend.
    for s in series {
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let coords: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\" \
             points=\"{}\"><title>{}</title></polyline>",
            s.color,
            coords.join(" "),
            escape(s.name)
        );
    }
    let mut lx = ml;
    for s in series {
        let _ = writeln!(
            out,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"18\" height=\"4\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            h - 14.0,
            s.color,
            lx + 24.0,
            h - 9.0,
            escape(s.name)
        );
        lx += 40.0 + 6.5 * s.name.chars().count() as f64;
    }
    out.push_str("</svg>\n");
    out
}

/// One bar of a [`bar_chart`].
struct Bar {
    label: String,
    value: f64,
    /// The value as written next to the bar.
    text: String,
    color: &'static str,
}

/// Bars under one title.
struct BarGroup {
    title: String,
    bars: Vec<Bar>,
}

#[derive(Debug, Clone, Copy)]
enum Scale {
    Linear,
    /// log10(1 + v): latencies from 1 ms to minutes stay readable on one axis.
    Log,
}

impl Scale {
    /// Where `v` falls on an axis from 0 to `top` (>= 1 for log), in [0, 1].
    fn pos(self, v: f64, top: f64) -> f64 {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        match self {
            Scale::Linear => unit(v / top),
            Scale::Log => unit((1.0 + v).log10() / (1.0 + top).log10()),
        }
    }

    /// The ticks and the top of the axis for values up to `max`.
    fn ticks(self, max: f64) -> (Vec<f64>, f64) {
        match self {
            Scale::Linear => {
                let ticks = nice_ticks(max, 5);
                let top = axis_top(&ticks);
                (ticks, top)
            }
            Scale::Log => {
                // 0, 1, 10, 100, ... up to the first power of ten >= max.
                let mut ticks = vec![0.0, 1.0];
                let mut top = 1.0;
                while top < max && top < 1e15 {
                    top *= 10.0;
                    ticks.push(top);
                }
                (ticks, top)
            }
        }
    }
}

/// Horizontal bars in groups, each bar with its label on the left and its value on the
/// right, on one shared axis. "no data" when there is no bar.
fn bar_chart(groups: &[BarGroup], scale: Scale, x_title: &str) -> String {
    if groups.iter().all(|g| g.bars.is_empty()) {
        return NO_DATA.to_owned();
    }
    let longest = groups
        .iter()
        .flat_map(|g| &g.bars)
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let w = 900.0;
    let (ml, mr, mt) = ((16.0 + 6.5 * longest as f64).max(50.0), 110.0, 4.0);
    let pw = w - ml - mr;
    let (title_h, bar_h, gap, group_gap) = (20.0, 14.0, 4.0, 8.0);
    let plot_h: f64 = groups
        .iter()
        .map(|g| title_h + g.bars.len() as f64 * (bar_h + gap) + group_gap)
        .sum();
    let base = mt + plot_h;
    let h = base + 40.0;
    let vmax = finite_max(groups.iter().flat_map(|g| g.bars.iter().map(|b| b.value)));
    let (ticks, top) = scale.ticks(vmax);
    let sx = |v: f64| ml + scale.pos(v, top) * pw;

    let mut out = svg_open(w, h, x_title);
    let step = tick_step(&ticks);
    for &t in &ticks {
        let x = sx(t);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{mt}\" x2=\"{x:.1}\" y2=\"{base:.1}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            base + 14.0,
            fmt_tick(t, step)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{ml:.1}\" y1=\"{mt}\" x2=\"{ml:.1}\" y2=\"{base:.1}\" stroke=\"#5f6368\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        ml + pw / 2.0,
        base + 32.0,
        escape(x_title)
    );
    let mut y = mt;
    for g in groups {
        let _ = writeln!(
            out,
            "<text class=\"gt\" x=\"4\" y=\"{:.1}\">{}</text>",
            y + 14.0,
            escape(&g.title)
        );
        y += title_h;
        for b in &g.bars {
            let bw = sx(b.value) - ml;
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
                 <rect x=\"{ml:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bar_h}\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                ml - 6.0,
                y + bar_h - 3.0,
                escape(&b.label),
                b.color,
                ml + bw + 4.0,
                y + bar_h - 3.0,
                escape(&b.text)
            );
            y += bar_h + gap;
        }
        y += group_gap;
    }
    out.push_str("</svg>\n");
    out
}

fn svg_open(w: f64, h: f64, label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h:.0}\" role=\"img\" \
         aria-label=\"{}\">\n",
        escape(label)
    )
}

/// Round tick values from 0 to at least `max`, about `target` steps of 1, 2 or 5 times a
/// power of ten. `[0]` when `max` is not a positive number.
fn nice_ticks(max: f64, target: usize) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0];
    }
    let raw = max / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        f if f <= 1.0 => 1.0,
        f if f <= 2.0 => 2.0,
        f if f <= 5.0 => 5.0,
        _ => 10.0,
    } * magnitude;
    // The small slack keeps 25000 / 5000 = 5.000000001 from adding a sixth step.
    let steps = (max / step - 1e-9).ceil().max(1.0) as usize;
    (0..=steps).map(|i| i as f64 * step).collect()
}

/// The last tick, or 1 when there is none above 0 (all-zero data): never divide by 0.
fn axis_top(ticks: &[f64]) -> f64 {
    ticks.last().copied().filter(|t| *t > 0.0).unwrap_or(1.0)
}

fn tick_step(ticks: &[f64]) -> f64 {
    match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    }
}

/// Enough decimals to tell ticks `step` apart, and thousands separators.
fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 || step <= 0.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(6)
    };
    fmt_num(v, decimals)
}

/// The largest finite value, at least 0.
fn finite_max(values: impl Iterator<Item = f64>) -> f64 {
    values.filter(|v| v.is_finite()).fold(0.0, f64::max)
}

/// Clamped to [0, 1]; NaN is 0.
fn unit(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

// ---------------------------------------------------------------------------- formatting

/// Escapes `& < > " '` for text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `25012` → `25,012`.
fn fmt_int(n: u64) -> String {
    group_digits(&n.to_string())
}

/// A rate: `25,012/s`.
fn fmt_rate(v: f64) -> String {
    format!("{}/s", fmt_num(v, 0))
}

/// Up to one decimal: `12`, `12.3`, `1,234.5`.
fn fmt_dec1(v: f64) -> String {
    let s = fmt_num(v, 1);
    if let Some(whole) = s.strip_suffix(".0") {
        return whole.to_owned();
    }
    s
}

/// `v` with `decimals` decimals and thousands separators; `–` when not a number.
fn fmt_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let digits = format!("{:.*}", decimals, v.abs());
    let (whole, frac) = digits.split_once('.').unwrap_or((digits.as_str(), ""));
    let mut out = String::new();
    if v < 0.0 && digits.chars().any(|c| ('1'..='9').contains(&c)) {
        out.push('-');
    }
    out.push_str(&group_digits(whole));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn group_digits(digits: &str) -> String {
    let n = digits.chars().count();
    let mut out = String::with_capacity(n + n / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::load::summary::{Baselines, EngineLatency, EngineUsage, MachineUsage, Offered};

    fn stage(name: &str, label: &str, p50: f64) -> Stage {
        Stage {
            name: name.to_owned(),
            label: label.to_owned(),
            count: 75_000,
            p50,
            p90: p50 * 2.0,
            p99: p50 * 5.0,
            p999: p50 * 9.0,
            max: p50 * 40.0,
        }
    }

    fn full(passed: bool) -> RunSummary {
        RunSummary {
            scenario: "<b>x</b>".to_owned(),
            description: "steady 25k/s <script>alert('hi')</script> & a restart".to_owned(),
            run_id: "run-42".to_owned(),
            started_at: "2026-01-02T03:04:05Z".to_owned(),
            mode: "local".to_owned(),
            offered: Offered {
                kind: "constant".to_owned(),
                peak_rate: 25_000.0,
                count: 75_000,
                duration_s: 3.0,
            },
            produced: 75_000,
            produce_seconds: 3.0,
            end_to_end_seconds: 3.5,
            end_to_end_rate: 21_428.6,
            timeline: (0..3)
                .map(|t| Second {
                    t,
                    offered: 25_000,
                    produced: 24_900 + u64::from(t),
                    submitted: 20_000 + 100 * u64::from(t),
                    terminal: 19_000 + 1000 * u64::from(t),
                })
                .collect(),
            stages: vec![
                stage("produced_to_submit", "debit to carrier submit", 12.34),
                stage("produced_to_status_seen", "debit to status seen", 80.0),
            ],
            outcomes: BTreeMap::from([
                ("delivered".to_owned(), 74_000),
                ("failed".to_owned(), 1_000),
            ]),
            outcome_reasons: BTreeMap::from([("failed(carrier_refused)".to_owned(), 2)]),
            counts: Counts {
                throttled: 12,
                failed: 1_000,
                lost: 3,
                ..Counts::default()
            },
            accounting: Accounting {
                expected: 75_000,
                terminal: 74_997,
                missing: 3,
                missing_sample: vec!["run-42-17".to_owned(), "<id>".to_owned()],
                ..Accounting::default()
            },
            exactly_once: false,
            engine: Some(EngineUsage {
                cpu_seconds: 4.25,
                cpu_us_per_notification: 56.7,
                peak_rss_mb: 123.4,
                restarts: 1,
                latency: Some(EngineLatency {
                    broker_hop_p50_ms: 43.25,
                    broker_hop_p99_ms: 105.0,
                    engine_p50_ms: 8.5,
                    engine_p99_ms: 31.0,
                }),
            }),
            baselines: Some(Baselines {
                broker_consume_rate: 250_000.0,
                sim_submit_rate: 40_000.0,
                broker_hop_p50_ms: 41.5,
                broker_hop_p99_ms: 97.25,
                broker_hop_fetch_wait_ms: 10,
                broker_hop_rate: 25_000.0,
            }),
            machine: Some(MachineUsage {
                seconds: 61.5,
                cores: 2.0,
                busy_share: 0.93,
                busy_cpu_seconds: 114.4,
                engine_cpu_seconds: Some(57.3),
                broker_cpu_seconds: Some(26.5),
                harness_cpu_seconds: 28.0,
            }),
            events: vec![Mark {
                t: 1.5,
                what: "engine restarted".to_owned(),
            }],
            checks: vec![
                Check {
                    name: "rate".to_owned(),
                    expected: ">= 20000/s".to_owned(),
                    actual: "21428/s".to_owned(),
                    passed: true,
                },
                Check {
                    name: "exactly once".to_owned(),
                    expected: "0 lost".to_owned(),
                    actual: "3 lost".to_owned(),
                    passed: false,
                },
            ],
            passed,
        }
    }

    /// Every `points="..."` coordinate of the page.
    fn coordinates(page: &str) -> Vec<f64> {
        page.split("points=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .flat_map(|pts| pts.split([' ', ',']))
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<f64>().unwrap_or(f64::NAN))
            .collect()
    }

    #[test]
    fn full_summary_renders_every_section_in_order() {
        let page = render(&full(false));
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<svg"));
        assert_eq!(page.matches("<polyline").count(), 4, "one line per series");
        assert!(page.contains("engine restarted"));
        assert!(
            page.contains("failed(carrier_refused)"),
            "outcomes by reason"
        );
        assert!(page.contains("stroke-dasharray"));
        assert!(page.contains("run-42"));
        assert!(page.contains("25,000/s"));
        assert!(page.contains("21,429/s"));
        assert!(page.contains("12.3 ms"), "latency with one decimal");
        assert!(page.contains("debit to status seen"));
        assert!(page.contains("250,000/s"), "broker baseline");
        assert!(
            page.contains("alone (25,000/s, the engine's fetch wait of 10 ms): p50 41.5 ms"),
            "the hop alone, with the fetch wait it was measured with"
        );
        assert!(
            page.contains("p50 8.5 ms, p99 31 ms"),
            "the engine's own share"
        );
        assert!(
            page.contains("(61.5 s on 2 cores): 93 % busy, 114.4 CPU seconds"),
            "the machine"
        );
        assert!(page.contains(">57.3 s<") && page.contains(">26.5 s<") && page.contains(">28 s<"));
        assert!(
            page.contains(">2.6 s<"),
            "the rest: 114.4 - 57.3 - 26.5 - 28"
        );
        assert!(page.contains("<td class=\"n bad\">3</td>"), "lost in red");
        assert!(page.contains("<tr class=\"pass\">") && page.contains("<tr class=\"fail\">"));
        assert!(!page.contains("no data"));
        let order = [
            "<h1>",
            "Exactly once",
            "Throughput over time",
            "Latency by stage",
            "<h2>Outcomes",
            "<h2>Counts",
            "<h2>Engine",
            "<h2>The machine",
            "<h2>Checks",
            "<h2>Accounting",
        ];
        let at: Vec<usize> = order
            .iter()
            .map(|s| page.find(s).unwrap_or_else(|| panic!("missing {s}")))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "sections out of order");
        let coords = coordinates(&page);
        assert_eq!(coords.len(), 4 * 3 * 2);
        assert!(coords.iter().all(|c| c.is_finite()));
    }

    #[test]
    fn badge_follows_passed() {
        let failed = render(&full(false));
        assert!(failed.contains("FAILED") && !failed.contains("PASSED"));
        let passed = render(&full(true));
        assert!(passed.contains("PASSED") && !passed.contains("FAILED"));
    }

    #[test]
    fn data_is_escaped_and_there_is_no_script() {
        let page = render(&full(false));
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(!page.contains("<b>x</b>"));
        assert!(!page.contains("<script"));
        assert!(page.contains("&lt;script&gt;alert(&#39;hi&#39;)&lt;/script&gt; &amp; a restart"));
        assert!(page.contains("<code>&lt;id&gt;</code>"));
        assert!(!page.contains("<id>"));
        for external in ["src=", "href=", "@import", "url(", "<link"] {
            assert!(!page.contains(external), "external reference {external}");
        }
    }

    #[test]
    fn empty_summary_says_no_data() {
        let page = render(&RunSummary::default());
        assert!(page.contains("no data"));
        assert!(page.contains("FAILED"));
        assert!(!page.contains("<polyline"));
        assert!(
            !page.contains("<h2>Engine"),
            "no engine section without measurements"
        );
        assert!(!page.contains("<h2>The machine"));
        assert!(!page.contains("NaN"));
    }

    #[test]
    fn all_zero_data_draws_flat_lines_without_nan() {
        let mut s = full(true);
        s.timeline = vec![Second::default()];
        s.events.clear();
        s.stages = vec![Stage::default()];
        s.baselines = Some(Baselines::default());
        s.end_to_end_rate = 0.0;
        let page = render(&s);
        assert_eq!(page.matches("<polyline").count(), 4);
        let coords = coordinates(&page);
        assert_eq!(coords.len(), 4 * 2);
        assert!(coords.iter().all(|c| c.is_finite()), "{coords:?}");
        assert!(!page.contains("NaN") && !page.contains("inf\""));
        assert!(page.contains("0 ms"));
    }

    #[test]
    fn nice_ticks_are_round() {
        assert_eq!(
            nice_ticks(25_000.0, 5),
            vec![0.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0, 25_000.0]
        );
        assert_eq!(nice_ticks(7.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(
            nice_ticks(29.0, 8),
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        assert_eq!(nice_ticks(0.0, 5), vec![0.0]);
        assert_eq!(nice_ticks(-3.0, 5), vec![0.0]);
        assert_eq!(nice_ticks(f64::NAN, 5), vec![0.0]);
        for max in [0.3, 1.0, 3.0, 99.0, 101.0, 12_345.0, 1e9] {
            let t = nice_ticks(max, 5);
            let top = axis_top(&t);
            assert!(top >= max && top < max * 2.6, "{max}: {t:?}");
            assert!((2..=6).contains(&t.len()), "{max}: {t:?}");
        }
        assert_eq!(
            Scale::Log.ticks(1234.0),
            (vec![0.0, 1.0, 10.0, 100.0, 1000.0, 10_000.0], 10_000.0)
        );
        assert_eq!(Scale::Log.ticks(0.0), (vec![0.0, 1.0], 1.0));
    }

    #[test]
    fn numbers_are_formatted() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(1_234_567), "1,234,567");
        assert_eq!(fmt_rate(25_012.4), "25,012/s");
        assert_eq!(fmt_dec1(12.34), "12.3");
        assert_eq!(fmt_dec1(12.0), "12");
        assert_eq!(fmt_dec1(1_234.56), "1,234.6");
        assert_eq!(fmt_num(-1_500.0, 0), "-1,500");
        assert_eq!(fmt_num(f64::NAN, 1), "–");
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
        assert_eq!(fmt_tick(5_000.0, 5_000.0), "5,000");
        assert_eq!(escape("a&b<c>\"d'"), "a&amp;b&lt;c&gt;&quot;d&#39;");
        assert_eq!(shorten("carrier-a down", 28), "carrier-a down");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
