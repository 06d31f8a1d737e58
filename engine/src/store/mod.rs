//! The durable record of every notification, on fjall (an embedded LSM store): idempotency
//! by event id ([`Store::claim`]), the timeline of every state change ([`Store::commit`]),
//! the open set that recovery reads after a crash ([`Store::open_records`]), and the receipt
//! correlation table that survives a restart ([`Store::receipt_owner`]).
//! `docs/adr/0004-durable-store.md` gives the reasons, `keys.rs` the key layouts.
//!
//! Writes go through one writer thread (`writer.rs`) that applies everything queued as one
//! atomic write batch, while a sync thread persists the journal once for all the batches
//! written since its last sync (group commit), then answers; claims and changes are applied
//! in the order they were sent. Reads go to fjall directly, from any thread, and see every
//! write that was answered.
//!
//! An open record is staged, not indexed (`staged.rs`): each group writes the records it
//! changed that are still open as one entry with a sequential key, and a record reaches the
//! indexed keyspaces (`records`, `open`, `by_transaction`) when it ends, or once it has been
//! staged for [`STAGE_FOR`]. Reads look at the staged records first.
//!
//! A claim writes nothing by itself: the writer keeps it, and the notification's first
//! change (its `submitting` mark before anything is sent, or its terminal status) writes the
//! record with its `received` entry. A notification with no change after
//! [`CLAIM_WRITE_DELAY`] (waiting for its carrier) is written as `received` alone. Nothing
//! is lost by the wait: a claim is only ever needed again if its record was consumed again,
//! and a notification that has sent nothing is safe to start over after a crash.

mod batcher;
mod codec;
mod keys;
mod record;
mod staged;
#[cfg(test)]
mod tests;
mod ttl;
mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::compaction::Leveled;
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::event::{State, StatusEvent};
use crate::notification::Origin;

pub use batcher::Batcher;
pub use record::{NotificationRecord, TimelineEntry};
pub use staged::{COMPACT_AFTER, STAGE_FOR};
pub use writer::CLAIM_WRITE_DELAY;

use staged::{StagedKind, StagedMap};

use writer::{Counters, Op, Reply, Writer};

/// Requests waiting for the writer; a full queue makes callers wait (backpressure).
const QUEUE: usize = 1_024;

/// fjall's sizes (its defaults are for larger machines: 64 MiB of memtable per keyspace,
/// 512 MiB of journal, 32 MiB of block cache). A memtable is flushed to disk when it reaches
/// `MEMTABLE`, or when the journal reaches `JOURNAL` (64 MiB is fjall's least), which then
/// bounds what the memtables hold; their skip lists take several times the bytes fjall
/// counts for them. Smaller memtables mean more flushes and compactions: with fjall's
/// workers no longer spinning (`WORKERS`), 8 MiB instead of 16 MiB costs ~0.3 µs per
/// notification at 25,000/s and holds 18 MB less (ADR 0004); a 64 MiB journal instead of
/// 128 MiB took 40–80 MB off at no CPU cost.
const MEMTABLE: u64 = 8 << 20;
/// The staged entries' memtable: what it holds is deleted within seconds, and a larger one
/// only kept more of it in memory (589 MB against 536 MB with a million notifications
/// awaiting receipts, at the same CPU end to end).
const STAGED_MEMTABLE: u64 = 4 << 20;
const JOURNAL: u64 = 64 << 20;
/// Tables in level 0 before they are merged into level 1 (fjall's default is 4), for every
/// keyspace but the staged entries'. Their keys are random (event ids, transaction ids,
/// message ids), so each merge rewrites all of level 1: twice the tables per merge, half
/// the merges. Over 1.2 million notifications at 25,000/s, fjall's workers took 4.1 s of
/// CPU instead of 5.5–5.9 s, the engine 48.5–48.9 µs per notification instead of
/// 50.6–51.8 µs (ADR 0004). A read that misses checks up to this many tables' filters.
/// Like the memtable sizes, it is set when a keyspace is created.
const L0_TABLES: u8 = 8;
/// What is read back is mostly one record per late receipt, seldom twice: 8 MiB held
/// the same CPU as 16 MiB at 25,000/s and with a million awaiting receipts (ADR 0004).
const BLOCK_CACHE: u64 = 8 << 20;
/// fjall's flush and compaction threads. Its default, one per core (two here), spins: after
/// each flush it queues a compaction request per worker, and worker 0 hands any compaction
/// request back to the queue (to stay free for flushes) and takes it again at once, for as
/// long as the other worker is busy compacting. A third worker takes the request instead:
/// over 1.5 million notifications the workers' CPU fell from 11.5–12.8 µs to 6.6–6.8 µs per
/// notification. One worker would not spin, but it can block forever queueing a flush on
/// the queue it alone empties (ADR 0004).
const WORKERS: usize = 3;

/// `[store]` in the engine configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreOptions {
    /// Off: nothing is recorded, every consumed record counts as new (no idempotency by
    /// event id, no recovery after a crash). For measurements and tests only.
    #[serde(default = "d_fsync")]
    pub enabled: bool,
    /// Directory of the database, created if missing. One process at a time holds it (a
    /// lock file inside).
    #[serde(default = "d_path")]
    pub path: PathBuf,
    /// Sync the journal to disk (`fdatasync`) once per group commit before any of its
    /// requests is answered. Off: the journal is handed to the operating system only, which
    /// survives a crash of the process but not of the machine.
    #[serde(default = "d_fsync")]
    pub fsync: bool,
    /// How long a carrier message id stays in the receipt correlation table after its
    /// acceptance. Keep it above `engine.receipt_timeout_ms`.
    #[serde(default = "d_receipt_ttl_ms")]
    pub receipt_ttl_ms: u64,
    /// How long an ended notification's record (and its transaction key) is kept, from when
    /// it was received; dropped by the compaction that reaches it after that. 0 keeps
    /// records forever. Not below `receipt_ttl_ms` nor `engine.validity_ms`: a consumed
    /// event whose record is gone counts as new (then it is stale, and skipped).
    #[serde(default = "d_record_retention_ms")]
    pub record_retention_ms: u64,
}

fn d_path() -> PathBuf {
    PathBuf::from("data/pigeon")
}
fn d_fsync() -> bool {
    true
}
fn d_receipt_ttl_ms() -> u64 {
    72 * 3_600 * 1_000
}
fn d_record_retention_ms() -> u64 {
    30 * 24 * 3_600 * 1_000
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            enabled: true,
            path: d_path(),
            fsync: d_fsync(),
            receipt_ttl_ms: d_receipt_ttl_ms(),
            record_retention_ms: d_record_retention_ms(),
        }
    }
}

impl StoreOptions {
    pub fn receipt_ttl(&self) -> Duration {
        Duration::from_millis(self.receipt_ttl_ms)
    }
}

/// A consumed record asking to become the notification of its event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub event_id: String,
    pub origin: Origin,
    pub transaction_id: Option<String>,
    /// Already masked.
    pub destination: Option<String>,
}

/// The answer to a [`ClaimRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time this id is seen: `received` (written with the notification's first change,
    /// or after [`CLAIM_WRITE_DELAY`]); send it.
    New,
    /// The id was claimed from this same Kafka record before: a replay after a crash or a
    /// restart. The record says how far it got.
    Redelivered(NotificationRecord),
    /// The id is already recorded from another Kafka record (or came twice in one batch),
    /// or from a status without a claim (a rejected event): the producer sent it twice.
    /// Nothing was written.
    Duplicate(NotificationRecord),
}

/// A change to a notification's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A published status: appended to the timeline, and the record takes its state and
    /// details. Creates the record if the id was never claimed (a rejected event).
    /// An `accepted` with a carrier gives the record receipt keys (its message ids, until
    /// `at` + the receipt TTL), written to the receipt table if it is still open when it is
    /// indexed (staged for `STAGE_FOR`); a terminal state ends the record's open life.
    Status(StatusEvent),
    /// About to be written to `carrier` (record-only state `submitting`).
    Submitting {
        event_id: String,
        carrier: String,
        at: OffsetDateTime,
    },
    /// [`Change::Status`] for a status to publish that no Kafka record will bring back
    /// after a crash (one decided after its record's offset may have been committed: a
    /// receipt's outcome, say): recorded, and kept until [`Change::Published`], and
    /// published again at start-up if still there ([`Store::outbox`]). A terminal status is
    /// the record's own latest state, so the record is held (no copy is written); any other
    /// goes to the `outbox` keyspace.
    Held(StatusEvent),
    /// The broker acknowledged this outbox status.
    Published { event_id: String, state: State },
    /// A final receipt for one segment of a notification still waiting for the others':
    /// appended to its timeline, the record's state unchanged. After a restart the matcher
    /// counts it again (`recovery::segment_receipts`); until it is durable its SMSC is not
    /// answered. Nothing happens if the record is not there.
    Segment {
        event_id: String,
        entry: TimelineEntry,
    },
}

impl Change {
    pub fn event_id(&self) -> &str {
        match self {
            Change::Status(s) | Change::Held(s) => &s.event_id,
            Change::Submitting { event_id, .. }
            | Change::Published { event_id, .. }
            | Change::Segment { event_id, .. } => event_id,
        }
    }
}

/// What the writer has done since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Claim and commit calls served.
    pub requests: u64,
    /// Write batches committed (one per group that wrote anything).
    pub batches: u64,
    /// Journal syncs to disk (one per batch when `fsync` is on).
    pub fsyncs: u64,
    /// Keys written or removed, indexes included.
    pub records_written: u64,
    /// Bytes of keys and values written (before fjall's own framing).
    pub bytes_written: u64,
}

/// Store failures. Every variant but `Open` and `Spawn` surfaces on a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// At start-up: the directory cannot be opened (or another process holds it).
    #[error("cannot open the store at {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Arc<fjall::Error>,
    },
    /// At start-up: the writer thread could not be started.
    #[error("cannot start the store writer: {0}")]
    Spawn(#[source] Arc<std::io::Error>),
    /// fjall failed to read or write. After a failed write fjall refuses every further
    /// write (it is poisoned): restart the process, recovery replays the journal.
    #[error("store i/o failed: {0}")]
    Db(#[source] Arc<fjall::Error>),
    /// A stored value cannot be decoded.
    #[error("stored value under {key} is corrupt: {why}")]
    Corrupt { key: String, why: String },
    /// A record cannot be encoded.
    #[error("cannot encode the record of {event_id}: {why}")]
    Encode { event_id: String, why: String },
    /// The writer thread is gone (the store is shutting down, or it panicked).
    #[error("the store writer has stopped")]
    Closed,
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Db(Arc::new(e))
    }
}

/// The database and its keyspaces (layouts in `keys.rs`).
#[derive(Clone)]
struct Keyspaces {
    db: Database,
    records: Keyspace,
    open: Keyspace,
    by_txn: Keyspace,
    receipts: Keyspace,
    outbox: Keyspace,
    staged: Keyspace,
}

impl Keyspaces {
    /// The indexed record of an event.
    fn record(&self, event_id: &str) -> Result<Option<NotificationRecord>, StoreError> {
        match self.records.get(event_id)? {
            Some(v) => codec::decode_record(event_id, &v).map(Some),
            None => Ok(None),
        }
    }
}

/// The store's name (`meta`, `owner`), made and persisted the first time.
fn owner(db: &Database, meta: Keyspace) -> Result<String, StoreError> {
    if let Some(v) = meta.get(keys::OWNER)? {
        return String::from_utf8(v.to_vec()).map_err(|e| StoreError::Corrupt {
            key: "owner".into(),
            why: e.to_string(),
        });
    }
    let owner = uuid::Uuid::new_v4().to_string();
    meta.insert(keys::OWNER, owner.as_bytes())?;
    db.persist(fjall::PersistMode::SyncAll)?;
    Ok(owner)
}

/// Handle on the store; cheap to clone. The last handle dropped stops the writer thread
/// (after its current group) and closes the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
    ks: Keyspaces,
    stats: Arc<Counters>,
    staged: Arc<RwLock<StagedMap>>,
    receipt_ttl_ms: i64,
    owner: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("store writer panicked");
            }
        }
    }
}

impl Store {
    /// Opens (or creates) the store and starts its writer thread. Recovery of fjall's
    /// journal happens here.
    pub fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        let open_err = |e: fjall::Error| StoreError::Open {
            path: options.path.clone(),
            source: Arc::new(e),
        };
        let retention_ms = i64::try_from(options.record_retention_ms).unwrap_or(i64::MAX);
        let db = Database::builder(&options.path)
            .manual_journal_persist(true)
            // Not compressed: lz4 of each group's staged entry took ~6 % of the writer's
            // instructions, for journal bytes the disk takes easily (ADR 0004).
            .journal_compression(CompressionType::None)
            .max_journaling_size(JOURNAL)
            .cache_size(BLOCK_CACHE)
            .worker_threads(WORKERS)
            .with_compaction_filter_factories(Arc::new(move |name: &str| {
                ttl::assign(name, retention_ms)
            }))
            .open()
            .map_err(open_err)?;
        let keyspace = |name: &str| {
            let memtable = if name == keys::STAGED {
                STAGED_MEMTABLE
            } else {
                MEMTABLE
            };
            db.keyspace(name, || {
                let options = KeyspaceCreateOptions::default().max_memtable_size(memtable);
                if name == keys::STAGED {
                    options
                } else {
                    let leveled = Leveled::default().with_l0_threshold(L0_TABLES);
                    options.compaction_strategy(Arc::new(leveled))
                }
            })
            .map_err(open_err)
        };
        let ks = Keyspaces {
            records: keyspace(keys::RECORDS)?,
            open: keyspace(keys::OPEN)?,
            by_txn: keyspace(keys::BY_TRANSACTION)?,
            receipts: keyspace(keys::RECEIPTS)?,
            outbox: keyspace(keys::OUTBOX)?,
            staged: keyspace(keys::STAGED)?,
            db: db.clone(),
        };
        let owner = owner(&db, keyspace(keys::META)?)?;
        if db.keyspace_exists(keys::RETIRED_RECEIPT_EXPIRY) {
            let retired = keyspace(keys::RETIRED_RECEIPT_EXPIRY)?;
            db.delete_keyspace(retired).map_err(open_err)?;
        }
        let (map, live, next_seq) = staged::replay(&ks.staged, tokio::time::Instant::now())?;
        let staged = Arc::new(RwLock::new(map));
        let stats = Arc::new(Counters::default());
        let receipt_ttl_ms = i64::try_from(options.receipt_ttl_ms).unwrap_or(i64::MAX);
        let writer = Writer {
            ks: ks.clone(),
            stats: Arc::clone(&stats),
            fsync: options.fsync,
            receipt_ttl_ms,
            cache: writer::RecordCache::default(),
            claims: writer::Claims::default(),
            staged: Arc::clone(&staged),
            live,
            next_seq,
            compacted: 0,
            entry: codec::StagedEntry::default(),
            buf: Vec::new(),
            overlay: writer::Overlay::default(),
            sync_failed: Arc::default(),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = std::thread::Builder::new()
            .name("pigeon-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Spawn(Arc::new(e)))?;
        tracing::info!(path = %options.path.display(), fsync = options.fsync, "store open");
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                writer: Some(handle),
                ks,
                stats,
                staged,
                receipt_ttl_ms,
                owner,
            }),
        })
    }

    /// The store's name: made once when the store is created, kept with it. The owner of a
    /// debit partition's handover marks (`pigeon_kafka::handover`): what a mark of this name
    /// says was acted on, this store's claims answer for.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Claims a batch of consumed records by event id. Answers are in request order, and come
    /// once the writer has applied the requests sent before (a claim writes nothing, so it
    /// does not wait for the disk). A call cancelled after sending may still be applied.
    pub async fn claim(&self, requests: Vec<ClaimRequest>) -> Result<Vec<Claim>, StoreError> {
        let asked = tokio::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.send(Op::Claim(requests, reply)).await?;
        let claims = answer.await.map_err(|_| StoreError::Closed)?;
        crate::metrics::store_wait("claim", asked.elapsed());
        claims
    }

    /// Applies changes in order, in one group commit.
    pub async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.commit_queued(changes).await?.await
    }

    /// Queues changes for the next group commit and returns once they are queued (their
    /// order among other requests is fixed then); the returned future completes when they
    /// are durable. Lets a caller keep several batches in the writer's queue at once.
    pub async fn commit_queued(
        &self,
        changes: Vec<Change>,
    ) -> Result<impl std::future::Future<Output = Result<(), StoreError>> + Send, StoreError> {
        let asked = tokio::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.send(Op::Commit(changes, reply)).await?;
        Ok(async move {
            let done = answer.await.map_err(|_| StoreError::Closed)?;
            crate::metrics::store_wait("commit", asked.elapsed());
            done
        })
    }

    /// Writes the claims older than `older_than` that no change wrote yet (all of them with
    /// zero). The writer also does it on its own as requests come; this is for quiet times.
    pub async fn write_claims(&self, older_than: Duration) -> Result<(), StoreError> {
        self.ask(|reply| Op::WriteClaims(older_than, reply)).await
    }

    /// [`Store::write_claims`] for threads outside the async runtime (panics inside it).
    pub fn write_claims_blocking(&self, older_than: Duration) -> Result<(), StoreError> {
        self.ask_blocking(|reply| Op::WriteClaims(older_than, reply))
    }

    /// Indexes the records staged longer ago than `older_than` (all of them with zero). The
    /// writer also does it on its own after [`STAGE_FOR`]; this is for tests and tools.
    pub async fn index_staged(&self, older_than: Duration) -> Result<(), StoreError> {
        self.ask(|reply| Op::IndexStaged(older_than, reply)).await
    }

    /// [`Store::index_staged`] for threads outside the async runtime (panics inside it).
    pub fn index_staged_blocking(&self, older_than: Duration) -> Result<(), StoreError> {
        self.ask_blocking(|reply| Op::IndexStaged(older_than, reply))
    }

    /// Keeps encoded the records staged longer ago than `older_than` (all of them with zero),
    /// from threads outside the async runtime (panics inside it). The writer also does it on
    /// its own after [`COMPACT_AFTER`]; this is for tests and tools.
    pub fn compact_staged_blocking(&self, older_than: Duration) -> Result<(), StoreError> {
        self.ask_blocking(|reply| Op::CompactStaged(older_than, reply))
    }

    /// [`Store::claim`] for threads outside the async runtime (panics inside it).
    pub fn claim_blocking(&self, requests: Vec<ClaimRequest>) -> Result<Vec<Claim>, StoreError> {
        self.ask_blocking(|reply| Op::Claim(requests, reply))
    }

    /// [`Store::commit`] for threads outside the async runtime (panics inside it).
    pub fn commit_blocking(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.ask_blocking(|reply| Op::Commit(changes, reply))
    }

    /// Sends a request and waits for its answer.
    async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(op(reply)).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// [`Store::ask`] for threads outside the async runtime (panics inside it).
    fn ask_blocking<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send_blocking(op(reply))?;
        answer.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    async fn send(&self, op: Op) -> Result<(), StoreError> {
        let tx = self.inner.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(op).await.map_err(|_| StoreError::Closed)
    }

    fn send_blocking(&self, op: Op) -> Result<(), StoreError> {
        let tx = self.inner.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.blocking_send(op).map_err(|_| StoreError::Closed)
    }

    /// What the staged entries hold. Held while reading the index too, so that a read sees
    /// one group's result, not half of it.
    fn staged(&self) -> RwLockReadGuard<'_, StagedMap> {
        self.inner
            .staged
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of an event id.
    pub fn get(&self, event_id: &str) -> Result<Option<NotificationRecord>, StoreError> {
        self.get_in(&self.staged(), event_id)
    }

    /// The record of an event id: staged if it is, else indexed.
    fn get_in(
        &self,
        staged: &StagedMap,
        event_id: &str,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        if let Some(s) = staged.get(event_id) {
            if let Some(r) = s.kind.record(event_id)? {
                return Ok(Some(r.into_owned()));
            }
        }
        self.inner.ks.record(event_id)
    }

    /// Every record of a transaction, in event id order. Staged records are not in the
    /// transaction index yet: they are found by going through the staged ones (a few
    /// seconds' worth of notifications).
    pub fn by_transaction(
        &self,
        transaction_id: &str,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let staged = self.staged();
        let mut out = BTreeMap::new();
        for guard in self
            .inner
            .ks
            .by_txn
            .prefix(keys::transaction_prefix(transaction_id))
        {
            let key = guard.key()?;
            let Some(event_id) = keys::transaction_key_event(&key) else {
                continue;
            };
            // A transaction id holding the separator could share a prefix with another.
            if let Some(r) = self.get_in(&staged, event_id)? {
                if r.transaction_id.as_deref() == Some(transaction_id) {
                    out.insert(r.event_id.clone(), r);
                }
            }
        }
        for (id, s) in staged.iter() {
            if !s.kind.may_hold(transaction_id) {
                continue;
            }
            if let Some(r) = s.kind.record(id)? {
                if r.transaction_id.as_deref() == Some(transaction_id) {
                    out.insert(r.event_id.clone(), r.into_owned());
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// Statuses decided and recorded whose publication the broker has not acknowledged:
    /// the outbox's entries, and the latest status of every terminal record still held
    /// (in the open index, or staged).
    pub fn outbox(&self) -> Result<Vec<StatusEvent>, StoreError> {
        let staged = self.staged();
        let mut out = Vec::new();
        for guard in self.inner.ks.outbox.iter() {
            let (key, value) = guard.into_inner()?;
            out.push(codec::decode_status(&key, &value)?);
        }
        for r in self.indexed_open(&staged)?.into_values() {
            if !r.is_open() {
                out.push(r.latest_status());
            }
        }
        for (id, s) in staged.iter() {
            if matches!(s.kind, StagedKind::Held) {
                match self.get_in(&staged, id)? {
                    Some(r) => out.push(r.latest_status()),
                    None => tracing::warn!(event_id = %id, "a held status names a missing record"),
                }
            }
        }
        Ok(out)
    }

    /// Every record not in a terminal state, in event id order: what recovery resumes.
    pub fn open_records(&self) -> Result<Vec<NotificationRecord>, StoreError> {
        let staged = self.staged();
        let mut all = self.indexed_open(&staged)?;
        for (id, s) in staged.iter() {
            if let Some(r) = s.kind.record(id)? {
                all.insert(r.event_id.clone(), r.into_owned());
            }
        }
        Ok(all
            .into_values()
            .filter(NotificationRecord::is_open)
            .collect())
    }

    /// Every record the open index names, by event id.
    fn indexed_open(
        &self,
        staged: &StagedMap,
    ) -> Result<BTreeMap<String, NotificationRecord>, StoreError> {
        let mut out = BTreeMap::new();
        for guard in self.inner.ks.open.iter() {
            let key = guard.key()?;
            let event_id = std::str::from_utf8(&key).map_err(|_| StoreError::Corrupt {
                key: keys::printable(&key),
                why: "open index key is not utf-8".into(),
            })?;
            match self.get_in(staged, event_id)? {
                Some(r) => {
                    out.insert(r.event_id.clone(), r);
                }
                None => tracing::warn!(event_id, "open index names a missing record"),
            }
        }
        Ok(out)
    }

    /// The event a carrier's message id belongs to, unless its key expired by `now`. A
    /// record still staged has no receipt key yet (it gets them if it is indexed open): its
    /// acceptances are looked at in the staged records (seconds of traffic) first.
    pub fn receipt_owner(
        &self,
        carrier: &str,
        message_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let now_ms = keys::unix_ms(now);
        let ttl = self.inner.receipt_ttl_ms;
        let staged = self.staged();
        let mut newest: Option<(i64, String)> = None;
        for (id, s) in staged.iter() {
            if !s.kind.may_hold(message_id) {
                continue;
            }
            let Some(r) = s.kind.record(id)? else {
                continue;
            };
            for (_, _, at) in (r.acceptances()).filter(|&(c, m, _)| c == carrier && m == message_id)
            {
                let expires_ms = keys::receipt_expiry(at, ttl);
                if !ttl::is_expired(expires_ms, now_ms)
                    && newest.as_ref().is_none_or(|(e, _)| expires_ms >= *e)
                {
                    newest = Some((expires_ms, r.event_id.clone()));
                }
            }
        }
        if let Some((_, event_id)) = newest {
            return Ok(Some(event_id));
        }
        drop(staged);
        let key = keys::receipt_key(carrier, message_id);
        let Some(v) = self.inner.ks.receipts.get(&key)? else {
            return Ok(None);
        };
        let v = keys::ReceiptValue::decode(&key, &v)?;
        Ok((!ttl::is_expired(v.expires_ms, keys::unix_ms(now))).then_some(v.event_id))
    }

    pub fn stats(&self) -> StoreStats {
        self.inner.stats.snapshot()
    }
}
