//! The API against fake stores, carriers and admin: routes through `oneshot`, and [`serve`]
//! over real TCP.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;

const TOKEN: &str = "test-token-0123456789";

/// Records by event id; each has a `transaction_id`. `fail` makes every read an error.
#[derive(Default)]
struct FakeStore {
    records: BTreeMap<String, Value>,
    fail: bool,
}

impl Notifications for FakeStore {
    fn by_event_id(&self, id: &str) -> anyhow::Result<Option<Value>> {
        anyhow::ensure!(!self.fail, "store unavailable");
        Ok(self.records.get(id).cloned())
    }

    fn by_transaction_id(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        anyhow::ensure!(!self.fail, "store unavailable");
        Ok(self
            .records
            .values()
            .filter(|r| r["transaction_id"] == id)
            .cloned()
            .collect())
    }
}

struct FakeCarriers(Vec<CarrierView>);

impl Carriers for FakeCarriers {
    fn carriers(&self) -> Vec<CarrierView> {
        self.0.clone()
    }
}

/// Answers every reload with `answer` after `delay`; counts calls started and finished.
struct FakeAdmin {
    answer: Result<Value, Vec<String>>,
    delay: Duration,
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl FakeAdmin {
    fn answering(answer: Result<Value, Vec<String>>) -> Self {
        Self {
            answer,
            delay: Duration::ZERO,
            started: Arc::default(),
            finished: Arc::default(),
        }
    }
}

impl Admin for FakeAdmin {
    fn reload(&self) -> BoxFuture<'static, Result<Value, Vec<String>>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let (answer, delay, finished) = (self.answer.clone(), self.delay, self.finished.clone());
        async move {
            tokio::time::sleep(delay).await;
            finished.fetch_add(1, Ordering::SeqCst);
            answer
        }
        .boxed()
    }
}

fn record(event_id: &str, transaction_id: &str, state: &str) -> Value {
    json!({
        "event_id": event_id,
        "transaction_id": transaction_id,
        "state": state,
        "msisdn": "+4479******23",
    })
}

fn store() -> FakeStore {
    let mut records = BTreeMap::new();
    for (event, transaction, state) in [
        ("ev-1", "tx-1", "delivered"),
        ("ev-2", "tx-1", "failed"),
        ("ev-3", "tx-2", "accepted"),
    ] {
        records.insert(event.to_string(), record(event, transaction, state));
    }
    FakeStore {
        records,
        fail: false,
    }
}

fn carrier_views() -> Vec<CarrierView> {
    vec![
        CarrierView {
            name: "alpha".into(),
            binds_up: 2,
            binds: 2,
            breaker: BreakerView::Closed,
            up: true,
            rate_segments_per_second: Some(50.0),
        },
        CarrierView {
            name: "beta".into(),
            binds_up: 0,
            binds: 1,
            breaker: BreakerView::HalfOpen,
            up: false,
            rate_segments_per_second: None,
        },
    ]
}

fn state_with(store: FakeStore, admin: FakeAdmin) -> ApiState {
    ApiState {
        token: Arc::from(TOKEN),
        notifications: Arc::new(store),
        carriers: Arc::new(FakeCarriers(carrier_views())),
        admin: Arc::new(admin),
        ready: Arc::new(AtomicBool::new(true)),
        peers: None,
    }
}

fn app() -> Router {
    router(state_with(store(), FakeAdmin::answering(Ok(json!({})))))
}

fn request(method: Method, uri: &str, auth: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        builder = builder.header(AUTHORIZATION, auth);
    }
    builder.body(Body::empty()).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, Some(&format!("Bearer {TOKEN}")))
}

async fn call(app: Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

const V1_ROUTES: [(Method, &str); 4] = [
    (Method::GET, "/v1/notifications/ev-1"),
    (Method::GET, "/v1/transactions/tx-1/notifications"),
    (Method::GET, "/v1/carriers"),
    (Method::POST, "/v1/admin/reload"),
];

#[tokio::test]
async fn v1_routes_refuse_a_missing_or_wrong_token() {
    let admin = FakeAdmin::answering(Ok(json!({})));
    let reloads = admin.started.clone();
    let app = router(state_with(store(), admin));
    let wrong = format!("Bearer {TOKEN}x");
    for (method, uri) in V1_ROUTES {
        for auth in [None, Some(wrong.as_str()), Some(TOKEN), Some("Bearer ")] {
            let (status, headers, body) =
                call(app.clone(), request(method.clone(), uri, auth)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} {auth:?}");
            assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
            assert_eq!(body, json!({"error": "unauthorized"}));
        }
    }
    assert_eq!(
        reloads.load(Ordering::SeqCst),
        0,
        "an unauthorized reload ran"
    );
}

#[tokio::test]
async fn v1_routes_accept_the_right_token() {
    let app = app();
    let auth = format!("Bearer {TOKEN}");
    for (method, uri) in V1_ROUTES {
        let (status, _, _) = call(app.clone(), request(method.clone(), uri, Some(&auth))).await;
        assert_eq!(status, StatusCode::OK, "{method} {uri}");
    }
}

#[tokio::test]
async fn health_endpoints_need_no_token() {
    let (status, _, body) = call(app(), request(Method::GET, "/healthz", None)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _, body) = call(app(), request(Method::GET, "/readyz", None)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
}

#[tokio::test]
async fn readyz_follows_the_flag() {
    let state = state_with(store(), FakeAdmin::answering(Ok(json!({}))));
    let ready = state.ready.clone();
    let app = router(state);
    ready.store(false, Ordering::Release);
    let (status, _, body) = call(app.clone(), request(Method::GET, "/readyz", None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"status": "not_ready"}));
    ready.store(true, Ordering::Release);
    let (status, _, _) = call(app.clone(), request(Method::GET, "/readyz", None)).await;
    assert_eq!(status, StatusCode::OK);
    // the liveness probe does not depend on readiness
    ready.store(false, Ordering::Release);
    let (status, _, _) = call(app, request(Method::GET, "/healthz", None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_notification_is_returned_as_stored() {
    let (status, _, body) = call(app(), get("/v1/notifications/ev-2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, record("ev-2", "tx-1", "failed"));
}

#[tokio::test]
async fn unknown_ids_are_404() {
    for uri in [
        "/v1/notifications/ev-unknown",
        "/v1/transactions/tx-unknown/notifications",
    ] {
        let (status, _, body) = call(app(), get(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body, json!({"error": "not_found"}));
    }
}

#[tokio::test]
async fn a_transaction_lists_all_its_notifications() {
    let (status, _, body) = call(app(), get("/v1/transactions/tx-1/notifications")).await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<&str> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ev-1", "ev-2"]);
}

#[tokio::test]
async fn carriers_show_binds_breaker_and_rate() {
    let (status, _, body) = call(app(), get("/v1/carriers")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"carriers": [
            {"name": "alpha", "binds_up": 2, "binds": 2, "breaker": "closed", "up": true,
             "rate_segments_per_second": 50.0},
            {"name": "beta", "binds_up": 0, "binds": 1, "breaker": "half_open", "up": false,
             "rate_segments_per_second": null},
        ]})
    );
}

#[test]
fn breaker_states_map_to_their_labels() {
    use crate::breaker::State;
    let open = State::Open {
        until: tokio::time::Instant::now(),
    };
    for state in [
        State::Closed {
            consecutive_failures: 1,
        },
        open,
        State::HalfOpen {
            probe_in_flight: true,
        },
    ] {
        let view = serde_json::to_value(BreakerView::from(&state)).unwrap();
        assert_eq!(view, json!(state.label()));
    }
}

#[tokio::test]
async fn reload_answers_the_summary() {
    let summary = json!({"changed": ["routing", "templates"]});
    let app = router(state_with(
        store(),
        FakeAdmin::answering(Ok(summary.clone())),
    ));
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = call(app, request(Method::POST, "/v1/admin/reload", Some(&auth))).await;
    assert_eq!((status, body), (StatusCode::OK, summary));
}

#[tokio::test]
async fn a_refused_reload_lists_every_error() {
    let errors = vec![
        "carriers[0].window: must be at least 1".to_string(),
        "kafka.brokers: cannot change without a restart".to_string(),
    ];
    let app = router(state_with(
        store(),
        FakeAdmin::answering(Err(errors.clone())),
    ));
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = call(app, request(Method::POST, "/v1/admin/reload", Some(&auth))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"error": "invalid_configuration", "errors": errors})
    );
}

#[tokio::test]
async fn reload_is_post_only() {
    let (status, _, _) = call(app(), get("/v1/admin/reload")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_times_out_but_the_reload_completes() {
    let mut admin = FakeAdmin::answering(Ok(json!({})));
    admin.delay = REQUEST_TIMEOUT * 3;
    let finished = admin.finished.clone();
    let app = router(state_with(store(), admin));
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = call(app, request(Method::POST, "/v1/admin/reload", Some(&auth))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"error": "timeout"}));
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    tokio::time::sleep(REQUEST_TIMEOUT * 3).await;
    assert_eq!(finished.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn store_errors_are_500_without_details() {
    let failing = FakeStore {
        fail: true,
        ..FakeStore::default()
    };
    let app = router(state_with(failing, FakeAdmin::answering(Ok(json!({})))));
    for uri in [
        "/v1/notifications/ev-1",
        "/v1/transactions/tx-1/notifications",
    ] {
        let (status, _, body) = call(app.clone(), get(uri)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_eq!(body, json!({"error": "internal"}));
    }
}

#[tokio::test]
async fn path_parameters_longer_than_128_bytes_are_400() {
    let longest = "a".repeat(MAX_PATH_PARAM_BYTES);
    let too_long = "a".repeat(MAX_PATH_PARAM_BYTES + 1);
    let (status, _, _) = call(app(), get(&format!("/v1/notifications/{longest}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for uri in [
        format!("/v1/notifications/{too_long}"),
        format!("/v1/transactions/{too_long}/notifications"),
    ] {
        let (status, _, body) = call(app(), get(&uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "bad_request");
    }
    // the limit is on the decoded value: 64 escaped two-byte characters are 128 bytes
    let escaped = "%C3%A9".repeat(64);
    let (status, _, _) = call(app(), get(&format!("/v1/notifications/{escaped}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(app(), get(&format!("/v1/notifications/{escaped}a"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn requests_with_a_body_are_refused() {
    let admin = FakeAdmin::answering(Ok(json!({})));
    let reloads = admin.started.clone();
    let app = router(state_with(store(), admin));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/admin/reload")
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = call(app, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"error": "payload_too_large"}));
    assert_eq!(reloads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let (status, _, body) = call(app(), request(Method::GET, "/nowhere", None)).await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "not_found"}))
    );
}

/// Reads from `stream` until `needle` appears; the bytes read so far.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn serve_answers_over_tcp_and_stops_when_cancelled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let state = state_with(store(), FakeAdmin::answering(Ok(json!({}))));
    let server = tokio::spawn(serve(listener, state, stop.clone()));

    let mut stream = TcpStream::connect(addr).await.unwrap();
    // a kept-alive connection, left idle after its answer, must not hold the shutdown
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: pigeon\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut stream, r#"{"status":"ok"}"#).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    stop.cancel();
    let stopped = tokio::time::timeout(DRAIN_TIMEOUT / 2, server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "serve did not stop cleanly: {stopped:?}"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

/// A store holding `records` (event, transaction, state).
fn store_of(records: &[(&str, &str, &str)]) -> FakeStore {
    FakeStore {
        records: (records.iter())
            .map(|(e, t, s)| (e.to_string(), record(e, t, s)))
            .collect(),
        fail: false,
    }
}

/// An instance served on loopback: its address and the token that stops it.
async fn instance(store: FakeStore, peers: &[String], token: &str) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut state = state_with(store, FakeAdmin::answering(Ok(json!({}))));
    state.token = Arc::from(token);
    if !peers.is_empty() {
        let client = HttpPeers::new(peers, Arc::from(token)).unwrap();
        state.peers = Some(Arc::new(client));
    }
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, stop.clone()));
    (addr, stop)
}

/// An address nothing listens on.
async fn closed_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// `GET path` on the instance at `addr` over TCP, with the test token.
async fn fetch(addr: &str, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_lookup_this_instance_cannot_answer_is_answered_by_a_peer() {
    // Two instances that name each other, each holding part of a transaction.
    let b_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = b_listener.local_addr().unwrap().to_string();
    let (a, _a_stop) = instance(
        store_of(&[("ev-a", "tx-1", "delivered")]),
        std::slice::from_ref(&b_addr),
        TOKEN,
    )
    .await;
    let mut b_state = state_with(
        store_of(&[("ev-b", "tx-1", "failed"), ("ev-c", "tx-2", "accepted")]),
        FakeAdmin::answering(Ok(json!({}))),
    );
    b_state.peers = Some(Arc::new(
        HttpPeers::new(std::slice::from_ref(&a), Arc::from(TOKEN)).unwrap(),
    ));
    let b_stop = CancellationToken::new();
    tokio::spawn(serve(b_listener, b_state, b_stop.clone()));

    let (status, body) = fetch(&a, "/v1/notifications/ev-b").await;
    assert_eq!((status, &body["state"]), (StatusCode::OK, &json!("failed")));
    let (status, body) = fetch(&b_addr, "/v1/notifications/ev-a").await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("delivered"))
    );
    // Known nowhere: each asks the other once, scoped to its store, and both say 404.
    for at in [&a, &b_addr] {
        let (status, body) = fetch(at, "/v1/notifications/ev-none").await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"error": "not_found"}))
        );
    }
    // A transaction's records from both, each once.
    let (status, body) = fetch(&a, "/v1/transactions/tx-1/notifications").await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<&str> = (body["notifications"].as_array().unwrap().iter())
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ev-a", "ev-b"]);
    let (status, body) = fetch(&a, "/v1/transactions/tx-2/notifications").await;
    assert_eq!(
        (status, body["notifications"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    b_stop.cancel();
}

#[tokio::test]
async fn a_peer_asks_its_own_store_only_when_the_lookup_is_scoped() {
    let (b, _b_stop) = instance(store_of(&[("ev-b", "tx-1", "failed")]), &[], TOKEN).await;
    let (a, _a_stop) = instance(store_of(&[]), std::slice::from_ref(&b), TOKEN).await;
    let scoped = reqwest::Client::new()
        .get(format!("http://{a}/v1/notifications/ev-b"))
        .bearer_auth(TOKEN)
        .header(SCOPE_HEADER, SCOPE_LOCAL)
        .send()
        .await
        .unwrap();
    assert_eq!(
        scoped.status().as_u16(),
        404,
        "a scoped lookup went to the peer"
    );
    assert_eq!(fetch(&a, "/v1/notifications/ev-b").await.0, StatusCode::OK);
}

#[tokio::test]
async fn not_found_is_said_only_when_every_peer_answered() {
    let down = closed_address().await;
    let (refusing, _r_stop) = instance(store_of(&[]), &[], "another-token-0123456789").await;
    let (a, _a_stop) = instance(
        store_of(&[("ev-a", "tx-1", "delivered")]),
        &[
            down.clone(),
            refusing.clone(),
            "no-such-host.invalid:8088".into(),
        ],
        TOKEN,
    )
    .await;
    // What this instance holds needs no peer.
    assert_eq!(fetch(&a, "/v1/notifications/ev-a").await.0, StatusCode::OK);
    for path in [
        "/v1/notifications/ev-x",
        "/v1/transactions/tx-1/notifications",
    ] {
        let (status, body) = fetch(&a, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body["error"], "peers_unavailable");
        let mut named: Vec<&str> = (body["peers"].as_array().unwrap().iter())
            .map(|p| p.as_str().unwrap())
            .collect();
        named.sort_unstable();
        let mut expected = vec![
            down.as_str(),
            refusing.as_str(),
            "no-such-host.invalid:8088",
        ];
        expected.sort_unstable();
        assert_eq!(named, expected, "{path}");
    }
}
