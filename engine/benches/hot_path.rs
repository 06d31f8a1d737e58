//! The engine's per-notification hot path, without I/O: one debit event through the intake
//! (decode, validate, eligibility, route with numbering-plan validation, render, encode and
//! segment), and receipt matching (an acceptance registered, its receipt applied). The
//! submit_sm PDU encoding is measured in `connectors/smpp/benches/codec.rs`.
//!
//! `cargo bench -p pigeon-engine --bench hot_path`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pigeon::config::Config;
use pigeon::eligibility::Eligibility;
use pigeon::health::CarrierHealth;
use pigeon::intake::{Decision, Encodings, Intake, IntakeLimits};
use pigeon::matcher::{Accepted, Matcher};
use pigeon::notification::{Meta, Origin};
use pigeon::routing::Msisdn;
use pigeon::template::Templates;
use pigeon_smpp::receipt::{Receipt, ReceiptState};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

fn intake() -> Intake {
    let cfg = Config::from_toml(
        r#"
        [kafka]
        brokers = "127.0.0.1:1"
        [[carriers]]
        name = "a"
        address = "127.0.0.1:1"
        system_id = "p"
        password = "p"
        [[carriers]]
        name = "b"
        address = "127.0.0.1:2"
        system_id = "p"
        password = "p"
        [routing]
        operators = { uk = ["a", "b"], cn = ["b", "a"] }
        prefixes = { "+44" = "uk", "+86" = "cn" }
        "#,
    )
    .expect("valid");
    let health = Arc::new(CarrierHealth::new(2));
    health.set_binds_up(0, 1);
    health.set_binds_up(1, 1);
    let encodings: Encodings = cfg.carriers.iter().map(|c| c.segment_options()).collect();
    Intake::new(
        Templates::new(&cfg.templates).expect("templates"),
        cfg.routing.router(&cfg.carriers).expect("router"),
        IntakeLimits {
            max_event_bytes: 4096,
            validity: Duration::from_secs(3600),
            priority_lanes: false,
        },
        health,
        encodings,
        Eligibility::everyone(),
    )
}

fn event(destination: &str, locale: &str, merchant: &str) -> Vec<u8> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("time");
    serde_json::json!({
        "schema_version": 1, "event_id": "evt-1", "transaction_id": "txn-1",
        "occurred_at": now, "customer_ref": "c-1", "destination": destination,
        "card_last4": "4242", "amount_minor": 1250, "currency": "GBP",
        "merchant": merchant, "locale": locale, "balance_minor": 152_340
    })
    .to_string()
    .into_bytes()
}

fn bench_intake(c: &mut Criterion) {
    let mut g = c.benchmark_group("intake_decide");
    let origin = Origin {
        partition: 0,
        offset: 0,
    };
    for (name, payload) in [
        (
            "gsm_1_segment",
            event("+447400900123", "en-GB", "Coffee House"),
        ),
        (
            "ucs2_chinese",
            event("+8613800138000", "zh-CN", "北京王府井百货"),
        ),
    ] {
        let mut intake = intake();
        assert!(matches!(intake.decide(&payload, origin), Decision::Send(_)));
        g.bench_function(name, |b| {
            b.iter(|| black_box(intake.decide(black_box(&payload), origin)))
        });
    }
    g.finish();
}

fn accepted(n: u64) -> Accepted {
    Accepted {
        meta: Meta {
            event_id: format!("evt-{n}"),
            transaction_id: format!("txn-{n}"),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            masked: "+********0123".into(),
            segments: 1,
            possible_duplicate: false,
        },
        carrier: 0,
        carrier_name: "a".into(),
        message_ids: vec![format!("{n:08x}")],
        resubmit: None,
    }
}

fn bench_matcher(c: &mut Criterion) {
    let mut m = Matcher::new(
        Duration::from_secs(3600),
        Duration::from_secs(600),
        Vec::new(),
    );
    let now = Instant::now();
    let mut out = Vec::new();
    let mut n = 0u64;
    c.bench_function("matcher/accept_then_receipt", |b| {
        b.iter_batched(
            || {
                n += 1;
                let receipt = Receipt {
                    message_id: format!("{n:08X}"),
                    state: ReceiptState::Delivered,
                    error_code: None,
                };
                (accepted(n), receipt)
            },
            |(a, r)| {
                m.accept(a, now, &mut out);
                m.receipt(0, r, now, &mut out);
                out.clear();
            },
            BatchSize::SmallInput,
        )
    });
}

/// Checking a destination against its country's numbering plan, alone: the engine's
/// compiled check, and the `phonenumber` crate's own parse and validation it restates.
fn bench_number(c: &mut Criterion) {
    let mut g = c.benchmark_group("number_validate");
    for (name, number) in [("uk", "+447400900123"), ("cn", "+8613800138000")] {
        assert!(Msisdn::parse(number).is_ok());
        g.bench_function(name, |b| {
            b.iter(|| black_box(Msisdn::parse(black_box(number))))
        });
        g.bench_function(format!("{name}_phonenumber_crate"), |b| {
            b.iter(|| {
                black_box(
                    phonenumber::parse(None, black_box(number))
                        .is_ok_and(|n| phonenumber::is_valid(&n)),
                )
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(30);
    targets = bench_intake, bench_matcher, bench_number
}
criterion_main!(benches);
