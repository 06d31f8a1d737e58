//! A hostile-input corpus of debit events, end to end: each ends on the dead-letter topic
//! with its reason (or as `skipped` with a reason), and the engine keeps going: the valid
//! events around them are all delivered.

mod support;

use std::time::Duration;

use pigeon_loadtest::load::{dead_letters, DebitMix, Generator};
use rdkafka::message::Message;
use support::{engine_config, produce, start_sim, Engine, Topics};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(90);
const CARD: &str = "4111111111111111";

/// A valid event as JSON, to spoil one field at a time.
fn valid(g: &mut Generator) -> serde_json::Value {
    serde_json::from_slice(&g.next_event().1).expect("json")
}

fn with(mut v: serde_json::Value, field: &str, value: serde_json::Value) -> Vec<u8> {
    v[field] = value;
    serde_json::to_vec(&v).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_end_on_the_dead_letter_topic_or_skipped_and_the_engine_goes_on() {
    let topics = Topics::unique("hostile");
    topics.create().await;
    let sim = start_sim(Duration::ZERO).await;
    let engine = Engine::start(engine_config(&sim, &topics));
    let statuses = support::collector(&topics, "hostile");
    // The spoilt events' ids start with their generator's run id.
    let spoilt = support::collector(&topics, "spoilt");
    let mix = DebitMix::uk_only();
    let mut spoil = Generator::new("spoilt", mix.clone());
    let mut missing = valid(&mut spoil);
    missing
        .as_object_mut()
        .expect("object")
        .remove("destination");
    let deep = format!("{}{}", "[".repeat(1_500), "]".repeat(1_500));
    // (what it is, payload, the dead-letter reason)
    let corpus: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"{not json".to_vec(), "malformed_event"),
        ("empty", Vec::new(), "malformed_event"),
        ("an array", b"[]".to_vec(), "malformed_event"),
        ("nested 1,500 deep", deep.into_bytes(), "malformed_event"),
        (
            "invalid utf-8",
            vec![b'{', 0xff, 0xfe, 0xfd, b'}'],
            "malformed_event",
        ),
        (
            "amount as a string",
            with(valid(&mut spoil), "amount_minor", "12.50".into()),
            "malformed_event",
        ),
        (
            "destination missing",
            serde_json::to_vec(&missing).expect("json"),
            "malformed_event",
        ),
        (
            "huge merchant",
            with(valid(&mut spoil), "merchant", "m".repeat(100_000).into()),
            "oversized_event",
        ),
        (
            "a full card number",
            with(valid(&mut spoil), "card_last4", CARD.into()),
            "card_number_not_truncated",
        ),
        (
            "negative amount",
            with(valid(&mut spoil), "amount_minor", (-1250).into()),
            "invalid_field",
        ),
        (
            "control characters",
            with(valid(&mut spoil), "merchant", "Coffee\u{0}\u{7}Shop".into()),
            "invalid_field",
        ),
        (
            "event id of 100 characters",
            with(valid(&mut spoil), "event_id", "e".repeat(100).into()),
            "invalid_field",
        ),
        (
            "unknown schema version",
            with(valid(&mut spoil), "schema_version", 7.into()),
            "unsupported_schema_version",
        ),
    ];
    let keys: Vec<String> = (0..corpus.len()).map(|i| format!("hostile-{i}")).collect();
    let invalid_number = with(valid(&mut spoil), "destination", "+0000".into());
    let invalid_number_id = spoil.ids().last().cloned().expect("an id");

    // Valid debits before, between and after the hostile ones.
    let mut good = Generator::new("hostile", mix);
    let mut records = Vec::new();
    for (i, (_, payload, _)) in corpus.iter().enumerate() {
        records.push(good.next_event());
        records.push((keys[i].clone().into_bytes(), payload.clone()));
    }
    records.push((invalid_number_id.clone().into_bytes(), invalid_number));
    for _ in 0..20 {
        records.push(good.next_event());
    }
    produce(&topics.debits, records).await;

    let ids = good.ids();
    assert!(
        statuses
            .wait_terminal(ids.len() as u64, Instant::now() + DEADLINE)
            .await,
        "the engine stopped going: {} of {} valid debits ended",
        statuses.terminal_count(),
        ids.len()
    );
    let (acc, _, _) = statuses.finish(&ids);
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(ids.len() as u64)
    );

    let found = dead_letters(
        &support::brokers(),
        &topics.dead_letter,
        &keys,
        keys.len(),
        Instant::now() + DEADLINE,
    )
    .await
    .expect("dead letters");
    for (i, (what, _, reason)) in corpus.iter().enumerate() {
        let got = found.iter().find(|(k, _)| *k == keys[i]).map(|(_, r)| r);
        assert_eq!(got.map(String::as_str), Some(*reason), "{what}");
    }
    assert!(
        spoilt.wait_terminal(1, Instant::now() + DEADLINE).await,
        "a status for the invalid number"
    );
    let trail = spoilt.statuses(&invalid_number_id);
    let last = trail.last().expect("a status for the invalid number");
    assert_eq!(last.state.as_str(), "skipped");
    assert_eq!(last.reason.as_deref(), Some("invalid_number"));

    // The full card number never reaches the dead-letter topic.
    let dlt = support::consumer(&topics.dead_letter);
    let deadline = Instant::now() + DEADLINE;
    let card_key = &keys[8];
    loop {
        let m = tokio::time::timeout_at(deadline, dlt.recv())
            .await
            .expect("the card record in time")
            .expect("consumed");
        if m.key() == Some(card_key.as_bytes()) {
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default());
            assert!(!payload.contains(CARD), "{payload}");
            break;
        }
    }
    engine.stop().await;
    sim.shutdown().await;
}
