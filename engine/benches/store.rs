//! The durable store's cost per notification over its typical life, in the engine's own
//! sequence (`actors/intake.rs`, `shard.rs`, `sink.rs`) for `BATCH` notifications:
//!
//! 1. one claim of the whole batch (the intake);
//! 2. one `submitting` request per notification, all queued at once (the shard's concurrent
//!    submit tasks), grouped by the writer;
//! 3. one commit of every `accepted` (a sink batch; they decide a Kafka record: no outbox);
//! 4. one commit of `Held(delivered)` per notification (receipts);
//! 5. one commit of every `Published` once the broker acknowledged them (outbox cleared).
//!
//! With the journal synced to disk per group commit and without. Prints the writer requests,
//! keys, bytes, batches and fsyncs per notification from `Store::stats`.
//!
//! `cargo bench -p pigeon-engine --bench store`
//!
//! `PIGEON_STORE_BENCH_LIVES=N` runs N batches without fsync and without criterion instead
//! (for `valgrind --tool=callgrind`, whose instruction counts are reproducible).
//!
//! It allocates with mimalloc, as the engine does (`src/main.rs`): the writer moves and frees
//! many small strings, and glibc's allocator made it ~35 % slower here.

use std::cell::Cell;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use pigeon::event::{State, StatusEvent};
use pigeon::notification::Origin;
use pigeon::store::{Change, ClaimRequest, Store, StoreOptions};
use time::OffsetDateTime;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
fn life(rt: &tokio::runtime::Runtime, store: &Store, first: u64) {
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
    rt.block_on(async {
        store.claim(claims).await.expect("claim");
        // One request per notification, all in the queue before the first is answered.
        let mut marks = Vec::with_capacity(BATCH);
        for id in &ids {
            let mark = Change::Submitting {
                event_id: id.clone(),
                carrier: "carrier-a".into(),
                at,
            };
            marks.push(store.commit_queued(vec![mark]).await.expect("queue"));
        }
        for r in futures::future::join_all(marks).await {
            r.expect("submitting");
        }
        let accepted = ids
            .iter()
            .zip(first..)
            .map(|(id, n)| Change::Status(status(id, State::Accepted, &format!("{n:x}"), at)))
            .collect();
        store.commit(accepted).await.expect("accepted");
        let delivered = (ids.iter().zip(first..))
            .map(|(id, n)| Change::Held(status(id, State::Delivered, &format!("{n:x}"), at)))
            .collect();
        store.commit(delivered).await.expect("delivered");
        let published = ids
            .iter()
            .map(|id| Change::Published {
                event_id: id.clone(),
                state: State::Delivered,
            })
            .collect();
        store.commit(published).await.expect("published");
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn open(dir: &std::path::Path, fsync: bool) -> Store {
    Store::open(&StoreOptions {
        path: dir.join("db"),
        fsync,
        ..StoreOptions::default()
    })
    .expect("open")
}

fn report(name: &str, store: &Store, notifications: u64, dir: &std::path::Path) {
    let s = store.stats();
    let n = notifications.max(1) as f64;
    // The writer thread and its sync thread ("pigeon-store-sync", cut to 15 bytes).
    let writer_us = thread_cpu_ms("pigeon-store").map_or(f64::NAN, |ms| ms * 1e3 / n);
    // fjall's flushes and compactions.
    let fjall_us = thread_cpu_ms("fjall:worker").map_or(f64::NAN, |ms| ms * 1e3 / n);
    eprintln!(
        "store_life/{name}: {notifications} notifications; per notification: {:.2} requests, \
         {:.1} keys written, {:.0} bytes, {:.4} batches, {:.4} fsyncs, {writer_us:.1} µs of \
         store-thread cpu (writer and sync), {fjall_us:.1} µs of fjall's workers; on disk {} \
         KiB",
        s.requests as f64 / n,
        s.records_written as f64 / n,
        s.bytes_written as f64 / n,
        s.batches as f64 / n,
        s.fsyncs as f64 / n,
        dir_size(dir) / 1024,
    );
}

/// CPU time (user + system, ms) of this process's threads whose name starts with `name`,
/// from `/proc` (Linux, 100 ticks a second).
fn thread_cpu_ms(name: &str) -> Option<f64> {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(name) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 * 10.0)
}

fn lives(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store_life");
    group.throughput(Throughput::Elements(BATCH as u64));
    for fsync in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path(), fsync);
        let next = Cell::new(0u64);
        let name = if fsync { "fsync_on" } else { "fsync_off" };
        group.bench_function(name, |b| {
            b.iter(|| {
                life(&rt, &store, next.get());
                next.set(next.get() + BATCH as u64);
            })
        });
        report(name, &store, next.get(), dir.path());
    }
    group.finish();
}

/// `lives` for a fixed number of batches, without fsync and without criterion.
fn fixed(batches: u64) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), false);
    for i in 0..batches {
        life(&rt, &store, i * BATCH as u64);
    }
    report("fixed", &store, batches * BATCH as u64, dir.path());
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

fn main() {
    if let Some(n) = std::env::var("PIGEON_STORE_BENCH_LIVES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        fixed(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
