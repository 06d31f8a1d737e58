//! The writer thread: group commit.
//!
//! It takes every request queued (up to a bound), folds them in arrival order into an
//! overlay of the records, receipt keys and index entries they touch, writes the overlay as
//! one atomic fjall batch, persists the journal once, and only then answers every request of
//! the group. Folding is in memory and cannot fail once a request's keys are loaded, so a
//! request whose stored data cannot be read fails alone; a failed batch fails the group.

use std::collections::BTreeMap;

// foldhash (per-process random seed) rather than SipHash: every change hashes its keys.
use foldhash::{HashMap, HashSet, HashSetExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fjall::{Keyspace, OwnedWriteBatch, PersistMode};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::codec;
use super::keys::{self, ReceiptValue};
use super::{Change, Claim, ClaimRequest, Keyspaces, NotificationRecord, StoreError, StoreStats};
use crate::event::State;

/// Most requests folded into one group.
const MAX_GROUP_REQUESTS: usize = 1_024;
/// Most claims and changes folded into one group (a request is never split).
const MAX_GROUP_ITEMS: usize = 16_384;
/// Most open records the writer keeps decoded between groups, per generation (about 1 KiB
/// each, two generations). Enough for the seconds between a claim, its submit, its acceptance
/// and a prompt receipt at the peak rate; a record whose receipt comes later is read again.
const CACHE_GENERATION: usize = 16_384;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to the writer.
pub(super) enum Op {
    Claim(Vec<ClaimRequest>, Reply<Vec<Claim>>),
    Commit(Vec<Change>, Reply<()>),
}

impl Op {
    fn weight(&self) -> usize {
        match self {
            Op::Claim(r, _) => r.len().max(1),
            Op::Commit(c, _) => c.len().max(1),
        }
    }
}

/// What the writer has done, shared with [`super::Store::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    requests: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    records_written: AtomicU64,
    bytes_written: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> StoreStats {
        StoreStats {
            requests: self.requests.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            records_written: self.records_written.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }
}

pub(super) struct Writer {
    pub ks: Keyspaces,
    pub stats: Arc<Counters>,
    pub fsync: bool,
    pub receipt_ttl_ms: i64,
    /// Open records as the last group left them, so that a change does not read and decode
    /// them again. Coherent because this thread is the only writer; emptied when a batch
    /// fails (its records may then be ahead of the database).
    pub cache: RecordCache,
    /// Reused to encode records.
    pub buf: Vec<u8>,
}

impl Writer {
    /// Serves requests until every sender is gone.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut weight = first.weight();
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP_REQUESTS && weight < MAX_GROUP_ITEMS {
                match rx.try_recv() {
                    Ok(op) => {
                        weight += op.weight();
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.group(ops);
        }
        let s = self.stats.snapshot();
        tracing::info!(
            requests = s.requests,
            batches = s.batches,
            fsyncs = s.fsyncs,
            keys = s.records_written,
            bytes = s.bytes_written,
            "store writer stopped"
        );
    }

    fn group(&mut self, ops: Vec<Op>) {
        let requests = ops.len();
        self.stats
            .requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();
        let started = tokio::time::Instant::now();
        let mut overlay = Overlay::default();
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Claim(reqs, reply) => match overlay.claim(&self.ks, &mut self.cache, reqs, now)
                {
                    Ok(claims) => answers.push(Answer::Claim(reply, claims)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Op::Commit(changes, reply) => {
                    let ttl = self.receipt_ttl_ms;
                    match overlay.commit(&self.ks, &mut self.cache, changes, ttl) {
                        Ok(()) => answers.push(Answer::Commit(reply)),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
        let folded = started.elapsed();
        let written = self.write(&overlay);
        match &written {
            Ok(w) => {
                let (write, sync) =
                    w.map_or((Duration::ZERO, Duration::ZERO), |w| (w.write, w.sync));
                crate::metrics::store_group_time(folded, write, sync);
                let w = w.map(|w| (w.keys, w.bytes));
                crate::metrics::store_group(requests, w.map(|(k, b)| (k, b, self.fsync)));
                // fjall's own accounting (hidden, experimental in fjall 3.1; pinned).
                crate::metrics::store_memory(
                    self.ks.db.write_buffer_size(),
                    self.ks.db.cache_size(),
                );
                self.keep(overlay);
            }
            Err(e) => {
                tracing::error!(error = %e, requests = answers.len(), "store group commit failed");
                self.cache = RecordCache::default();
            }
        }
        let written = written.map(|_| ());
        for a in answers {
            a.send(written.clone());
        }
    }

    /// Keeps the open records of a written group for the next ones.
    fn keep(&mut self, overlay: Overlay) {
        for (id, slot) in overlay.records {
            match slot.record {
                Some(rec) if rec.is_open() => self.cache.insert(id, rec),
                // Terminal (or never created): later changes are rare, they read fjall.
                _ => {}
            }
        }
    }

    /// Writes the overlay as one batch and persists the journal once; says what it wrote, if
    /// it wrote anything.
    fn write(&mut self, overlay: &Overlay) -> Result<Option<Written>, StoreError> {
        let ks = &self.ks;
        let writing = tokio::time::Instant::now();
        let mut b = Batch {
            inner: ks.db.batch(),
            bytes: 0,
        };
        for (id, slot) in &overlay.records {
            let Some(rec) = slot.record.as_ref().filter(|_| slot.dirty) else {
                continue;
            };
            codec::encode_record(rec, &mut self.buf);
            b.put(&ks.records, id.as_bytes(), &self.buf);
            match (slot.open_before, rec.is_open() || slot.hold_open) {
                (false, true) => b.put(&ks.open, id.as_bytes(), &[]),
                (true, false) => b.del(&ks.open, id.as_bytes()),
                _ => {}
            }
            if let Some(txn) = &rec.transaction_id {
                if slot.transaction_before.as_ref() != Some(txn) {
                    b.put(&ks.by_txn, &keys::transaction_key(txn, id), &[]);
                }
            }
        }
        for (key, value) in &overlay.receipts {
            b.put(&ks.receipts, key, &value.encode());
        }
        for id in &overlay.released {
            b.del(&ks.open, id.as_bytes());
        }
        for (key, value) in &overlay.outbox {
            match value {
                Some(v) => b.put(&ks.outbox, key, v),
                None => b.del(&ks.outbox, key),
            }
        }
        if b.inner.is_empty() {
            return Ok(None);
        }
        let items = b.inner.len() as u64;
        b.inner.commit()?;
        let synced = tokio::time::Instant::now();
        let write = synced - writing;
        let mode = if self.fsync {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        ks.db.persist(mode)?;
        let sync = synced.elapsed();
        let s = &self.stats;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.fsyncs.fetch_add(u64::from(self.fsync), Ordering::Relaxed);
        s.records_written.fetch_add(items, Ordering::Relaxed);
        s.bytes_written.fetch_add(b.bytes, Ordering::Relaxed);
        Ok(Some(Written {
            keys: items,
            bytes: b.bytes,
            write,
            sync,
        }))
    }
}

/// What one group's batch wrote.
#[derive(Clone, Copy)]
struct Written {
    keys: u64,
    bytes: u64,
    /// Time spent encoding and committing the batch (journal and memtables).
    write: Duration,
    /// Time spent persisting the journal.
    sync: Duration,
}

/// Recently written open records, in two generations: inserts go to the young one, and when
/// it is full it becomes the old one and the previous old one is dropped. Bounded, and
/// never empty right after a turn, unlike a map cleared when full.
#[derive(Default)]
pub(super) struct RecordCache {
    young: HashMap<String, NotificationRecord>,
    old: HashMap<String, NotificationRecord>,
}

impl RecordCache {
    fn insert(&mut self, id: String, rec: NotificationRecord) {
        if self.young.len() >= CACHE_GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(id, rec);
    }

    fn remove(&mut self, id: &str) -> Option<NotificationRecord> {
        self.young.remove(id).or_else(|| self.old.remove(id))
    }
}

/// A request folded into the group, answered once the group is durable.
enum Answer {
    Claim(Reply<Vec<Claim>>, Vec<Claim>),
    Commit(Reply<()>),
}

impl Answer {
    fn send(self, written: Result<(), StoreError>) {
        // A caller that gave up waiting is not an error: its request was applied anyway.
        match self {
            Answer::Claim(r, claims) => {
                let _ = r.send(written.map(|()| claims));
            }
            Answer::Commit(r) => {
                let _ = r.send(written);
            }
        }
    }
}

struct Batch {
    inner: OwnedWriteBatch,
    bytes: u64,
}

impl Batch {
    fn put(&mut self, ks: &Keyspace, key: &[u8], value: &[u8]) {
        self.bytes += (key.len() + value.len()) as u64;
        self.inner.insert(ks, key, value);
    }

    fn del(&mut self, ks: &Keyspace, key: &[u8]) {
        self.bytes += key.len() as u64;
        self.inner.remove(ks, key);
    }
}

/// One record as the group found it and as the group leaves it.
struct Slot {
    /// Whether the open index has it (a terminal record held there is not known here).
    open_before: bool,
    /// Terminal, but its status is not yet acknowledged by the broker: it stays in the open
    /// index until [`Change::Published`], and start-up publishes it again.
    hold_open: bool,
    transaction_before: Option<String>,
    record: Option<NotificationRecord>,
    dirty: bool,
}

/// The group's view: stored state of every key it touched, with the group's changes on top.
#[derive(Default)]
struct Overlay {
    records: HashMap<String, Slot>,
    /// Receipt keys registered, with their values (the latest registration of a key wins).
    receipts: HashMap<Vec<u8>, ReceiptValue>,
    /// `outbox` keys to insert (with their value) or remove.
    outbox: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Terminal records held in the open index whose status the broker now has.
    released: Vec<String>,
}

impl Overlay {
    fn load_record(
        &mut self,
        ks: &Keyspaces,
        cache: &mut RecordCache,
        event_id: &str,
    ) -> Result<(), StoreError> {
        if self.records.contains_key(event_id) {
            return Ok(());
        }
        let record = match cache.remove(event_id) {
            Some(r) => Some(r),
            None => match ks.records.get(event_id)? {
                Some(v) => Some(codec::decode_record(event_id, &v)?),
                None => None,
            },
        };
        let slot = Slot {
            open_before: record.as_ref().is_some_and(NotificationRecord::is_open),
            hold_open: false,
            transaction_before: record.as_ref().and_then(|r| r.transaction_id.clone()),
            record,
            dirty: false,
        };
        self.records.insert(event_id.to_owned(), slot);
        Ok(())
    }

    fn slot(&mut self, event_id: &str) -> &mut Slot {
        self.records
            .entry(event_id.to_owned())
            .or_insert_with(|| Slot {
                open_before: false,
                hold_open: false,
                transaction_before: None,
                record: None,
                dirty: false,
            })
    }

    fn claim(
        &mut self,
        ks: &Keyspaces,
        cache: &mut RecordCache,
        reqs: Vec<ClaimRequest>,
        now: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError> {
        for r in &reqs {
            self.load_record(ks, cache, &r.event_id)?;
        }
        let mut created = HashSet::new();
        let mut out = Vec::with_capacity(reqs.len());
        for r in reqs {
            let slot = self.slot(&r.event_id);
            match &slot.record {
                None => {
                    slot.record = Some(NotificationRecord::received(&r, now));
                    slot.dirty = true;
                    created.insert(r.event_id);
                    out.push(Claim::New);
                }
                Some(rec) if rec.origin == Some(r.origin) && !created.contains(&r.event_id) => {
                    out.push(Claim::Redelivered(rec.clone()));
                }
                Some(rec) => out.push(Claim::Duplicate(rec.clone())),
            }
        }
        Ok(out)
    }

    fn commit(
        &mut self,
        ks: &Keyspaces,
        cache: &mut RecordCache,
        changes: Vec<Change>,
        receipt_ttl_ms: i64,
    ) -> Result<(), StoreError> {
        for c in &changes {
            if matches!(c, Change::Outbox(_) | Change::Published { .. }) {
                continue;
            }
            self.load_record(ks, cache, c.event_id())?;
        }
        for c in changes {
            match c {
                Change::Status(s) => {
                    if let (State::Accepted, Some(carrier)) = (s.state, &s.carrier) {
                        let expires_ms = keys::unix_ms(s.at).saturating_add(receipt_ttl_ms);
                        for id in &s.message_ids {
                            self.register(carrier, id, &s.event_id, expires_ms);
                        }
                    }
                    let slot = self.slot(&s.event_id);
                    slot.record
                        .get_or_insert_with(|| NotificationRecord::blank(&s.event_id))
                        .apply_status(&s);
                    slot.dirty = true;
                }
                Change::Submitting {
                    event_id,
                    carrier,
                    at,
                } => {
                    let slot = self.slot(&event_id);
                    slot.record
                        .get_or_insert_with(|| NotificationRecord::blank(&event_id))
                        .apply_submitting(&carrier, at);
                    slot.dirty = true;
                }
                // A terminal status is the record's own latest state: holding the record in
                // the open index keeps it without a copy. Others get an outbox entry.
                Change::Outbox(s) if s.state.is_terminal() => {
                    self.slot(&s.event_id).hold_open = true;
                }
                Change::Outbox(s) => {
                    let value = codec::encode_status(&s);
                    self.outbox
                        .insert(keys::outbox_key(&s.event_id, s.state), Some(value));
                }
                Change::Published { event_id, state } if state.is_terminal() => {
                    match self.records.get_mut(&event_id) {
                        Some(slot) if slot.hold_open => slot.hold_open = false,
                        _ => self.released.push(event_id),
                    }
                }
                Change::Published { event_id, state } => {
                    self.outbox.insert(keys::outbox_key(&event_id, state), None);
                }
            }
        }
        Ok(())
    }

    /// Points (carrier, message id) at an event until `expires_ms`. The stored value is not
    /// read first (message ids are new almost always): a reused id is overwritten, and its
    /// new expiry counts.
    fn register(&mut self, carrier: &str, message_id: &str, event_id: &str, expires_ms: i64) {
        let value = ReceiptValue {
            expires_ms,
            event_id: event_id.to_owned(),
        };
        self.receipts
            .insert(keys::receipt_key(carrier, message_id), value);
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn id(i: usize) -> String {
        format!("ev-{i}")
    }

    #[test]
    fn the_cache_keeps_the_latest_generation_and_a_half_and_no_more() {
        let mut c = RecordCache::default();
        let n = 2 * CACHE_GENERATION + CACHE_GENERATION / 2;
        for i in 0..n {
            c.insert(id(i), NotificationRecord::blank(&id(i)));
        }
        assert!(c.young.len() + c.old.len() <= 2 * CACHE_GENERATION);
        // The oldest turned out, the newest and the previous generation kept.
        assert!(c.remove(&id(0)).is_none());
        assert!(c.remove(&id(CACHE_GENERATION - 1)).is_none());
        let kept = c.remove(&id(CACHE_GENERATION + 1)).map(|r| r.event_id);
        assert_eq!(kept.as_deref(), Some(id(CACHE_GENERATION + 1).as_str()));
        assert!(c.remove(&id(n - 1)).is_some());
        // Taken out means gone: the writer puts it back after the group.
        assert!(c.remove(&id(n - 1)).is_none());
    }
}
