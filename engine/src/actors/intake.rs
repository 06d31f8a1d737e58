//! Intake actor: turns consumed records into notifications per carrier, and everything that
//! will not be sent into statuses and dead letters. A shell around [`crate::intake::Intake`].

use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, ResponseFuture};
use futures::future::join_all;

use super::shard::Shard;
use super::sink::Sink;
use super::{DeadLetter, Dispatch, Publish, Records};
use crate::event::{Rejection, State, StatusEvent, SCHEMA_VERSION};
use crate::intake::{Decision, Intake};
use crate::metrics;
use crate::notification::{Notification, Origin};
use crate::recovery::{replay, Replay};
use crate::store::{Claim, ClaimRequest, Store};

/// Where the intake claims event ids, and how long a possibly sent notification waits
/// before it goes again.
#[derive(Clone)]
pub struct Idempotency {
    pub store: Store,
    pub ambiguous_wait: Duration,
}

pub struct IntakeActor {
    intake: Intake,
    /// One shard per carrier, indexed by carrier id.
    shards: Vec<Addr<Shard>>,
    sink: Addr<Sink>,
    mailbox: usize,
    /// `None` when the store is off: every record is new.
    idempotency: Option<Idempotency>,
}

impl IntakeActor {
    pub fn new(
        intake: Intake,
        shards: Vec<Addr<Shard>>,
        sink: Addr<Sink>,
        mailbox: usize,
        idempotency: Option<Idempotency>,
    ) -> Self {
        IntakeActor {
            intake,
            shards,
            sink,
            mailbox,
            idempotency,
        }
    }
}

/// A decided record on its way out of the intake.
// Most records are `Send`: boxing it would cost an allocation per notification.
#[allow(clippy::large_enum_variant)]
enum Decided {
    Send(Notification),
    Skip(Box<StatusEvent>, Origin),
}

impl Decided {
    fn claim(&self) -> ClaimRequest {
        let (s_id, txn, dest, origin) = match self {
            Decided::Send(n) => (
                &n.meta.event_id,
                Some(n.meta.transaction_id.clone()),
                Some(n.meta.masked.clone()),
                n.origin,
            ),
            Decided::Skip(s, origin) => (
                &s.event_id,
                s.transaction_id.clone(),
                s.destination.clone(),
                *origin,
            ),
        };
        ClaimRequest {
            event_id: s_id.clone(),
            origin,
            transaction_id: txn,
            destination: dest,
        }
    }
}

/// Claims every decided record's event id, retrying while the store fails: without the
/// store's answer nothing may be sent.
async fn claim_all(store: &Store, decided: &[Decided]) -> Vec<Claim> {
    if decided.is_empty() {
        return Vec::new();
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        // Built again for each attempt rather than cloned up front: the first one is the
        // one that counts.
        let requests: Vec<ClaimRequest> = decided.iter().map(Decided::claim).collect();
        match store.claim(requests).await {
            Ok(claims) => return claims,
            Err(e) => {
                tracing::error!(error = %e, "claiming event ids failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Actor for IntakeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<Records> for IntakeActor {
    type Result = ResponseFuture<()>;

    /// Decides every record, then hands the batches on and waits until each stage took its
    /// share, so that a slow stage slows the source.
    fn handle(&mut self, batch: Records, _: &mut Context<Self>) -> Self::Result {
        let Records {
            records,
            consumed_at,
        } = batch;
        metrics::events_consumed(records.len() as u64);
        let mut publish = Publish::default();
        let mut decided = Vec::with_capacity(records.len());
        // Per decided record: its partition's previous owner, lost, may have sent it.
        let mut inherited = Vec::with_capacity(records.len());
        for r in records {
            let origin = Origin {
                partition: r.partition,
                offset: r.offset,
            };
            match self.intake.decide(&r.payload, origin) {
                Decision::Send(mut n) => {
                    n.consumed_at = consumed_at;
                    decided.push(Decided::Send(n));
                    inherited.push(r.inherited);
                }
                Decision::Skip { meta, reason } => {
                    metrics::notification_skipped(reason);
                    let mut s = meta.status(State::Skipped);
                    s.reason = Some(reason.to_owned());
                    decided.push(Decided::Skip(Box::new(s), origin));
                    inherited.push(r.inherited);
                }
                Decision::Reject {
                    event_id,
                    rejection,
                } => {
                    metrics::event_rejected(rejection.code());
                    if let Some(id) = event_id {
                        publish
                            .statuses
                            .push((rejected_status(id, &rejection), None));
                    }
                    publish
                        .dead_letters
                        .push(dead_letter(origin, r.key, r.payload, &rejection));
                }
            }
        }
        let shards = self.shards.clone();
        let sink = self.sink.clone();
        let idempotency = self.idempotency.clone();
        Box::pin(async move {
            let claims = match &idempotency {
                Some(i) => claim_all(&i.store, &decided).await,
                None => Vec::new(),
            };
            let mut per_shard: Vec<Vec<_>> = (0..shards.len()).map(|_| Vec::new()).collect();
            let mut later: Vec<Notification> = Vec::new();
            let mut claims = claims.into_iter();
            for (d, inherited) in decided.into_iter().zip(inherited) {
                let what = claims.next().map_or(Replay::Proceed, replay);
                match (what, d) {
                    (Replay::Proceed, Decided::Send(mut n)) if inherited => {
                        // New to this instance, but its partition's previous owner was lost
                        // past it (`pigeon_kafka::handover`): that owner may have sent it, and
                        // nothing here can tell. Sent at once, flagged.
                        metrics::replayed("inherited");
                        flag_possible_duplicate(&mut n, "previous_owner_lost", &mut publish);
                        if let Some(batch) = per_shard.get_mut(n.carrier()) {
                            batch.push(n);
                        }
                    }
                    (Replay::Proceed, Decided::Send(n)) => {
                        if let Some(batch) = per_shard.get_mut(n.carrier()) {
                            batch.push(n);
                        }
                    }
                    (Replay::Proceed | Replay::ResendFlagged, Decided::Skip(s, origin)) => {
                        publish.statuses.push((*s, Some(origin)));
                    }
                    (Replay::ResendFlagged, Decided::Send(mut n)) => {
                        metrics::replayed("resend_flagged");
                        flag_possible_duplicate(&mut n, "no_answer_before_restart", &mut publish);
                        later.push(n);
                    }
                    (Replay::Republish(s), d) => {
                        metrics::replayed("republished");
                        publish.replays.push((*s, Some(d.origin())));
                    }
                    (Replay::Duplicate(s), d) => {
                        metrics::notification_skipped("duplicate_event");
                        publish.replays.push((*s, Some(d.origin())));
                    }
                }
            }
            if let (Some(i), false) = (&idempotency, later.is_empty()) {
                let (wait, shards) = (i.ambiguous_wait, shards.clone());
                actix::spawn(async move {
                    tokio::time::sleep(wait).await;
                    dispatch(&shards, later).await;
                });
            }
            let sends: Vec<_> = per_shard
                .into_iter()
                .enumerate()
                .filter(|(_, b)| !b.is_empty())
                .map(|(i, b)| shards[i].send(Dispatch(b)))
                .collect();
            if !publish.is_empty() {
                if let Err(e) = sink.send(publish).await {
                    tracing::error!(error = %e, "sink is gone");
                }
            }
            for r in join_all(sends).await {
                if let Err(e) = r {
                    tracing::error!(error = %e, "a carrier shard is gone");
                }
            }
        })
    }
}

impl Decided {
    fn origin(&self) -> Origin {
        match self {
            Decided::Send(n) => n.origin,
            Decided::Skip(_, origin) => *origin,
        }
    }
}

/// A notification the carrier may have already: `ambiguous` with `reason` is published, and
/// it goes again flagged `possible_duplicate`.
fn flag_possible_duplicate(n: &mut Notification, reason: &str, publish: &mut Publish) {
    let mut s = n.meta.status(State::Ambiguous);
    s.reason = Some(reason.to_owned());
    publish.statuses.push((s, None));
    n.meta.possible_duplicate = true;
}

/// Sends notifications to their carriers' shards, one batch per shard.
async fn dispatch(shards: &[Addr<Shard>], notifications: Vec<Notification>) {
    let mut per_shard: Vec<Vec<_>> = (0..shards.len()).map(|_| Vec::new()).collect();
    for n in notifications {
        if let Some(batch) = per_shard.get_mut(n.carrier()) {
            batch.push(n);
        }
    }
    for (i, batch) in per_shard.into_iter().enumerate() {
        if !batch.is_empty() && shards[i].send(Dispatch(batch)).await.is_err() {
            tracing::error!("a carrier shard is gone");
        }
    }
}

/// Replaces routing and templates (configuration reload), validated before it is sent.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Reload {
    pub router: crate::routing::Router,
    pub templates: crate::template::Templates,
}

impl Handler<Reload> for IntakeActor {
    type Result = ();

    fn handle(&mut self, r: Reload, _: &mut Context<Self>) {
        self.intake.reload(r.router, r.templates);
        tracing::info!("routes and templates reloaded");
    }
}

fn rejected_status(event_id: String, r: &Rejection) -> StatusEvent {
    StatusEvent {
        schema_version: SCHEMA_VERSION,
        event_id,
        transaction_id: None,
        state: State::Rejected,
        reason: Some(r.code().to_owned()),
        detail: Some(r.to_string()),
        carrier: None,
        message_ids: Vec::new(),
        segments: 0,
        command_status: None,
        destination: None,
        occurred_at: None,
        at: time::OffsetDateTime::now_utc(),
        possible_duplicate: false,
    }
}

fn dead_letter(
    origin: Origin,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    r: &Rejection,
) -> DeadLetter {
    let payload = match r {
        // Never store card data, not even on the dead-letter topic.
        Rejection::CardNotTruncated => redact_card(&payload),
        _ => payload,
    };
    DeadLetter {
        origin,
        key,
        payload,
        reason: r.code(),
        detail: r.to_string(),
    }
}

fn redact_card(payload: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(mut v) => {
            if let Some(card) = v.get_mut("card_last4") {
                *card = serde_json::Value::String("[redacted]".into());
            }
            v.to_string().into_bytes()
        }
        Err(_) => b"[redacted]".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_card_number_never_reaches_the_dead_letter_copy() {
        let raw = br#"{"event_id":"e","card_last4":"4111111111111111","amount_minor":5}"#;
        let dl = dead_letter(
            Origin {
                partition: 0,
                offset: 1,
            },
            None,
            raw.to_vec(),
            &Rejection::CardNotTruncated,
        );
        let text = String::from_utf8(dl.payload).unwrap();
        assert!(!text.contains("4111"), "{text}");
        assert!(text.contains(r#""amount_minor":5"#), "{text}");
        assert_eq!(dl.reason, "card_number_not_truncated");
    }
}
