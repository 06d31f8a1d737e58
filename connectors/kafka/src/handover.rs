//! Handover marks: how far the owner of a partition may have gone past its last commit, for
//! the next owner to know when the owner is lost without handing the partition over.
//!
//! A member that is killed (or whose machine is lost) gives its partitions up without the
//! drain and commit of a rebalance: after the session timeout the group assigns them to
//! another member, which consumes from the last commit, and the records the lost member had
//! consumed past it may have been sent already. So before the source hands on a record, a
//! mark on the handover topic (its partitions match the consumed topic's, one for one) says
//! that this owner may act on its partition up to an offset past it: a lease of
//! `lease_records`, extended ahead of need once half of it is used, so that consuming does
//! not wait for the broker but at the first batch of an assignment. A member assigned a
//! partition reads the partition's last mark before it consumes anything: the records up to
//! the mark's offset, if the mark is another owner's lease, are handed on as
//! [`crate::Record::inherited`]. A member that gives a partition up drained and committed
//! writes a release mark: nothing past its commit is its own. A mark carries on what its
//! owner inherited, so that a second loss before the inherited records are committed does
//! not forget them.
//!
//! An owner's name is the name of what keeps its own claims (the engine's store, say):
//! records up to a mark of one's own are not inherited, since one's own claims answer for
//! them.
//!
//! The record: key the partition number in decimal, value JSON
//! `{"v":1,"owner":"…","partition":3,"upto":1234,"inherited":-1,"released":false}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::{KafkaConfig, KafkaError, Record};

/// Version of the mark's JSON.
const VERSION: u8 = 1;
/// How long reading a partition's last mark may take before it is tried again, and how
/// long it is tried in all before the partition's every record is taken as inherited.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const READ_GIVE_UP: Duration = Duration::from_secs(30);

/// `[handover]` of a source: where marks go, whose they are, how far ahead they reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverConfig {
    /// The handover topic: at least as many partitions as the consumed topic.
    pub topic: String,
    /// The owner's name, the same across its restarts and no other member's.
    pub owner: String,
    /// How many records past the highest handed on a lease reaches (at least 2). After a
    /// loss the next owner takes up to this many records per partition as inherited that
    /// the lost one never consumed.
    pub lease_records: i64,
}

/// One mark, as written on the handover topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub v: u8,
    pub owner: String,
    pub partition: i32,
    /// A lease: the highest offset its owner may act on. A release: -1.
    pub upto: i64,
    /// The highest offset its owner inherited (-1: none).
    pub inherited: i64,
    /// Written by an owner that gave the partition up drained and committed.
    pub released: bool,
}

/// Longest owner name a mark may carry (a store's name is a UUID, 36 characters).
const MAX_OWNER: usize = 256;

/// Reads a mark from a record's value: JSON as above, version 1, with an owner of 1 to 256
/// bytes, a partition of at least 0, offsets of at least -1, and a release without a lease.
pub fn decode(value: &[u8]) -> Result<Mark, String> {
    let m: Mark = serde_json::from_slice(value).map_err(|e| format!("not a mark: {e}"))?;
    if m.v != VERSION {
        return Err(format!("mark version {} (this reads {VERSION})", m.v));
    }
    if m.owner.is_empty() || m.owner.len() > MAX_OWNER {
        return Err(format!("an owner of {} bytes", m.owner.len()));
    }
    if m.partition < 0 || m.upto < -1 || m.inherited < -1 || (m.released && m.upto != -1) {
        return Err(format!(
            "partition {}, upto {}, inherited {}, released {}",
            m.partition, m.upto, m.inherited, m.released
        ));
    }
    Ok(m)
}

/// A mark's record value.
pub fn encode(mark: &Mark) -> Vec<u8> {
    // A struct of numbers, a bool and a string: serializing it cannot fail.
    serde_json::to_vec(mark).unwrap_or_default()
}

impl Mark {
    /// The highest offset that `owner`, taking the partition over after this mark, must take
    /// as possibly acted on by someone else (-1: none).
    pub fn inherited_by(&self, owner: &str) -> i64 {
        if self.owner == owner || self.released {
            self.inherited
        } else {
            self.upto.max(self.inherited)
        }
    }
}

/// What a held partition's fence needs before records up to an offset may be handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extend {
    /// Covered, with half a lease or more to go (or a longer lease already on its way).
    No,
    /// Covered, but half the lease is used: write a lease up to this offset without
    /// waiting for it.
    Ahead(i64),
    /// Not covered: write a lease up to this offset and wait until the broker has it.
    Now(i64),
}

/// One held partition: what it inherited and how far this owner's delivered marks reach.
/// Plain state, tested alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// Which assignment of the partition this is (a delivery for an earlier one is stale).
    pub generation: u64,
    /// Records up to this offset are inherited.
    pub inherited: i64,
    /// The highest offset a delivered lease of this owner covers (-1: none yet).
    pub granted: i64,
    /// The highest offset a lease was written for, delivered or not.
    pub asked: i64,
}

impl Fence {
    pub fn new(generation: u64, inherited: i64) -> Self {
        Fence {
            generation,
            inherited,
            granted: -1,
            asked: -1,
        }
    }

    /// What handing on records up to `highest` needs, with leases of `lease` records;
    /// counts the lease it asks for as written.
    pub fn extend(&mut self, highest: i64, lease: i64) -> Extend {
        let upto = highest.saturating_add(lease);
        if highest > self.granted {
            self.asked = self.asked.max(upto);
            Extend::Now(upto)
        } else if highest > self.granted - lease / 2 && self.asked <= self.granted {
            self.asked = upto;
            Extend::Ahead(upto)
        } else {
            Extend::No
        }
    }

    /// What this owner's marks carry on as inherited: what it inherited, or, when it could
    /// not know (its partition's last mark was unreadable, and every record was flagged),
    /// as far as its own leases reached, so that the unknown does not travel on forever.
    pub fn carried(&self) -> i64 {
        if self.inherited == i64::MAX {
            self.asked.max(self.granted)
        } else {
            self.inherited
        }
    }

    /// A lease up to `upto` was delivered.
    pub fn delivered(&mut self, upto: i64) {
        self.granted = self.granted.max(upto);
        self.asked = self.asked.max(self.granted);
    }

    /// A lease up to `upto` could not be written: a later need asks again.
    pub fn failed(&mut self, upto: i64) {
        if self.asked == upto {
            self.asked = self.granted;
        }
    }
}

#[derive(Default)]
struct Fences {
    generation: u64,
    held: HashMap<i32, Fence>,
}

/// The handover marks of one source: read at each assignment, written before records are
/// handed on and when partitions are given up.
pub(crate) struct Handover {
    cfg: HandoverConfig,
    producer: FutureProducer,
    reader: BaseConsumer,
    fences: Arc<Mutex<Fences>>,
}

fn lock(m: &Mutex<Fences>) -> MutexGuard<'_, Fences> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handover {
    pub(crate) fn new(
        kafka: &KafkaConfig,
        cfg: HandoverConfig,
        consumed: &str,
    ) -> Result<Self, KafkaError> {
        let mut producer = kafka.producer();
        // One mark at a time, each waited for: nothing to gather.
        producer.set("linger.ms", "0");
        let producer: FutureProducer = producer.create().map_err(KafkaError::Client)?;
        let mut reader = ClientConfig::new();
        reader
            .set("bootstrap.servers", &kafka.brokers)
            // Partitions are assigned, never subscribed, and nothing is committed; the client
            // wants a group all the same.
            .set("group.id", format!("{}.handover-reader", kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10");
        for (k, v) in &kafka.properties {
            reader.set(k, v);
        }
        let reader: BaseConsumer = reader.create().map_err(KafkaError::Client)?;
        let handover = Handover {
            cfg,
            producer,
            reader,
            fences: Arc::default(),
        };
        handover.check_partitions(consumed)?;
        Ok(handover)
    }

    /// Refuses a handover topic with fewer partitions than the consumed topic (or none).
    fn check_partitions(&self, consumed: &str) -> Result<(), KafkaError> {
        let count = |topic: &str| -> Result<usize, KafkaError> {
            let m = self
                .reader
                .fetch_metadata(Some(topic), READ_TIMEOUT)
                .map_err(|e| KafkaError::Handover(format!("metadata of {topic}: {e}")))?;
            Ok(m.topics()
                .iter()
                .find(|t| t.name() == topic)
                .map_or(0, |t| t.partitions().len()))
        };
        let (marks, records) = (count(&self.cfg.topic)?, count(consumed)?);
        if marks == 0 || marks < records {
            return Err(KafkaError::Handover(format!(
                "the handover topic {} has {marks} partitions, fewer than the {records} of {consumed}",
                self.cfg.topic
            )));
        }
        Ok(())
    }

    /// Newly assigned partitions: reads each one's last mark (on the polling thread, before
    /// anything of them is consumed).
    pub(crate) fn assigned(&self, partitions: &[i32]) {
        let marks = self.last_marks(partitions);
        let mut f = lock(&self.fences);
        for &p in partitions {
            let inherited = match &marks {
                Ok(marks) => match marks.get(&p).and_then(Option::as_ref) {
                    None => -1,
                    Some(mark) => {
                        let inherited = mark.inherited_by(&self.cfg.owner);
                        let lost = !mark.released && mark.owner != self.cfg.owner;
                        if lost && inherited >= 0 {
                            info!(
                                partition = p,
                                previous_owner = %mark.owner,
                                inherited,
                                "partition taken over from an owner that did not hand it over: \
                                 records up to this offset may have been sent and go flagged"
                            );
                        }
                        inherited
                    }
                },
                Err(e) => {
                    error!(
                        partition = p,
                        error = %e,
                        "the partition's last handover mark cannot be read: every record of \
                         it is taken as possibly sent"
                    );
                    i64::MAX
                }
            };
            f.generation += 1;
            let fence = Fence::new(f.generation, inherited);
            f.held.insert(p, fence);
        }
    }

    /// Partitions given up; `released` those drained and committed, whose release mark says
    /// that nothing past the commit is this owner's.
    pub(crate) fn revoked(&self, partitions: &[i32], released: bool) {
        let fences: Vec<(i32, Fence)> = {
            let mut f = lock(&self.fences);
            (partitions.iter())
                .filter_map(|p| f.held.remove(p).map(|fence| (*p, fence)))
                .collect()
        };
        if !released {
            return;
        }
        for (p, fence) in fences {
            let mark = self.mark(p, -1, fence.carried(), true);
            let sent = futures::executor::block_on(self.enqueue(&mark));
            if let Err(e) = sent {
                warn!(partition = p, error = %e, "release mark not written: the next owner takes the lease as possibly used");
            }
        }
    }

    fn mark(&self, partition: i32, upto: i64, inherited: i64, released: bool) -> Mark {
        Mark {
            v: VERSION,
            owner: self.cfg.owner.clone(),
            partition,
            upto,
            inherited,
            released,
        }
    }

    /// Enqueues a mark (in order with every mark enqueued before it) and returns the wait
    /// for its delivery.
    fn enqueue(
        &self,
        mark: &Mark,
    ) -> impl std::future::Future<Output = Result<(), KafkaError>> + Send + 'static {
        let key = mark.partition.to_string();
        let value = encode(mark);
        let record = FutureRecord::to(&self.cfg.topic)
            .partition(mark.partition)
            .key(&key)
            .payload(&value);
        let topic = self.cfg.topic.clone();
        let enqueued = self.producer.send_result(record).map_err(|(e, _)| e);
        async move {
            let failed = |source| KafkaError::Publish { topic, source };
            match enqueued {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(failed(e)),
                    Err(_canceled) => Err(failed(rdkafka::error::KafkaError::Canceled)),
                },
                Err(e) => Err(failed(e)),
            }
        }
    }

    /// Before a batch is handed on: flags its inherited records, and writes the leases it
    /// needs, waiting for those that must cover it.
    pub(crate) async fn fence(self: &Arc<Self>, batch: &mut [Record]) {
        let mut highest: HashMap<i32, i64> = HashMap::new();
        for r in batch.iter() {
            let h = highest.entry(r.partition).or_insert(r.offset);
            *h = (*h).max(r.offset);
        }
        let mut now = Vec::new();
        {
            let mut f = lock(&self.fences);
            let generation = f.generation;
            for r in batch.iter_mut() {
                let fence = f
                    .held
                    .entry(r.partition)
                    .or_insert_with(|| Fence::new(generation, i64::MAX));
                r.inherited = r.offset <= fence.inherited;
            }
            for (&p, &h) in &highest {
                let Some(fence) = f.held.get_mut(&p) else {
                    continue;
                };
                let (generation, inherited) = (fence.generation, fence.carried());
                match fence.extend(h, self.cfg.lease_records) {
                    Extend::No => {}
                    Extend::Now(upto) => {
                        now.push((generation, self.mark(p, upto, inherited, false)))
                    }
                    Extend::Ahead(upto) => {
                        let mark = self.mark(p, upto, inherited, false);
                        // Enqueued now, so that a release written at a revocation later
                        // comes after it; its delivery is not waited for.
                        let delivered = self.enqueue(&mark);
                        let me = Arc::clone(self);
                        tokio::spawn(async move {
                            let written = delivered.await;
                            me.settle(generation, &mark, written);
                        });
                    }
                }
            }
        }
        // Nothing of a partition may be handed on before a lease that covers it is written.
        let waits = now.into_iter().map(|(generation, mark)| async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                let written = self.enqueue(&mark).await;
                let ok = written.is_ok();
                self.settle(generation, &mark, written);
                if ok {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        join_all(waits).await;
    }

    fn settle(&self, generation: u64, mark: &Mark, written: Result<(), KafkaError>) {
        let mut f = lock(&self.fences);
        let Some(fence) = f
            .held
            .get_mut(&mark.partition)
            .filter(|f| f.generation == generation)
        else {
            return;
        };
        match written {
            Ok(()) => fence.delivered(mark.upto),
            Err(e) => {
                warn!(partition = mark.partition, error = %e, "handover lease not written; trying again");
                fence.failed(mark.upto);
            }
        }
    }

    /// The partitions' last marks, tried again until [`READ_GIVE_UP`].
    fn last_marks(&self, partitions: &[i32]) -> Result<HashMap<i32, Option<Mark>>, String> {
        let started = std::time::SystemTime::now();
        loop {
            match self.read_last(partitions) {
                Ok(m) => return Ok(m),
                Err(e) if started.elapsed().unwrap_or_default() >= READ_GIVE_UP => return Err(e),
                Err(e) => warn!(error = %e, "reading the last handover marks; trying again"),
            }
        }
    }

    /// Each partition's last mark (`None`: the partition has none), read together.
    fn read_last(&self, partitions: &[i32]) -> Result<HashMap<i32, Option<Mark>>, String> {
        let topic = &self.cfg.topic;
        let mut marks = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            let (low, high) = (self.reader)
                .fetch_watermarks(topic, p, READ_TIMEOUT)
                .map_err(|e| format!("partition {p}: {e}"))?;
            if high <= low {
                marks.insert(p, None);
            } else {
                tpl.add_partition_offset(topic, p, Offset::Offset(high - 1))
                    .map_err(|e| e.to_string())?;
            }
        }
        let wanted = tpl.count();
        if wanted == 0 {
            return Ok(marks);
        }
        let last: HashMap<i32, i64> = (tpl.elements().iter())
            .map(|e| (e.partition(), e.offset().to_raw().unwrap_or_default()))
            .collect();
        self.reader.assign(&tpl).map_err(|e| e.to_string())?;
        let started = std::time::SystemTime::now();
        let mut read = 0;
        let result = loop {
            if read == wanted {
                break Ok(marks);
            }
            let left = READ_TIMEOUT.saturating_sub(started.elapsed().unwrap_or_default());
            if left.is_zero() {
                break Err(format!("{} of {wanted} last marks read in time", read));
            }
            match self.reader.poll(left) {
                Some(Ok(m)) if last.get(&m.partition()) == Some(&m.offset()) => {
                    let mark = decode(m.payload().unwrap_or_default()).map_err(|e| {
                        format!("partition {} offset {}: {e}", m.partition(), m.offset())
                    });
                    match mark {
                        Ok(mark) => {
                            if marks.insert(m.partition(), Some(mark)).is_none() {
                                read += 1;
                            }
                        }
                        Err(e) => break Err(e),
                    }
                }
                Some(Ok(_)) | None => {}
                Some(Err(e)) => break Err(e.to_string()),
            }
        };
        let _ = self.reader.unassign();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::CommitMode;
    use crate::Source;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use tokio::time::Instant;

    fn produce(cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>, n: usize) {
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .expect("producer");
        for _ in 0..n {
            let r = BaseRecord::<str, str>::to("debits")
                .partition(0)
                .key("k")
                .payload("d");
            producer.send(r).map_err(|(e, _)| e).expect("enqueued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }

    /// Takes `n` records from `source`, in batches of at most five.
    async fn take(source: &Source, n: usize) -> Vec<Record> {
        let mut taken = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while taken.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} taken",
                taken.len()
            );
            let next = source.next_batch((n - taken.len()).min(5), Duration::ZERO);
            if let Ok(Ok(batch)) = tokio::time::timeout(Duration::from_secs(1), next).await {
                taken.extend(batch);
            }
        }
        taken
    }

    fn member(cfg: &KafkaConfig, owner: &str) -> Source {
        let handover = HandoverConfig {
            topic: "handover".into(),
            owner: owner.into(),
            lease_records: 4,
        };
        Source::subscribe_with(cfg, "debits", Some(handover)).expect("member")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn the_next_owner_flags_what_a_lost_owner_may_have_sent_and_nothing_after_a_release() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("debits", 1, 1).expect("topic");
        cluster.create_topic("handover", 1, 1).expect("topic");
        produce(&cluster, 30);
        let mut cfg = KafkaConfig::new(cluster.bootstrap_servers());
        cfg.group_id = "handover".into();
        cfg.revoke_drain_ms = 0;

        // The first owner takes ten records, finishes none and is lost.
        let a = member(&cfg, "a");
        let first = take(&a, 10).await;
        assert!(first.iter().all(|r| !r.inherited), "nothing before it");
        drop(a);

        // The next one takes them all again: those up to the lost owner's lease (the ten it
        // took, and at most a lease of four beyond) come inherited, the rest do not.
        let b = member(&cfg, "b");
        let all = take(&b, 30).await;
        let offsets: Vec<i64> = all.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..30).collect::<Vec<_>>());
        let inherited = all.iter().filter(|r| r.inherited).count();
        assert!((10..=14).contains(&inherited), "{inherited} inherited");
        assert!(all[..inherited].iter().all(|r| r.inherited), "a prefix");
        // It finishes and commits them, and hands the partition over: a release.
        b.done(all.iter().map(|r| (r.partition, r.offset)));
        assert_eq!(b.commit(CommitMode::Sync).expect("commit"), 1);
        drop(b);

        // After a release, nothing new is inherited.
        produce(&cluster, 5);
        let c = member(&cfg, "c");
        let after = take(&c, 5).await;
        assert_eq!(
            after.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [30, 31, 32, 33, 34]
        );
        assert!(after.iter().all(|r| !r.inherited), "{after:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_mark_of_a_partition_is_read_back() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("debits", 2, 1).expect("topic");
        cluster.create_topic("handover", 2, 1).expect("topic");
        let cfg = KafkaConfig::new(cluster.bootstrap_servers());
        let h = Handover::new(
            &cfg,
            HandoverConfig {
                topic: "handover".into(),
                owner: "a".into(),
                lease_records: 4,
            },
            "debits",
        )
        .expect("handover");
        let none = HashMap::from([(0, None), (1, None)]);
        assert_eq!(h.read_last(&[0, 1]), Ok(none));
        h.enqueue(&h.mark(1, 10, -1, false)).await.expect("written");
        h.enqueue(&h.mark(1, 20, 3, false)).await.expect("written");
        h.enqueue(&h.mark(0, -1, 4, true)).await.expect("written");
        let both = HashMap::from([
            (0, Some(h.mark(0, -1, 4, true))),
            (1, Some(h.mark(1, 20, 3, false))),
        ]);
        assert_eq!(h.read_last(&[0, 1]), Ok(both));
        let one = HashMap::from([(1, Some(h.mark(1, 20, 3, false)))]);
        assert_eq!(h.read_last(&[1]), Ok(one));
    }

    #[test]
    fn a_handover_topic_with_fewer_partitions_than_the_debits_is_refused() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("debits", 3, 1).expect("topic");
        cluster.create_topic("handover", 2, 1).expect("topic");
        let cfg = KafkaConfig::new(cluster.bootstrap_servers());
        let handover = HandoverConfig {
            topic: "handover".into(),
            owner: "a".into(),
            lease_records: 4,
        };
        let err = Source::subscribe_with(&cfg, "debits", Some(handover)).expect_err("refused");
        assert!(
            err.to_string().contains("2 partitions, fewer than the 3"),
            "{err}"
        );
    }

    fn mark(owner: &str, upto: i64, inherited: i64, released: bool) -> Mark {
        Mark {
            v: VERSION,
            owner: owner.into(),
            partition: 0,
            upto,
            inherited,
            released,
        }
    }

    #[test]
    fn another_owner_s_lease_is_inherited_with_what_it_inherited_and_a_release_is_not() {
        assert_eq!(mark("a", 500, -1, false).inherited_by("b"), 500);
        assert_eq!(mark("a", 500, 900, false).inherited_by("b"), 900);
        // One's own lease: one's own claims answer for it; what it inherited stays.
        assert_eq!(mark("b", 500, -1, false).inherited_by("b"), -1);
        assert_eq!(mark("b", 500, 300, false).inherited_by("b"), 300);
        // Released: drained and committed, nothing past the commit was its owner's.
        assert_eq!(mark("a", -1, -1, true).inherited_by("b"), -1);
        assert_eq!(mark("a", -1, 700, true).inherited_by("b"), 700);
    }

    #[test]
    fn a_mark_reads_back_as_written_and_what_is_not_one_is_refused() {
        let m = mark("pigeon-0", 1234, -1, false);
        let json = encode(&m);
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"v":1,"owner":"pigeon-0","partition":0,"upto":1234,"inherited":-1,"released":false}"#
        );
        assert_eq!(decode(&json), Ok(m));
        let release = mark("a", -1, 7, true);
        assert_eq!(decode(&encode(&release)), Ok(release));
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"v":2,"owner":"a","partition":0,"upto":1,"inherited":-1,"released":false}"#,
            br#"{"v":1,"owner":"","partition":0,"upto":1,"inherited":-1,"released":false}"#,
            br#"{"v":1,"owner":"a","partition":-1,"upto":1,"inherited":-1,"released":false}"#,
            br#"{"v":1,"owner":"a","partition":0,"upto":-2,"inherited":-1,"released":false}"#,
            br#"{"v":1,"owner":"a","partition":0,"upto":5,"inherited":-1,"released":true}"#,
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = mark(&"o".repeat(257), 1, -1, false);
        assert!(decode(&encode(&long)).is_err());
    }

    #[test]
    fn the_first_batch_waits_for_a_lease_and_later_ones_extend_it_ahead() {
        let mut f = Fence::new(1, -1);
        // Nothing granted: the first batch waits.
        assert_eq!(f.extend(9, 100), Extend::Now(109));
        // Until it is delivered, a second batch beyond the grant waits too.
        assert_eq!(f.extend(20, 100), Extend::Now(120));
        f.delivered(109);
        f.delivered(120);
        assert_eq!(f.granted, 120);
        // Covered with more than half a lease to go: nothing.
        assert_eq!(f.extend(60, 100), Extend::No);
        // Half used: extended ahead, once.
        assert_eq!(f.extend(71, 100), Extend::Ahead(171));
        assert_eq!(f.extend(80, 100), Extend::No);
        f.delivered(171);
        assert_eq!(f.extend(121, 100), Extend::No);
        assert_eq!(f.extend(122, 100), Extend::Ahead(222));
        // A lease that failed is asked again by the next need.
        f.failed(222);
        assert_eq!(f.extend(123, 100), Extend::Ahead(223));
        // Past the grant while an extension is on its way: wait for one that covers it.
        assert_eq!(f.extend(180, 100), Extend::Now(280));
        // What it inherited is carried on as it is.
        assert_eq!((f.inherited, f.carried()), (-1, -1));
    }

    #[test]
    fn an_unknown_inheritance_is_carried_on_only_as_far_as_the_owner_s_own_leases() {
        let mut f = Fence::new(1, i64::MAX);
        assert_eq!(f.carried(), -1, "nothing leased yet");
        assert_eq!(f.extend(9, 100), Extend::Now(109));
        assert_eq!(f.carried(), 109, "asked for");
        f.delivered(109);
        assert_eq!(f.carried(), 109);
        let known = Fence::new(1, 55);
        assert_eq!(known.carried(), 55);
    }
}
