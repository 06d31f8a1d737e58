//! Subscriber eligibility end to end: a subscribers file and a compacted subscribers topic
//! on the real broker, pigeon-sim over TCP, the engine in-process. Opted-out and
//! unsubscribed customers end `skipped` with their reason, unknown ones follow the default
//! policy, and a preference produced while the engine runs governs that customer's next
//! debits.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use pigeon::eligibility::{DefaultPolicy, EligibilityConfig};
use pigeon::event::{State, StatusEvent};
use pigeon_kafka::KafkaConfig;
use pigeon_loadtest::load::{DebitMix, Generator, StatusCollector};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{engine_config, produce, start_sim, Engine, Topics};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(120);

/// Creates the compacted subscribers topic beside `topics`; returns its name.
async fn subscribers_topic(topics: &Topics) -> String {
    let name = topics.debits.replace(".debits", ".subscribers");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", support::brokers())
        .create()
        .expect("admin client");
    let topic =
        NewTopic::new(&name, 2, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(
        Duration::from_secs(20),
        admin.create_topics([&topic], &opts),
    )
    .await
    .expect("topic creation answered in time")
    .expect("topic creation");
    for r in results {
        r.expect("subscribers topic created");
    }
    name
}

/// Produces preferences keyed by customer_ref: a value, or a tombstone (`None`), in order.
async fn set_preferences(topic: &str, prefs: &[(&str, Option<&str>)]) {
    let producer: FutureProducer = KafkaConfig::new(support::brokers())
        .producer()
        .create()
        .expect("producer");
    for (customer, value) in prefs {
        let mut record = FutureRecord::<str, [u8]>::to(topic).key(customer);
        let payload = value.map(|v| match v {
            "malformed" => b"{\"preference\":".to_vec(),
            p => format!(r#"{{"preference":"{p}"}}"#).into_bytes(),
        });
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("preference produced");
    }
}

/// Writes a subscribers file of this test's own; returns its path.
fn subscribers_file(topics: &Topics, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("pigeon-subscribers-{}.csv", topics.debits));
    std::fs::write(&path, text).expect("subscribers file written");
    path
}

/// Debits of run `run`, one per customer given, in order.
struct Debits {
    gen: Generator,
    next: u64,
    /// Event ids produced so far.
    ids: Vec<String>,
}

impl Debits {
    fn new(run: &str) -> Debits {
        let mix = DebitMix::uk_only();
        Debits {
            gen: Generator::new(run, mix),
            next: 0,
            ids: Vec::new(),
        }
    }

    /// A generated debit with its customer_ref replaced: (event id, record).
    fn of(&mut self, customer: &str) -> (String, (Vec<u8>, Vec<u8>)) {
        self.next += 1;
        let mut ev = self.gen.event(self.next);
        ev.customer_ref = customer.to_owned();
        let payload = serde_json::to_vec(&ev).expect("debit json");
        (ev.event_id.clone(), (ev.event_id.into_bytes(), payload))
    }

    /// Produces one debit per customer; returns their event ids, in order.
    async fn produce(&mut self, topic: &str, customers: &[&str]) -> Vec<String> {
        let (ids, records): (Vec<_>, Vec<_>) = customers.iter().map(|c| self.of(c)).unzip();
        produce(topic, records).await;
        self.ids.extend(ids.iter().cloned());
        ids
    }
}

/// The terminal status of `id`, waiting for it until `deadline`.
async fn terminal(statuses: &StatusCollector, id: &str, deadline: Instant) -> StatusEvent {
    loop {
        if let Some(s) = statuses
            .statuses(id)
            .into_iter()
            .find(|s| s.state.is_terminal())
        {
            return s;
        }
        assert!(Instant::now() < deadline, "no terminal status for {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (state, reason) of a status, for comparisons.
fn outcome(s: &StatusEvent) -> (State, Option<&str>) {
    (s.state, s.reason.as_deref())
}

const DELIVERED: (State, Option<&str>) = (State::Delivered, None);
const OPTED_OUT: (State, Option<&str>) = (State::Skipped, Some("opted_out"));
const NOT_SUBSCRIBED: (State, Option<&str>) = (State::Skipped, Some("not_subscribed"));

/// Produces one debit per customer and checks each one's outcome; returns the status
/// collector and the debits, to go on with.
async fn expect_outcomes(
    topics: &Topics,
    run: &str,
    expected: &[(&str, (State, Option<&str>))],
) -> (StatusCollector, Debits) {
    let statuses =
        StatusCollector::start(&KafkaConfig::new(support::brokers()), &topics.statuses, run)
            .expect("status collector");
    let mut debits = Debits::new(run);
    let customers: Vec<&str> = expected.iter().map(|(c, _)| *c).collect();
    let ids = debits.produce(&topics.debits, &customers).await;
    let deadline = Instant::now() + DEADLINE;
    for ((customer, want), id) in expected.iter().zip(&ids) {
        let s = terminal(&statuses, id, deadline).await;
        assert_eq!(outcome(&s), *want, "{customer}: {s:?}");
    }
    (statuses, debits)
}

/// Sends debits of `customer` one at a time until one ends `want` (a preference produced
/// just before reached the engine), then shows that the next three end the same way.
async fn until_followed(
    debits: &mut Debits,
    topics: &Topics,
    statuses: &StatusCollector,
    customer: &str,
    want: (State, Option<&str>),
) {
    let deadline = Instant::now() + DEADLINE;
    let mut probes = 0;
    loop {
        let id = debits.produce(&topics.debits, &[customer]).await.remove(0);
        probes += 1;
        if outcome(&terminal(statuses, &id, deadline).await) == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{customer}: no debit ended {want:?} after {probes} probes"
        );
    }
    let next = debits
        .produce(&topics.debits, &[customer, customer, customer])
        .await;
    for id in &next {
        let s = terminal(statuses, id, deadline).await;
        assert_eq!(outcome(&s), want, "{customer}, {id}: {s:?}");
    }
}

async fn start(
    test: &str,
    default: DefaultPolicy,
    file: &str,
    prefs: &[(&str, Option<&str>)],
) -> (
    Topics,
    String,
    PathBuf,
    pigeon_loadtest::sim::SimHandle,
    Engine,
) {
    let topics = Topics::unique(test);
    topics.create().await;
    let topic = subscribers_topic(&topics).await;
    set_preferences(&topic, prefs).await;
    let path = subscribers_file(&topics, file);
    let sim = start_sim(Duration::from_millis(5)).await;
    let mut cfg = engine_config(&sim, &topics);
    cfg.eligibility = EligibilityConfig {
        default,
        subscribers_file: Some(path.clone()),
        subscribers_topic: Some(topic.clone()),
    };
    assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
    // Returns at once; the engine reads the whole subscribers topic before any debit.
    let engine = Engine::start(cfg);
    (topics, topic, path, sim, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_customers_are_skipped_and_the_rest_follow_the_subscribed_default() {
    let file = "customer_ref,preference\n\
                c-file-out,opted_out\n\
                c-file-not,not_subscribed\n\
                c-file-sub-topic-out,subscribed\n\
                c-file-out-topic-forgets,opted_out   # the topic's tombstone wins\n";
    let prefs = [
        ("c-topic-out", Some("opted_out")),
        ("c-file-sub-topic-out", Some("opted_out")),
        ("c-file-out-topic-forgets", Some("opted_out")),
        ("c-file-out-topic-forgets", None),
        ("c-topic-bad", Some("malformed")),
        ("c-later-out", Some("subscribed")),
    ];
    let (topics, topic, path, sim, engine) =
        start("eligsub", DefaultPolicy::Subscribed, file, &prefs).await;
    let expected = [
        ("c-unknown", DELIVERED),
        ("c-file-out", OPTED_OUT),
        ("c-file-not", NOT_SUBSCRIBED),
        ("c-topic-out", OPTED_OUT),
        ("c-file-sub-topic-out", OPTED_OUT),
        ("c-file-out-topic-forgets", DELIVERED),
        ("c-topic-bad", DELIVERED),
        ("c-later-out", DELIVERED),
    ];
    let (statuses, mut debits) = expect_outcomes(&topics, "religsub", &expected).await;

    // The customer opts out while the engine runs.
    set_preferences(&topic, &[("c-later-out", Some("opted_out"))]).await;
    until_followed(&mut debits, &topics, &statuses, "c-later-out", OPTED_OUT).await;

    engine.stop().await;
    let s = sim.shutdown().await;
    let delivered = statuses.finish(&debits.ids).0.by_state;
    assert_eq!(
        s.messages,
        delivered.get("delivered").copied().unwrap_or(0),
        "the simulator saw only the delivered ones: {s:?} {delivered:?}"
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_not_subscribed_default_only_subscribers_get_sms() {
    let file = "c-file-sub,subscribed\nc-file-out,opted_out\n";
    let prefs = [("c-topic-sub", Some("subscribed"))];
    let (topics, topic, path, sim, engine) =
        start("elignot", DefaultPolicy::NotSubscribed, file, &prefs).await;
    let expected = [
        ("c-unknown", NOT_SUBSCRIBED),
        ("c-file-sub", DELIVERED),
        ("c-file-out", OPTED_OUT),
        ("c-topic-sub", DELIVERED),
    ];
    let (statuses, mut debits) = expect_outcomes(&topics, "relignot", &expected).await;

    // While the engine runs: an unknown customer subscribes, and a subscriber is forgotten.
    set_preferences(&topic, &[("c-unknown", Some("subscribed"))]).await;
    until_followed(&mut debits, &topics, &statuses, "c-unknown", DELIVERED).await;
    set_preferences(&topic, &[("c-topic-sub", None)]).await;
    until_followed(
        &mut debits,
        &topics,
        &statuses,
        "c-topic-sub",
        NOT_SUBSCRIBED,
    )
    .await;

    engine.stop().await;
    sim.shutdown().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_subscribers_topic_stops_the_start_with_its_reason() {
    let topics = Topics::unique("eligmissing");
    let sim = start_sim(Duration::ZERO).await;
    let mut cfg = engine_config(&sim, &topics);
    cfg.eligibility.subscribers_topic = Some(topics.debits.replace(".debits", ".subscribers"));
    let started = tokio::time::timeout(DEADLINE, pigeon::eligibility::start(&cfg))
        .await
        .expect("answered in time");
    let err = format!("{:#}", started.expect_err("no such topic"));
    assert!(err.contains("does not exist"), "{err}");
    sim.shutdown().await;
}
