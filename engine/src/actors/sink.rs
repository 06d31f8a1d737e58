//! Sink actor: publishes statuses (keyed by event id) and dead letters, in the order it
//! receives them, and reports records whose decision the broker acknowledged to the
//! checkpoint. Enqueueing is sequential (order), waiting for acknowledgements is pipelined.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AtomicResponse, Context, Handler, WrapFuture};
use futures::future::join_all;
use pigeon_kafka::{Delivery, Enqueue, Header, Outgoing, Publisher};
use tokio::sync::Semaphore;
use tracing::error;

use super::checkpoint::Checkpoint;
use super::{Done, Publish};
use crate::metrics;
use crate::notification::Origin;

/// Topics the sink writes, and the source topic named in dead-letter headers.
#[derive(Debug, Clone)]
pub struct SinkTopics {
    pub statuses: Arc<str>,
    pub dead_letter: Arc<str>,
    pub source: Arc<str>,
}

pub struct Sink {
    publisher: Publisher,
    topics: SinkTopics,
    checkpoint: Addr<Checkpoint>,
    /// Batches whose acknowledgements are awaited at once, at most.
    acks_in_flight: Arc<Semaphore>,
    mailbox: usize,
}

impl Sink {
    pub fn new(
        publisher: Publisher,
        topics: SinkTopics,
        checkpoint: Addr<Checkpoint>,
        mailbox: usize,
    ) -> Sink {
        Sink {
            publisher,
            topics,
            checkpoint,
            acks_in_flight: Arc::new(Semaphore::new(64)),
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

/// (topic, record, state label for metrics, origin to complete).
type Item = (Arc<str>, Outgoing, &'static str, Option<Origin>);

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
            ));
        }
        for (s, origin) in msg.statuses {
            let payload = match serde_json::to_vec(&s) {
                Ok(p) => p,
                Err(e) => {
                    error!(error = %e, "status did not serialise");
                    continue;
                }
            };
            let out = Outgoing {
                key: Some(s.event_id.into_bytes()),
                payload,
                headers: Vec::new(),
            };
            items.push((self.topics.statuses.clone(), out, s.state.as_str(), origin));
        }
        let publisher = self.publisher.clone();
        let checkpoint = self.checkpoint.clone();
        let permits = self.acks_in_flight.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut pending: Vec<(Delivery, &'static str, Option<Origin>)> =
                    Vec::with_capacity(items.len());
                for (topic, out, label, origin) in items {
                    loop {
                        match publisher.enqueue(&topic, &out) {
                            Ok(d) => {
                                pending.push((d, label, origin));
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
                let Ok(permit) = permits.acquire_owned().await else {
                    return;
                };
                actix::spawn(async move {
                    let (futs, meta): (Vec<_>, Vec<_>) =
                        pending.into_iter().map(|(d, l, o)| (d.acked(), (l, o))).unzip();
                    let mut done = Vec::new();
                    for (r, (label, origin)) in join_all(futs).await.into_iter().zip(meta) {
                        match r {
                            Ok(()) => {
                                metrics::status_published(label);
                                done.extend(origin);
                            }
                            Err(e) => {
                                metrics::status_publish_failed();
                                error!(error = %e, "record not acknowledged; its offset stays uncommitted");
                            }
                        }
                    }
                    if !done.is_empty() && checkpoint.send(Done(done)).await.is_err() {
                        error!("checkpoint is gone");
                    }
                    drop(permit);
                });
            }
            .into_actor(self),
        ))
    }
}
