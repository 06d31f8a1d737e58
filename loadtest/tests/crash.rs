//! Crash recovery, end to end: the engine binary killed with SIGKILL at random points under
//! load and restarted each time, against the real broker and pigeon-sim. Afterwards every
//! event has exactly one terminal outcome, receipts of messages accepted before a crash were
//! matched after it, and every SMS the simulator saw twice is flagged `possible_duplicate`.
//! A receipt the engine answered before a crash for one segment of a long message counts
//! after it.

mod support;

use std::time::Duration;

use pigeon_loadtest::load::{DebitMix, Generator};
use rand::Rng;
use support::{produce, start_sim, start_sim_with, EngineProcess, Topics};
use tokio::time::Instant;

const EVENTS: usize = 3_000;
const KILLS: usize = 5;
const WINDOW: u64 = 16;
const BINDS: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_five_times_under_load_loses_nothing_and_flags_every_possible_duplicate() {
    let topics = Topics::unique("crash");
    topics.create().await;
    // Receipts half a second after each submit: at every kill some accepted messages still
    // wait for theirs, which then arrive on the restarted engine's binds.
    let sim = start_sim(Duration::from_millis(500)).await;
    let toml = support::engine_toml(
        &sim,
        &topics,
        &format!("max_segments_per_second = 300\nwindow = {WINDOW}\nbinds = {BINDS}"),
    );
    let dir = std::env::temp_dir().join(format!("pigeon-{}", topics.debits));
    std::fs::create_dir_all(&dir).expect("test dir");
    let env = [
        ("PIGEON_ENGINE__AMBIGUOUS_WAIT_MS", "1000"),
        ("PIGEON_METRICS__LISTEN", ""),
    ];
    let (statuses, g) = support::uk_debits(&topics, "crash", EVENTS as u64).await;

    let mut engine = EngineProcess::start(&dir, &toml, &env);
    let mut rng = rand::rng();
    for kill in 0..KILLS {
        // Let the (re)started engine make progress, then kill it at a random moment.
        let from = statuses.terminal_count();
        let target = from + 150;
        let deadline = Instant::now() + Duration::from_secs(120);
        while statuses.terminal_count() < target {
            assert!(
                Instant::now() < deadline,
                "no progress after restart {kill}: {} ended (log: {})",
                statuses.terminal_count(),
                dir.join("engine.log").display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..600))).await;
        eprintln!(
            "kill -9 #{} at {} ended",
            kill + 1,
            statuses.terminal_count()
        );
        engine.kill9();
        engine = EngineProcess::start(&dir, &toml, &env);
    }

    let all_ended = statuses
        .wait_terminal(EVENTS as u64, Instant::now() + Duration::from_secs(120))
        .await;
    engine.stop(Duration::from_secs(60)).await;
    let sim_stats = sim.shutdown().await;
    let ids = g.ids();
    let (acc, _, _) = statuses.finish(&ids);
    if !all_ended {
        let store = pigeon::store::Store::open(&pigeon::store::StoreOptions {
            path: topics.store_dir(),
            ..Default::default()
        })
        .expect("store");
        for id in &acc.missing_sample {
            eprintln!("{id}: published {:?}", statuses.statuses(id));
            eprintln!("{id}: recorded {:?}", store.get(id));
        }
        panic!(
            "only {} of {EVENTS} ended (log: {})",
            statuses.terminal_count(),
            dir.join("engine.log").display()
        );
    }
    let flagged = support::flagged(&statuses, &ids);
    eprintln!(
        "after {KILLS} kills: {acc:?}; flagged possible_duplicate: {}; the simulator saw {} \
         messages, {} (destination, text) pairs twice",
        flagged.len(),
        sim_stats.messages,
        sim_stats.duplicate_pairs
    );
    assert_eq!(acc.missing, 0, "none lost: {acc:?}");
    assert_eq!(acc.duplicated, 0, "one terminal outcome each: {acc:?}");
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(EVENTS as u64),
        "every receipt matched, those of messages accepted before a crash too: {acc:?}"
    );
    assert!(
        sim_stats.duplicate_pairs <= flagged.len() as u64,
        "every SMS sent twice is flagged: {} twice, {} flagged",
        sim_stats.duplicate_pairs,
        flagged.len()
    );
    assert!(
        flagged.len() as u64 <= KILLS as u64 * WINDOW * BINDS,
        "at most the in-flight window per crash: {} flagged",
        flagged.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(topics.store_dir());
}

/// Two segments per message, each receipt after its own random delay of up to 4 s: when the
/// engine is killed, many notifications have had one segment's receipt answered and not the
/// other's sent yet. The answered one was recorded before its SMSC was answered, so after
/// the restart the other's alone ends the notification; were it only in memory, those
/// notifications would wait for a receipt that never comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_receipt_answered_before_a_crash_still_counts_after_it() {
    const MESSAGES: u64 = 200;
    let topics = Topics::unique("segments");
    topics.create().await;
    let sim = start_sim_with(Duration::ZERO, |c| c.dlr_jitter = Duration::from_secs(4)).await;
    let toml = support::engine_toml(&sim, &topics, "");
    let dir = std::env::temp_dir().join(format!("pigeon-{}", topics.debits));
    std::fs::create_dir_all(&dir).expect("test dir");
    let env = [("PIGEON_METRICS__LISTEN", "")];
    let statuses = support::collector(&topics, "segments");
    let mix = DebitMix {
        long: 1.0,
        ..DebitMix::uk_only()
    };
    let mut g = Generator::new("segments", mix);
    let events = (0..MESSAGES).map(|_| g.next_event()).collect();
    produce(&topics.debits, events).await;

    let mut engine = EngineProcess::start(&dir, &toml, &env);
    // Every message at the carrier and a quarter of the receipts answered.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = sim.stats();
        if s.messages >= MESSAGES && s.receipts_acked >= MESSAGES / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the carrier has {s:?} (log: {})",
            dir.join("engine.log").display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.kill9();
    let answered = sim.stats().receipts_acked;
    assert!(answered < 2 * MESSAGES, "receipts left to come: {answered}");
    assert_eq!(sim.stats().segments_reassembled, 2 * MESSAGES, "two each");
    engine = EngineProcess::start(&dir, &toml, &env);

    let all_ended = statuses
        .wait_terminal(MESSAGES, Instant::now() + Duration::from_secs(60))
        .await;
    engine.stop(Duration::from_secs(60)).await;
    sim.shutdown().await;
    let (acc, _, _) = statuses.finish(&g.ids());
    assert!(
        all_ended,
        "{} of {MESSAGES} ended: {acc:?} (log: {})",
        statuses.terminal_count(),
        dir.join("engine.log").display()
    );
    assert_eq!(
        acc.by_state.get("delivered").copied(),
        Some(MESSAGES),
        "{acc:?}"
    );
    assert_eq!((acc.missing, acc.duplicated), (0, 0), "{acc:?}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(topics.store_dir());
}
