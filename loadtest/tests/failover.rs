//! Failover between carriers and expiry, end to end: the primary killed mid-run, its traffic
//! completing through the fallback, and returning once the primary is back; notifications
//! no carrier can take ending `expired`, never sent late.

mod support;

use std::time::Duration;

use pigeon::config::RouteConfig;
use pigeon_loadtest::load::{DebitMix, Generator};
use pigeon_loadtest::sim::SimHandle;
use support::{engine_config, produce, start_sim, Engine, Topics};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(90);

fn uk_only(run: &str) -> Generator {
    Generator::new(run, DebitMix::uk_only())
}

async fn send(g: &mut Generator, topic: &str, n: usize) {
    produce(topic, (0..n).map(|_| g.next_event()).collect()).await;
}

/// Waits until the engine has bound `carrier` since it had `binds` binds in all.
async fn bound_again(sim: &SimHandle, carrier: &str, binds: u64) {
    let deadline = Instant::now() + DEADLINE;
    while sim.carrier_stats(carrier).expect("carrier").binds == binds {
        assert!(
            Instant::now() < deadline,
            "the engine did not bind {carrier} again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_takes_over_when_the_primary_dies_and_traffic_returns_after() {
    let topics = Topics::unique("failover");
    topics.create().await;
    let sim = start_sim(Duration::from_millis(20)).await;
    let mut cfg = engine_config(&sim, &topics);
    cfg.engine.failover_after_ms = 500;
    for c in &mut cfg.carriers {
        c.max_segments_per_second = 300;
        c.breaker_open_ms = 300;
    }
    let engine = Engine::start(cfg);
    let statuses = support::collector(&topics, "fo");
    let mut g = uk_only("fo");

    send(&mut g, &topics.debits, 300).await;
    assert!(statuses.wait_settled(100, Instant::now() + DEADLINE).await);
    assert!(sim.kill_carrier("carrier-a").await, "killed");
    let b_before = sim.carrier_stats("carrier-b").expect("b").messages;
    send(&mut g, &topics.debits, 300).await;
    // Everything not already with carrier-a completes through carrier-b.
    let deadline = Instant::now() + DEADLINE;
    while sim.carrier_stats("carrier-b").expect("b").messages < b_before + 300 {
        assert!(
            Instant::now() < deadline,
            "the fallback did not take the new traffic"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let a_binds = sim.carrier_stats("carrier-a").expect("a").binds;
    sim.restart_carrier("carrier-a").await.expect("restarted");
    // Wait until carrier-a is bound again, then new traffic goes back to it.
    bound_again(&sim, "carrier-a", a_binds).await;
    let a_before = sim.carrier_stats("carrier-a").expect("a").messages;
    send(&mut g, &topics.debits, 300).await;
    assert!(
        statuses.wait_settled(900, Instant::now() + DEADLINE).await,
        "only {} of 900 settled",
        statuses.settled_count()
    );
    let a_after = sim.carrier_stats("carrier-a").expect("a").messages;
    // While the primary's breaker is half-open only its probe goes there (the others move on
    // to the fallback); once the probe succeeded, the traffic is the primary's again.
    assert!(
        a_after >= a_before + 250,
        "traffic returned to the primary: {a_before} -> {a_after}"
    );

    engine.stop().await;
    let s = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert_eq!(
        s.duplicate_pairs, 0,
        "nothing sent twice across carriers: {s:?}"
    );
    assert_eq!(acc.duplicated, 0, "{acc:?}");
    let ambiguous = acc.all_statuses.get("ambiguous").copied().unwrap_or(0);
    let delivered = acc.by_state.get("delivered").copied().unwrap_or(0);
    assert_eq!(delivered + ambiguous, 900, "none lost: {acc:?}");
    assert!(
        acc.all_statuses.get("retrying").copied().unwrap_or(0) <= 300,
        "only notifications caught with the dead carrier moved: {acc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_carrier_able_to_take_it_a_notification_expires_and_is_never_sent_late() {
    let topics = Topics::unique("expiry");
    topics.create().await;
    let sim = start_sim(Duration::ZERO).await;
    let mut cfg = engine_config(&sim, &topics);
    // Long enough to outlast the consumer group join, short enough for a test.
    cfg.engine.validity_ms = 8_000;
    cfg.engine.failover_after_ms = 300;
    let engine = Engine::start(cfg);
    let statuses = support::collector(&topics, "ex");
    assert!(sim.kill_carrier("carrier-a").await);
    assert!(sim.kill_carrier("carrier-b").await);
    let mut g = uk_only("ex");
    send(&mut g, &topics.debits, 20).await;
    assert!(statuses.wait_terminal(20, Instant::now() + DEADLINE).await);
    let (acc, _, _) = statuses.finish(&g.ids());
    assert_eq!(acc.by_state.get("expired"), Some(&20), "{acc:?}");
    let trail = statuses.statuses(&g.ids()[0]);
    let last = trail.last().expect("a status");
    assert_eq!(
        last.reason.as_deref(),
        Some("validity_elapsed"),
        "{trail:?}"
    );

    // Carriers back: nothing old is sent late. The engine's reconnect backoff has grown
    // while both were down (up to its cap), so wait for the bind before the fresh debits,
    // which would otherwise expire too.
    let a_binds = sim.carrier_stats("carrier-a").expect("a").binds;
    sim.restart_carrier("carrier-a").await.expect("restart");
    sim.restart_carrier("carrier-b").await.expect("restart");
    bound_again(&sim, "carrier-a", a_binds).await;
    send(&mut g, &topics.debits, 5).await;
    assert!(statuses.wait_terminal(25, Instant::now() + DEADLINE).await);
    engine.stop().await;
    let s = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert_eq!(acc.by_state.get("expired"), Some(&20), "{acc:?}");
    assert_eq!(acc.by_state.get("delivered"), Some(&5), "{acc:?}");
    assert_eq!(s.messages, 5, "only the 5 fresh debits were sent: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_reload_live_and_a_refused_reload_changes_nothing() {
    let topics = Topics::unique("reload");
    topics.create().await;
    let sim = start_sim(Duration::ZERO).await;
    let cfg = engine_config(&sim, &topics);
    let engine = Engine::start(cfg.clone());
    let statuses = support::collector(&topics, "rl");
    let mut g = uk_only("rl");
    send(&mut g, &topics.debits, 50).await;
    assert!(statuses.wait_terminal(50, Instant::now() + DEADLINE).await);
    let b = || sim.carrier_stats("carrier-b").expect("b").messages;
    assert_eq!(b(), 0, "UK traffic is carrier-a's");

    // A reload that also changes something needing a restart is refused whole.
    let mut refused = cfg.clone();
    refused
        .routing
        .operators
        .insert("uk".into(), RouteConfig::Ordered(vec!["carrier-b".into()]));
    refused.engine.batch_max += 1;
    let errors = engine.reload(refused).await.expect_err("refused");
    assert_eq!(errors, vec!["engine: changes need a restart".to_owned()]);
    send(&mut g, &topics.debits, 50).await;
    assert!(statuses.wait_terminal(100, Instant::now() + DEADLINE).await);
    assert_eq!(b(), 0, "the refused reload changed nothing");
    // Routes alone change live.
    let mut moved = cfg.clone();
    moved
        .routing
        .operators
        .insert("uk".into(), RouteConfig::Ordered(vec!["carrier-b".into()]));
    let plan = engine.reload(moved).await.expect("applied");
    assert!(plan.routing_changed, "{plan:?}");
    send(&mut g, &topics.debits, 50).await;
    assert!(statuses.wait_terminal(150, Instant::now() + DEADLINE).await);
    assert_eq!(b(), 50, "after the reload UK traffic goes to carrier-b");
    engine.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_priority_lanes_debits_go_ahead_of_lower_classes() {
    let topics = Topics::unique("lanes");
    topics.create().await;
    let sim = start_sim(Duration::ZERO).await;
    let mut cfg = engine_config(&sim, &topics);
    cfg.engine.priority_lanes = true;
    cfg.carriers[0].max_segments_per_second = 50;
    let engine = Engine::start(cfg);
    let statuses = support::collector(&topics, "ln");
    let mut g = uk_only("ln");
    // 100 balance alerts queue up at a slow carrier, then 20 debits arrive.
    let mut record = |i: u64, class: Option<&str>| {
        let mut ev = g.event(i);
        ev.class = class.map(str::to_owned);
        (
            ev.event_id.clone().into_bytes(),
            serde_json::to_vec(&ev).expect("json"),
        )
    };
    let alerts: Vec<_> = (1..=100)
        .map(|i| record(i, Some("balance_alert")))
        .collect();
    let debits: Vec<_> = (101..=120).map(|i| record(i, None)).collect();
    produce(&topics.debits, alerts).await;
    produce(&topics.debits, debits).await;
    assert!(statuses.wait_terminal(120, Instant::now() + DEADLINE).await);
    engine.stop().await;
    sim.shutdown().await;

    let accepted_at = |i: u64| {
        statuses
            .statuses(&format!("ln-{i}"))
            .iter()
            .find(|s| s.state.as_str() == "accepted")
            .map(|s| s.at)
            .expect("accepted")
    };
    let last_debit = (101..=120).map(accepted_at).max().expect("debits");
    let mut alerts: Vec<_> = (1..=100).map(accepted_at).collect();
    alerts.sort();
    assert!(
        last_debit < alerts[60],
        "every debit went before most of the alerts queued ahead of it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_receipt_failover_a_notification_without_a_receipt_goes_again_flagged() {
    let topics = Topics::unique("rcptfo");
    topics.create().await;
    // carrier-a accepts everything but its receipts would take an hour.
    let sim = support::start_sim_with(Duration::from_millis(20), |a| {
        a.dlr_delay = Duration::from_secs(3600);
    })
    .await;
    let mut cfg = engine_config(&sim, &topics);
    cfg.routing.receipt_failover_ms.insert("uk".into(), 1_500);
    let engine = Engine::start(cfg);
    let statuses = support::collector(&topics, "rf");
    let mut g = uk_only("rf");
    send(&mut g, &topics.debits, 40).await;
    assert!(
        statuses.wait_terminal(40, Instant::now() + DEADLINE).await,
        "only {} of 40 ended",
        statuses.settled_count()
    );
    engine.stop().await;
    let a = sim.carrier_stats("carrier-a").expect("a");
    let b = sim.carrier_stats("carrier-b").expect("b");
    sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert_eq!(acc.by_state.get("delivered"), Some(&40), "{acc:?}");
    for id in g.ids() {
        let trail = statuses.statuses(&id);
        let states: Vec<_> = trail.iter().map(|s| s.state.as_str()).collect();
        assert_eq!(
            states,
            ["accepted", "retrying", "accepted", "delivered"],
            "{id}"
        );
        assert!(
            !trail[0].possible_duplicate,
            "the first send is not flagged"
        );
        assert!(
            trail[1..].iter().all(|s| s.possible_duplicate),
            "everything after the second send is flagged: {trail:?}"
        );
        assert_eq!(trail[1].reason.as_deref(), Some("no_receipt"));
        assert_eq!(trail[3].carrier.as_deref(), Some("carrier-b"));
    }
    assert_eq!(a.messages, 40, "{a:?}");
    assert_eq!(b.messages, 40, "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_receipt_failover_a_missing_receipt_ends_unconfirmed_and_nothing_goes_again() {
    let topics = Topics::unique("unconf");
    topics.create().await;
    let sim = support::start_sim_with(Duration::from_millis(20), |a| {
        a.dlr_delay = Duration::from_secs(3600);
    })
    .await;
    let mut cfg = engine_config(&sim, &topics);
    cfg.engine.receipt_timeout_ms = 1_500;
    let engine = Engine::start(cfg);
    let statuses = support::collector(&topics, "uc");
    let mut g = uk_only("uc");
    send(&mut g, &topics.debits, 20).await;
    assert!(statuses.wait_terminal(20, Instant::now() + DEADLINE).await);
    engine.stop().await;
    let b = sim.carrier_stats("carrier-b").expect("b");
    sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert_eq!(acc.by_state.get("unconfirmed"), Some(&20), "{acc:?}");
    assert_eq!(acc.all_statuses.get("retrying"), None, "{acc:?}");
    let trail = statuses.statuses(&g.ids()[0]);
    assert_eq!(
        trail.last().and_then(|s| s.reason.as_deref()),
        Some("no_receipt")
    );
    assert_eq!(b.messages, 0, "{b:?}");
}
