//! The engine against each pigeon-sim fault, end to end with the real broker: no event is
//! lost, no SMS is sent twice unless its status trail says `ambiguous`, and the engine
//! recovers within a bounded time.

mod support;

use std::time::Duration;

use pigeon::event::State;
use pigeon_kafka::KafkaConfig;
use pigeon_loadtest::load::{Accounting, DebitMix, Generator, StatusCollector};
use pigeon_loadtest::sim::{CarrierSim, IdFormat, Latency, ReceiptState, SimStats};
use support::{engine_config_with, produce, start_sim_with, Engine, Topics};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(90);

/// What one faulty run produced.
struct Run {
    acc: Accounting,
    sim: SimStats,
    collector: StatusCollector,
    ids: Vec<String>,
}

impl Run {
    fn state(&self, s: &str) -> u64 {
        self.acc.by_state.get(s).copied().unwrap_or(0)
    }

    /// Events whose trail holds an `ambiguous` status.
    fn ambiguous(&self) -> u64 {
        self.acc.all_statuses.get("ambiguous").copied().unwrap_or(0)
    }
}

/// Sends `n` one-segment UK debits (primary carrier-a) through an engine whose carrier-a is
/// the simulator with `fault`, and waits until each is settled (terminal or ambiguous).
async fn run(name: &str, n: u64, fault: impl Fn(&mut CarrierSim), engine_carrier_a: &str) -> Run {
    let mix = DebitMix::uk_only();
    run_mix(name, n, mix, fault, engine_carrier_a).await
}

/// As [`run`], with a traffic mix of its own.
async fn run_mix(
    name: &str,
    n: u64,
    mix: DebitMix,
    fault: impl Fn(&mut CarrierSim),
    engine_carrier_a: &str,
) -> Run {
    let topics = Topics::unique(name);
    topics.create().await;
    let sim = start_sim_with(Duration::from_millis(20), fault).await;
    let engine = Engine::start(engine_config_with(&sim, &topics, engine_carrier_a));
    let collector = StatusCollector::start(
        &KafkaConfig::new(support::brokers()),
        &topics.statuses,
        name,
    )
    .expect("status collector");
    let mut g = Generator::new(name, mix);
    let records = (0..n).map(|_| g.next_event()).collect();
    produce(&topics.debits, records).await;
    let settled = collector.wait_settled(n, Instant::now() + DEADLINE).await;
    assert!(
        settled,
        "{name}: only {} of {n} settled in time",
        collector.settled_count()
    );
    engine.stop().await;
    let sim = sim.shutdown().await;
    let ids = g.ids();
    let (acc, _, _) = collector.finish(&ids);
    assert_eq!(
        acc.duplicated, 0,
        "{name}: an event got two terminal statuses: {acc:?}"
    );
    assert_eq!(
        sim.duplicate_pairs, 0,
        "{name}: an SMS was sent twice: {sim:?}"
    );
    Run {
        acc,
        sim,
        collector,
        ids,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_carrier_gets_every_message_through_retries() {
    let r = run(
        "throttle",
        300,
        |c| c.throttle_tps = Some(100),
        "max_segments_per_second = 200\nmax_submit_retries = 30\nretry_backoff_max_ms = 500",
    )
    .await;
    assert!(r.sim.throttled > 0, "the carrier throttled: {:?}", r.sim);
    assert_eq!(r.state("delivered"), 300, "{:?}", r.acc);
}

/// A carrier configured at 400 segments/s that throttles at 200: per-bind AIMD finds the
/// carrier's real rate after a few throttles, where a fixed rate keeps being throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_keeps_an_overrated_carrier_rarely_throttled() {
    let carrier =
        "max_segments_per_second = 400\nmax_submit_retries = 30\nretry_backoff_max_ms = 500";
    let with = run(
        "aimd-on",
        800,
        |c| c.throttle_tps = Some(200),
        &format!("{carrier}\nflow_control = true"),
    )
    .await;
    let without = run(
        "aimd-off",
        800,
        |c| c.throttle_tps = Some(200),
        &format!("{carrier}\nflow_control = false"),
    )
    .await;
    eprintln!(
        "throttled with flow control {} of {} submits, without {} of {}",
        with.sim.throttled, with.sim.submits, without.sim.throttled, without.sim.submits
    );
    assert_eq!(with.state("delivered"), 800, "{:?}", with.acc);
    assert_eq!(without.state("delivered"), 800, "{:?}", without.acc);
    assert!(
        with.sim.throttled * 100 <= with.sim.submits * 5,
        "flow control: {} of {} submits throttled",
        with.sim.throttled,
        with.sim.submits
    );
    assert!(
        without.sim.throttled >= 3 * with.sim.throttled.max(1),
        "without flow control {} throttled, with {}",
        without.sim.throttled,
        with.sim.throttled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_and_permanent_ones_fail_with_the_status() {
    let r = run(
        "errors",
        200,
        |c| {
            c.error_rate = 0.2;
            c.error_status = 0x08;
        },
        "max_submit_retries = 10\nretry_backoff_ms = 10",
    )
    .await;
    assert!(r.sim.errors > 0, "{:?}", r.sim);
    assert_eq!(r.state("delivered"), 200, "{:?}", r.acc);

    // Every generated UK number starts +447400; refuse them all, permanently.
    let r = run(
        "refused",
        50,
        |c| c.reject_prefixes = vec!["447400".into()],
        "",
    )
    .await;
    assert_eq!(r.state("failed"), 50, "{:?}", r.acc);
    let trail = r.collector.statuses(&r.ids[0]);
    let failed = trail
        .iter()
        .find(|s| s.state.as_str() == "failed")
        .expect("failed status");
    assert_eq!(failed.command_status, Some(0x0B));
    assert_eq!(failed.reason.as_deref(), Some("carrier_refused"));
    assert_eq!(
        r.sim.messages, 0,
        "a refused message is not retried: {:?}",
        r.sim
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_responses_and_a_receipt_mix_end_in_the_carriers_states() {
    let r = run(
        "mix",
        300,
        |c| {
            c.response_latency = Latency {
                fixed_ms: 20,
                jitter_ms: 30,
            };
            c.dlr_jitter = Duration::from_millis(50);
            c.receipt_mix = vec![
                (ReceiptState::Delivered, 0.6),
                (ReceiptState::Undeliverable, 0.2),
                (ReceiptState::Expired, 0.2),
            ];
        },
        "",
    )
    .await;
    assert!(r.acc.exactly_once(), "{:?}", r.acc);
    let (d, u, e) = (
        r.state("delivered"),
        r.state("undelivered"),
        r.state("expired"),
    );
    assert_eq!(d + u + e, 300, "{:?}", r.acc);
    assert!(u > 20 && e > 20 && d > 120, "{:?}", r.acc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_in_another_id_form_early_twice_or_on_another_bind_are_matched_once() {
    let r = run(
        "receipts",
        300,
        |c| {
            c.id_format = IdFormat::Hex;
            c.receipt_id_format = Some(IdFormat::Decimal);
            c.receipt_before_response = 0.3;
            c.duplicate_receipts = 0.3;
            c.receipts_on_other_bind = 0.3;
        },
        "binds = 2\nreceipt_id_form = \"hex_to_decimal\"",
    )
    .await;
    assert!(r.acc.exactly_once(), "{:?}", r.acc);
    assert_eq!(r.state("delivered"), 300, "{:?}", r.acc);
    assert!(r.sim.duplicate_receipts_sent > 0, "{:?}", r.sim);
    assert!(r.sim.receipts_before_response > 0, "{:?}", r.sim);
    assert!(r.sim.receipts_other_bind > 0, "{:?}", r.sim);

    let r = run(
        "receipt-case",
        100,
        |c| {
            c.receipt_id_uppercase = true;
            c.receipt_id_strip_leading_zeros = true;
        },
        "",
    )
    .await;
    assert_eq!(r.state("delivered"), 100, "{:?}", r.acc);
}

/// A receipt sent before its submit response is parked until the acceptance is registered;
/// its `deliver_sm` is answered once the outcome is recorded, not refused for its SMSC to
/// send it again (ADR 0008).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_before_their_submit_response_are_answered_once_their_outcome_is_recorded() {
    let r = run("early", 200, |c| c.receipt_before_response = 0.5, "").await;
    assert!(r.acc.exactly_once(), "{:?}", r.acc);
    assert_eq!(r.state("delivered"), 200, "{:?}", r.acc);
    let early = r.sim.receipts_before_response;
    assert!(early > 50, "{:?}", r.sim);
    // Refused, each of them, when parked receipts were not held; held now, a receipt is
    // refused only if its acceptance takes longer than `PARKED_ANSWER_HOLD` (a machine far
    // behind).
    assert!(
        r.sim.receipts_refused * 4 < early,
        "most early receipts answered once: {:?}",
        r.sim
    );
}

/// With the default wait (30 s), nothing unanswered goes again within the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_submits_are_ambiguous_and_not_resent_before_the_wait() {
    let r = run(
        "noresp",
        200,
        |c| c.no_response_rate = 0.1,
        "response_timeout_ms = 300",
    )
    .await;
    let ambiguous = r.ambiguous();
    assert!(ambiguous > 0, "{:?}", r.acc);
    assert_eq!(r.state("delivered") + ambiguous, 200, "{:?}", r.acc);
    assert_eq!(
        r.sim.no_response, ambiguous,
        "one ambiguous status per unanswered submit"
    );
    assert_eq!(r.sim.messages, 200, "nothing was sent twice: {:?}", r.sim);
}

/// After `engine.ambiguous_wait_ms` an unanswered notification goes again to the same
/// carrier, flagged `possible_duplicate` from then on; unanswered again, it ends
/// `unconfirmed(no_submit_response)`. Every debit ends with a terminal status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_submits_go_again_after_the_wait_flagged_and_every_debit_ends() {
    let name = "noresp-resend";
    let n = 200;
    let topics = Topics::unique(name);
    topics.create().await;
    let sim = start_sim_with(Duration::from_millis(20), |c| c.no_response_rate = 0.2).await;
    let mut cfg = engine_config_with(&sim, &topics, "response_timeout_ms = 300");
    cfg.engine.ambiguous_wait_ms = 300;
    let engine = Engine::start(cfg);
    let collector = StatusCollector::start(
        &KafkaConfig::new(support::brokers()),
        &topics.statuses,
        name,
    )
    .expect("status collector");
    let mut g = Generator::new(name, DebitMix::uk_only());
    let records = (0..n).map(|_| g.next_event()).collect();
    produce(&topics.debits, records).await;
    assert!(
        collector.wait_terminal(n, Instant::now() + DEADLINE).await,
        "only {} of {n} ended",
        collector.terminal_count()
    );
    engine.stop().await;
    let sim = sim.shutdown().await;
    let (acc, _, _) = collector.finish(&g.ids());
    assert!(acc.exactly_once(), "{acc:?}");
    let resent: Vec<String> = (g.ids().into_iter())
        .filter(|id| {
            let trail = collector.statuses(id);
            trail.iter().any(|s| s.state == State::Ambiguous)
        })
        .collect();
    assert!(!resent.is_empty(), "some submits went unanswered: {sim:?}");
    for id in &resent {
        let trail = collector.statuses(id);
        let end = trail
            .iter()
            .find(|s| s.state.is_terminal())
            .expect("terminal");
        assert!(end.possible_duplicate, "{id}: {trail:?}");
        assert!(
            matches!(end.state, State::Delivered | State::Unconfirmed),
            "{id}: {trail:?}"
        );
        if end.state == State::Unconfirmed {
            assert_eq!(end.reason.as_deref(), Some("no_submit_response"));
        }
    }
    // The carrier had every unanswered message, so each resend is a second copy, and
    // nothing else was sent twice.
    assert_eq!(sim.duplicate_pairs, resent.len() as u64, "{sim:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied().unwrap_or(0)
            + acc.by_state.get("unconfirmed").copied().unwrap_or(0),
        n,
        "{acc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_rebound_and_nothing_is_sent_twice() {
    let r = run(
        "drops",
        400,
        |c| c.drop_every = Some(Duration::from_millis(400)),
        "max_segments_per_second = 400\nresponse_timeout_ms = 1000",
    )
    .await;
    assert!(r.sim.drops >= 2, "{:?}", r.sim);
    assert!(
        r.sim.binds >= 3,
        "the engine bound again after each drop: {:?}",
        r.sim
    );
    let ambiguous = r.ambiguous();
    assert_eq!(r.state("delivered") + ambiguous, 400, "{:?}", r.acc);
    assert!(r.sim.messages <= 400, "{:?}", r.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_is_detected_and_replaced() {
    let r = run(
        "halfopen",
        300,
        |c| c.half_open_after = Some(Duration::from_millis(500)),
        "max_segments_per_second = 300\nresponse_timeout_ms = 500\nenquire_link_interval_ms = 200",
    )
    .await;
    assert!(r.sim.half_opens >= 1, "{:?}", r.sim);
    assert!(r.sim.binds >= 2, "the engine bound again: {:?}", r.sim);
    let ambiguous = r.ambiguous();
    assert_eq!(r.state("delivered") + ambiguous, 300, "{:?}", r.acc);
    assert!(r.sim.messages <= 300, "{:?}", r.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_wanting_transmitter_and_receiver_pairs_gets_them() {
    let r = run(
        "txrx",
        200,
        |_| {},
        "binds = 2\nbind_type = \"transmitter_receiver\"",
    )
    .await;
    assert!(r.acc.exactly_once(), "{:?}", r.acc);
    assert_eq!(
        r.state("delivered"),
        200,
        "receipts came over the receivers: {:?}",
        r.acc
    );
    let sessions = r.sim.binds;
    assert!(
        sessions > 4,
        "two pairs at carrier-a plus carrier-b: {sessions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_spelling_receipt_ids_in_decimal_is_learned_in_auto_mode() {
    let r = run(
        "idlearn",
        200,
        |c| {
            c.id_format = IdFormat::Hex;
            c.receipt_id_format = Some(IdFormat::Decimal);
        },
        "receipt_id_form = \"auto\"",
    )
    .await;
    assert!(r.acc.exactly_once(), "{:?}", r.acc);
    assert_eq!(r.state("delivered"), 200, "{:?}", r.acc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_go_as_each_carrier_wants_them() {
    for (name, how) in [
        ("sar", "sar"),
        ("payload", "message_payload"),
        ("udh16", "udh16"),
    ] {
        let mix = DebitMix {
            chinese: 0.0,
            long: 1.0,
            malformed_every: 0,
            ..DebitMix::default()
        };
        let r = run_mix(name, 50, mix, |_| {}, &format!("long_messages = \"{how}\"")).await;
        assert_eq!(r.state("delivered"), 50, "{how}: {:?}", r.acc);
        assert_eq!(
            r.sim.messages, 50,
            "{how}: reassembled at the carrier: {:?}",
            r.sim
        );
        let parts = if how == "message_payload" { 50 } else { 100 };
        assert_eq!(r.sim.submits, parts, "{how}: {:?}", r.sim);
    }
}
