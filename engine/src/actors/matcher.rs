//! Matcher actor: registers accepted notifications, applies receipts, publishes what they
//! decide. A shell around [`crate::matcher::Matcher`]; handlers are atomic so that statuses
//! reach the sink in the order they were decided.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::fut::ActorFutureExt;
use actix::{Actor, Addr, AsyncContext, AtomicResponse, Context, Handler, Message, WrapFuture};
use tokio::time::Instant;

use super::shard::{NoReceipt, Shard};
use super::sink::Sink;
use super::{Publish, Receipts, SubmitResult, Submitted};
use crate::event::State;
use crate::matcher::{HeldAnswers, Matcher, ReceiptOutcome, RelayedOutcome, PARKED_ANSWER_HOLD};
use crate::metrics;
use crate::relay::{self, RelayOut};
use crate::routing::CarrierId;
use pigeon_smpp::receipt::Receipt;
use pigeon_smpp::session::ReceiptAck;

pub struct MatcherActor {
    matcher: Matcher,
    /// The answers owed for parked receipts, until their acceptance or
    /// [`PARKED_ANSWER_HOLD`].
    held: HeldAnswers<ReceiptAck>,
    sink: Addr<Sink>,
    /// The carrier shards, by carrier id (set once they are started), for receipt failover.
    shards: Arc<OnceLock<Vec<Addr<Shard>>>>,
    /// Carrier names by id, for metrics.
    carriers: Vec<String>,
    mailbox: usize,
    /// [`metrics::debit_to_accept`].
    debit_to_accept: ::metrics::Histogram,
    /// Where receipts that match nothing here are relayed to the other instances
    /// (`relay.rs`); `None`: they are refused.
    relay: Option<RelayOut>,
}

impl MatcherActor {
    pub fn new(
        matcher: Matcher,
        sink: Addr<Sink>,
        shards: Arc<OnceLock<Vec<Addr<Shard>>>>,
        carriers: Vec<String>,
        mailbox: usize,
        relay: Option<RelayOut>,
    ) -> Self {
        MatcherActor {
            matcher,
            held: HeldAnswers::new(PARKED_ANSWER_HOLD),
            sink,
            shards,
            carriers,
            mailbox,
            debit_to_accept: metrics::debit_to_accept(),
            relay,
        }
    }

    fn carrier_name(&self, carrier: CarrierId) -> &str {
        self.carriers.get(carrier).map_or("unknown", String::as_str)
    }

    /// Gives up the answers held for parks that matched nothing in time: relayed to the
    /// other instances and answered once the broker has them, or (no relay, or the
    /// broker failed) refused, so that their SMSC sends them again later.
    fn give_up_held(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let overdue = self.held.overdue_parks(now);
        let Some(out) = self.relay.clone() else {
            let refused: usize = overdue.iter().map(|(_, answers)| answers.len()).sum();
            metrics::receipts("any", "parked_refused", refused as u64);
            return;
        };
        let mut parks = Vec::with_capacity(overdue.len());
        for (park, answers) in overdue {
            if let Some((carrier, receipt)) = self.matcher.parked_receipt(park) {
                parks.push((park, carrier, receipt.clone(), answers));
            }
        }
        if parks.is_empty() {
            return;
        }
        let records: Vec<_> = parks
            .iter()
            .map(|(_, carrier, r, _)| relay::encode(self.carrier_name(*carrier), r))
            .collect();
        let published = async move { out.publisher.publish(&out.topic, &records).await };
        ctx.spawn(published.into_actor(self).map(move |results, act, _| {
            let now = Instant::now();
            let (mut relayed, mut refused) = (0u64, 0u64);
            for ((park, carrier, receipt, answers), result) in parks.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        // Theirs now, unless it was applied here meanwhile (then no instance
                        // matches the relayed copy, and it does not count as relayed).
                        relayed += u64::from(act.matcher.relayed(carrier, &receipt, park, now));
                        answers.into_iter().for_each(ReceiptAck::ack);
                    }
                    Err(e) => {
                        refused += 1;
                        tracing::warn!(error = %e, "relaying a receipt failed; it is refused");
                    }
                }
            }
            metrics::receipts("any", "relayed", relayed);
            metrics::receipts("any", "parked_refused", refused);
            metrics::receipts_parked(act.matcher.parked());
        }));
    }

    /// Sends each notification whose receipt failover time came to its carrier's shard,
    /// which hands it on. Spawned, not waited for: see [`NoReceipt`].
    fn fail_over(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let mut by_carrier: BTreeMap<usize, Vec<_>> = BTreeMap::new();
        for n in self.matcher.due_failovers(now) {
            by_carrier.entry(n.carrier()).or_default().push(n);
        }
        for (carrier, batch) in by_carrier {
            let Some(shard) = self.shards.get().and_then(|s| s.get(carrier)).cloned() else {
                continue;
            };
            ctx.spawn(
                async move {
                    if shard.send(NoReceipt(batch)).await.is_err() {
                        tracing::error!("a carrier shard is gone");
                    }
                }
                .into_actor(self),
            );
        }
    }

    /// Adds to `publish` what the matcher noted while deciding its statuses: the receipts of
    /// single segments, and the answers held for the parked receipts it applied.
    fn noted(&mut self, publish: &mut Publish) {
        publish.segments = self.matcher.take_segment_receipts();
        let applied = self.matcher.take_applied_parks();
        self.held.release(applied, &mut publish.acks);
    }

    /// Counts a batch of receipts by outcome and hands on what they decided, with their
    /// answers.
    fn applied(
        &mut self,
        carrier: CarrierId,
        counts: impl Iterator<Item = (&'static str, u64)>,
        decided: Vec<crate::event::StatusEvent>,
        acks: Vec<ReceiptAck>,
    ) -> AtomicResponse<Self, ()> {
        for (outcome, n) in counts {
            metrics::receipts(self.carrier_name(carrier), outcome, n);
        }
        let mut publish = Publish {
            statuses: decided.into_iter().map(|s| (s, None)).collect(),
            acks,
            ..Publish::default()
        };
        self.noted(&mut publish);
        self.forward(publish)
    }

    fn forward(&self, publish: Publish) -> AtomicResponse<Self, ()> {
        metrics::receipts_awaited(self.matcher.awaiting());
        metrics::receipts_parked(self.matcher.parked());
        let sink = self.sink.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if !publish.is_empty() && sink.send(publish).await.is_err() {
                    tracing::error!("sink is gone");
                }
            }
            .into_actor(self),
        ))
    }
}

impl Actor for MatcherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let mut out = Vec::new();
            let now = Instant::now();
            act.fail_over(now, ctx);
            let unmatched = act.matcher.expire(now, &mut out);
            metrics::receipts("any", "unmatched", unmatched as u64);
            metrics::receipts_parked(act.matcher.parked());
            act.give_up_held(now, ctx);
            if !out.is_empty() {
                let publish = Publish {
                    statuses: out.into_iter().map(|s| (s, None)).collect(),
                    ..Publish::default()
                };
                let sink = act.sink.clone();
                ctx.wait(
                    async move {
                        let _ = sink.send(publish).await;
                    }
                    .into_actor(act),
                );
            }
        });
    }
}

impl Handler<Submitted> for MatcherActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, Submitted(results): Submitted, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let mut publish = Publish::default();
        let mut decided = Vec::new();
        for r in results {
            match r {
                SubmitResult::Accepted { accepted, origin } => {
                    let mut s = accepted.meta.status(State::Accepted);
                    s.carrier = Some(accepted.carrier_name.to_string());
                    s.message_ids = accepted.message_ids.clone();
                    if let Ok(age) = (s.at - accepted.meta.occurred_at).try_into() {
                        (self.debit_to_accept).record(Duration::as_secs_f64(&age));
                    }
                    publish.statuses.push((s, Some(origin)));
                    self.matcher.accept(accepted, now, &mut decided);
                }
                SubmitResult::NotAccepted { status, origin, .. } => {
                    publish.statuses.push((*status, Some(origin)));
                }
                SubmitResult::Progress { status } => publish.statuses.push((*status, None)),
            }
        }
        publish
            .statuses
            .extend(decided.into_iter().map(|s| (s, None)));
        // Parked receipts applied to the acceptances.
        self.noted(&mut publish);
        self.forward(publish)
    }
}

impl Handler<Receipts> for MatcherActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Receipts, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let mut decided = Vec::new();
        // Tallied per batch: one metrics update per outcome, not one per receipt.
        let mut counts = [0u64; 4];
        let mut acks = Vec::with_capacity(msg.receipts.len());
        for (r, ack) in msg.receipts {
            let outcome = self.matcher.receipt(msg.carrier, r, now, &mut decided);
            let i = match outcome {
                ReceiptOutcome::Matched => 0,
                ReceiptOutcome::Intermediate => 1,
                ReceiptOutcome::Duplicate => 2,
                ReceiptOutcome::Parked { .. } => 3,
            };
            counts[i] += 1;
            match outcome {
                // A parked receipt is only in memory: its answer waits for its acceptance,
                // for a while; one parked while its carrier's id form is being learned is
                // refused at once (the SMSC sends it again later, ADR 0008).
                ReceiptOutcome::Parked {
                    id,
                    learning: false,
                } => self.held.hold(id, ack, now),
                ReceiptOutcome::Parked { learning: true, .. } => drop(ack),
                _ => acks.push(ack),
            }
        }
        let outcomes = ["matched", "intermediate", "duplicate", "parked"];
        self.applied(msg.carrier, outcomes.into_iter().zip(counts), decided, acks)
    }
}

/// Receipts relayed by the instances (this one too) for one carrier (`relay.rs`), each
/// with the answer the relay follower waits for: given once what it decided is durable,
/// dropped unanswered for one that nothing here awaits (yet).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RelayedReceipts {
    pub carrier: CarrierId,
    pub receipts: Vec<(Receipt, ReceiptAck)>,
}

impl Handler<RelayedReceipts> for MatcherActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: RelayedReceipts, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let mut decided = Vec::new();
        let mut counts = [0u64; 3];
        let mut acks = Vec::with_capacity(msg.receipts.len());
        for (r, ack) in msg.receipts {
            let i = match self
                .matcher
                .relayed_receipt(msg.carrier, &r, now, &mut decided)
            {
                RelayedOutcome::Matched => 0,
                RelayedOutcome::Intermediate => 1,
                RelayedOutcome::Settled => 2,
                // Dropped unanswered: the follower may try it again (its acceptance may
                // still come here), and counts it when it gives up.
                RelayedOutcome::NotOurs => continue,
            };
            counts[i] += 1;
            acks.push(ack);
        }
        let outcomes = ["relay_matched", "relay_intermediate", "relay_not_ours"];
        self.applied(msg.carrier, outcomes.into_iter().zip(counts), decided, acks)
    }
}

/// Asks how many notifications still wait for receipts (used to drain on shutdown).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Awaiting;

impl Handler<Awaiting> for MatcherActor {
    type Result = usize;

    fn handle(&mut self, _: Awaiting, _: &mut Context<Self>) -> usize {
        self.matcher.awaiting()
    }
}
