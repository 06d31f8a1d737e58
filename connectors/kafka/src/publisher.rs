//! An idempotent producer for status events and dead-letter records.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::{KafkaConfig, KafkaError};

/// A record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: &'static str,
    pub value: Vec<u8>,
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<Header>,
}

/// Publishes to one cluster; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = cfg.producer().create().map_err(KafkaError::Client)?;
        Ok(Self { producer })
    }

    /// Enqueues one record without waiting; the returned future resolves when the broker
    /// acknowledged it. Records enqueued in order are published in order per partition.
    /// A full local queue is [`Enqueue::Full`]: wait a little and enqueue again.
    pub fn enqueue(&self, topic: &str, r: &Outgoing) -> Result<Delivery, Enqueue> {
        match self.producer.send_result(record(topic, r)) {
            Ok(f) => Ok(Delivery {
                inner: f,
                topic: topic.to_owned(),
            }),
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                Err(Enqueue::Full)
            }
            Err((source, _)) => Err(Enqueue::Failed(KafkaError::Publish {
                topic: topic.to_owned(),
                source,
            })),
        }
    }

    /// Publishes a batch pipelined and waits until the broker acknowledged each record.
    /// Returns one result per record, in order.
    pub async fn publish(&self, topic: &str, batch: &[Outgoing]) -> Vec<Result<(), KafkaError>> {
        // Enqueued when first polled, in order; a full local queue waits up to the timeout.
        let futures = batch.iter().map(|r| {
            self.producer
                .send(record(topic, r), Duration::from_secs(30))
        });
        join_all(futures)
            .await
            .into_iter()
            .map(|r| {
                r.map(|_| ()).map_err(|(source, _)| KafkaError::Publish {
                    topic: topic.to_owned(),
                    source,
                })
            })
            .collect()
    }

    /// Waits until everything enqueued has been acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|source| KafkaError::Publish {
                topic: String::new(),
                source,
            })
    }
}

fn record<'a>(topic: &'a str, r: &'a Outgoing) -> FutureRecord<'a, Vec<u8>, Vec<u8>> {
    let mut rec = FutureRecord::to(topic).payload(&r.payload);
    if let Some(k) = &r.key {
        rec = rec.key(k);
    }
    if !r.headers.is_empty() {
        let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
        for x in &r.headers {
            h = h.insert(KHeader {
                key: x.key,
                value: Some(&x.value),
            });
        }
        rec = rec.headers(h);
    }
    rec
}

/// Why a record was not enqueued.
#[derive(Debug)]
pub enum Enqueue {
    /// The local queue is full; try again shortly.
    Full,
    Failed(KafkaError),
}

/// The broker's acknowledgement of one enqueued record.
pub struct Delivery {
    inner: DeliveryFuture,
    topic: String,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub async fn acked(self) -> Result<(), KafkaError> {
        let topic = self.topic;
        match self.inner.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((source, _))) => Err(KafkaError::Publish { topic, source }),
            Err(_canceled) => Err(KafkaError::Publish {
                topic,
                source: rdkafka::error::KafkaError::Canceled,
            }),
        }
    }
}
