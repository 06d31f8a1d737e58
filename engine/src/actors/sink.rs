//! Sink actor: records statuses in the store, then publishes them (keyed by event id) and
//! dead letters, in the order it receives them, and reports records whose decision the
//! broker acknowledged to the checkpoint. A batch is published only once its statuses are
//! durable, so an offset is never committed for a decision a crash could lose. Queueing
//! into the store and enqueueing on the producer are sequential (order); waiting for the
//! store's group commit and for the broker's acknowledgements is pipelined.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AtomicResponse, Context, Handler, WrapFuture};
use futures::future::join_all;
use pigeon_kafka::{Delivery, Enqueue, Header, Outgoing, Publisher};
use tokio::sync::{mpsc, Semaphore};
use tracing::error;

use super::checkpoint::Checkpoint;
use super::{Done, Publish};
use crate::event::State;
use crate::metrics;
use crate::notification::Origin;
use crate::store::{Change, Store, StoreError};
use pigeon_smpp::session::ReceiptAck;

/// Topics the sink writes, and the source topic named in dead-letter headers.
#[derive(Debug, Clone)]
pub struct SinkTopics {
    pub statuses: Arc<str>,
    pub dead_letter: Arc<str>,
    pub source: Arc<str>,
}

pub struct Sink {
    topics: SinkTopics,
    /// `None` when the store is off.
    store: Option<Store>,
    /// Batches, in order, to the task that publishes each once it is durable.
    out: mpsc::Sender<Batch>,
    mailbox: usize,
}

/// A batch whose statuses were queued in the store, to publish once they are durable.
struct Batch {
    durable: Option<futures::future::BoxFuture<'static, Result<(), StoreError>>>,
    items: Vec<Item>,
    /// Receipts whose outcome is in `items`: acknowledged to their SMSC once durable.
    acks: Vec<ReceiptAck>,
}

impl Sink {
    pub fn new(
        publisher: Publisher,
        topics: SinkTopics,
        checkpoint: Addr<Checkpoint>,
        store: Option<Store>,
        mailbox: usize,
    ) -> Sink {
        // Room for batches queued in the store while earlier ones are made durable.
        let (out, rx) = mpsc::channel(16);
        actix::spawn(publish_when_durable(
            rx,
            publisher,
            checkpoint,
            store.clone(),
        ));
        Sink {
            topics,
            store,
            out,
            mailbox,
        }
    }
}

impl Actor for Sink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

/// Publishes each batch, in order, once its statuses are durable; then waits for the
/// broker's acknowledgements (at most 64 batches at once) and reports them to the
/// checkpoint. A batch the store failed to record is not published: its records stay
/// undecided, their offsets uncommitted, and a restart replays them.
async fn publish_when_durable(
    mut rx: mpsc::Receiver<Batch>,
    publisher: Publisher,
    checkpoint: Addr<Checkpoint>,
    store: Option<Store>,
) {
    let permits = Arc::new(Semaphore::new(64));
    while let Some(Batch {
        durable,
        items,
        acks,
    }) = rx.recv().await
    {
        if let Some(durable) = durable {
            if let Err(e) = durable.await {
                metrics::status_publish_failed();
                error!(error = %e, "statuses not recorded; their offsets stay uncommitted");
                // The receipts' acks are dropped: their SMSC sends them again.
                continue;
            }
        }
        // The outcome is safe (in the store, or in the outbox to publish after a crash):
        // the SMSC may forget the receipts.
        acks.into_iter().for_each(ReceiptAck::ack);
        let mut pending: Vec<Pending> = Vec::with_capacity(items.len());
        for (topic, out, label, origin, outboxed) in items {
            loop {
                match publisher.enqueue(&topic, &out) {
                    Ok(d) => {
                        pending.push((d, label, origin, outboxed));
                        break;
                    }
                    Err(Enqueue::Full) => tokio::time::sleep(Duration::from_millis(5)).await,
                    Err(Enqueue::Failed(e)) => {
                        metrics::status_publish_failed();
                        error!(error = %e, "record not enqueued; its offset stays uncommitted");
                        break;
                    }
                }
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (checkpoint, store) = (checkpoint.clone(), store.clone());
        actix::spawn(async move {
            let (futs, meta): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .map(|(d, l, o, b)| (d.acked(), (l, o, b)))
                .unzip();
            let mut done = Vec::new();
            let mut published = Vec::new();
            // Counted per batch: a few states, each counter looked up once.
            let mut by_state: Vec<(&'static str, u64)> = Vec::new();
            for (r, (label, origin, outboxed)) in join_all(futs).await.into_iter().zip(meta) {
                match r {
                    Ok(()) => {
                        match by_state.iter_mut().find(|(l, _)| *l == label) {
                            Some((_, n)) => *n += 1,
                            None => by_state.push((label, 1)),
                        }
                        done.extend(origin);
                        published.extend(
                            outboxed.map(|(event_id, state)| Change::Published { event_id, state }),
                        );
                    }
                    Err(e) => {
                        metrics::status_publish_failed();
                        error!(error = %e, "record not acknowledged; its offset stays uncommitted");
                    }
                }
            }
            for (label, n) in by_state {
                metrics::statuses_published(label, n);
            }
            if !done.is_empty() && checkpoint.send(Done(done)).await.is_err() {
                error!("checkpoint is gone");
            }
            drop(permit);
            if let (Some(store), false) = (store, published.is_empty()) {
                // Not waited for: an entry a crash keeps is only published once more.
                if let Err(e) = store.commit(published).await {
                    error!(error = %e, "clearing the outbox failed");
                }
            }
        });
    }
}

/// An outbox entry: (event id, state).
type OutboxKey = (String, State);

/// (topic, record, state label for metrics, origin to complete, outbox entry to clear).
type Item = (
    Arc<str>,
    Outgoing,
    &'static str,
    Option<Origin>,
    Option<OutboxKey>,
);

/// An enqueued [`Item`] waiting for the broker's acknowledgement.
type Pending = (Delivery, &'static str, Option<Origin>, Option<OutboxKey>);

impl Handler<Publish> for Sink {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let mut items: Vec<Item> = Vec::with_capacity(msg.statuses.len() + msg.dead_letters.len());
        for d in msg.dead_letters {
            let headers = vec![
                Header {
                    key: "pigeon.reason",
                    value: d.reason.as_bytes().to_vec(),
                },
                Header {
                    key: "pigeon.detail",
                    value: d.detail.into_bytes(),
                },
                Header {
                    key: "pigeon.source.topic",
                    value: self.topics.source.as_bytes().to_vec(),
                },
                Header {
                    key: "pigeon.source.partition",
                    value: d.origin.partition.to_string().into_bytes(),
                },
                Header {
                    key: "pigeon.source.offset",
                    value: d.origin.offset.to_string().into_bytes(),
                },
            ];
            let out = Outgoing {
                key: d.key,
                payload: d.payload,
                headers,
            };
            items.push((
                self.topics.dead_letter.clone(),
                out,
                "dead_letter",
                Some(d.origin),
                None,
            ));
        }
        let mut changes = Vec::with_capacity(msg.statuses.len());
        let recorded = msg.statuses.into_iter().map(|(s, o)| (s, o, true));
        let replayed = msg.replays.into_iter().map(|(s, o)| (s, o, false));
        for (s, origin, record) in recorded.chain(replayed) {
            let payload = match serde_json::to_vec(&s) {
                Ok(p) => p,
                Err(e) => {
                    error!(error = %e, "status did not serialise");
                    continue;
                }
            };
            let label = s.state.as_str();
            let key = Some(s.event_id.as_bytes().to_vec());
            // A status no Kafka record will bring back after a crash waits in the outbox
            // until the broker has it.
            let outboxed =
                (self.store.is_some() && origin.is_none()).then(|| (s.event_id.clone(), s.state));
            if record && self.store.is_some() {
                changes.push(if origin.is_none() {
                    Change::Held(s)
                } else {
                    Change::Status(s)
                });
            }
            let out = Outgoing {
                key,
                payload,
                headers: Vec::new(),
            };
            items.push((self.topics.statuses.clone(), out, label, origin, outboxed));
        }
        if self.store.is_some() {
            let segments = msg.segments.into_iter();
            changes.extend(segments.map(|(event_id, entry)| Change::Segment { event_id, entry }));
        }
        let (store, out) = (self.store.clone(), self.out.clone());
        let acks = msg.acks;
        AtomicResponse::new(Box::pin(
            async move {
                let durable = match store {
                    Some(store) if !changes.is_empty() => {
                        metrics::store_commit(changes.len());
                        match store.commit_queued(changes).await {
                            Ok(d) => Some(Box::pin(d) as futures::future::BoxFuture<'static, _>),
                            Err(e) => {
                                error!(error = %e, "statuses not recorded; their offsets stay uncommitted");
                                return;
                            }
                        }
                    }
                    _ => None,
                };
                if out.send(Batch { durable, items, acks }).await.is_err() {
                    error!("status publisher is gone");
                }
            }
            .into_actor(self),
        ))
    }
}
