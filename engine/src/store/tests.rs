use std::path::Path;
use std::time::Duration;

use time::macros::datetime;
use time::{Duration as TimeDelta, OffsetDateTime};

use super::*;
use crate::event::{State, StatusEvent};

const T0: OffsetDateTime = datetime!(2026-11-25 19:00 UTC);

fn options(dir: &Path, fsync: bool) -> StoreOptions {
    StoreOptions {
        enabled: true,
        path: dir.join("db"),
        fsync,
        receipt_ttl_ms: 60_000,
        record_retention_ms: 0,
    }
}

fn req(id: &str, partition: i32, offset: i64, txn: &str) -> ClaimRequest {
    ClaimRequest {
        event_id: id.into(),
        origin: Origin { partition, offset },
        transaction_id: Some(txn.into()),
        destination: Some("+********0123".into()),
    }
}

fn status(id: &str, state: State, at: OffsetDateTime) -> StatusEvent {
    StatusEvent {
        schema_version: 1,
        event_id: id.into(),
        transaction_id: None,
        state,
        reason: None,
        detail: None,
        carrier: Some("alpha".into()),
        message_ids: Vec::new(),
        segments: 1,
        command_status: None,
        destination: None,
        occurred_at: None,
        at,
        possible_duplicate: false,
    }
}

fn accepted(id: &str, ids: &[&str], at: OffsetDateTime) -> Change {
    let mut s = status(id, State::Accepted, at);
    s.message_ids = ids.iter().map(|m| m.to_string()).collect();
    Change::Status(s)
}

fn submitting(id: &str, at: OffsetDateTime) -> Change {
    Change::Submitting {
        event_id: id.into(),
        carrier: "alpha".into(),
        at,
    }
}

fn states(r: &NotificationRecord) -> Vec<State> {
    r.timeline.iter().map(|e| e.state).collect()
}

fn ids(records: &[NotificationRecord]) -> Vec<&str> {
    records.iter().map(|r| r.event_id.as_str()).collect()
}

#[tokio::test]
async fn claims_are_new_then_redelivered_then_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();

    assert_eq!(
        store.claim(vec![req("a", 0, 1, "t")]).await.unwrap(),
        [Claim::New]
    );
    let again = store.claim(vec![req("a", 0, 1, "t")]).await.unwrap();
    let [Claim::Redelivered(rec)] = again.as_slice() else {
        panic!("{again:?}");
    };
    assert_eq!(rec.state, State::Received);
    assert_eq!(
        rec.origin,
        Some(Origin {
            partition: 0,
            offset: 1
        })
    );
    assert_eq!(rec.destination.as_deref(), Some("+********0123"));
    let other = store.claim(vec![req("a", 0, 9, "t")]).await.unwrap();
    assert!(matches!(other.as_slice(), [Claim::Duplicate(r)] if r.origin == rec.origin));

    // Within one batch: the first is new, any repeat is a duplicate of it.
    let batch = vec![
        req("b", 1, 5, "t"),
        req("b", 1, 6, "t"),
        req("b", 1, 5, "t"),
    ];
    let out = store.claim(batch).await.unwrap();
    assert_eq!(out[0], Claim::New);
    assert!(
        matches!(&out[1], Claim::Duplicate(r) if r.origin == Some(Origin { partition: 1, offset: 5 }))
    );
    assert!(matches!(&out[2], Claim::Duplicate(_)));
    // Claims alone are not written yet (the first change writes them), and a sync is not
    // waited for when a group wrote nothing.
    assert_eq!(store.get("b").unwrap(), None);
    assert!(store.open_records().unwrap().is_empty());
    assert_eq!(store.stats().batches, 0);
    store.write_claims(Duration::ZERO).await.unwrap();
    let b = store.get("b").unwrap().unwrap();
    assert_eq!(states(&b), [State::Received]);
    assert_eq!(ids(&store.open_records().unwrap()), ["a", "b"]);
    // Written, they answer claims as before.
    let again = store.claim(vec![req("b", 1, 5, "t")]).await.unwrap();
    assert!(matches!(again.as_slice(), [Claim::Redelivered(r)] if r.state == State::Received));
}

#[tokio::test]
async fn a_claim_is_written_by_the_first_change_of_its_notification() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    store
        .claim(vec![req("s", 0, 1, "t1"), req("k", 0, 2, "t1")])
        .await
        .unwrap();
    store.commit(vec![submitting("s", T0)]).await.unwrap();
    // A skipped one ends at once: never in the open index.
    let skipped = status("k", State::Skipped, T0);
    store.commit(vec![Change::Status(skipped)]).await.unwrap();
    let s = store.get("s").unwrap().unwrap();
    assert_eq!(states(&s), [State::Received, State::Submitting]);
    assert_eq!(
        s.origin,
        Some(Origin {
            partition: 0,
            offset: 1
        })
    );
    assert_eq!(s.destination.as_deref(), Some("+********0123"));
    let k = store.get("k").unwrap().unwrap();
    assert_eq!(states(&k), [State::Received, State::Skipped]);
    assert_eq!(ids(&store.open_records().unwrap()), ["s"]);
    assert_eq!(ids(&store.by_transaction("t1").unwrap()), ["k", "s"]);
    // "s" (open): its group's staged entry; "k" (ended): record and transaction index.
    assert_eq!(store.stats().records_written, 3);
    // Nothing left to write: the claims went with their changes.
    store.write_claims(Duration::ZERO).await.unwrap();
    assert_eq!(store.stats().records_written, 3);
    // Indexing "s": record, open index, transaction index, and its entry deleted.
    store.index_staged(Duration::ZERO).await.unwrap();
    assert_eq!(store.stats().records_written, 7);
    assert_eq!(store.inner.ks.staged.iter().count(), 0);
    assert_eq!(store.get("s").unwrap().unwrap(), s);
    assert_eq!(ids(&store.open_records().unwrap()), ["s"]);
    assert_eq!(ids(&store.by_transaction("t1").unwrap()), ["k", "s"]);
}

#[tokio::test]
async fn a_claim_waiting_longer_than_the_delay_is_written_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    store.claim(vec![req("w", 0, 1, "t")]).await.unwrap();
    // Younger than the delay: kept.
    store.write_claims(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(store.get("w").unwrap(), None);
    store.write_claims(Duration::ZERO).await.unwrap();
    assert_eq!(states(&store.get("w").unwrap().unwrap()), [State::Received]);
    assert_eq!(ids(&store.open_records().unwrap()), ["w"]);
    // A later change rewrites the record it wrote.
    store.commit(vec![submitting("w", T0)]).await.unwrap();
    let w = store.get("w").unwrap().unwrap();
    assert_eq!(states(&w), [State::Received, State::Submitting]);
}

#[tokio::test]
async fn a_life_builds_the_timeline_and_leaves_the_open_index_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    store.claim(vec![req("e", 0, 1, "t")]).await.unwrap();
    store.commit(vec![submitting("e", T0)]).await.unwrap();
    let sec = TimeDelta::seconds(1);
    store
        .commit(vec![accepted("e", &["1f", "20"], T0 + sec)])
        .await
        .unwrap();

    assert_eq!(ids(&store.open_records().unwrap()), ["e"]);
    assert_eq!(
        store.receipt_owner("alpha", "1f", T0).unwrap().as_deref(),
        Some("e")
    );
    assert_eq!(
        store.receipt_owner("alpha", "20", T0).unwrap().as_deref(),
        Some("e")
    );
    assert_eq!(store.receipt_owner("beta", "1f", T0).unwrap(), None);

    let mut done = status("e", State::Delivered, T0 + sec * 5);
    done.message_ids = vec!["1f".into(), "20".into()];
    store.commit(vec![Change::Status(done)]).await.unwrap();
    let r = store.get("e").unwrap().unwrap();
    let life = [
        State::Received,
        State::Submitting,
        State::Accepted,
        State::Delivered,
    ];
    assert_eq!(states(&r), life);
    assert_eq!(r.state, State::Delivered);
    assert_eq!(r.carrier.as_deref(), Some("alpha"));
    assert_eq!(r.message_ids, ["1f", "20"]);
    assert_eq!(r.submitted_at, Some(T0));
    assert!(store.open_records().unwrap().is_empty());
    // It ended while staged: it never needed receipt keys, and none were written.
    assert_eq!(store.receipt_owner("alpha", "1f", T0).unwrap(), None);
    assert_eq!(store.inner.ks.receipts.iter().count(), 0);

    // A late non-terminal status is kept in the timeline but does not reopen the record.
    let late = status("e", State::Retrying, T0 + sec * 6);
    store.commit(vec![Change::Status(late)]).await.unwrap();
    let r = store.get("e").unwrap().unwrap();
    assert_eq!(r.state, State::Delivered);
    assert_eq!(r.timeline.len(), 5);
    assert!(store.open_records().unwrap().is_empty());
}

#[tokio::test]
async fn a_claim_and_a_change_sent_together_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    // `join!` polls the claim first, so it is queued first; both likely share a group.
    let (claimed, committed) = tokio::join!(
        store.claim(vec![req("e", 0, 1, "t")]),
        store.commit(vec![submitting("e", T0)]),
    );
    assert_eq!(claimed.unwrap(), [Claim::New]);
    committed.unwrap();
    let r = store.get("e").unwrap().unwrap();
    assert_eq!(states(&r), [State::Received, State::Submitting]);
    assert_eq!(
        r.origin,
        Some(Origin {
            partition: 0,
            offset: 1
        })
    );
}

#[test]
fn records_open_index_and_receipts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(&options(dir.path(), true)).unwrap();
        let claims = vec![
            req("a", 0, 1, "t1"),
            req("b", 0, 2, "t1"),
            req("c", 0, 3, "t2"),
        ];
        store.claim_blocking(claims).unwrap();
        let delivered = Change::Status(status("b", State::Delivered, T0));
        let changes = vec![submitting("a", T0), accepted("a", &["77"], T0), delivered];
        store.commit_blocking(changes).unwrap();
        // "c" had no change: written alone.
        store.write_claims_blocking(Duration::ZERO).unwrap();
        assert_eq!(store.stats().fsyncs, 2);
    }
    let store = Store::open(&options(dir.path(), true)).unwrap();
    assert_eq!(ids(&store.open_records().unwrap()), ["a", "c"]);
    assert_eq!(store.get("a").unwrap().unwrap().state, State::Accepted);
    assert_eq!(store.get("b").unwrap().unwrap().state, State::Delivered);
    assert_eq!(
        store.receipt_owner("alpha", "77", T0).unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(ids(&store.by_transaction("t1").unwrap()), ["a", "b"]);
    // Claims after the restart see the records from before it.
    let out = store.claim_blocking(vec![req("a", 0, 1, "t1")]).unwrap();
    assert!(matches!(out.as_slice(), [Claim::Redelivered(r)] if r.state == State::Accepted));
}

#[test]
fn a_segment_receipt_joins_the_timeline_and_survives_a_reopen_the_state_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut entry = TimelineEntry::bare(State::Delivered, T0);
    entry.reason = Some(crate::matcher::SEGMENT_RECEIPT.into());
    entry.message_ids = vec!["77".into()];
    let segment = |id: &str| Change::Segment {
        event_id: id.into(),
        entry: entry.clone(),
    };
    {
        let store = Store::open(&options(dir.path(), true)).unwrap();
        store.claim_blocking(vec![req("a", 0, 1, "t1")]).unwrap();
        let changes = vec![
            submitting("a", T0),
            accepted("a", &["77", "78"], T0),
            segment("a"),
            // Of no record: nothing to note it in.
            segment("nobody"),
        ];
        store.commit_blocking(changes).unwrap();
    }
    let store = Store::open(&options(dir.path(), true)).unwrap();
    let r = store.get("a").unwrap().unwrap();
    assert_eq!(r.state, State::Accepted);
    assert_eq!(r.timeline.last(), Some(&entry));
    assert_eq!(ids(&store.open_records().unwrap()), ["a"]);
    assert!(store.get("nobody").unwrap().is_none());
}

/// Set in the child process of `answered_writes_survive_a_process_abort`.
const CRASH_DIR: &str = "PIGEON_STORE_CRASH_TEST_DIR";

#[test]
fn answered_writes_survive_a_process_abort() {
    if let Some(dir) = std::env::var_os(CRASH_DIR) {
        // Child: write without fsync, then die without any destructor running.
        let store = Store::open(&options(Path::new(&dir), false)).unwrap();
        store.claim_blocking(vec![req("a", 3, 7, "t")]).unwrap();
        store
            .commit_blocking(vec![submitting("a", T0), accepted("a", &["9"], T0)])
            .unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::answered_writes_survive_a_process_abort",
        ])
        .env(CRASH_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted");
    let store = Store::open(&options(dir.path(), false)).unwrap();
    let open = store.open_records().unwrap();
    assert_eq!(ids(&open), ["a"]);
    let life = [State::Received, State::Submitting, State::Accepted];
    assert_eq!(states(&open[0]), life);
    assert_eq!(
        store.receipt_owner("alpha", "9", T0).unwrap().as_deref(),
        Some("a")
    );
}

#[tokio::test]
async fn receipt_keys_expire_on_read_at_once_and_on_disk_at_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap(); // ttl 60 s
    let min = TimeDelta::minutes(1);
    let now = OffsetDateTime::now_utc();
    store
        .commit(vec![accepted("x", &["1", "3"], T0)])
        .await
        .unwrap();
    // "3" accepted again later (a carrier reusing an id), in another group, and "2" twice in
    // one group: the newest registration wins and its expiry counts.
    store
        .commit(vec![
            accepted("y", &["2", "4"], T0),
            accepted("z", &["3"], T0 + min * 2),
            accepted("y", &["2"], T0 + min * 2),
            accepted("w", &["5"], now),
        ])
        .await
        .unwrap();
    let owner = |id: &str, at: OffsetDateTime| store.receipt_owner("alpha", id, at).unwrap();
    let just_before = T0 + min - TimeDelta::milliseconds(1);
    let receipts = &store.inner.ks.receipts;
    // The same answers while the records are staged (no key written yet) and once they are
    // indexed open, waiting for their receipts (keys written, all in one batch).
    for indexed in [false, true] {
        assert_eq!(receipts.iter().count(), if indexed { 5 } else { 0 });
        assert_eq!(owner("1", just_before).as_deref(), Some("x"));
        assert_eq!(owner("1", T0 + min), None, "expired at its expiry");
        assert_eq!(owner("2", T0 + min).as_deref(), Some("y"));
        assert_eq!(owner("3", T0 + min).as_deref(), Some("z"));
        assert_eq!(owner("4", T0 + min), None);
        assert_eq!(owner("3", T0 + min * 3), None);
        store.index_staged(Duration::ZERO).await.unwrap();
    }
    // On disk: a compaction drops what expired by the time it runs, and nothing else.
    receipts.rotate_memtable_and_wait().unwrap();
    receipts.major_compact().unwrap();
    let kept: Vec<Vec<u8>> = receipts.iter().map(|g| g.key().unwrap().to_vec()).collect();
    assert_eq!(kept, [keys::receipt_key("alpha", "5")]);
    assert_eq!(owner("5", now).as_deref(), Some("w"));
}

#[tokio::test]
async fn ended_records_past_their_retention_go_at_compaction_and_open_ones_stay() {
    let day = TimeDelta::days(1);
    let now = OffsetDateTime::now_utc();
    for retention_ms in [0, 86_400_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions {
            record_retention_ms: retention_ms,
            ..options(dir.path(), false)
        })
        .unwrap();
        // Statuses without a claim: each record begins at its first status's time.
        let with_txn = |id: &str, state, at, txn: &str| {
            let mut s = status(id, state, at);
            s.transaction_id = Some(txn.into());
            Change::Status(s)
        };
        store
            .commit(vec![
                with_txn("old-ended", State::Delivered, now - day * 2, "t-old"),
                with_txn("old-open", State::Accepted, now - day * 2, "t-open"),
                with_txn("new-ended", State::Failed, now - day / 2, "t-new"),
            ])
            .await
            .unwrap();
        store.index_staged(Duration::ZERO).await.unwrap();
        let ks = &store.inner.ks;
        let recorder = crate::metrics::exporter().unwrap().build_recorder();
        let metrics = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for keyspace in [&ks.records, &ks.by_txn] {
                keyspace.rotate_memtable_and_wait().unwrap();
                keyspace.major_compact().unwrap();
            }
        });
        // What the compactions dropped is counted, per keyspace.
        let expired = metrics.render();
        let counted = |keyspace: &str| {
            let series = format!("pigeon_store_expired_total{{keyspace=\"{keyspace}\"}} 1");
            expired.lines().any(|l| l == series)
        };
        let gone = retention_ms != 0;
        assert_eq!(counted("records"), gone, "{expired}");
        assert_eq!(counted("by_transaction"), gone, "{expired}");
        let found = |id: &str| store.get(id).unwrap().map(|r| r.state);
        let txn = |t: &str| -> Vec<String> {
            let records = store.by_transaction(t).unwrap();
            records.into_iter().map(|r| r.event_id).collect()
        };
        if retention_ms == 0 {
            assert_eq!(found("old-ended"), Some(State::Delivered), "kept forever");
            assert_eq!(txn("t-old"), ["old-ended"]);
            assert_eq!(ks.by_txn.iter().count(), 3);
        } else {
            assert_eq!(found("old-ended"), None, "two days old, one day kept");
            assert!(txn("t-old").is_empty());
            assert_eq!(ks.by_txn.iter().count(), 2, "its transaction key went too");
            // Its event id counts as new again (an event that old is stale by then).
            let again = store.claim(vec![req("old-ended", 0, 9, "t-old")]).await;
            assert_eq!(again.unwrap(), [Claim::New]);
        }
        assert_eq!(found("old-open"), Some(State::Accepted), "not ended: kept");
        assert_eq!(txn("t-open"), ["old-open"], "and its transaction key");
        assert_eq!(
            found("new-ended"),
            Some(State::Failed),
            "within its retention"
        );
        assert_eq!(txn("t-new"), ["new-ended"]);
        // Once it ends, the record indexed open goes with its transaction key.
        let ended = with_txn("old-open", State::Unconfirmed, now, "t-open");
        store.commit(vec![ended]).await.unwrap();
        for keyspace in [&ks.records, &ks.by_txn] {
            keyspace.rotate_memtable_and_wait().unwrap();
            keyspace.major_compact().unwrap();
        }
        assert_eq!(found("old-open").is_none(), gone);
        assert_eq!(txn("t-open").is_empty(), gone);
        assert_eq!(ks.by_txn.iter().count(), if gone { 1 } else { 3 });
    }
}

#[tokio::test]
async fn by_transaction_returns_every_record_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    let claims = vec![
        req("e1", 0, 1, "t1"),
        req("e2", 0, 2, "t1"),
        req("e3", 0, 3, "t10"),
    ];
    store.claim(claims).await.unwrap();
    store.write_claims(Duration::ZERO).await.unwrap();
    // A rejected event was never claimed: its status creates the record.
    let mut rejected = status("e4", State::Rejected, T0);
    rejected.transaction_id = Some("t1".into());
    rejected.carrier = None;
    rejected.reason = Some("invalid_field".into());
    store.commit(vec![Change::Status(rejected)]).await.unwrap();

    assert_eq!(
        ids(&store.by_transaction("t1").unwrap()),
        ["e1", "e2", "e4"]
    );
    assert_eq!(ids(&store.by_transaction("t10").unwrap()), ["e3"]);
    assert!(store.by_transaction("t").unwrap().is_empty());
    let e4 = store.get("e4").unwrap().unwrap();
    assert_eq!((e4.state, e4.origin), (State::Rejected, None));
    assert_eq!(e4.reason.as_deref(), Some("invalid_field"));
    assert_eq!(ids(&store.open_records().unwrap()), ["e1", "e2", "e3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_batches_and_all_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), true)).unwrap();
    let calls = 200;
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("e{i:03}");
                store.claim(vec![req(&id, 0, i, "t")]).await?;
                store.commit(vec![submitting(&id, T0)]).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.requests, 2 * calls as u64);
    assert!(stats.batches < stats.requests, "{stats:?}");
    // One sync covers every batch written while the previous one ran.
    assert!(
        stats.fsyncs > 0 && stats.fsyncs <= stats.batches,
        "{stats:?}"
    );
    let open = store.open_records().unwrap();
    assert_eq!(open.len(), calls as usize);
    assert!(open.iter().all(|r| r.state == State::Submitting));
}

#[tokio::test]
async fn a_request_that_reads_corrupt_data_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    store.inner.ks.records.insert("bad", "{not json").unwrap();
    let (bad, good) = tokio::join!(
        store.claim(vec![req("bad", 0, 1, "t")]),
        store.claim(vec![req("good", 0, 2, "t")]),
    );
    assert!(
        matches!(bad, Err(StoreError::Corrupt { ref key, .. }) if key == "bad"),
        "{bad:?}"
    );
    assert_eq!(good.unwrap(), [Claim::New]);
    store.write_claims(Duration::ZERO).await.unwrap();
    assert!(store.get("good").unwrap().is_some());
}

#[test]
fn records_serialise_compactly_for_the_api() {
    let mut r = NotificationRecord::received(&req("e", 0, 1, "t"), T0);
    r.apply_submitting("alpha".into(), T0);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["state"], "submitting");
    assert_eq!(json["submitted_at"], "2026-11-25T19:00:00Z");
    assert_eq!(json["origin"]["offset"], 1);
    assert_eq!(
        json["timeline"][0],
        serde_json::json!({"state": "received", "at": "2026-11-25T19:00:00Z"})
    );
    assert!(json.get("possible_duplicate").is_none() && json.get("message_ids").is_none());
    let back: NotificationRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}

#[test]
fn the_handle_is_shared_across_threads() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Store>();
}

#[test]
fn options_have_defaults_and_refuse_unknown_keys() {
    let o: StoreOptions = serde_json::from_str("{}").unwrap();
    assert_eq!(o, StoreOptions::default());
    assert_eq!(o.path, Path::new("data/pigeon"));
    assert!(o.fsync);
    assert!(serde_json::from_str::<StoreOptions>(r#"{"fsynk": false}"#).is_err());
}

#[test]
fn the_outbox_keeps_a_status_until_it_is_published_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivered = status("e1", State::Delivered, T0);
    let retrying = status("e2", State::Retrying, T0);
    // What start-up publishes again: the record's latest status, with what the claim knew.
    let mut expected = delivered.clone();
    expected.transaction_id = Some("t1".into());
    expected.destination = Some("+********0123".into());
    {
        let store = Store::open(&options(dir.path(), false)).expect("open");
        store
            .claim_blocking(vec![req("e1", 0, 1, "t1"), req("e2", 0, 2, "t2")])
            .expect("claim");
        store
            .commit_blocking(vec![
                Change::Held(delivered.clone()),
                Change::Held(retrying.clone()),
            ])
            .expect("commit");
        assert_eq!(
            store.outbox().expect("outbox"),
            vec![retrying.clone(), expected.clone()]
        );
    }
    let store = Store::open(&options(dir.path(), false)).expect("reopen");
    assert_eq!(
        store.outbox().expect("outbox"),
        vec![retrying.clone(), expected],
        "a crash before the broker's acknowledgement keeps both"
    );
    let open: Vec<String> = (store.open_records().expect("open").into_iter())
        .map(|r| r.event_id)
        .collect();
    assert_eq!(
        open,
        vec!["e2"],
        "a terminal record held for publication is not resumed"
    );
    // The terminal one is held, not copied.
    assert_eq!(store.inner.ks.outbox.iter().count(), 1);
    store
        .commit_blocking(vec![
            Change::Published {
                event_id: "e1".into(),
                state: State::Delivered,
            },
            Change::Published {
                event_id: "e2".into(),
                state: State::Retrying,
            },
        ])
        .expect("commit");
    assert!(store.outbox().expect("outbox").is_empty());
    assert_eq!(
        ids(&store.open_records().unwrap()),
        ["e2"],
        "e2 is still open"
    );
    let r = store.get("e1").expect("get").expect("record");
    assert_eq!(r.state, State::Delivered);
    assert_eq!(r.timeline.len(), 2, "publication is not a state change");
    drop(store);
    let store = Store::open(&options(dir.path(), false)).expect("reopen");
    assert!(
        store.outbox().expect("outbox").is_empty(),
        "released for good"
    );
    assert_eq!(ids(&store.open_records().unwrap()), ["e2"]);
}

#[test]
fn a_publication_acknowledged_in_the_same_group_releases_the_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&options(dir.path(), false)).expect("open");
    store
        .claim_blocking(vec![req("e1", 0, 1, "t1")])
        .expect("claim");
    let delivered = status("e1", State::Delivered, T0);
    store
        .commit_blocking(vec![
            Change::Held(delivered),
            Change::Published {
                event_id: "e1".into(),
                state: State::Delivered,
            },
        ])
        .expect("commit");
    assert!(store.outbox().expect("outbox").is_empty());
    assert_eq!(store.inner.ks.open.iter().count(), 0);
}

#[test]
fn a_retired_expiry_keyspace_is_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), false);
    {
        let db = Database::builder(&o.path).open().unwrap();
        let old = db
            .keyspace(keys::RETIRED_RECEIPT_EXPIRY, KeyspaceCreateOptions::default)
            .unwrap();
        old.insert(b"k", b"").unwrap();
    }
    let store = Store::open(&o).unwrap();
    assert!(!store
        .inner
        .ks
        .db
        .keyspace_exists(keys::RETIRED_RECEIPT_EXPIRY));
    assert!(store.inner.ks.db.keyspace_exists(keys::RECEIPTS));
}

#[test]
fn staged_records_and_holds_survive_a_reopen_then_end_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let delivered = |id: &str| status(id, State::Delivered, T0);
    {
        let store = Store::open(&options(dir.path(), false)).unwrap();
        let claims = vec![
            req("a", 0, 1, "t1"),
            req("b", 0, 2, "t1"),
            req("c", 0, 3, "t1"),
        ];
        store.claim_blocking(claims).unwrap();
        store
            .commit_blocking(vec![submitting("a", T0), submitting("c", T0)])
            .unwrap();
        store
            .commit_blocking(vec![accepted("a", &["77"], T0)])
            .unwrap();
        // "b" ends held for the broker; "c" was staged, then ends unheld.
        let b = vec![Change::Held(delivered("b")), Change::Status(delivered("c"))];
        store.commit_blocking(b).unwrap();
        assert_eq!(
            store.inner.ks.open.iter().count(),
            0,
            "nothing indexed open"
        );
    }
    let store = Store::open(&options(dir.path(), false)).unwrap();
    assert_eq!(ids(&store.open_records().unwrap()), ["a"]);
    assert_eq!(store.get("a").unwrap().unwrap().state, State::Accepted);
    assert_eq!(store.get("c").unwrap().unwrap().state, State::Delivered);
    let held: Vec<_> = store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|s| s.event_id)
        .collect();
    assert_eq!(held, ["b"]);
    assert_eq!(ids(&store.by_transaction("t1").unwrap()), ["a", "b", "c"]);
    let again = store.claim_blocking(vec![req("a", 0, 1, "t1")]).unwrap();
    assert!(matches!(again.as_slice(), [Claim::Redelivered(r)] if r.state == State::Accepted));

    // Due: "a" is indexed open, the hold of "b" moves to the open index.
    store.index_staged_blocking(Duration::ZERO).unwrap();
    assert_eq!(store.inner.ks.staged.iter().count(), 0);
    assert_eq!(store.inner.ks.open.iter().count(), 2);
    assert_eq!(ids(&store.open_records().unwrap()), ["a"]);
    assert_eq!(store.outbox().unwrap().len(), 1);
    assert_eq!(ids(&store.by_transaction("t1").unwrap()), ["a", "b", "c"]);
    let published = Change::Published {
        event_id: "b".into(),
        state: State::Delivered,
    };
    store.commit_blocking(vec![published]).unwrap();
    assert!(store.outbox().unwrap().is_empty());
    // A change after indexing is staged again, and its end leaves the open index.
    let sec = TimeDelta::seconds(1);
    store
        .commit_blocking(vec![Change::Status(status("a", State::Retrying, T0 + sec))])
        .unwrap();
    assert_eq!(store.get("a").unwrap().unwrap().state, State::Retrying);
    assert_eq!(store.inner.ks.staged.iter().count(), 1);
    drop(store);
    let store = Store::open(&options(dir.path(), false)).unwrap();
    assert_eq!(store.get("a").unwrap().unwrap().state, State::Retrying);
    assert_eq!(ids(&store.open_records().unwrap()), ["a"]);
    let end = status("a", State::Delivered, T0 + sec * 2);
    store.commit_blocking(vec![Change::Status(end)]).unwrap();
    assert_eq!(store.inner.ks.open.iter().count(), 0);
    drop(store);
    let store = Store::open(&options(dir.path(), false)).unwrap();
    assert!(store.open_records().unwrap().is_empty());
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(store.get("a").unwrap().unwrap().state, State::Delivered);
}

/// One step of a notification's life, or of the store's.
#[derive(Debug, Clone)]
enum Step {
    /// Claim and mark `submitting` (a new event only).
    Begin(usize),
    Accept(usize),
    Retry(usize),
    /// Deliver; held for the broker or not; with indexing queued right behind it (most
    /// often in the same group) or not.
    End(usize, bool, bool),
    Publish(usize),
    Index,
    /// Keep every staged record encoded.
    Compact,
    Reopen,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let id = 0..4usize;
    prop_oneof![
        3 => id.clone().prop_map(Step::Begin),
        3 => id.clone().prop_map(Step::Accept),
        1 => id.clone().prop_map(Step::Retry),
        3 => (id.clone(), any::<bool>(), any::<bool>()).prop_map(|(i, h, x)| Step::End(i, h, x)),
        2 => id.prop_map(Step::Publish),
        1 => Just(Step::Index),
        2 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

/// What the store must say about one event, whatever it staged or indexed.
#[derive(Debug, Clone, PartialEq)]
struct Modelled {
    state: State,
    entries: usize,
    held: bool,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any sequence of lives, indexing and restarts reads back as a plain model says:
    /// every record's state and timeline, the open set, the held statuses and the
    /// transaction lookup.
    #[test]
    fn the_store_reads_back_what_a_model_says_through_staging_and_restarts(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(Store::open(&options(dir.path(), false)).unwrap());
        let mut model: BTreeMap<String, Modelled> = BTreeMap::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut clock = T0;
        for s in steps {
            clock += TimeDelta::seconds(1);
            let st = store.as_ref().unwrap();
            let name = |i: usize| format!("e{i}");
            match s {
                Step::Begin(i) if !model.contains_key(&name(i)) => {
                    st.claim_blocking(vec![req(&name(i), 0, i as i64, "t")]).unwrap();
                    st.commit_blocking(vec![submitting(&name(i), clock)]).unwrap();
                    let m = Modelled { state: State::Submitting, entries: 2, held: false };
                    model.insert(name(i), m);
                }
                Step::Accept(i) | Step::Retry(i) => {
                    let Some(m) = model.get_mut(&name(i)).filter(|m| !m.state.is_terminal()) else {
                        continue;
                    };
                    let state = if matches!(s, Step::Accept(_)) { State::Accepted } else { State::Retrying };
                    let change = if state == State::Accepted {
                        accepted(&name(i), &[&format!("m{i}{}", m.entries)], clock)
                    } else {
                        Change::Status(status(&name(i), state, clock))
                    };
                    st.commit_blocking(vec![change]).unwrap();
                    m.state = state;
                    m.entries += 1;
                }
                Step::End(i, held, index) => {
                    let Some(m) = model.get_mut(&name(i)).filter(|m| !m.state.is_terminal()) else {
                        continue;
                    };
                    let done = status(&name(i), State::Delivered, clock);
                    let change = if held { Change::Held(done) } else { Change::Status(done) };
                    if index {
                        rt.block_on(async {
                            let done = st.commit_queued(vec![change]).await?;
                            st.index_staged(Duration::ZERO).await?;
                            done.await
                        })
                        .unwrap();
                    } else {
                        st.commit_blocking(vec![change]).unwrap();
                    }
                    m.state = State::Delivered;
                    m.entries += 1;
                    m.held = held;
                }
                Step::Publish(i) => {
                    let Some(m) = model.get_mut(&name(i)).filter(|m| m.held) else {
                        continue;
                    };
                    let published = Change::Published { event_id: name(i), state: State::Delivered };
                    st.commit_blocking(vec![published]).unwrap();
                    m.held = false;
                }
                Step::Index => st.index_staged_blocking(Duration::ZERO).unwrap(),
                Step::Compact => st.compact_staged_blocking(Duration::ZERO).unwrap(),
                Step::Reopen => {
                    drop(store.take());
                    store = Some(Store::open(&options(dir.path(), false)).unwrap());
                }
                Step::Begin(_) => continue,
            }
            let st = store.as_ref().unwrap();
            for (id, m) in &model {
                let r = st.get(id).unwrap().expect("a record for every begun event");
                proptest::prop_assert_eq!(r.state, m.state, "{}", id);
                proptest::prop_assert_eq!(r.timeline.len(), m.entries, "{}", id);
            }
            let open: Vec<String> = (model.iter())
                .filter(|(_, m)| !m.state.is_terminal())
                .map(|(id, _)| id.clone())
                .collect();
            let got: Vec<String> = st.open_records().unwrap().into_iter().map(|r| r.event_id).collect();
            proptest::prop_assert_eq!(got, open);
            let held: Vec<String> = (model.iter()).filter(|(_, m)| m.held).map(|(id, _)| id.clone()).collect();
            let mut outbox: Vec<String> = st.outbox().unwrap().into_iter().map(|s| s.event_id).collect();
            outbox.sort();
            proptest::prop_assert_eq!(outbox, held);
            let all: Vec<String> = st.by_transaction("t").unwrap().into_iter().map(|r| r.event_id).collect();
            proptest::prop_assert_eq!(all, model.keys().cloned().collect::<Vec<_>>());
        }
    }
}

#[tokio::test]
async fn the_writer_indexes_on_its_own_what_stayed_staged_too_long() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    store.claim(vec![req("w", 0, 1, "t")]).await.unwrap();
    store.commit(vec![submitting("w", T0)]).await.unwrap();
    assert_eq!(store.inner.ks.open.iter().count(), 0, "staged first");
    // Any request makes a group; one comes when the oldest entry is STAGE_FOR + slack old.
    let deadline = tokio::time::Instant::now() + STAGE_FOR * 5;
    while store.inner.ks.open.iter().count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never indexed");
        store.write_claims(Duration::from_secs(3600)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.inner.ks.staged.iter().count(), 0);
    assert_eq!(ids(&store.open_records().unwrap()), ["w"]);
    assert_eq!(
        states(&store.get("w").unwrap().unwrap()),
        [State::Received, State::Submitting]
    );
}

#[tokio::test]
async fn the_writer_keeps_encoded_what_stayed_staged_unchanged_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&options(dir.path(), false)).unwrap();
    store
        .claim(vec![req("k", 0, 1, "txn-k"), req("j", 0, 2, "txn-j")])
        .await
        .unwrap();
    let accept = |id: &str, mid: &str| accepted(id, &[mid], T0);
    store
        .commit(vec![submitting("k", T0), submitting("j", T0)])
        .await
        .unwrap();
    store
        .commit(vec![accept("k", "mk-1"), accept("j", "mj-1")])
        .await
        .unwrap();
    let before = store.get("k").unwrap().unwrap();
    let encoded = |store: &Store| {
        let staged = store.staged();
        let kinds = ["k", "j"].map(|id| staged.get(id).map(|s| s.kind.clone()));
        kinds.map(|k| matches!(k, Some(StagedKind::Encoded(_))))
    };
    assert_eq!(
        encoded(&store),
        [false, false],
        "decoded while it may change"
    );
    // Any request makes a group; one comes when the oldest is COMPACT_AFTER + slack old.
    let deadline = tokio::time::Instant::now() + STAGE_FOR;
    while encoded(&store) != [true, true] {
        assert!(tokio::time::Instant::now() < deadline, "never encoded");
        store.write_claims(Duration::from_secs(3600)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.inner.ks.open.iter().count(), 0, "still staged");
    assert_eq!(store.get("k").unwrap().unwrap(), before);
    let txn = store.by_transaction("txn-k").unwrap();
    assert_eq!(ids(&txn), ["k"]);
    let owner = |mid: &str| store.receipt_owner("alpha", mid, T0).unwrap();
    assert_eq!(owner("mk-1").as_deref(), Some("k"));
    assert_eq!(owner("mj-1").as_deref(), Some("j"));
    assert_eq!(owner("mk-2"), None);
    assert_eq!(ids(&store.open_records().unwrap()), ["j", "k"]);
    // A change decodes it again; the record goes on from where it was.
    let done = status("k", State::Delivered, T0 + TimeDelta::seconds(1));
    store.commit(vec![Change::Status(done)]).await.unwrap();
    let after = store.get("k").unwrap().unwrap();
    assert_eq!(after.timeline[..before.timeline.len()], before.timeline[..]);
    assert_eq!(states(&after).last(), Some(&State::Delivered));
    assert_eq!(ids(&store.open_records().unwrap()), ["j"]);
}

#[test]
fn a_store_keeps_its_name_across_restarts_and_no_two_stores_share_one() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Store::open(&options(a.path(), true)).unwrap();
    let name = first.owner().to_owned();
    drop(first);
    let again = Store::open(&options(a.path(), true)).unwrap();
    assert_eq!(again.owner(), name);
    let other = Store::open(&options(b.path(), true)).unwrap();
    assert_ne!(other.owner(), name);
    assert!(!name.is_empty());
}
