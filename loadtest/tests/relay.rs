//! Two engine processes sharing a carrier account whose SMSC delivers every receipt on
//! another bind of the account: each receipt reaches the instance that did not send its
//! message, which relays it through Kafka (`[relay]`) to the one that did. Every debit
//! still ends `delivered` exactly once, and every receipt is answered, also when the sender
//! is down while its receipts are relayed. Each instance holds the records of the debits it
//! consumed, and either one's status API answers for all of them (`api.peers`).

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pigeon_loadtest::load::scrape::metrics_text;
use pigeon_loadtest::load::{DebitMix, Generator, StatusCollector};
use pigeon_loadtest::sim::SimStats;
use pigeon_loadtest::sim::{CarrierSim, Latency};
use support::{produce, start_sim_with, EngineProcess, Topics};
use tokio::time::Instant;

const EVENTS: u64 = 2_000;
const TOKEN: &str = "relay-test-token-0123456789";

/// The sum of `pigeon_receipts_total` over the lines with this outcome.
fn receipts(text: &str, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with("pigeon_receipts_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Two engines with one bind each on an account whose SMSC moves every receipt to another
/// bind, both up and bound, and [`EVENTS`] debits produced.
struct Run {
    topics: Topics,
    sim: pigeon_loadtest::sim::SimHandle,
    toml: String,
    instances: Vec<Instance>,
    engines: Vec<Option<EngineProcess>>,
    statuses: StatusCollector,
    generator: Generator,
    events: u64,
}

impl Run {
    async fn start(test: &str, carrier_a: &str) -> Run {
        Run::start_with(test, carrier_a, EVENTS, |_| {}).await
    }

    /// [`Run::start`] with `events` debits and the SMSC's behaviour changed by `fault`.
    async fn start_with(
        test: &str,
        carrier_a: &str,
        events: u64,
        fault: impl Fn(&mut CarrierSim),
    ) -> Run {
        let topics = Topics::unique(test);
        topics.create().await;
        let sim = start_sim_with(Duration::from_millis(20), |c| {
            c.receipts_on_other_bind = 1.0;
            fault(c);
        })
        .await;
        // One bind each: every receipt the SMSC moves goes to the other instance.
        let toml = support::engine_toml(&sim, &topics, &format!("binds = 1\n{carrier_a}"));
        let instances = Instance::two(&topics);
        let statuses = support::collector(&topics, test);
        let engines = (instances.iter())
            .map(|i| Some(i.start(&toml, &topics)))
            .collect();
        for i in &instances {
            support::wait_assigned(&i.dir, 1).await;
        }
        // Each engine's bind to each carrier is up before the first debit: every receipt
        // has another bind to be moved to.
        let deadline = Instant::now() + Duration::from_secs(60);
        while sim.stats().binds < 4 {
            assert!(Instant::now() < deadline, "binds: {:?}", sim.stats());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut generator = Generator::new(test, DebitMix::uk_only());
        produce(
            &topics.debits,
            (0..events).map(|_| generator.next_event()).collect(),
        )
        .await;
        Run {
            topics,
            sim,
            toml,
            instances,
            engines,
            statuses,
            generator,
            events,
        }
    }

    async fn wait_ended(&self, n: u64) {
        assert!(
            (self.statuses)
                .wait_terminal(n, Instant::now() + Duration::from_secs(150))
                .await,
            "only {} of {n} ended",
            self.statuses.terminal_count()
        );
    }

    /// Stops everything; asserts that every debit was delivered once and the simulator saw
    /// each message once.
    async fn finish(self) -> SimStats {
        for e in self.engines.into_iter().flatten() {
            e.stop(Duration::from_secs(60)).await;
        }
        let sim_stats = self.sim.shutdown().await;
        let (acc, _, _) = self.statuses.finish(&self.generator.ids());
        eprintln!("{acc:?}; simulator: {sim_stats:?}");
        assert_eq!(acc.missing, 0, "none lost: {acc:?}");
        assert!(acc.exactly_once(), "{acc:?}");
        assert_eq!(
            acc.by_state.get("delivered").copied(),
            Some(self.events),
            "every receipt reached the instance that sent its message: {acc:?}"
        );
        assert_eq!(sim_stats.messages, self.events, "{sim_stats:?}");
        assert_eq!(sim_stats.duplicate_pairs, 0, "{sim_stats:?}");
        for i in &self.instances {
            let _ = std::fs::remove_dir_all(&i.dir);
        }
        sim_stats
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_delivered_on_the_other_instance_s_bind_are_relayed_to_the_sender() {
    let run = Run::start("relay", "").await;
    run.wait_ended(EVENTS).await;
    let (mut relayed, mut matched) = (0, 0);
    for i in &run.instances {
        let text = i.metrics().await;
        relayed += receipts(&text, "relayed");
        matched += receipts(&text, "relay_matched");
    }
    // Every notification can be looked up on `a`: its own from its store, `b`'s from `b`.
    let (mut asked, mut held_by_a) = (0, 0);
    let a = run.instances[0].api;
    for id in run.generator.ids().iter().step_by(20) {
        let path = format!("/v1/notifications/{id}");
        let (status, record) = support::http(a, "GET", &path, Some(TOKEN)).await;
        assert_eq!(status, 200, "{id}: {record}");
        assert_eq!(record["state"], "delivered", "{id}: {record}");
        let own = [("pigeon-lookup-scope", "local")];
        let (status, _) = support::http_with(a, "GET", &path, Some(TOKEN), &own).await;
        asked += 1;
        held_by_a += u64::from(status == 200);
    }
    assert!(
        held_by_a > 0 && held_by_a < asked,
        "a holds some records and asked b for the rest: {held_by_a} of {asked} its own"
    );
    let sim_stats = run.finish().await;
    // The SMSC moved every receipt, and each went through the topic to be matched.
    assert_eq!(sim_stats.receipts_other_bind, EVENTS, "{sim_stats:?}");
    assert_eq!(relayed, EVENTS, "every receipt relayed once");
    assert_eq!(matched, EVENTS, "and matched by its sender");
    assert_eq!(
        sim_stats.receipts_acked, sim_stats.receipts_sent,
        "every receipt answered: {sim_stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_relayed_while_their_sender_is_down_match_once_it_is_back() {
    // Slow enough that the stop comes mid-run.
    let mut run = Run::start("relaycrash", "max_segments_per_second = 300").await;
    run.wait_ended(EVENTS / 5).await;
    // `a` stops with messages accepted and their receipts still to come (its drain gives up
    // waiting for them after a second): the SMSC delivers them on `b`'s bind, and `b`
    // relays them while `a` is down.
    let (a, b) = (&run.instances[0], &run.instances[1]);
    let before = receipts(&b.metrics().await, "relayed");
    let stopped = run.engines[0].take().expect("a");
    stopped.stop(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let relayed = receipts(&b.metrics().await, "relayed");
        if relayed > before + 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b relayed {relayed} (before the stop {before})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.engines[0] = Some(a.start(&run.toml, &run.topics));
    run.wait_ended(EVENTS).await;
    let matched_after_restart = receipts(&a.metrics().await, "relay_matched");
    run.finish().await;
    assert!(
        matched_after_restart > 0,
        "a matched relayed receipts after its restart"
    );
}

/// An SMSC that sends each receipt before its submit response, and the response 4 s after
/// the submit: the instance that gets the receipt holds it for its own acceptance, then
/// relays it ~2.5 s later, when the sender still has no acceptance to match it with. The
/// sender holds such a relayed receipt and tries it again as its acceptances come, so each
/// still matches (rather than ending `unconfirmed` after the receipt timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_relayed_before_its_sender_knows_its_acceptance_still_matches() {
    const EARLY: u64 = 300;
    let run = Run::start_with(
        "relayearly",
        "window = 256\nresponse_timeout_ms = 20000",
        EARLY,
        |c| {
            c.receipt_before_response = 1.0;
            c.response_latency = Latency::new(4_000, 0);
        },
    )
    .await;
    // And a receipt that no instance awaits: each tries it for a while, then passes it over.
    let stranger = br#"{"v":1,"carrier":"carrier-a","message_id":"nobody-s","stat":"DELIVRD"}"#;
    produce(
        &run.topics.receipts,
        vec![(b"carrier-a/nobody-s".to_vec(), stranger.to_vec())],
    )
    .await;
    run.wait_ended(EARLY).await;
    let counts = |text: &str| {
        let held = text
            .lines()
            .find_map(|l| l.strip_prefix("pigeon_relay_receipts_held "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        [
            receipts(text, "relayed"),
            receipts(text, "relay_matched"),
            receipts(text, "relay_not_ours"),
            held.map_or(u64::MAX, |h| h as u64),
        ]
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let [relayed, matched, passed_over, held] = loop {
        let mut sum = [0u64; 4];
        for i in &run.instances {
            let c = counts(&i.metrics().await);
            (0..4).for_each(|k| sum[k] = sum[k].saturating_add(c[k]));
        }
        if sum[2] >= EARLY + 2 || Instant::now() >= deadline {
            break sum;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sim_stats = run.finish().await;
    assert_eq!(sim_stats.receipts_before_response, EARLY, "{sim_stats:?}");
    assert_eq!(relayed, EARLY, "every receipt relayed once");
    assert_eq!(matched, EARLY, "and matched by its sender");
    assert_eq!(
        passed_over,
        EARLY + 2,
        "each passed over by the instance that relayed it, the stranger by both"
    );
    assert_eq!(held, 0, "nothing held for another try once all are decided");
}

/// One engine instance of a test: its directory, name, metrics and API addresses, and the
/// other instance's API (its peer).
struct Instance {
    dir: PathBuf,
    name: &'static str,
    metrics: SocketAddr,
    api: SocketAddr,
    peer: SocketAddr,
}

impl Instance {
    fn two(topics: &Topics) -> Vec<Instance> {
        let apis = [support::free_addr(), support::free_addr()];
        ["a", "b"]
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let dir = std::env::temp_dir().join(format!("pigeon-{}-{name}", topics.debits));
                std::fs::create_dir_all(&dir).expect("dir");
                Instance {
                    dir,
                    name,
                    metrics: support::free_addr(),
                    api: apis[i],
                    peer: apis[1 - i],
                }
            })
            .collect()
    }

    fn start(&self, toml: &str, topics: &Topics) -> EngineProcess {
        let store = self.dir.join("store").display().to_string();
        let metrics = self.metrics.to_string();
        let (api, peers) = (self.api.to_string(), format!("[\"{}\"]", self.peer));
        let env = [
            ("PIGEON_STORE__PATH", store.as_str()),
            ("PIGEON_METRICS__LISTEN", metrics.as_str()),
            ("PIGEON_API__LISTEN", api.as_str()),
            ("PIGEON_API__TOKEN", TOKEN),
            ("PIGEON_API__PEERS", peers.as_str()),
            ("PIGEON_RELAY__RECEIPTS_TOPIC", topics.receipts.as_str()),
            ("PIGEON_RELAY__INSTANCE", self.name),
            // A receipt that never reaches its sender ends the notification `unconfirmed`
            // within the test's wait, not after two days.
            ("PIGEON_ENGINE__RECEIPT_TIMEOUT_MS", "40000"),
            // An instance stopped mid-run leaves receipts awaited (the second test).
            ("PIGEON_ENGINE__DRAIN_TIMEOUT_MS", "1000"),
        ];
        EngineProcess::start(&self.dir, toml, &env)
    }

    /// The engine's metrics, and its relay's counts on the test's output.
    async fn metrics(&self) -> String {
        let text = metrics_text(self.metrics).await.expect("metrics");
        eprintln!(
            "engine {}: relayed {}, relayed and matched here {}, not its own {}, refused {}",
            self.name,
            receipts(&text, "relayed"),
            receipts(&text, "relay_matched"),
            receipts(&text, "relay_not_ours"),
            receipts(&text, "parked_refused"),
        );
        text
    }
}
