//! Kafka connector: what Pigeon needs from Kafka, and nothing of the engine.
//!
//! - [`config`]: broker address, group and client settings shared by consumers and producers.
//! - [`checkpoint`]: ordered per-partition offset tracking; an offset becomes committable only
//!   when it and every offset before it in its partition is done.
//! - [`source`]: a consumer-group member that hands records on in batches and commits only what
//!   the checkpoint allows; it never commits on receipt.
//! - [`publisher`]: an idempotent producer for status events and dead-letter records.
//! - [`handover`]: marks that let the next owner of a partition know what a lost owner may
//!   have acted on past its last commit.
//! - [`follower`]: reads a compacted topic as a table from its beginning, without a group,
//!   and keeps following it; reports when it has caught up.

pub mod checkpoint;
pub mod config;
pub mod follower;
pub mod handover;
pub mod publisher;
pub mod source;

pub use checkpoint::Checkpoints;
pub use config::KafkaConfig;
pub use follower::{FollowError, FollowState, TableFollower};
pub use handover::HandoverConfig;
pub use publisher::{Delivery, Enqueue, Header, Outgoing, Publisher};
pub use source::{Assignment, Record, Source};

/// Errors of this connector; each variant says where it surfaces.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client could not be created: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    #[error("subscribing to {topic} failed: {source}")]
    Subscribe {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("consuming failed: {0}")]
    Consume(#[source] rdkafka::error::KafkaError),
    #[error("committing offsets failed: {0}")]
    Commit(#[source] rdkafka::error::KafkaError),
    #[error("handover marks: {0}")]
    Handover(String),
    #[error("publishing to {topic} failed: {source}")]
    Publish {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}
