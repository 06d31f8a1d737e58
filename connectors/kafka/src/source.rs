//! The debit source: one consumer-group member that hands records on in batches.
//!
//! Offsets are tracked as records are handed on and committed only as far as
//! [`Checkpoints`] allows, never on receipt. When partitions are revoked, what is already
//! done is committed synchronously before they are given up, and their state is dropped.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use rdkafka::consumer::CommitMode;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

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
}

struct Ctx {
    topic: String,
    checkpoints: Arc<Mutex<Checkpoints>>,
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
                let mut cp = lock(&self.checkpoints);
                let positions = cp.committable();
                if !positions.is_empty() {
                    match commit_tpl(&self.topic, &positions) {
                        Ok(tpl) => match consumer.commit(&tpl, CommitMode::Sync) {
                            Ok(()) => cp.mark_committed(&positions),
                            Err(e) => warn!(error = %e, "commit before revoke failed"),
                        },
                        Err(e) => warn!(error = %e, "commit before revoke failed"),
                    }
                }
                for p in &partitions {
                    cp.forget(*p);
                }
                info!(?partitions, "partitions revoked");
            }
            Rebalance::Assign(tpl) => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                info!(?partitions, "partitions assigned");
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
    checkpoints: Arc<Mutex<Checkpoints>>,
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
        let checkpoints = Arc::new(Mutex::new(Checkpoints::new()));
        let ctx = Ctx {
            topic: topic.to_owned(),
            checkpoints: checkpoints.clone(),
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
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits for at least one record, then takes whatever else arrives within `linger`, up to
    /// `max` records. Every returned record is tracked as outstanding.
    pub async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Record>, KafkaError> {
        let mut batch = Vec::with_capacity(max.min(1024));
        let first = self.consumer.recv().await.map_err(KafkaError::Consume)?;
        batch.push(owned(&first));
        drop(first);
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(owned(&m)),
                Ok(Err(e)) => {
                    warn!(error = %e, "consume error inside a batch");
                    break;
                }
                Err(_) => break,
            }
        }
        let mut cp = lock(&self.checkpoints);
        for r in &batch {
            cp.track(r.partition, r.offset);
        }
        Ok(batch)
    }

    /// Marks records done; they become committable once every earlier record of their
    /// partition is done too.
    pub fn done(&self, records: impl IntoIterator<Item = (i32, i64)>) {
        let mut cp = lock(&self.checkpoints);
        for (p, o) in records {
            cp.done(p, o);
        }
    }

    /// Records handed on and not yet done.
    pub fn outstanding(&self) -> usize {
        lock(&self.checkpoints).outstanding()
    }

    /// Commits every partition whose done prefix moved; returns how many partitions moved.
    pub fn commit(&self, mode: CommitMode) -> Result<usize, KafkaError> {
        let mut cp = lock(&self.checkpoints);
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
    }
}
