//! Two engine processes sharing a carrier account whose SMSC delivers every receipt on
//! another bind of the account: each receipt reaches the instance that did not send its
//! message, which relays it through Kafka (`[relay]`) to the one that did. Every debit
//! still ends `delivered` exactly once, and every receipt is answered, also when the sender
//! is down while its receipts are relayed.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pigeon_loadtest::load::scrape::metrics_text;
use pigeon_loadtest::load::{DebitMix, Generator, StatusCollector};
use support::{produce, start_sim_with, EngineProcess, Topics};
use tokio::time::Instant;

const EVENTS: u64 = 2_000;

/// Waits until the engine logging to `dir` has been assigned partitions.
async fn wait_assigned(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default();
        if log.contains("partitions assigned") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} was not assigned partitions",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of `pigeon_receipts_total` over the lines with this outcome.
fn receipts(text: &str, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with("pigeon_receipts_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_delivered_on_the_other_instance_s_bind_are_relayed_to_the_sender() {
    let topics = Topics::unique("relay");
    topics.create().await;
    let sim = start_sim_with(Duration::from_millis(20), |c| {
        c.receipts_on_other_bind = 1.0;
    })
    .await;
    // One bind each: every receipt the SMSC moves goes to the other instance.
    let toml = support::engine_toml(&sim, &topics, "binds = 1");
    let dirs = Instance::two(&topics);
    let start = |i: &Instance| i.start(&toml, &topics);
    let statuses: StatusCollector = support::collector(&topics, "relay");
    let engines: Vec<EngineProcess> = dirs.iter().map(start).collect();
    for i in &dirs {
        wait_assigned(&i.dir).await;
    }
    wait_binds(&sim, 4).await;
    let mut g = Generator::new("relay", DebitMix::uk_only());
    produce(
        &topics.debits,
        (0..EVENTS).map(|_| g.next_event()).collect(),
    )
    .await;
    assert!(
        statuses
            .wait_terminal(EVENTS, Instant::now() + Duration::from_secs(150))
            .await,
        "only {} of {EVENTS} ended",
        statuses.terminal_count()
    );
    let mut relayed = 0;
    let mut matched = 0;
    for i in &dirs {
        let text = i.metrics().await;
        relayed += receipts(&text, "relayed");
        matched += receipts(&text, "relay_matched");
    }
    for e in engines {
        e.stop(Duration::from_secs(60)).await;
    }
    let sim_stats = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    eprintln!("{acc:?}; simulator: {sim_stats:?}");
    assert_eq!(acc.missing, 0, "none lost: {acc:?}");
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(EVENTS),
        "every receipt reached the instance that sent its message: {acc:?}"
    );
    assert_eq!(sim_stats.messages, EVENTS, "{sim_stats:?}");
    assert_eq!(sim_stats.duplicate_pairs, 0, "{sim_stats:?}");
    // Both binds were up before the debits: the SMSC moved every receipt, and each went
    // through the topic to be matched.
    assert_eq!(sim_stats.receipts_other_bind, EVENTS, "{sim_stats:?}");
    assert_eq!(relayed, EVENTS, "every receipt relayed once");
    assert_eq!(matched, EVENTS, "and matched by its sender");
    assert_eq!(
        sim_stats.receipts_acked, sim_stats.receipts_sent,
        "every receipt answered: {sim_stats:?}"
    );
    for i in &dirs {
        let _ = std::fs::remove_dir_all(&i.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_relayed_while_their_sender_is_down_match_once_it_is_back() {
    let topics = Topics::unique("relaycrash");
    topics.create().await;
    let sim = start_sim_with(Duration::from_millis(20), |c| {
        c.receipts_on_other_bind = 1.0;
    })
    .await;
    // Slow enough that the crash comes mid-run.
    let toml = support::engine_toml(&sim, &topics, "binds = 1\nmax_segments_per_second = 300");
    let dirs = Instance::two(&topics);
    let statuses: StatusCollector = support::collector(&topics, "relaycrash");
    let mut engines: Vec<Option<EngineProcess>> =
        dirs.iter().map(|i| Some(i.start(&toml, &topics))).collect();
    for i in &dirs {
        wait_assigned(&i.dir).await;
    }
    wait_binds(&sim, 4).await;
    let mut g = Generator::new("relaycrash", DebitMix::uk_only());
    produce(
        &topics.debits,
        (0..EVENTS).map(|_| g.next_event()).collect(),
    )
    .await;
    assert!(
        statuses
            .wait_terminal(EVENTS / 5, Instant::now() + Duration::from_secs(60))
            .await,
        "the run started"
    );
    // `a` stops with messages accepted and their receipts still to come (its drain gives up
    // waiting for them after a second): the SMSC delivers them on `b`'s bind, and `b`
    // relays them while `a` is down.
    let before = receipts(&dirs[1].metrics().await, "relayed");
    let a = engines[0].take().expect("a");
    a.stop(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let relayed = receipts(&dirs[1].metrics().await, "relayed");
        if relayed > before + 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b relayed {relayed} (before the crash {before})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engines[0] = Some(dirs[0].start(&toml, &topics));
    assert!(
        statuses
            .wait_terminal(EVENTS, Instant::now() + Duration::from_secs(150))
            .await,
        "only {} of {EVENTS} ended",
        statuses.terminal_count()
    );
    let matched_after_restart = receipts(&dirs[0].metrics().await, "relay_matched");
    for e in engines.into_iter().flatten() {
        e.stop(Duration::from_secs(60)).await;
    }
    let sim_stats = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    eprintln!("{acc:?}; simulator: {sim_stats:?}; a matched {matched_after_restart} relayed receipts after its restart");
    assert_eq!(acc.missing, 0, "none lost: {acc:?}");
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(EVENTS),
        "the receipts relayed while their sender was down matched after its restart: {acc:?}"
    );
    assert_eq!(sim_stats.duplicate_pairs, 0, "{sim_stats:?}");
    assert!(
        matched_after_restart > 0,
        "a matched relayed receipts after its restart"
    );
    for i in &dirs {
        let _ = std::fs::remove_dir_all(&i.dir);
    }
}

/// One engine instance of a test: its directory, name and metrics address.
struct Instance {
    dir: PathBuf,
    name: &'static str,
    metrics: SocketAddr,
}

impl Instance {
    fn two(topics: &Topics) -> Vec<Instance> {
        ["a", "b"]
            .into_iter()
            .map(|name| {
                let dir = std::env::temp_dir().join(format!("pigeon-{}-{name}", topics.debits));
                std::fs::create_dir_all(&dir).expect("dir");
                Instance {
                    dir,
                    name,
                    metrics: support::free_addr(),
                }
            })
            .collect()
    }

    fn start(&self, toml: &str, topics: &Topics) -> EngineProcess {
        let store = self.dir.join("store").display().to_string();
        let metrics = self.metrics.to_string();
        let env = [
            ("PIGEON_STORE__PATH", store.as_str()),
            ("PIGEON_METRICS__LISTEN", metrics.as_str()),
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

/// Waits until the simulator has seen `n` binds: each engine's to each carrier.
async fn wait_binds(sim: &pigeon_loadtest::sim::SimHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.stats().binds < n {
        assert!(Instant::now() < deadline, "binds: {:?}", sim.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
