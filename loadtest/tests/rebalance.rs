//! Two engine processes in one consumer group, the second joining mid-run and the first
//! stopped mid-run: partitions move twice, and still every event ends exactly once and the
//! simulator sees every SMS once.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pigeon_loadtest::load::{DebitMix, Generator, StatusCollector};
use support::{produce, start_sim, EngineProcess, Topics};
use tokio::time::Instant;

const EVENTS: u64 = 4_000;

async fn wait_for(statuses: &StatusCollector, n: u64, what: &str) {
    assert!(
        statuses
            .wait_terminal(n, Instant::now() + Duration::from_secs(120))
            .await,
        "{what}: only {} of {n} ended",
        statuses.terminal_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_and_one_leaving_mid_run_lose_nothing_and_send_nothing_twice() {
    let topics = Topics::unique("rebalance");
    topics.create().await;
    let sim = start_sim(Duration::from_millis(20)).await;
    let toml = support::engine_toml(&sim, &topics, "max_segments_per_second = 400");
    let dirs: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| {
            let d = std::env::temp_dir().join(format!("pigeon-{}-{n}", topics.debits));
            std::fs::create_dir_all(&d).expect("dir");
            d
        })
        .collect();
    let start = |dir: &Path| {
        let store = dir.join("store").display().to_string();
        let env = [
            ("PIGEON_STORE__PATH", store.as_str()),
            ("PIGEON_METRICS__LISTEN", ""),
            ("PIGEON_ENGINE__BATCH_MAX", "50"),
        ];
        EngineProcess::start(dir, &toml, &env)
    };
    let statuses = support::collector(&topics, "rebalance");
    let mut g = Generator::new("rebalance", DebitMix::uk_only());
    produce(
        &topics.debits,
        (0..EVENTS).map(|_| g.next_event()).collect(),
    )
    .await;

    let first = start(&dirs[0]);
    wait_for(&statuses, 400, "the first engine alone").await;
    // The second joins: the first gives up some partitions (draining what it took from them
    // first), and both work.
    let second = start(&dirs[1]);
    support::wait_assigned(&dirs[1], 1).await;
    support::wait_assigned(&dirs[0], 2).await;
    let shared = statuses.terminal_count();
    wait_for(&statuses, shared + 500, "two engines").await;
    // The first leaves mid-run: it drains, commits and leaves; the second takes over.
    first.stop(Duration::from_secs(60)).await;
    assert!(
        statuses.terminal_count() < EVENTS,
        "the first engine left mid-run"
    );
    wait_for(&statuses, EVENTS, "the second engine alone").await;
    second.stop(Duration::from_secs(60)).await;

    let first_log = std::fs::read_to_string(dirs[0].join("engine.log")).unwrap_or_default();
    for line in first_log
        .lines()
        .filter(|l| l.contains("revoked partitions"))
    {
        eprintln!("first engine: {line}");
    }
    let sim_stats = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    eprintln!("{acc:?}; simulator: {} messages", sim_stats.messages);
    assert_eq!(acc.missing, 0, "none lost: {acc:?}");
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(EVENTS),
        "{acc:?}"
    );
    assert_eq!(
        acc.all_statuses.get("accepted").copied(),
        Some(EVENTS),
        "no event taken by both engines: {acc:?}"
    );
    assert_eq!(sim_stats.messages, EVENTS, "{sim_stats:?}");
    assert_eq!(sim_stats.duplicate_pairs, 0, "{sim_stats:?}");
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
