//! End to end with real parts: the broker, pigeon-sim over TCP SMPP, the engine.

mod support;

use std::time::Duration;

use pigeon_loadtest::load::{DebitMix, Generator};
use rdkafka::message::{Headers, Message};
use support::{collector, consumer, engine_config, produce, start_sim, Engine, Topics};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(120);

/// A (key, payload) record.
type Raw = (Vec<u8>, Vec<u8>);

/// `n` valid debits of run `run`: the records and their event ids.
fn debits(run: &str, n: u64, mix: DebitMix) -> (Vec<Raw>, Vec<String>) {
    let mut g = Generator::new(run, mix);
    let records = (0..n).map(|_| g.next_event()).collect();
    (records, g.ids())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_debits_become_two_thousand_delivered_sms() {
    let topics = Topics::unique("e2e2000");
    topics.create().await;
    let sim = start_sim(Duration::from_millis(10)).await;
    let engine = Engine::start(engine_config(&sim, &topics));
    let statuses = collector(&topics, "r2000");

    let (records, ids) = debits(
        "r2000",
        2000,
        DebitMix {
            chinese: 0.2,
            long: 0.2,
            malformed_every: 0,
            ..DebitMix::default()
        },
    );
    produce(&topics.debits, records).await;

    assert!(
        statuses
            .wait_terminal(2000, Instant::now() + DEADLINE)
            .await,
        "only {} of 2000 events reached a terminal status",
        statuses.terminal_count()
    );
    let (acc, _, _) = statuses.finish(&ids);
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(acc.by_state.get("delivered"), Some(&2000), "{acc:?}");
    assert_eq!(acc.all_statuses.get("accepted"), Some(&2000), "{acc:?}");

    // Every segment's receipt ends answered "received"; one refused (it came before its
    // acceptance, which took longer than `PARKED_ANSWER_HOLD`) once it is sent again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut s = sim.stats();
    while s.receipts_acked < s.submits && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = sim.stats();
    }
    assert_eq!(s.receipts_acked, s.submits, "{s:?}");

    engine.stop().await;
    let s = sim.shutdown().await;
    assert_eq!(s.messages, 2000, "{s:?}");
    assert_eq!(s.unique_pairs, 2000, "{s:?}");
    assert_eq!(s.duplicate_pairs, 0, "{s:?}");
    assert!(
        s.submits > 2000,
        "long messages are several segments: {s:?}"
    );
    assert_eq!(
        s.receipts_sent - s.receipts_resent,
        s.submits,
        "one receipt per segment: {s:?}"
    );
    // Each answered, once or (refused, then sent again) twice.
    assert_eq!(s.receipts_resent, s.receipts_refused, "{s:?}");
    assert_eq!(
        s.receipts_acked + s.receipts_refused,
        s.receipts_sent,
        "{s:?}"
    );
    assert!(
        s.data_codings.get("ucs2").copied().unwrap_or(0) > 0,
        "{s:?}"
    );
    assert!(
        s.data_codings.get("gsm7").copied().unwrap_or(0) > 0,
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_goes_to_the_dead_letter_topic_and_the_rest_are_delivered() {
    let topics = Topics::unique("dlt");
    topics.create().await;
    let sim = start_sim(Duration::ZERO).await;
    let engine = Engine::start(engine_config(&sim, &topics));
    let statuses = collector(&topics, "rdlt");

    let (mut records, ids) = debits("rdlt", 20, DebitMix::default());
    let garbage = b"{\"schema_version\":1,\"event_id\":\"rdlt-bad\", this is not json".to_vec();
    // Same key as the events after it, so that it sits in their partition, before them.
    let key = records[10].0.clone();
    records.insert(10, (key, garbage.clone()));
    produce(&topics.debits, records).await;

    assert!(statuses.wait_terminal(20, Instant::now() + DEADLINE).await);
    let (acc, _, _) = statuses.finish(&ids);
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(acc.by_state.get("delivered"), Some(&20), "{acc:?}");

    let dlt = consumer(&topics.dead_letter);
    let m = tokio::time::timeout(DEADLINE, dlt.recv())
        .await
        .expect("a dead letter in time")
        .expect("consumed");
    assert_eq!(
        m.payload(),
        Some(&garbage[..]),
        "the original bytes, unchanged"
    );
    let headers = m.headers().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("pigeon.reason").as_deref(), Some("malformed_event"));
    assert_eq!(
        header("pigeon.source.topic").as_deref(),
        Some(topics.debits.as_str())
    );
    assert!(header("pigeon.source.offset").is_some());
    assert!(
        header("pigeon.detail").is_some_and(|d| d.contains("line 1")),
        "{:?}",
        header("pigeon.detail")
    );

    engine.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_mid_stream_resumes_without_loss_or_duplicates() {
    let topics = Topics::unique("restart");
    topics.create().await;
    let sim = start_sim(Duration::from_millis(5)).await;
    let statuses = collector(&topics, "rrs");
    let (records, ids) = debits("rrs", 2000, DebitMix::default());
    produce(&topics.debits, records).await;
    // Slow carriers and small batches, so that the first engine cannot have taken in (and
    // drained) everything by the time it is stopped.
    let mut cfg = engine_config(&sim, &topics);
    cfg.engine.batch_max = 50;
    cfg.engine.mailbox_capacity = 2;
    for c in &mut cfg.carriers {
        c.max_segments_per_second = 300;
    }

    let engine = Engine::start(cfg.clone());
    let partway = statuses.wait_terminal(300, Instant::now() + DEADLINE).await;
    assert!(partway, "the first engine made progress");
    engine.stop().await;
    let after_first = statuses.terminal_count();
    assert!(
        after_first < 2000,
        "stopped mid-stream ({after_first} done)"
    );

    let engine = Engine::start(cfg);
    assert!(
        statuses
            .wait_terminal(2000, Instant::now() + DEADLINE)
            .await,
        "only {} of 2000 after the restart",
        statuses.terminal_count()
    );
    engine.stop().await;
    let (acc, _, _) = statuses.finish(&ids);
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(acc.by_state.get("delivered"), Some(&2000), "{acc:?}");
    assert_eq!(
        acc.all_statuses.get("accepted"),
        Some(&2000),
        "no event accepted twice: {acc:?}"
    );
    let s = sim.shutdown().await;
    assert_eq!(s.messages, 2000, "{s:?}");
    assert_eq!(s.duplicate_pairs, 0, "{s:?}");
}
