//! The durable store's cost per notification over its typical life: claim, `submitting`,
//! `accepted` (one message id), `delivered`, each step one call for a batch of 256
//! notifications (four write batches per 256), with the journal synced to disk per batch and
//! without. Prints the writes, bytes and fsyncs per notification from `Store::stats`.
//!
//! `cargo bench -p pigeon-engine --bench store`

use std::cell::Cell;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pigeon::event::{State, StatusEvent};
use pigeon::notification::Origin;
use pigeon::store::{Change, ClaimRequest, Store, StoreOptions};
use time::OffsetDateTime;

const BATCH: usize = 256;

fn status(event_id: &str, state: State, message_id: &str, at: OffsetDateTime) -> StatusEvent {
    StatusEvent {
        schema_version: 1,
        event_id: event_id.to_owned(),
        transaction_id: Some(format!("txn-{event_id}")),
        state,
        reason: None,
        detail: None,
        carrier: Some("carrier-a".into()),
        message_ids: vec![message_id.to_owned()],
        segments: 1,
        command_status: None,
        destination: Some("+********0123".into()),
        occurred_at: None,
        at,
        possible_duplicate: false,
    }
}

/// One life of `BATCH` notifications numbered from `first`.
fn life(store: &Store, first: u64) {
    let at = OffsetDateTime::now_utc();
    let ids: Vec<String> = (first..first + BATCH as u64)
        .map(|n| format!("evt-{n:012}"))
        .collect();
    let claims = ids
        .iter()
        .zip(first as i64..)
        .map(|(id, offset)| ClaimRequest {
            event_id: id.clone(),
            origin: Origin {
                partition: 0,
                offset,
            },
            transaction_id: Some(format!("txn-{id}")),
            destination: Some("+********0123".into()),
        })
        .collect();
    store.claim_blocking(claims).expect("claim");
    let submitting = ids
        .iter()
        .map(|id| Change::Submitting {
            event_id: id.clone(),
            carrier: "carrier-a".into(),
            at,
        })
        .collect();
    store.commit_blocking(submitting).expect("submitting");
    let step = |state| {
        ids.iter()
            .zip(first..)
            .map(|(id, n)| Change::Status(status(id, state, &format!("{n:x}"), at)))
            .collect()
    };
    store
        .commit_blocking(step(State::Accepted))
        .expect("accepted");
    store
        .commit_blocking(step(State::Delivered))
        .expect("delivered");
}

fn lives(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_life");
    group.throughput(Throughput::Elements(BATCH as u64));
    for fsync in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&StoreOptions {
            path: dir.path().join("db"),
            fsync,
            ..StoreOptions::default()
        })
        .expect("open");
        let next = Cell::new(0u64);
        let name = if fsync { "fsync_on" } else { "fsync_off" };
        group.bench_function(name, |b| {
            b.iter(|| {
                life(&store, next.get());
                next.set(next.get() + BATCH as u64);
            })
        });
        let s = store.stats();
        let n = next.get().max(1) as f64;
        eprintln!(
            "store_life/{name}: {} notifications; per notification: {:.1} keys written, \
             {:.0} bytes, {:.4} batches, {:.4} fsyncs; on disk {} KiB",
            next.get(),
            s.records_written as f64 / n,
            s.bytes_written as f64 / n,
            s.batches as f64 / n,
            s.fsyncs as f64 / n,
            dir_size(dir.path()) / 1024,
        );
    }
    group.finish();
}

/// Bytes of every file under `path`.
fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = lives
}
criterion_main!(benches);
