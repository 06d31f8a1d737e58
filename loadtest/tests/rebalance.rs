//! Two engine processes in one consumer group, the second joining mid-run and the first
//! stopped mid-run: partitions move twice, and still every event ends exactly once and the
//! simulator sees every SMS once.

mod support;

use std::path::Path;
use std::time::Duration;

use pigeon_loadtest::load::{DebitMix, Generator};
use support::{produce, start_sim, EngineProcess, Topics};
use tokio::time::Instant;

const EVENTS: u64 = 4_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_and_one_leaving_mid_run_lose_nothing_and_send_nothing_twice() {
    let topics = Topics::unique("rebalance");
    topics.create().await;
    let sim = start_sim(Duration::from_millis(20)).await;
    let toml = support::engine_toml(&sim, &topics, "max_segments_per_second = 400");
    let dirs = support::engine_dirs(&topics);
    let start = |dir: &Path| {
        let store = dir.join("store").display().to_string();
        let env = [
            ("PIGEON_STORE__PATH", store.as_str()),
            ("PIGEON_METRICS__LISTEN", ""),
            ("PIGEON_ENGINE__BATCH_MAX", "50"),
        ];
        EngineProcess::start(dir, &toml, &env)
    };
    let (statuses, g) = support::uk_debits(&topics, "rebalance", EVENTS).await;

    let first = start(&dirs[0]);
    support::wait_for(&statuses, 400, "the first engine alone").await;
    // The second joins: the first gives up some partitions (draining what it took from them
    // first), and both work.
    let second = start(&dirs[1]);
    support::wait_assigned(&dirs[1], 1).await;
    support::wait_assigned(&dirs[0], 2).await;
    let shared = statuses.terminal_count();
    support::wait_for(&statuses, shared + 500, "two engines").await;
    // The first leaves mid-run: it drains, commits and leaves; the second takes over.
    first.stop(Duration::from_secs(60)).await;
    assert!(
        statuses.terminal_count() < EVENTS,
        "the first engine left mid-run"
    );
    support::wait_for(&statuses, EVENTS, "the second engine alone").await;
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

const TOKEN: &str = "rebalance-api-token";

/// Each engine's rate for `carrier-a`, as its status API says.
async fn rate(api: std::net::SocketAddr) -> Option<f64> {
    let (status, body) = support::http(api, "GET", "/v1/carriers", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["carriers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "carrier-a")?["rate_segments_per_second"]
        .as_f64()
}

/// Waits until the engines' rates for `carrier-a` are `want`, in order.
async fn wait_rates(apis: &[std::net::SocketAddr], want: &[f64], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut rates = Vec::new();
        for api in apis {
            rates.push(rate(*api).await);
        }
        if rates.iter().copied().eq(want.iter().map(|w| Some(*w))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: rates {rates:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `engine.rate_share = "partitions"`, a carrier's rate is the deployment's: each
/// engine sends at the share of it that its partitions are of the topic's (two of four
/// each: half), and the one left alone takes the whole rate back with the partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_s_rate_is_shared_in_proportion_to_the_partitions_each_member_holds() {
    const DEBITS: u64 = 600;
    let topics = Topics::unique("share");
    topics.create().await;
    let sim = start_sim(Duration::from_millis(20)).await;
    let toml = support::engine_toml(&sim, &topics, "max_segments_per_second = 400");
    let apis = [support::free_addr(), support::free_addr()];
    let dirs = support::engine_dirs(&topics);
    let start = |i: usize| {
        let store = dirs[i].join("store").display().to_string();
        let api = apis[i].to_string();
        let env = [
            ("PIGEON_STORE__PATH", store.as_str()),
            ("PIGEON_METRICS__LISTEN", ""),
            ("PIGEON_API__LISTEN", api.as_str()),
            ("PIGEON_API__TOKEN", TOKEN),
            ("PIGEON_ENGINE__RATE_SHARE", "partitions"),
        ];
        EngineProcess::start(&dirs[i], &toml, &env)
    };
    let statuses = support::collector(&topics, "share");
    let mut g = Generator::new("share", DebitMix::uk_only());

    let first = start(0);
    support::wait_assigned(&dirs[0], 1).await;
    wait_rates(&apis[..1], &[400.0], "the only member").await;
    let second = start(1);
    support::wait_assigned(&dirs[1], 1).await;
    wait_rates(&apis, &[200.0, 200.0], "two members").await;
    // Both send, each at its share.
    produce(
        &topics.debits,
        (0..DEBITS).map(|_| g.next_event()).collect(),
    )
    .await;
    support::wait_for(&statuses, DEBITS, "two members sharing the rate").await;
    second.stop(Duration::from_secs(60)).await;
    wait_rates(&apis[..1], &[400.0], "the member left alone").await;
    first.stop(Duration::from_secs(60)).await;

    let sim_stats = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(DEBITS),
        "{acc:?}"
    );
    assert_eq!(sim_stats.messages, DEBITS, "{sim_stats:?}");
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
