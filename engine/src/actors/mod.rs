//! The pipeline's actors and the messages between them. Each actor is a thin shell around a
//! plain struct that knows nothing of actix; batches travel between actors, never single
//! messages, and every send is awaited so that bounded mailboxes push back to the source.
//!
//! ```text
//! source ─Records─> intake ─Dispatch─> shard (one per carrier) ─Submitted/Receipts─> matcher
//!                     │                                                            │
//!                     └──────────────────────Publish──────────────> sink <──Publish┘
//!                                                                     │ acks
//!                                                                     ▼
//!                                                     checkpoint ─> Kafka offset commit
//! ```

pub mod binds;
pub mod checkpoint;
pub mod flow_state;
pub mod intake;
pub mod matcher;
pub mod shard;
pub mod sink;
pub mod source;

use actix::Message;
use pigeon_kafka::Record;
use pigeon_smpp::receipt::Receipt;
use pigeon_smpp::session::ReceiptAck;
use tokio::time::Instant;

use crate::event::StatusEvent;
use crate::matcher::Accepted;
use crate::notification::{Notification, Origin};
use crate::routing::CarrierId;
use crate::store::TimelineEntry;

/// Consumed records, source -> intake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Records {
    pub records: Vec<Record>,
    /// When the source took them from the consumer: the engine's share of a debit's latency
    /// starts here.
    pub consumed_at: Instant,
}

/// Notifications for one carrier, intake -> shard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispatch(pub Vec<Notification>);

/// What a carrier made of a notification.
#[derive(Debug)]
pub enum SubmitResult {
    /// Every segment accepted.
    Accepted { accepted: Accepted, origin: Origin },
    /// Ended without (complete) acceptance: refused, or no answer.
    /// The status (failed or ambiguous) names the carrier, the command_status and the ids
    /// of any segments that were accepted.
    NotAccepted {
        status: Box<StatusEvent>,
        origin: Origin,
    },
    /// A status on the way (e.g. `retrying`), not a decision: no checkpoint.
    Progress { status: Box<StatusEvent> },
}

/// Submit outcomes, shard -> matcher.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submitted(pub Vec<SubmitResult>);

/// Receipts from one carrier's binds, shard -> matcher.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Receipts {
    pub carrier: CarrierId,
    /// Each with its `deliver_sm` answer, given once what it decided is durable.
    pub receipts: Vec<(Receipt, ReceiptAck)>,
}

/// A record for the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub origin: Origin,
    pub key: Option<Vec<u8>>,
    /// The original bytes, or a redacted copy when they carried card data.
    pub payload: Vec<u8>,
    pub reason: &'static str,
    pub detail: String,
}

/// Statuses and dead letters to publish, -> sink. An entry with an origin completes that
/// record's checkpoint once the broker acknowledged it.
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct Publish {
    /// Recorded in the store (durably, before they are published), then published.
    pub statuses: Vec<(StatusEvent, Option<Origin>)>,
    pub dead_letters: Vec<DeadLetter>,
    /// Published only: a decided record's status again after a replay, the status of a
    /// duplicate event, or (without an origin) a status left in the store's outbox by a
    /// crash; the record already says what happened.
    pub replays: Vec<(StatusEvent, Option<Origin>)>,
    /// Final receipts of single segments (event id, timeline entry): recorded in the store
    /// with `statuses` ([`crate::store::Change::Segment`]), not published.
    pub segments: Vec<(String, TimelineEntry)>,
    /// Receipts to acknowledge to their SMSC once `statuses` and `segments` are durable.
    pub acks: Vec<ReceiptAck>,
}

impl Publish {
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.dead_letters.is_empty()
            && self.replays.is_empty()
            && self.segments.is_empty()
            && self.acks.is_empty()
    }
}

/// Records whose decision the broker acknowledged, sink -> checkpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Done(pub Vec<Origin>);
