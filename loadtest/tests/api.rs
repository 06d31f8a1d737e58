//! The status API end to end: the engine in-process with the real broker and pigeon-sim,
//! asked over HTTP what became of notifications that ended delivered, skipped, failed,
//! ambiguous and unconfirmed; the carriers' breaker state; reload by an admin call.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pigeon::config::Config;
use pigeon::pipeline::api::ConfigSource;
use pigeon_loadtest::load::{DebitMix, Generator};
use pigeon_smpp::receipt::ReceiptState;
use support::{engine_config, free_addr, http, produce, Engine, Topics};
use tokio::time::Instant;

const TOKEN: &str = "test-token-0123456789";

/// A generated debit with its destination replaced.
fn debit_to(g: &mut Generator, destination: &str) -> (Vec<u8>, Vec<u8>) {
    let (key, payload) = g.next_event();
    let mut v: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    v["destination"] = destination.into();
    (key, serde_json::to_vec(&v).expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_api_tells_what_became_of_each_notification_and_reloads() {
    let topics = Topics::unique("api");
    topics.create().await;
    // carrier-a refuses one prefix outright, leaves a fifth of submits unanswered (no
    // receipt either), and sends only an intermediate receipt for half of the others.
    let sim = support::start_sim_with(Duration::from_millis(20), |a| {
        a.reject_prefixes = vec!["447400000".into()];
        a.no_response_rate = 0.2;
        a.no_response_still_delivers = false;
        a.receipt_mix = vec![(ReceiptState::Delivered, 0.5), (ReceiptState::Enroute, 0.5)];
    })
    .await;
    let api = free_addr();
    let mut cfg = engine_config(&sim, &topics);
    cfg.engine.receipt_timeout_ms = 2_000;
    cfg.api.listen = api.to_string();
    cfg.api.token = TOKEN.into();
    cfg.carriers[0].response_timeout_ms = 1_000;
    cfg.carriers[0].breaker_failures = 10_000;
    // What the admin call reads: the running configuration, then one with a new rate, then
    // one with errors.
    let next: Arc<Mutex<Result<Config, Vec<String>>>> = Arc::new(Mutex::new(Ok(cfg.clone())));
    let source: ConfigSource = {
        let next = next.clone();
        Arc::new(move || next.lock().expect("lock").clone())
    };
    let engine = Engine::start_with(cfg.clone(), Some(source));
    let statuses = support::collector(&topics, "api");
    let mut g = Generator::new("api", DebitMix::uk_only());
    let mut events: Vec<_> = (0..40)
        .map(|i| debit_to(&mut g, &format!("+4474009{i:05}")))
        .collect();
    events.push(debit_to(&mut g, "+447400000123"));
    events.push(debit_to(&mut g, "+4412"));
    produce(&topics.debits, events).await;
    assert!(
        statuses
            .wait_settled(42, Instant::now() + Duration::from_secs(90))
            .await,
        "only {} of 42 settled",
        statuses.settled_count()
    );

    // One event per final state, as the status topic says.
    let mut by_state: BTreeMap<String, String> = BTreeMap::new();
    for id in g.ids() {
        if let Some(last) = statuses.statuses(&id).last() {
            by_state.entry(last.state.as_str().to_owned()).or_insert(id);
        }
    }
    for state in ["delivered", "skipped", "failed", "ambiguous", "unconfirmed"] {
        let id = by_state
            .get(state)
            .unwrap_or_else(|| panic!("no {state} notification: {by_state:?}"));
        let path = format!("/v1/notifications/{id}");
        let (code, record) = http(api, "GET", &path, Some(TOKEN)).await;
        assert_eq!(code, 200, "{state}: {record}");
        assert_eq!(record["event_id"], id.as_str());
        assert_eq!(record["state"], state, "{record}");
        assert!(
            record["timeline"].as_array().is_some_and(|t| !t.is_empty()),
            "{record}"
        );
        let shown = record["destination"].as_str().unwrap_or_default();
        assert!(
            shown.contains("****") || state == "skipped",
            "numbers are masked: {record}"
        );
        let (code, _) = http(api, "GET", &path, None).await;
        assert_eq!(code, 401, "no token, no answer");
        let (code, _) = http(api, "GET", &path, Some("wrong-token-0123456789")).await;
        assert_eq!(code, 401, "wrong token, no answer");
    }
    let failed = &by_state["failed"];
    let txn = statuses.statuses(failed)[0]
        .transaction_id
        .clone()
        .expect("transaction id");
    let (code, found) = http(
        api,
        "GET",
        &format!("/v1/transactions/{txn}/notifications"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(found["notifications"][0]["event_id"], failed.as_str());
    let (code, _) = http(api, "GET", "/v1/notifications/never-seen", Some(TOKEN)).await;
    assert_eq!(code, 404);
    assert_eq!(http(api, "GET", "/healthz", None).await.0, 200);
    assert_eq!(http(api, "GET", "/readyz", None).await.0, 200);

    // Carriers with their breaker state.
    let (code, carriers) = http(api, "GET", "/v1/carriers", Some(TOKEN)).await;
    assert_eq!(code, 200);
    let list = carriers["carriers"].as_array().expect("list");
    assert_eq!(list.len(), 2, "{carriers}");
    assert_eq!(list[0]["name"], "carrier-a");
    assert_eq!(list[0]["breaker"], "closed", "{carriers}");
    assert_eq!(list[0]["binds_up"], 1, "{carriers}");

    // Reload by an admin call: a new rate applies and shows; a bad file changes nothing.
    let mut faster = cfg.clone();
    faster.carriers[0].max_segments_per_second = 1234;
    *next.lock().expect("lock") = Ok(faster);
    let (code, plan) = http(api, "POST", "/v1/admin/reload", Some(TOKEN)).await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["rates"][0]["segments_per_second"], 1234, "{plan}");
    let (_, carriers) = http(api, "GET", "/v1/carriers", Some(TOKEN)).await;
    assert_eq!(carriers["carriers"][0]["rate_segments_per_second"], 1234.0);
    *next.lock().expect("lock") = Err(vec!["routing: first".into(), "carriers: second".into()]);
    let (code, refused) = http(api, "POST", "/v1/admin/reload", Some(TOKEN)).await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(
        refused["errors"].as_array().map(Vec::len),
        Some(2),
        "{refused}"
    );
    let (code, _) = http(api, "POST", "/v1/admin/reload", None).await;
    assert_eq!(code, 401);

    engine.stop().await;
    sim.shutdown().await;
}
