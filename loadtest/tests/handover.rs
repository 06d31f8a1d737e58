//! Two engine processes in one consumer group, one killed with SIGKILL mid-run: after the
//! session timeout the other takes its partitions and consumes again what the lost one had
//! taken past its last commit, some of it already at the carrier. The handover marks tell it
//! so: every SMS the simulator saw twice is flagged `possible_duplicate`. The lost one comes
//! back later on its store (as a StatefulSet's pod does on its volume): the notifications it
//! had committed and that await their receipts are its own to end (their receipts, refused
//! by the survivor's binds meanwhile, reach it through the relay topic), and nothing else
//! can end them. Then every event has ended, with one outcome each.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{start_sim, EngineProcess, Topics};
use tokio::time::Instant;

const EVENTS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_lost_mid_run_leaves_its_possible_duplicates_flagged_and_nothing_lost() {
    let topics = Topics::unique("handover");
    topics.create().await;
    // 150 debits a second per instance, receipts half a second after each submit, commits
    // two seconds apart: when the instance is lost, hundreds of its debits are at the
    // carrier past its last commit, and more consumed and not sent yet.
    let sim = start_sim(Duration::from_millis(500)).await;
    let toml = support::engine_toml(&sim, &topics, "max_segments_per_second = 150");
    let dirs = support::engine_dirs(&topics);
    let start = |dir: &PathBuf| {
        let store = dir.join("store").display().to_string();
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let env = [
            // As a deployment of several instances on one carrier account: receipts that
            // reach the other instance's bind are relayed to the sender (ADR 0009), also
            // those of the lost instance, which applies them once it is back.
            ("PIGEON_RELAY__RECEIPTS_TOPIC", topics.receipts.as_str()),
            (
                "PIGEON_RELAY__INSTANCE",
                name.as_deref().unwrap_or_default(),
            ),
            ("PIGEON_STORE__PATH", store.as_str()),
            ("PIGEON_METRICS__LISTEN", ""),
            ("PIGEON_ENGINE__BATCH_MAX", "50"),
            ("PIGEON_ENGINE__COMMIT_INTERVAL_MS", "2000"),
            ("PIGEON_KAFKA__SESSION_TIMEOUT_MS", "4000"),
            ("PIGEON_HANDOVER__TOPIC", topics.handover.as_str()),
            ("PIGEON_HANDOVER__LEASE_RECORDS", "256"),
            // Each debit waits for carrier-a's rate rather than moving on to carrier-b: the
            // instances hold their partitions' work until the end.
            ("PIGEON_ENGINE__FAILOVER_AFTER_MS", "120000"),
        ];
        EngineProcess::start(dir, &toml, &env)
    };
    let (statuses, g) = support::uk_debits(&topics, "handover", EVENTS).await;

    let lost = start(&dirs[0]);
    support::wait_assigned(&dirs[0], 1).await;
    let survivor = start(&dirs[1]);
    support::wait_assigned(&dirs[1], 1).await;
    support::wait_assigned(&dirs[0], 2).await;
    let shared = statuses.terminal_count();
    support::wait_for(&statuses, shared + 300, "two engines").await;
    lost.kill9();
    let at_loss = statuses.terminal_count();
    assert!(at_loss < EVENTS, "the instance was lost mid-run");
    // The survivor is assigned every partition (its second assignment), then the lost
    // instance comes back.
    support::wait_assigned(&dirs[1], 2).await;
    let back = start(&dirs[0]);
    let all_ended = statuses
        .wait_terminal(EVENTS, Instant::now() + Duration::from_secs(120))
        .await;
    back.stop(Duration::from_secs(60)).await;
    survivor.stop(Duration::from_secs(60)).await;
    if !all_ended {
        let (acc, _, _) = statuses.finish(&g.ids());
        for id in &acc.missing_sample {
            eprintln!("{id}: published {:?}", statuses.statuses(id));
        }
        panic!(
            "only {} of {EVENTS} ended: {acc:?} (logs: {})",
            statuses.terminal_count(),
            dirs[0]
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }

    let sim_stats = sim.shutdown().await;
    let ids = g.ids();
    let (acc, _, _) = statuses.finish(&ids);
    let flagged = support::flagged(&statuses, &ids);
    let taken_over = ids
        .iter()
        .filter(|id| {
            (statuses.statuses(id).iter())
                .any(|s| s.reason.as_deref() == Some("previous_owner_lost"))
        })
        .count();
    eprintln!(
        "lost at {at_loss} ended: {acc:?}; taken over flagged: {taken_over}, flagged \
         possible_duplicate: {}; the simulator saw {} messages, {} (destination, text) pairs \
         twice",
        flagged.len(),
        sim_stats.messages,
        sim_stats.duplicate_pairs
    );
    assert_eq!(acc.missing, 0, "none lost: {acc:?}");
    assert_eq!(acc.duplicated, 0, "one outcome each: {acc:?}");
    assert!(
        sim_stats.duplicate_pairs <= flagged.len() as u64,
        "every SMS sent twice is flagged: {} twice, {} flagged",
        sim_stats.duplicate_pairs,
        flagged.len()
    );
    assert!(
        taken_over > 0,
        "the survivor took over debits the lost instance had consumed"
    );
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
