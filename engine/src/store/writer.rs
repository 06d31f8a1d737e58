//! The writer thread and its sync thread: group commit.
//!
//! The writer takes every request queued (up to a bound), folds them in arrival order into
//! an overlay of the records, receipt keys and index entries they touch, and writes the
//! overlay as one atomic fjall batch: the open records it changed as one staged entry,
//! terminal ones (and those staged long enough) in the indexed keyspaces. It answers the group's claims then (a claim writes
//! nothing), hands the rest of the group to the sync thread and goes on with the next group,
//! while the sync thread persists the journal (once for every group handed to it meanwhile)
//! and only then answers their requests, in order.
//! Folding is in memory and cannot fail once a request's keys are loaded, so a request whose
//! stored data cannot be read fails alone; a failed batch or sync fails its groups.

use std::collections::BTreeMap;

// foldhash (per-process random seed) rather than SipHash: every change hashes its keys.
use foldhash::{HashMap, HashSet, HashSetExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, PoisonError, RwLock};
use std::time::Duration;

use fjall::{Database, Keyspace, OwnedWriteBatch, PersistMode};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::codec::{self, StagedEntry};
use super::keys::{self, ReceiptValue};
use super::staged::{
    self, Live, Staged, StagedKind, StagedMap, COMPACT_AFTER, COMPACT_SLACK, STAGE_FOR, STAGE_SLACK,
};
use super::{Change, Claim, ClaimRequest, Keyspaces, NotificationRecord, StoreError, StoreStats};

/// Most requests folded into one group.
const MAX_GROUP_REQUESTS: usize = 1_024;
/// Most claims and changes folded into one group (a request is never split).
const MAX_GROUP_ITEMS: usize = 16_384;
/// Most open records the writer keeps decoded between groups, per generation (about 1 KiB
/// each, two generations), once they have left the staged map (which holds every record
/// for its first [`super::STAGE_FOR`]): a change soon after that finds its record here, a
/// later one reads it again. With 14,336 per generation the engine's CPU was the same at
/// 25,000/s (prompt receipts never get here) and ~21 MB more was held while a million
/// notifications awaited their receipts (ADR 0004). 7/8 of a power of two: the most a hash
/// table of 4,096 buckets holds (one more entry would double it).
const CACHE_GENERATION: usize = 3_584;

/// How long a claim may stay unwritten: a claim writes nothing, the first change of its
/// notification (its `submitting` mark, or a terminal status) writes the record with its
/// `received` entry; a notification that has none by then (waiting for its carrier) is
/// written as `received` alone, so the status API shows it.
pub const CLAIM_WRITE_DELAY: Duration = Duration::from_secs(1);

/// Groups written and waiting for the sync thread, at most: the writer runs at most this far
/// ahead of the disk.
const SYNC_QUEUE: usize = 4;

pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to the writer.
pub(super) enum Op {
    Claim(Vec<ClaimRequest>, Reply<Vec<Claim>>),
    Commit(Vec<Change>, Reply<()>),
    /// Writes the claims older than this that no change has written yet.
    WriteClaims(Duration, Reply<()>),
    /// Indexes the records staged longer ago than this.
    IndexStaged(Duration, Reply<()>),
    /// Keeps encoded the records staged longer ago than this.
    CompactStaged(Duration, Reply<()>),
}

impl Op {
    fn weight(&self) -> usize {
        match self {
            Op::Claim(r, _) => r.len().max(1),
            Op::Commit(c, _) => c.len().max(1),
            Op::WriteClaims(..) | Op::IndexStaged(..) | Op::CompactStaged(..) => 1,
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
    /// Claims not written yet.
    pub claims: Claims,
    /// What the staged entries hold (`staged.rs`), shared with readers; the writer holds it
    /// locked while it folds and writes a group.
    pub staged: Arc<RwLock<StagedMap>>,
    /// The staged entries not deleted yet.
    pub live: Live,
    /// The sequence number of the next staged entry.
    pub next_seq: u64,
    /// The staged records in entries up to this one are kept encoded.
    pub compacted: u64,
    /// Reused to build a group's staged entry.
    pub entry: StagedEntry,
    /// Reused to encode records.
    pub buf: Vec<u8>,
    /// Reused for each group's overlay.
    pub overlay: Overlay,
    /// Set by the sync thread when a sync failed.
    pub sync_failed: Arc<AtomicBool>,
}

/// A group written to the journal and the memtables, for the sync thread to make durable
/// and answer.
struct Synced {
    /// The group's commits (claims were answered when the group was written).
    answers: Vec<Reply<()>>,
    /// Whether the group wrote anything (otherwise it needs no sync of its own).
    wrote: bool,
    /// The group's result so far (an error: its batch failed).
    result: Result<(), StoreError>,
}

/// The sync thread: persists the journal for every group the writer handed over since the
/// last sync, then answers them in order. Ends when the writer is gone.
fn sync_loop(
    db: Database,
    mode: PersistMode,
    stats: Arc<Counters>,
    failed: Arc<AtomicBool>,
    rx: std_mpsc::Receiver<Synced>,
) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        groups.extend(rx.try_iter());
        let result = if groups.iter().any(|g| g.wrote) {
            let started = tokio::time::Instant::now();
            let persisted = db.persist(mode).map_err(StoreError::from);
            let fsync = mode != PersistMode::Buffer;
            match &persisted {
                Ok(()) => {
                    crate::metrics::store_sync(started.elapsed(), fsync);
                    stats.fsyncs.fetch_add(u64::from(fsync), Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(error = %e, "store journal sync failed");
                    failed.store(true, Ordering::Relaxed);
                }
            }
            persisted
        } else {
            Ok(())
        };
        for g in groups {
            let r = g.result.and_then(|()| result.clone());
            // A caller that gave up waiting is not an error: its request was applied anyway.
            for reply in g.answers {
                let _ = reply.send(r.clone());
            }
        }
    }
}

impl Writer {
    /// Serves requests until every sender is gone, then waits for the sync thread to answer
    /// the last groups.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let (to_sync, from_writer) = std_mpsc::sync_channel(SYNC_QUEUE);
        let mode = if self.fsync {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        let (db, stats, failed) = (
            self.ks.db.clone(),
            Arc::clone(&self.stats),
            Arc::clone(&self.sync_failed),
        );
        let sync = std::thread::Builder::new()
            .name("pigeon-store-sync".into())
            .spawn(move || sync_loop(db, mode, stats, failed, from_writer));
        let sync = match sync {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the store's sync thread");
                return;
            }
        };
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
            if let Some(done) = self.group(ops) {
                if to_sync.send(done).is_err() {
                    tracing::error!("store sync thread is gone");
                    break;
                }
            }
        }
        drop(to_sync);
        if sync.join().is_err() {
            tracing::error!("store sync thread panicked");
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

    /// Folds and writes one group; returns it for the sync thread (`None`: nothing to
    /// answer).
    fn group(&mut self, ops: Vec<Op>) -> Option<Synced> {
        if self.sync_failed.swap(false, Ordering::Relaxed) {
            // A sync failed: cached records may be ahead of the disk.
            self.cache = RecordCache::default();
        }
        let requests = ops.len();
        self.stats
            .requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();
        let started = tokio::time::Instant::now();
        // Readers wait for the group: they see the staged map and the index as one.
        let shared = Arc::clone(&self.staged);
        let mut staged = shared.write().unwrap_or_else(PoisonError::into_inner);
        let mut overlay = std::mem::take(&mut self.overlay);
        overlay.write_claims(&mut self.claims, started, CLAIM_WRITE_DELAY);
        let overdue = STAGE_FOR + STAGE_SLACK;
        if (self.live.front()).is_some_and(|e| started.saturating_duration_since(e.at) >= overdue) {
            overlay.unstage(&mut self.live, started, STAGE_FOR);
        }
        let mut answers = Vec::with_capacity(ops.len());
        // Claims write nothing: answered once the group is written, without waiting for the
        // disk. What they say (new, or how far a record got) is decided again from the
        // journal if a crash loses the group's writes: their records are consumed again.
        let mut claimed = Vec::new();
        let mut known = Known {
            cache: &mut self.cache,
            claims: &mut self.claims,
            staged: &mut staged,
        };
        for op in ops {
            match op {
                Op::WriteClaims(older_than, reply) => {
                    overlay.write_claims(known.claims, started, older_than);
                    answers.push(reply);
                }
                Op::IndexStaged(older_than, reply) => {
                    overlay.unstage(&mut self.live, started, older_than);
                    answers.push(reply);
                }
                Op::CompactStaged(older_than, reply) => {
                    if let Some(upto) = self.live.last_before(started, older_than) {
                        staged::compact(known.staged, upto, &mut self.buf);
                    }
                    answers.push(reply);
                }
                Op::Claim(reqs, reply) => match overlay.claim(&self.ks, &mut known, reqs, now) {
                    Ok(claims) => claimed.push((reply, claims)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Op::Commit(changes, reply) => match overlay.commit(&self.ks, &mut known, changes) {
                    Ok(()) => answers.push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
            }
        }
        let folded = started.elapsed();
        let written = self.write(&mut overlay, &mut staged, started);
        let wrote = matches!(written, Ok(Some(_)));
        for (reply, claims) in claimed {
            let _ = reply.send(written.as_ref().map(|_| claims).map_err(Clone::clone));
        }
        match &written {
            Ok(w) => {
                crate::metrics::store_group_time(folded, w.map_or(Duration::ZERO, |w| w.write));
                crate::metrics::store_group(requests, w.map(|w| (w.keys, w.bytes)));
                // fjall's own accounting (hidden, experimental in fjall 3.1; pinned).
                crate::metrics::store_memory(
                    self.ks.db.write_buffer_size(),
                    self.ks.db.cache_size(),
                );
                self.keep(&mut overlay, &mut staged, started);
                self.compact(&mut staged, started);
                crate::metrics::store_staged(staged.len(), w.map_or(0, |w| w.indexed_open));
            }
            Err(e) => {
                tracing::error!(error = %e, requests = answers.len(), "store group commit failed");
                self.cache = RecordCache::default();
                // The group took records out of the map: read it again from what is stored.
                match staged::replay(&self.ks.staged, started) {
                    Ok((map, live, next)) => {
                        *staged = map;
                        self.live = live;
                        self.compacted = 0;
                        self.next_seq = self.next_seq.max(next);
                    }
                    Err(e) => tracing::error!(error = %e, "reading the staged records failed"),
                }
            }
        }
        overlay.clear();
        self.overlay = overlay;
        (!answers.is_empty()).then(|| Synced {
            answers,
            wrote,
            result: written.map(|_| ()),
        })
    }

    /// Keeps the open records of a written group for the next ones, and its claims that no
    /// change wrote.
    fn keep(&mut self, overlay: &mut Overlay, staged: &mut StagedMap, now: tokio::time::Instant) {
        for (id, slot) in overlay.records.drain() {
            let unwritten = slot.claim_unwritten();
            let Some(rec) = slot.record else {
                continue;
            };
            if unwritten {
                self.claims.keep(id, rec, now);
            } else if let Some(seq) = slot.staged_seq {
                let kind = if rec.is_open() {
                    StagedKind::Record(rec)
                } else {
                    StagedKind::Held
                };
                let s = Staged {
                    kind,
                    seq,
                    first: slot.first_staged.unwrap_or(seq),
                    open_indexed: slot.open_before,
                    transaction_indexed: slot.transaction_indexed,
                };
                staged.insert(id, s);
            } else if rec.is_open() {
                self.cache.insert(id, rec);
            }
            // Terminal and indexed: later changes are rare, they read fjall.
        }
    }

    /// Keeps encoded the staged records unchanged for [`COMPACT_AFTER`], once the oldest
    /// still decoded is [`COMPACT_SLACK`] older than that.
    fn compact(&mut self, staged: &mut StagedMap, now: tokio::time::Instant) {
        let Some(oldest) = self.live.first_after(self.compacted) else {
            return;
        };
        if now.saturating_duration_since(oldest.at) < COMPACT_AFTER + COMPACT_SLACK {
            return;
        }
        if let Some(upto) = self.live.last_before(now, COMPACT_AFTER) {
            staged::compact(staged, upto, &mut self.buf);
            self.compacted = upto;
        }
    }

    /// Writes the overlay as one batch (to the journal's buffer and the memtables; the sync
    /// thread persists it); says what it wrote, if it wrote anything. An open record goes to
    /// the group's staged entry; a terminal one, or one staged for long enough, to the
    /// indexed keyspaces.
    fn write(
        &mut self,
        overlay: &mut Overlay,
        staged: &mut StagedMap,
        now: tokio::time::Instant,
    ) -> Result<Option<Written>, StoreError> {
        let ks = &self.ks;
        let writing = tokio::time::Instant::now();
        let mut b = Batch {
            inner: ks.db.batch(),
            bytes: 0,
        };
        let seq = self.next_seq;
        let bound = overlay.bound;
        let mut indexed_open = 0;
        // What the group's entry will hold: latest versions, and `gone` items that overrule
        // entries from `floor` on.
        let mut holds = 0u32;
        let mut floor: Option<u64> = None;
        let mut overrule = |first: u64| floor = Some(floor.map_or(first, |f| f.min(first)));
        self.entry.clear();
        // Published: a staged hold ends here, an indexed one in the open index. (Before the
        // due holds are indexed: a batch must not both put and delete a key.)
        for id in &overlay.released {
            match staged.get(id) {
                Some(s) if matches!(s.kind, StagedKind::Held) => {
                    if s.seq > bound {
                        self.entry.gone(id);
                        overrule(s.first);
                    }
                    self.live.release(s.seq);
                    staged.remove(id);
                }
                _ => b.del(&ks.open, id.as_bytes()),
            }
        }
        if bound > 0 {
            // Due, and not loaded by this group: indexed as they are.
            for (id, s) in staged.extract_if(|_, s| s.seq <= bound) {
                let rec = match s.kind {
                    StagedKind::Record(rec) => rec,
                    StagedKind::Encoded(bytes) => Box::new(codec::decode_record(&id, &bytes)?),
                    StagedKind::Held => {
                        b.put(&ks.open, id.as_bytes(), &[]);
                        continue;
                    }
                };
                let slot = Slot {
                    open_before: s.open_indexed,
                    transaction_indexed: s.transaction_indexed,
                    record: Some(rec),
                    staged_seq: Some(s.seq),
                    first_staged: Some(s.first),
                    ..Slot::default()
                };
                overlay.records.entry(id).or_insert(slot);
            }
        }
        for (id, slot) in &mut overlay.records {
            let Some(rec) = slot.record.as_ref() else {
                continue;
            };
            let open = rec.is_open();
            let held = !open && slot.hold_open;
            let due = slot.staged_seq.is_some_and(|s| s <= bound);
            if !(slot.dirty || due || slot.released) {
                continue;
            }
            let transaction_indexed = slot.transaction_indexed;
            if open && !due {
                self.entry
                    .record(rec, slot.open_before, transaction_indexed);
                restage(&mut self.live, slot, seq);
                holds += 1;
                continue;
            }
            if due && open {
                indexed_open += 1;
                // Still waiting after `STAGE_FOR`: its receipt keys now (a notification that
                // ends before, most of them, never needs them).
                for acceptance in rec.acceptances() {
                    register(&mut overlay.receipts, acceptance, id, self.receipt_ttl_ms);
                }
            }
            if slot.dirty || open {
                codec::encode_record(rec, &mut self.buf);
                b.put(&ks.records, id.as_bytes(), &self.buf);
            }
            // A record indexed open has its transaction key without an end (its retention
            // has not begun): it gets its beginning once the record ends.
            let ended_since = transaction_indexed && slot.open_before && !open && slot.dirty;
            if let Some(txn) =
                (rec.transaction_id.as_ref()).filter(|_| !transaction_indexed || ended_since)
            {
                let began = if open {
                    keys::KEPT
                } else {
                    keys::unix_ms(rec.began().unwrap_or_else(OffsetDateTime::now_utc))
                };
                let value = keys::transaction_value(began);
                b.put(&ks.by_txn, &keys::transaction_key(txn, id), &value);
                slot.transaction_indexed = true;
            }
            if held && !slot.open_before && !due {
                // Terminal and waiting for the broker: the hold is staged, not indexed.
                self.entry.held(id);
                restage(&mut self.live, slot, seq);
                holds += 1;
                continue;
            }
            let want_open = open || held;
            match (slot.open_before, want_open) {
                (false, true) => b.put(&ks.open, id.as_bytes(), &[]),
                (true, false) => b.del(&ks.open, id.as_bytes()),
                _ => {}
            }
            slot.open_before = want_open;
            if let Some(old) = slot.staged_seq.take() {
                // A due entry goes in this batch with every earlier one.
                if !due {
                    self.entry.gone(id);
                    overrule(slot.first_staged.unwrap_or(old));
                }
                self.live.release(old);
            }
            slot.first_staged = None;
        }
        for (key, value) in &overlay.receipts {
            b.put(&ks.receipts, key, &value.encode());
        }
        for (key, value) in &overlay.outbox {
            match value {
                Some(v) => b.put(&ks.outbox, key, v),
                None => b.del(&ks.outbox, key),
            }
        }
        for s in &overlay.unstaged {
            b.del(&ks.staged, &staged::key(*s));
        }
        let newest = self.live.sweep(|s| b.del(&ks.staged, &staged::key(s)));
        // An entry of `gone` items alone is needed only while an entry they overrule is.
        let staging = holds > 0 || floor.is_some_and(|f| newest.is_some_and(|n| n >= f));
        if staging {
            b.put(&ks.staged, &staged::key(seq), self.entry.value());
        }
        if b.inner.is_empty() {
            return Ok(None);
        }
        let items = b.inner.len() as u64;
        b.inner.commit()?;
        if staging {
            self.next_seq += 1;
            self.live.written(seq, now, holds, floor);
        }
        let write = writing.elapsed();
        let s = &self.stats;
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.records_written.fetch_add(items, Ordering::Relaxed);
        s.bytes_written.fetch_add(b.bytes, Ordering::Relaxed);
        Ok(Some(Written {
            keys: items,
            bytes: b.bytes,
            write,
            indexed_open,
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
    /// Records indexed as open: staged for `STAGE_FOR` without ending.
    indexed_open: u64,
}

/// A record as the writer's maps hold it: boxed, so that moving it between them (a claim to
/// a group's overlay, the overlay to the cache or the staged map and back) moves a pointer,
/// and their tables stay small enough for the processor's caches.
pub(super) type Boxed = Box<NotificationRecord>;

/// Recently written open records, in two generations: inserts go to the young one, and when
/// it is full it becomes the old one and the previous old one is dropped. Bounded, and
/// never empty right after a turn, unlike a map cleared when full.
#[derive(Default)]
pub(super) struct RecordCache {
    young: HashMap<String, Boxed>,
    old: HashMap<String, Boxed>,
}

impl RecordCache {
    fn insert(&mut self, id: String, rec: Boxed) {
        if self.young.len() >= CACHE_GENERATION {
            // The old generation's table, emptied, is the young one's: no table grows
            // again from nothing.
            std::mem::swap(&mut self.old, &mut self.young);
            self.young.clear();
        }
        self.young.insert(id, rec);
    }

    /// Takes a record out, with its key.
    fn remove(&mut self, id: &str) -> Option<(String, Boxed)> {
        (self.young.remove_entry(id)).or_else(|| self.old.remove_entry(id))
    }
}

/// Claims not written yet, in claim order.
#[derive(Default)]
pub(super) struct Claims {
    records: HashMap<String, (Boxed, tokio::time::Instant)>,
    order: std::collections::VecDeque<(tokio::time::Instant, String)>,
}

impl Claims {
    /// Keeps a claim unwritten (again, from `now`, when a group only read it).
    fn keep(&mut self, id: String, rec: Boxed, now: tokio::time::Instant) {
        self.order.push_back((now, id.clone()));
        self.records.insert(id, (rec, now));
    }

    /// Takes a claim out, with its key.
    fn take(&mut self, id: &str) -> Option<(String, Boxed)> {
        (self.records.remove_entry(id)).map(|(id, (rec, _))| (id, rec))
    }

    /// Takes the claims made before `bound`.
    fn take_older(&mut self, bound: tokio::time::Instant) -> Vec<(String, Boxed)> {
        let mut out = Vec::new();
        while let Some(&(at, _)) = self.order.front() {
            if at > bound {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else {
                break;
            };
            // Gone (written by a change) or claimed again since: not this entry's to take.
            if self.records.get(&id).is_some_and(|(_, since)| *since == at) {
                if let Some((rec, _)) = self.records.remove(&id) {
                    out.push((id, rec));
                }
            }
        }
        out
    }
}

/// The writer's knowledge beyond fjall, lent to a fold.
struct Known<'a> {
    cache: &'a mut RecordCache,
    claims: &'a mut Claims,
    staged: &'a mut StagedMap,
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
#[derive(Default)]
struct Slot {
    /// Whether the open index has it (a terminal record held there is not known here).
    open_before: bool,
    /// Terminal, but its status is not yet acknowledged by the broker: it stays in the open
    /// index until [`Change::Published`], and start-up publishes it again.
    hold_open: bool,
    /// Whether the transaction index has it: its transaction id, once it has one, never
    /// changes (`NotificationRecord::apply_status` only fills it in).
    transaction_indexed: bool,
    record: Option<Boxed>,
    dirty: bool,
    /// The record is a claim that nothing wrote yet (fjall does not have it).
    claimed: bool,
    /// The staged entry that holds its latest version (or its hold), if one does.
    staged_seq: Option<u64>,
    /// The first staged entry that names it since it was last staged anew (`Staged::first`).
    first_staged: Option<u64>,
    /// Its held terminal status was published in this group.
    released: bool,
}

/// Whether a stored record has a transaction id (then the transaction index has it).
fn has_transaction(record: Option<&NotificationRecord>) -> bool {
    record.is_some_and(|r| r.transaction_id.is_some())
}

impl Slot {
    fn claim_unwritten(&self) -> bool {
        self.claimed && !self.dirty
    }
}

/// The group's view: stored state of every key it touched, with the group's changes on top.
#[derive(Default)]
pub(super) struct Overlay {
    records: HashMap<String, Slot>,
    /// Receipt keys registered, with their values (the latest registration of a key wins).
    receipts: HashMap<Vec<u8>, ReceiptValue>,
    /// `outbox` keys to insert (with their value) or remove.
    outbox: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Terminal records held (staged or in the open index) whose status the broker now
    /// has.
    released: Vec<String>,
    /// Staged records in entries up to this one are indexed by this group (0: none).
    bound: u64,
    /// Staged entries this group deletes (every record in them is indexed or newer).
    unstaged: Vec<u64>,
}

impl Overlay {
    fn load_record(
        &mut self,
        ks: &Keyspaces,
        known: &mut Known<'_>,
        event_id: &str,
    ) -> Result<(), StoreError> {
        if self.records.contains_key(event_id) {
            return Ok(());
        }
        // The maps a record comes from give their key back with it: the overlay takes it
        // rather than a new copy of the id.
        if let Some((id, record)) = known.claims.take(event_id) {
            let slot = Slot {
                record: Some(record),
                claimed: true,
                ..Slot::default()
            };
            self.records.insert(id, slot);
            return Ok(());
        }
        if let Some((id, s)) = known.staged.remove_entry(event_id) {
            let open = |record| Slot {
                open_before: s.open_indexed,
                transaction_indexed: s.transaction_indexed,
                record: Some(record),
                staged_seq: Some(s.seq),
                first_staged: Some(s.first),
                ..Slot::default()
            };
            let slot = match s.kind {
                StagedKind::Record(record) => open(record),
                StagedKind::Encoded(ref bytes) => match codec::decode_record(event_id, bytes) {
                    Ok(record) => open(Box::new(record)),
                    Err(e) => {
                        known.staged.insert(id, s);
                        return Err(e);
                    }
                },
                StagedKind::Held => match ks.record(event_id) {
                    Ok(record) => Slot {
                        hold_open: true,
                        transaction_indexed: has_transaction(record.as_ref()),
                        record: record.map(Box::new),
                        staged_seq: Some(s.seq),
                        first_staged: Some(s.first),
                        ..Slot::default()
                    },
                    Err(e) => {
                        known.staged.insert(id, s);
                        return Err(e);
                    }
                },
            };
            self.records.insert(id, slot);
            return Ok(());
        }
        let (id, record) = match known.cache.remove(event_id) {
            Some((id, r)) => (id, Some(r)),
            None => (event_id.to_owned(), ks.record(event_id)?.map(Box::new)),
        };
        let slot = Slot {
            open_before: record.as_deref().is_some_and(NotificationRecord::is_open),
            transaction_indexed: has_transaction(record.as_deref()),
            record,
            ..Slot::default()
        };
        self.records.insert(id, slot);
        Ok(())
    }

    fn slot(&mut self, event_id: &str) -> &mut Slot {
        // Looked up first: the slot exists almost always (loaded before), and `entry` would
        // allocate its key every time.
        if !self.records.contains_key(event_id) {
            self.records.insert(event_id.to_owned(), Slot::default());
        }
        self.records.get_mut(event_id).expect("inserted above")
    }

    /// Empties it for the next group, keeping its maps' room (a group's maps grew from
    /// nothing each time otherwise), unless a large group left them large.
    fn clear(&mut self) {
        const KEEP: usize = 4_096;
        self.records.clear();
        self.receipts.clear();
        if self.records.capacity() > KEEP {
            self.records.shrink_to(KEEP);
        }
        if self.receipts.capacity() > KEEP {
            self.receipts.shrink_to(KEEP);
        }
        self.outbox.clear();
        self.released.clear();
        self.bound = 0;
        self.unstaged.clear();
    }

    /// Has this group index the records staged before `now - older_than`, and delete their
    /// entries.
    fn unstage(&mut self, live: &mut Live, now: tokio::time::Instant, older_than: Duration) {
        let Some(bound) = now.checked_sub(older_than) else {
            return;
        };
        while let Some(e) = live.front() {
            if e.at > bound {
                break;
            }
            let seq = e.seq;
            live.pop_front();
            self.bound = self.bound.max(seq);
            self.unstaged.push(seq);
        }
    }

    /// Writes, in this group, the claims made before `now - older_than` that nothing wrote.
    fn write_claims(
        &mut self,
        claims: &mut Claims,
        now: tokio::time::Instant,
        older_than: Duration,
    ) {
        // A bound before the clock's start: no claim is that old.
        let Some(bound) = now.checked_sub(older_than) else {
            return;
        };
        for (id, rec) in claims.take_older(bound) {
            let slot = self.slot(&id);
            slot.record = Some(rec);
            slot.dirty = true;
        }
    }

    fn claim(
        &mut self,
        ks: &Keyspaces,
        known: &mut Known<'_>,
        reqs: Vec<ClaimRequest>,
        now: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError> {
        for r in &reqs {
            self.load_record(ks, known, &r.event_id)?;
        }
        let mut created = HashSet::new();
        let mut out = Vec::with_capacity(reqs.len());
        for r in reqs {
            let slot = self.slot(&r.event_id);
            match &slot.record {
                None => {
                    // Not written: the notification's first change writes it.
                    slot.record = Some(Box::new(NotificationRecord::received(&r, now)));
                    slot.claimed = true;
                    created.insert(r.event_id);
                    out.push(Claim::New);
                }
                Some(rec) if rec.origin == Some(r.origin) && !created.contains(&r.event_id) => {
                    out.push(Claim::Redelivered(NotificationRecord::clone(rec)));
                }
                Some(rec) => out.push(Claim::Duplicate(NotificationRecord::clone(rec))),
            }
        }
        Ok(out)
    }

    fn commit(
        &mut self,
        ks: &Keyspaces,
        known: &mut Known<'_>,
        changes: Vec<Change>,
    ) -> Result<(), StoreError> {
        for c in &changes {
            if matches!(c, Change::Published { .. }) {
                continue;
            }
            self.load_record(ks, known, c.event_id())?;
        }
        for c in changes {
            let held = matches!(c, Change::Held(_));
            match c {
                Change::Status(s) | Change::Held(s) => {
                    // A terminal status is the record's own latest state: holding the record
                    // keeps it without a copy. Others get an outbox entry.
                    let hold = held && s.state.is_terminal();
                    if held && !hold {
                        let value = codec::encode_status(&s);
                        (self.outbox).insert(keys::outbox_key(&s.event_id, s.state), Some(value));
                    }
                    let slot = self.slot(&s.event_id);
                    slot.record
                        .get_or_insert_with(|| Box::new(NotificationRecord::blank(&s.event_id)))
                        .apply_status(s);
                    slot.dirty = true;
                    slot.hold_open |= hold;
                }
                Change::Submitting {
                    event_id,
                    carrier,
                    at,
                } => {
                    let slot = self.slot(&event_id);
                    slot.record
                        .get_or_insert_with(|| Box::new(NotificationRecord::blank(&event_id)))
                        .apply_submitting(carrier, at);
                    slot.dirty = true;
                }
                Change::Published { event_id, state } if state.is_terminal() => {
                    match self.records.get_mut(&event_id) {
                        Some(slot) if slot.hold_open => {
                            slot.hold_open = false;
                            slot.released = true;
                        }
                        _ => self.released.push(event_id),
                    }
                }
                Change::Published { event_id, state } => {
                    self.outbox.insert(keys::outbox_key(&event_id, state), None);
                }
                Change::Segment { event_id, entry } => {
                    let slot = self.slot(&event_id);
                    if let Some(record) = slot.record.as_mut() {
                        record.timeline.push(entry);
                        slot.dirty = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Puts a record's latest version in entry `seq`, the group's, out of the one it was in.
fn restage(live: &mut Live, slot: &mut Slot, seq: u64) {
    if let Some(old) = slot.staged_seq.replace(seq) {
        live.release(old);
    }
    slot.first_staged.get_or_insert(seq);
}

/// Points (carrier, message id) at an event until `expires_ms`, unless the group already
/// points it at a later acceptance. The stored value is not read first (message ids are new
/// almost always): a reused id is overwritten, and its new expiry counts.
fn register(
    receipts: &mut HashMap<Vec<u8>, ReceiptValue>,
    (carrier, message_id, at): (&str, &str, OffsetDateTime),
    event_id: &str,
    ttl_ms: i64,
) {
    let key = keys::receipt_key(carrier, message_id);
    let expires_ms = keys::receipt_expiry(at, ttl_ms);
    if receipts
        .get(&key)
        .is_none_or(|v| v.expires_ms <= expires_ms)
    {
        let event_id = event_id.to_owned();
        receipts.insert(
            key,
            ReceiptValue {
                expires_ms,
                event_id,
            },
        );
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
            c.insert(id(i), Box::new(NotificationRecord::blank(&id(i))));
        }
        assert!(c.young.len() + c.old.len() <= 2 * CACHE_GENERATION);
        // A generation fills its table without doubling it (std's tables hold 7/8 of their
        // power-of-two buckets), and a turn reuses the old table.
        assert!(
            c.young.capacity() <= CACHE_GENERATION && c.old.capacity() <= CACHE_GENERATION,
            "{} and {}",
            c.young.capacity(),
            c.old.capacity()
        );
        // The oldest turned out, the newest and the previous generation kept.
        assert!(c.remove(&id(0)).is_none());
        assert!(c.remove(&id(CACHE_GENERATION - 1)).is_none());
        let kept = c.remove(&id(CACHE_GENERATION + 1)).map(|(_, r)| r.event_id);
        assert_eq!(kept.as_deref(), Some(id(CACHE_GENERATION + 1).as_str()));
        assert!(c.remove(&id(n - 1)).is_some());
        // Taken out means gone: the writer puts it back after the group.
        assert!(c.remove(&id(n - 1)).is_none());
    }

    #[test]
    fn claims_are_taken_oldest_first_and_only_while_unwritten() {
        let t0 = tokio::time::Instant::now();
        let sec = Duration::from_secs(1);
        let mut c = Claims::default();
        for (i, at) in [(0, t0), (1, t0), (2, t0 + sec), (3, t0 + sec * 2)] {
            c.keep(id(i), Box::new(NotificationRecord::blank(&id(i))), at);
        }
        // Written by a change meanwhile: not taken.
        assert!(c.take(&id(1)).is_some());
        // Read by a group (a repeated claim) and kept again: it waits again from then, and its
        // first place in line is skipped.
        let (_, r2) = c.take(&id(2)).unwrap();
        c.keep(id(2), r2, t0 + sec * 5);
        let ids =
            |v: Vec<(String, Boxed)>| -> Vec<String> { v.into_iter().map(|(i, _)| i).collect() };
        assert_eq!(ids(c.take_older(t0)), [id(0)]);
        assert_eq!(ids(c.take_older(t0 + sec * 2)), [id(3)]);
        assert_eq!(ids(c.take_older(t0 + sec * 5)), [id(2)]);
        assert!(c.records.is_empty() && c.order.is_empty());
    }
}

#[cfg(test)]
mod unstage_tests {
    use super::*;

    #[test]
    fn a_group_deletes_the_entries_written_before_the_bound_and_indexes_up_to_the_last() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs(1);
        let mut live = Live::default();
        for (seq, at) in [(3, t0), (4, t0 + s), (7, t0 + s * 3)] {
            live.found(seq, at);
        }
        let mut overlay = Overlay::default();
        overlay.unstage(&mut live, t0 + s * 3, s * 2);
        assert_eq!((overlay.bound, &overlay.unstaged[..]), (4, &[3, 4][..]));
        assert_eq!(live.seqs(), [7]);
        // A bound before the clock's start: nothing is that old.
        let mut other = Overlay::default();
        other.unstage(&mut live, t0, Duration::MAX);
        assert_eq!((other.bound, other.unstaged.len()), (0, 0));
        assert_eq!(live.seqs(), [7]);
    }
}
