//! The debit source: one consumer-group member that hands records on in batches.
//!
//! Offsets are tracked as records are handed on and committed only as far as
//! [`Checkpoints`] allows, never on receipt. When partitions are revoked (a rebalance), the
//! records already handed on from them are waited for (at most `revoke_drain_ms`), what is
//! done is committed synchronously, and only then are they given up, so that the next owner
//! starts after what this member finished. Records of a partition revoked while their batch
//! was gathered (a revocation runs inside a poll) are dropped from the batch: the next owner
//! consumes them from the commit. The wait blocks the thread that polls the
//! consumer: run [`Source::next_batch`] on a thread of its own, not one the pipeline needs
//! to finish those records.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub use rdkafka::consumer::CommitMode;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::handover::{Handover, HandoverConfig};
use crate::{Checkpoints, KafkaConfig, KafkaError};

/// One consumed record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Broker or producer timestamp in milliseconds since the epoch, if any.
    pub timestamp_ms: Option<i64>,
    /// At or before the offset up to which the partition's previous owner, lost without
    /// handing the partition over, may have acted on its records (`handover.rs`): it may
    /// have been sent already. Always false without a handover topic.
    pub inherited: bool,
}

struct Ctx {
    topic: String,
    checkpoints: Arc<Tracker>,
    revoke_drain: Duration,
    assignment: watch::Sender<Assignment>,
    handover: Option<Arc<Handover>>,
}

/// The partitions of the topic this member holds, and how many the topic has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Held now, in order.
    pub partitions: Vec<i32>,
    /// The topic's partitions, as its metadata said at the last assignment (at least one
    /// more than the highest partition held); 0 before the first assignment.
    pub total: usize,
}

impl Assignment {
    /// The fraction of the topic's partitions held: 0 before the first assignment.
    pub fn share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.partitions.len() as f64 / self.total as f64
        }
    }
}

/// How long an assignment waits for the topic's metadata (its partition count).
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// The checkpoints, and a signal each time records are marked done.
#[derive(Default)]
struct Tracker {
    checkpoints: Mutex<Checkpoints>,
    progress: Condvar,
    stats: RevokeCounters,
    /// Partitions revoked since the source last looked: a revocation runs inside a poll,
    /// possibly while a batch is gathered that holds records of them already.
    revoked: Mutex<Vec<i32>>,
}

#[derive(Default)]
struct RevokeCounters {
    revokes: AtomicU64,
    drained: AtomicU64,
    left_behind: AtomicU64,
    commit_failures: AtomicU64,
}

/// What partition revocations did since the source subscribed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevokeStats {
    /// Revocations (each of one or more partitions).
    pub revokes: u64,
    /// Records handed on from revoked partitions that were finished while the revocation
    /// waited for them.
    pub drained: u64,
    /// Records still unfinished when a revocation stopped waiting: the next owner
    /// consumes them again.
    pub left_behind: u64,
    /// Revocations whose final commit the broker refused.
    pub commit_failures: u64,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let cp = lock(&self.checkpoints.checkpoints);
                let in_flight = cp.outstanding_in(&partitions);
                let (mut cp, waited) = self
                    .checkpoints
                    .progress
                    .wait_timeout_while(cp, self.revoke_drain, |cp| {
                        cp.outstanding_in(&partitions) > 0
                    })
                    .unwrap_or_else(|p| p.into_inner());
                let left = cp.outstanding_in(&partitions);
                let stats = &self.checkpoints.stats;
                stats.revokes.fetch_add(1, Relaxed);
                stats.drained.fetch_add((in_flight - left) as u64, Relaxed);
                stats.left_behind.fetch_add(left as u64, Relaxed);
                if left > 0 {
                    warn!(
                        in_flight,
                        left,
                        timed_out = waited.timed_out(),
                        "revoked partitions not drained; the next owner takes the rest"
                    );
                } else if in_flight > 0 {
                    info!(in_flight, "revoked partitions drained");
                }
                let positions = cp.committable();
                let mut committed = true;
                if !positions.is_empty() {
                    committed = false;
                    match commit_tpl(&self.topic, &positions) {
                        Ok(tpl) => match consumer.commit(&tpl, CommitMode::Sync) {
                            Ok(()) => {
                                cp.mark_committed(&positions);
                                committed = true;
                            }
                            Err(e) => {
                                self.checkpoints.stats.commit_failures.fetch_add(1, Relaxed);
                                warn!(error = %e, "commit before revoke failed")
                            }
                        },
                        Err(e) => warn!(error = %e, "commit before revoke failed"),
                    }
                }
                for p in &partitions {
                    cp.forget(*p);
                }
                drop(cp);
                (self.checkpoints.revoked.lock())
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(&partitions);
                if let Some(h) = &self.handover {
                    // Released only when nothing handed on is left uncommitted.
                    h.revoked(&partitions, left == 0 && committed);
                }
                self.assignment
                    .send_modify(|a| a.partitions.retain(|p| !partitions.contains(p)));
                info!(?partitions, "partitions revoked");
            }
            Rebalance::Assign(tpl) => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                if let Some(h) = &self.handover {
                    h.assigned(&partitions);
                }
                // Asked here, on the polling thread, so that the share is known as soon as
                // the partitions are: nothing is consumed until this returns.
                let total = match consumer.fetch_metadata(Some(&self.topic), METADATA_TIMEOUT) {
                    Ok(m) => m
                        .topics()
                        .iter()
                        .find(|t| t.name() == self.topic)
                        .map_or(0, |t| t.partitions().len()),
                    Err(e) => {
                        warn!(error = %e, "the topic's partition count is unknown");
                        0
                    }
                };
                self.assignment.send_modify(|a| {
                    a.partitions.extend(&partitions);
                    a.partitions.sort_unstable();
                    a.partitions.dedup();
                    let highest = a.partitions.last().map_or(0, |p| *p as usize + 1);
                    a.total = total.max(a.total).max(highest);
                });
                info!(?partitions, total, "partitions assigned");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

fn lock(m: &Mutex<Checkpoints>) -> MutexGuard<'_, Checkpoints> {
    // A panic while holding this lock cannot leave the tracker half-updated in a way that
    // matters more than stopping would; keep going with its state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn commit_tpl(
    topic: &str,
    positions: &[(i32, i64)],
) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in positions {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    Ok(tpl)
}

/// A consumer-group member of one topic.
pub struct Source {
    consumer: StreamConsumer<Ctx>,
    topic: String,
    checkpoints: Arc<Tracker>,
    assignment: watch::Receiver<Assignment>,
    handover: Option<Arc<Handover>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Joins the group and subscribes to `topic`.
    pub fn subscribe(cfg: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        Self::subscribe_with(cfg, topic, None)
    }

    /// Joins the group and subscribes to `topic`, with handover marks when `handover` is
    /// given (`handover.rs`): then a partition's records that its previous owner, lost
    /// without handing it over, may have acted on come [`Record::inherited`].
    pub fn subscribe_with(
        cfg: &KafkaConfig,
        topic: &str,
        handover: Option<HandoverConfig>,
    ) -> Result<Self, KafkaError> {
        let handover = match handover {
            Some(h) => Some(Arc::new(Handover::new(cfg, h, topic)?)),
            None => None,
        };
        let checkpoints = Arc::new(Tracker::default());
        let (assigned, assignment) = watch::channel(Assignment::default());
        let ctx = Ctx {
            topic: topic.to_owned(),
            checkpoints: checkpoints.clone(),
            revoke_drain: Duration::from_millis(cfg.revoke_drain_ms),
            assignment: assigned,
            handover: handover.clone(),
        };
        let consumer: StreamConsumer<Ctx> = cfg
            .consumer()
            .create_with_context(ctx)
            .map_err(KafkaError::Client)?;
        consumer
            .subscribe(&[topic])
            .map_err(|source| KafkaError::Subscribe {
                topic: topic.to_owned(),
                source,
            })?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            checkpoints,
            assignment,
            handover,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partitions this member holds, changed at each rebalance (once the revoked ones
    /// are drained and committed, and once the assigned ones' topic metadata is read).
    pub fn assignment(&self) -> watch::Receiver<Assignment> {
        self.assignment.clone()
    }

    /// Waits for at least one record, then takes whatever else arrives within `linger`, up to
    /// `max` records. Every returned record is tracked as outstanding.
    pub async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Record>, KafkaError> {
        let mut batch = Vec::with_capacity(max.min(1024));
        while batch.is_empty() {
            let first = self.consumer.recv().await.map_err(KafkaError::Consume)?;
            // A revocation before this batch's first record (in an earlier poll, or in the
            // one that returned it) left nothing of the batch behind.
            self.take_revoked();
            // Revocations counted so far: a record's poll that ran one is seen by the count
            // (an atomic load), without the lock of the revoked partitions.
            let mut revokes = self.checkpoints.stats.revokes.load(Relaxed);
            batch.push(owned(&first));
            drop(first);
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < max {
                match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                    Ok(Ok(m)) => {
                        let now = self.checkpoints.stats.revokes.load(Relaxed);
                        if now != revokes {
                            revokes = now;
                            self.drop_revoked(&mut batch);
                        }
                        batch.push(owned(&m));
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, "consume error inside a batch");
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.drop_revoked(&mut batch);
        }
        if let Some(h) = &self.handover {
            h.fence(&mut batch).await;
        }
        let mut cp = lock(&self.checkpoints.checkpoints);
        for r in &batch {
            cp.track(r.partition, r.offset);
        }
        Ok(batch)
    }

    fn take_revoked(&self) -> Vec<i32> {
        std::mem::take(
            &mut self
                .checkpoints
                .revoked
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Drops the gathered records of partitions revoked since they were received: given up,
    /// drained and committed without them, their next owner (this member again, maybe)
    /// consumes them from the commit.
    fn drop_revoked(&self, batch: &mut Vec<Record>) {
        let revoked = self.take_revoked();
        if revoked.is_empty() {
            return;
        }
        let before = batch.len();
        batch.retain(|r| !revoked.contains(&r.partition));
        if batch.len() < before {
            info!(
                dropped = before - batch.len(),
                ?revoked,
                "records of partitions revoked while their batch gathered are left to the next owner"
            );
        }
    }

    /// Marks records done; they become committable once every earlier record of their
    /// partition is done too.
    pub fn done(&self, records: impl IntoIterator<Item = (i32, i64)>) {
        let mut cp = lock(&self.checkpoints.checkpoints);
        for (p, o) in records {
            cp.done(p, o);
        }
        drop(cp);
        self.checkpoints.progress.notify_all();
    }

    /// What partition revocations did so far.
    pub fn revoke_stats(&self) -> RevokeStats {
        let s = &self.checkpoints.stats;
        RevokeStats {
            revokes: s.revokes.load(Relaxed),
            drained: s.drained.load(Relaxed),
            left_behind: s.left_behind.load(Relaxed),
            commit_failures: s.commit_failures.load(Relaxed),
        }
    }

    /// Records handed on and not yet done.
    pub fn outstanding(&self) -> usize {
        lock(&self.checkpoints.checkpoints).outstanding()
    }

    /// Commits every partition whose done prefix moved; returns how many partitions moved.
    pub fn commit(&self, mode: CommitMode) -> Result<usize, KafkaError> {
        let mut cp = lock(&self.checkpoints.checkpoints);
        let positions = cp.committable();
        if positions.is_empty() {
            return Ok(0);
        }
        let tpl = commit_tpl(&self.topic, &positions).map_err(KafkaError::Commit)?;
        self.consumer
            .commit(&tpl, mode)
            .map_err(KafkaError::Commit)?;
        cp.mark_committed(&positions);
        Ok(positions.len())
    }

    /// Leaves the group (after a final commit by the caller).
    pub fn unsubscribe(&self) {
        self.consumer.unsubscribe();
    }
}

fn owned<M: Message>(m: &M) -> Record {
    Record {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis(),
        inherited: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use tokio::time::Instant;

    fn produce(producer: &BaseProducer, partition: i32, n: usize, what: &str) {
        for _ in 0..n {
            let r = BaseRecord::<str, str>::to("debits")
                .partition(partition)
                .key("k")
                .payload(what);
            producer.send(r).map_err(|(e, _)| e).expect("enqueued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }

    /// A mock cluster whose topic `debits` has two partitions of ten records each, and the
    /// settings of a member of `group` on it.
    fn ten_records_in_each_of_two_partitions(
        group: &str,
    ) -> (
        MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        KafkaConfig,
    ) {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("debits", 2, 1).expect("topic");
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .expect("producer");
        produce(&producer, 0, 10, "first");
        produce(&producer, 1, 10, "first");
        let mut cfg = KafkaConfig::new(cluster.bootstrap_servers());
        cfg.group_id = group.into();
        (cluster, cfg)
    }

    /// Polls `source` until `stop`, collecting every record it hands on and finishing it at
    /// once (as a pipeline with nothing to do would), so that only the records the test
    /// holds back are ever in flight at a revocation.
    fn poll(
        source: Arc<Source>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> tokio::task::JoinHandle<Vec<Record>> {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let next = source.next_batch(100, Duration::from_millis(10));
                if let Ok(Ok(batch)) = tokio::time::timeout(Duration::from_millis(200), next).await
                {
                    source.done(batch.iter().map(|r| (r.partition, r.offset)));
                    got.extend(batch);
                }
            }
            got
        })
    }

    /// A rebalance that happens while a batch is being gathered (in one of its polls) gives
    /// partitions up whose records the batch already holds: those are not handed on, since
    /// the partition's next owner consumes them from the last commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn records_of_a_partition_revoked_while_their_batch_gathers_are_not_handed_on() {
        let (_cluster, cfg) = ten_records_in_each_of_two_partitions("straddle");

        // The first member gathers a batch for long enough that the second joins meanwhile.
        let a = Arc::new(Source::subscribe(&cfg, "debits").expect("a"));
        let gathering = {
            let a = a.clone();
            tokio::spawn(async move { a.next_batch(1_000, Duration::from_secs(15)).await })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.assignment().borrow().partitions.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the first member got no partition"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let b = Arc::new(Source::subscribe(&cfg, "debits").expect("b"));
        let b_polls = poll(b.clone(), stop.clone());
        let first = gathering.await.expect("joined").expect("a batch");
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.assignment().borrow().partitions.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the second member got no partition"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let held = a.assignment().borrow().partitions.clone();
        assert_eq!(held.len(), 1, "{held:?}");
        // Whatever the first batch holds is of the partition its member still holds.
        assert!(
            first.iter().all(|r| held.contains(&r.partition)),
            "handed on records of a partition given up meanwhile: {:?}",
            first
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.outstanding() < 10 && Instant::now() < deadline {
            if let Ok(Ok(more)) =
                tokio::time::timeout(Duration::from_secs(1), a.next_batch(100, Duration::ZERO))
                    .await
            {
                assert!(more.iter().all(|r| held.contains(&r.partition)));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let got_b = b_polls.await.expect("b");
        assert_eq!(
            got_b.len(),
            10,
            "the second member has its partition's records"
        );
        assert!(got_b.iter().all(|r| !held.contains(&r.partition)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn a_revoke_waits_for_the_records_in_flight_before_the_partitions_are_given_up() {
        let (_cluster, mut cfg) = ten_records_in_each_of_two_partitions("drain");
        cfg.revoke_drain_ms = 20_000;

        // The first member takes all twenty records and finishes only half of them.
        let a = Arc::new(Source::subscribe(&cfg, "debits").expect("a"));
        let mut taken = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while taken.len() < 20 {
            assert!(Instant::now() < deadline, "only {} taken", taken.len());
            if let Ok(Ok(batch)) =
                tokio::time::timeout(Duration::from_secs(1), a.next_batch(100, Duration::ZERO))
                    .await
            {
                taken.extend(batch);
            }
        }
        let alone = a.assignment().borrow().clone();
        assert_eq!(
            (alone.partitions, alone.total),
            (vec![0, 1], 2),
            "the only member"
        );
        assert_eq!(a.assignment().borrow().share(), 1.0);
        let (early, late): (Vec<_>, Vec<_>) = taken.iter().partition(|r| r.offset < 5);
        a.done(early.iter().map(|r| (r.partition, r.offset)));
        assert_eq!(a.commit(CommitMode::Sync).expect("commit"), 2);

        // A second member joins: the first keeps polling (the revoke runs in its poll) and
        // finishes the other half a second later, while the revoke waits.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let a_polls = poll(a.clone(), stop.clone());
        let b = Arc::new(Source::subscribe(&cfg, "debits").expect("b"));
        let b_polls = poll(b.clone(), stop.clone());
        let finish = {
            let a = a.clone();
            let late: Vec<_> = late.iter().map(|r| (r.partition, r.offset)).collect();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                a.done(late);
            })
        };

        // Both members end up with a partition; the revocation waited for the first
        // member's records in flight, which were finished a second after it began.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let assigned = |s: &Source| s.consumer.assignment().map_or(0, |a| a.count());
            if assigned(&b) > 0 && assigned(&a) > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the group did not rebalance");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        finish.await.expect("finished");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        b_polls.await.expect("b");
        a_polls.await.expect("a");
        // Each member knows its share of the topic: one partition of two.
        let (held_a, held_b) = (
            a.assignment().borrow().clone(),
            b.assignment().borrow().clone(),
        );
        for held in [&held_a, &held_b] {
            assert_eq!(held.partitions.len(), 1, "{held_a:?} {held_b:?}");
            assert_eq!(held.total, 2, "{held:?}");
            assert_eq!(held.share(), 0.5, "{held:?}");
        }
        assert_ne!(held_a.partitions, held_b.partitions);
        let stats = a.revoke_stats();
        assert!(stats.revokes >= 1, "{stats:?}");
        assert_eq!(
            stats.drained, 10,
            "every record in flight finished first: {stats:?}"
        );
        assert_eq!(stats.left_behind, 0, "{stats:?}");
    }
}
