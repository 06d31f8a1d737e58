//! A table follower: reads a (compacted) topic as a table of key -> latest value, from the
//! beginning of every partition, and keeps following it.
//!
//! No consumer group: the topic's partitions are assigned directly and nothing is ever
//! committed, so every start reads the whole topic again (what a compacted topic is for).
//! Each record goes to a callback as `(key, value)`, `None` being a tombstone; records without
//! a key are not table entries and are skipped. The follower reports when it has read every
//! partition up to the end offsets it saw at start ([`TableFollower::wait_caught_up`]), so
//! that its owner can hold back work that needs the whole table.
//!
//! It runs on a thread of its own (librdkafka's poll blocks), independent of any async
//! runtime; dropping the [`TableFollower`] stops it. Partitions added to the topic while it
//! runs are not followed until the next start.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::KafkaConfig;

/// How long one poll blocks; also how soon a stop is noticed.
const POLL: Duration = Duration::from_millis(100);
/// Timeout of each metadata and watermark request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before asking again after a transient failure at start.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where a follower is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowState {
    /// Reading towards the end offsets seen at start.
    CatchingUp,
    /// Every partition was read up to the end offsets seen at start; later records keep
    /// coming as they are produced.
    CaughtUp,
    /// The topic cannot be read (it does not exist, or it cannot be assigned); the follower
    /// stopped. The reason, without record contents.
    Failed(String),
}

/// Errors of the follower; each variant says where it surfaces.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// From [`TableFollower::start`].
    #[error("kafka client could not be created: {0}")]
    Client(#[source] RdKafkaError),
    /// From [`TableFollower::start`].
    #[error("follower thread could not start: {0}")]
    Thread(#[source] std::io::Error),
    /// From [`TableFollower::wait_caught_up`]: the topic cannot be read.
    #[error("reading {topic} failed: {reason}")]
    Failed { topic: String, reason: String },
    /// From [`TableFollower::wait_caught_up`]: the follower ended before catching up.
    #[error("following {topic} stopped before it caught up")]
    Stopped { topic: String },
}

/// A running follower of one topic; dropping it stops the follower.
pub struct TableFollower {
    topic: String,
    state: watch::Receiver<FollowState>,
    stop: Arc<AtomicBool>,
    records: Arc<AtomicU64>,
}

impl std::fmt::Debug for TableFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableFollower")
            .field("topic", &self.topic)
            .field("state", &*self.state.borrow())
            .field("records", &self.records_read())
            .finish()
    }
}

impl TableFollower {
    /// Starts following `topic` from the beginning of every partition; `on_record` gets
    /// each keyed record, in offset order within a partition, on the follower's thread.
    pub fn start<F>(cfg: &KafkaConfig, topic: &str, on_record: F) -> Result<Self, FollowError>
    where
        F: FnMut(Vec<u8>, Option<Vec<u8>>) + Send + 'static,
    {
        let mut client = cfg.consumer();
        // A group of its own that never joins (assign only) and never commits.
        client
            .set("group.id", format!("{}-table-follower", cfg.group_id))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true");
        let consumer: BaseConsumer = client.create().map_err(FollowError::Client)?;
        let (tx, state) = watch::channel(FollowState::CatchingUp);
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(AtomicU64::new(0));
        let run = Run {
            consumer,
            topic: topic.to_owned(),
            stop: stop.clone(),
            records: records.clone(),
            state: tx,
        };
        std::thread::Builder::new()
            .name("table-follower".to_owned())
            .spawn(move || run.run(on_record))
            .map_err(FollowError::Thread)?;
        Ok(TableFollower {
            topic: topic.to_owned(),
            state,
            stop,
            records,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether every partition was read up to the end offsets seen at start.
    pub fn caught_up(&self) -> bool {
        *self.state.borrow() == FollowState::CaughtUp
    }

    pub fn state(&self) -> FollowState {
        self.state.borrow().clone()
    }

    /// Changes of [`FollowState`], for owners that want to watch them.
    pub fn watch(&self) -> watch::Receiver<FollowState> {
        self.state.clone()
    }

    /// Records handed to the callback so far (tombstones included).
    pub fn records_read(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Waits until the follower has caught up; an error when it failed or stopped first.
    pub async fn wait_caught_up(&self) -> Result<(), FollowError> {
        let mut rx = self.state.clone();
        let outcome = match rx.wait_for(|s| *s != FollowState::CatchingUp).await {
            Ok(s) => s.clone(),
            Err(_) => FollowState::Failed(String::new()),
        };
        match outcome {
            FollowState::CaughtUp => Ok(()),
            FollowState::Failed(reason) if !reason.is_empty() => Err(FollowError::Failed {
                topic: self.topic.clone(),
                reason,
            }),
            _ => Err(FollowError::Stopped {
                topic: self.topic.clone(),
            }),
        }
    }
}

impl Drop for TableFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The follower's thread.
struct Run {
    consumer: BaseConsumer,
    topic: String,
    stop: Arc<AtomicBool>,
    records: Arc<AtomicU64>,
    state: watch::Sender<FollowState>,
}

/// Why the end offsets could not be read.
enum StartProblem {
    /// Worth asking again (broker unreachable, leader not elected yet).
    Transient(String),
    /// Asking again will not help.
    Fatal(String),
}

impl Run {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(self, mut on_record: impl FnMut(Vec<u8>, Option<Vec<u8>>)) {
        let topic = self.topic.as_str();
        let ends = loop {
            if self.stopped() {
                return;
            }
            match self.end_offsets() {
                Ok(ends) => break ends,
                Err(StartProblem::Fatal(reason)) => {
                    warn!(topic, %reason, "table topic cannot be read");
                    self.state.send_replace(FollowState::Failed(reason));
                    return;
                }
                Err(StartProblem::Transient(reason)) => {
                    warn!(topic, %reason, "table topic end offsets not known yet; asking again");
                    self.pause(RETRY_AFTER);
                }
            }
        };
        let mut tpl = TopicPartitionList::new();
        for p in ends.keys() {
            if let Err(e) = tpl.add_partition_offset(topic, *p, Offset::Beginning) {
                self.state.send_replace(FollowState::Failed(e.to_string()));
                return;
            }
        }
        if let Err(e) = self.consumer.assign(&tpl) {
            self.state
                .send_replace(FollowState::Failed(format!("assign: {e}")));
            return;
        }
        // Partitions still to be read up to their end offset at start (exclusive).
        let mut pending: BTreeMap<i32, i64> = ends
            .into_iter()
            .filter_map(|(p, (low, high))| (high > low).then_some((p, high)))
            .collect();
        let mut caught_up = false;
        let mut keyless = 0u64;
        while !self.stopped() {
            if !caught_up && pending.is_empty() {
                caught_up = true;
                let records = self.records.load(Ordering::Relaxed);
                info!(
                    topic,
                    records, "table topic read up to its end; following it"
                );
                self.state.send_replace(FollowState::CaughtUp);
            }
            match self.consumer.poll(POLL) {
                None => {}
                Some(Ok(m)) => {
                    let (p, offset) = (m.partition(), m.offset());
                    if pending.get(&p).is_some_and(|end| offset + 1 >= *end) {
                        pending.remove(&p);
                    }
                    match m.key() {
                        Some(key) => {
                            self.records.fetch_add(1, Ordering::Relaxed);
                            on_record(key.to_vec(), m.payload().map(<[u8]>::to_vec));
                        }
                        None => {
                            keyless += 1;
                            if keyless.is_power_of_two() {
                                warn!(
                                    topic,
                                    partition = p,
                                    offset,
                                    keyless,
                                    "record without a key skipped"
                                );
                            }
                        }
                    }
                }
                Some(Err(RdKafkaError::PartitionEOF(p))) => {
                    pending.remove(&p);
                }
                Some(Err(e)) => warn!(topic, error = %e, "table topic consume error"),
            }
        }
    }

    /// Each partition's (low, high) watermark at start.
    fn end_offsets(&self) -> Result<BTreeMap<i32, (i64, i64)>, StartProblem> {
        let md = self
            .consumer
            .fetch_metadata(Some(&self.topic), REQUEST_TIMEOUT)
            .map_err(|e| StartProblem::Transient(format!("metadata: {e}")))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == self.topic) else {
            return Err(StartProblem::Transient(
                "metadata without the topic".to_owned(),
            ));
        };
        match t.error() {
            None => {}
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                return Err(StartProblem::Fatal("the topic does not exist".to_owned()))
            }
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) => {
                return Err(StartProblem::Fatal(
                    "not authorised to read the topic".to_owned(),
                ))
            }
            Some(e) => {
                return Err(StartProblem::Transient(format!(
                    "metadata: {}",
                    RDKafkaErrorCode::from(e)
                )))
            }
        }
        if t.partitions().is_empty() {
            return Err(StartProblem::Transient(
                "the topic has no partitions yet".to_owned(),
            ));
        }
        let mut ends = BTreeMap::new();
        for p in t.partitions() {
            let w = self
                .consumer
                .fetch_watermarks(&self.topic, p.id(), REQUEST_TIMEOUT)
                .map_err(|e| StartProblem::Transient(format!("partition {}: {e}", p.id())))?;
            ends.insert(p.id(), w);
        }
        Ok(ends)
    }

    /// Sleeps `d` on this (dedicated) thread, waking early on a stop.
    fn pause(&self, d: Duration) {
        let step = POLL;
        let mut left = d;
        while !left.is_zero() && !self.stopped() {
            let s = step.min(left);
            // The follower owns this thread; polling serves librdkafka's events meanwhile.
            let _ = self.consumer.poll(s);
            left = left.saturating_sub(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::sync::Mutex;

    type Seen = Arc<Mutex<Vec<(Vec<u8>, Option<Vec<u8>>)>>>;

    fn produce(producer: &BaseProducer, topic: &str, key: &str, value: Option<&str>) {
        let mut r = BaseRecord::<str, str>::to(topic).key(key);
        if let Some(v) = value {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).expect("enqueued");
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }

    fn follow(cfg: &KafkaConfig, topic: &str) -> (TableFollower, Seen) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let f = TableFollower::start(cfg, topic, move |k, v| {
            s.lock().expect("lock").push((k, v));
        })
        .expect("follower starts");
        (f, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_the_table_to_its_end_then_follows_new_records() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("prefs", 3, 1).expect("topic");
        let cfg = KafkaConfig::new(cluster.bootstrap_servers());
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .expect("producer");
        produce(&producer, "prefs", "a", Some("1"));
        produce(&producer, "prefs", "b", Some("2"));
        produce(&producer, "prefs", "a", None);

        let (f, seen) = follow(&cfg, "prefs");
        tokio::time::timeout(Duration::from_secs(30), f.wait_caught_up())
            .await
            .expect("caught up in time")
            .expect("caught up");
        assert!(f.caught_up());
        {
            let seen = seen.lock().expect("lock");
            assert_eq!(seen.len(), 3, "every record before the end: {seen:?}");
            let a: Vec<_> = seen.iter().filter(|(k, _)| k == b"a").collect();
            assert_eq!(a[0].1.as_deref(), Some(&b"1"[..]));
            assert_eq!(a[1].1, None, "the tombstone comes as None, after the value");
        }
        assert_eq!(f.records_read(), 3);

        produce(&producer, "prefs", "c", Some("3"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !seen.lock().expect("lock").iter().any(|(k, _)| k == b"c") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "new record followed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_topic_is_caught_up_at_once_and_a_missing_one_fails() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("empty", 2, 1).expect("topic");
        let cfg = KafkaConfig::new(cluster.bootstrap_servers());
        let (f, _) = follow(&cfg, "empty");
        tokio::time::timeout(Duration::from_secs(30), f.wait_caught_up())
            .await
            .expect("caught up in time")
            .expect("caught up");

        let (f, _) = follow(&cfg, "missing");
        let r = tokio::time::timeout(Duration::from_secs(30), f.wait_caught_up())
            .await
            .expect("answered in time");
        assert!(
            matches!(r, Err(FollowError::Failed { .. })),
            "{r:?} / {:?}",
            f.state()
        );
    }
}
