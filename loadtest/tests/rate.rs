//! The carrier's rate is used and never overstepped: a carrier configured at 500 segments/s
//! against a simulator that throttles above 500/s sees 500/s within 3 %, with fewer than
//! 0.1 % of submits throttled, long messages counted as their segments.

mod support;

use std::time::Duration;

use pigeon_loadtest::load::{DebitMix, Generator};
use support::{engine_config_with, produce, start_sim_with, Engine, Topics};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_tps_carrier_sees_500_segments_per_second_and_is_rarely_throttled() {
    let topics = Topics::unique("rate");
    topics.create().await;
    let sim = start_sim_with(Duration::from_millis(10), |c| c.throttle_tps = Some(500)).await;
    let engine = Engine::start(engine_config_with(
        &sim,
        &topics,
        "max_segments_per_second = 500",
    ));
    let statuses = support::collector(&topics, "rate");

    // About 34 s of work at 500 segments/s: 20 % of the debits are two segments.
    let mut g = Generator::new(
        "rate",
        DebitMix {
            chinese: 0.0,
            long: 0.2,
            malformed_every: 0,
            ..DebitMix::default()
        },
    );
    let n = 14_000;
    produce(&topics.debits, (0..n).map(|_| g.next_event()).collect()).await;

    let a = || sim.carrier_stats("carrier-a").expect("carrier-a");
    // Measure 25 s of steady state, after the first segments arrived.
    let deadline = Instant::now() + Duration::from_secs(60);
    while a().submits < 500 {
        assert!(Instant::now() < deadline, "traffic did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, s0) = (Instant::now(), a().submits);
    tokio::time::sleep_until(t0 + Duration::from_secs(25)).await;
    let (t1, s1) = (Instant::now(), a().submits);
    let rate = (s1 - s0) as f64 / (t1 - t0).as_secs_f64();
    eprintln!("observed {rate:.1} segments/s at carrier-a (configured 500)");
    assert!(
        (485.0..=515.0).contains(&rate),
        "observed {rate:.1} segments/s, want 500 ± 3 %"
    );

    assert!(
        statuses
            .wait_terminal(n as u64, Instant::now() + Duration::from_secs(60))
            .await
    );
    engine.stop().await;
    let s = sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert!(acc.exactly_once(), "{acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(n as u64),
        "{acc:?}"
    );
    let throttled_share = s.throttled as f64 / s.submits as f64;
    eprintln!("throttled {} of {} submits", s.throttled, s.submits);
    assert!(
        throttled_share < 0.001,
        "{} of {} submits throttled",
        s.throttled,
        s.submits
    );
    assert!(
        s.submits > n as u64,
        "long messages went as several segments: {s:?}"
    );
}
