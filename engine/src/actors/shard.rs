//! Carrier shard actor: owns one carrier's binds ([`super::binds`]), its rate (counted in
//! segments) and the notifications in flight to it. Submits every segment of a notification,
//! retried as [`crate::retry`] says, and reports the outcome and the carrier's receipts to
//! the matcher in batches.
//!
//! Rates: the carrier-wide limiter (`max_segments_per_second`) is the hard ceiling over all
//! binds; with `flow_control`, each submit also waits for its bind's place and pace
//! ([`super::flow_state`]), which slow down when the carrier throttles.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use bytes::Bytes;
use futures::future::join_all;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use pigeon_smpp::encoding;
use pigeon_smpp::session::Inbound;
use pigeon_smpp::session::{self, BindKind, Session, SessionConfig, Submit, SubmitOutcome};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::binds::{self, Binds, Role};
use super::flow_state::{Answer, FlowSlot};
use super::matcher::MatcherActor;
use super::{Dispatch, Receipts, SubmitResult, Submitted};
use crate::breaker::{Admit, Breaker, BreakerConfig, State as BreakerState};
use crate::config::{BindType, CarrierConfig, RateShare, SmppVersion};
use crate::event::State;
use crate::flow::share_of;
use crate::health::CarrierHealth;
use crate::intake::Encodings;
use crate::lanes::Lanes;
use crate::matcher::Accepted;
use crate::metrics;
use crate::notification::Notification;
use crate::outcome::{self, Unanswered, Verdict};
use crate::retry::{Next, RetryPolicy};
use crate::routing::CarrierId;
use crate::store::{Batcher, Change, Store};

/// State shared by the shard's handler and the tasks it spawns.
struct Shared {
    carrier: CarrierId,
    name: Arc<str>,
    source_addr: String,
    binds: Arc<Binds>,
    /// The carrier's rate in segments; replaced whole when the configuration is reloaded.
    limiter: RwLock<Arc<DefaultDirectRateLimiter>>,
    retry: RetryPolicy,
    /// The carrier's circuit breaker, shared with its binds (all down trips it).
    breaker: Arc<Mutex<Breaker>>,
    /// How long a notification waits for a bind before it moves to the next carrier.
    failover_after: Duration,
    /// How long an unanswered submit waits before it goes again ([`outcome::Unanswered`]).
    ambiguous_wait: Duration,
    health: Arc<CarrierHealth>,
    /// Every carrier's shard, by carrier id; set once all are started.
    peers: Arc<OnceLock<Vec<Addr<Shard>>>>,
    encodings: Encodings,
    /// Notifications in flight at most: binds x window.
    in_flight: Arc<Semaphore>,
    /// Notifications admitted by `Dispatch`, waiting for the pump: debits first.
    lanes: Mutex<Lanes<Notification>>,
    /// Places left in the lanes; a full shard slows the intake.
    lane_space: Semaphore,
    lane_ready: Notify,
    /// Flow control per submitting bind slot, by slot index; empty when `flow_control` is off.
    flows: Vec<FlowSlot>,
    results: mpsc::Sender<SubmitResult>,
    /// Records `submitting` marks, many in one store request.
    marks: Option<Batcher>,
    /// [`metrics::consumed_to_submit`].
    consumed_to_submit: ::metrics::Histogram,
    /// Segments accepted by this carrier (`pigeon_segments_submitted_total`).
    accepted_segments: ::metrics::Counter,
    /// How long `submitting` marks waited for the store (`pigeon_store_wait_seconds`).
    mark_waits: ::metrics::Histogram,
}

impl Shared {
    async fn rate(&self, segments: u32) {
        let limiter = self
            .limiter
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let n = NonZeroU32::new(segments.max(1)).unwrap_or(NonZeroU32::MIN);
        if limiter.until_n_ready(n).await.is_err() {
            // More segments than the burst allows at once: take them one by one.
            for _ in 0..segments {
                limiter.until_ready().await;
            }
        }
    }

    /// Asks the breaker whether a submit may go, and publishes its state.
    fn admit(&self) -> Admit {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        let admit = b.try_acquire(Instant::now());
        self.publish_breaker(&b);
        admit
    }

    /// Tells the breaker what a submit says about the carrier: refusals of the message
    /// itself (invalid destination) and throttling are not the carrier failing.
    fn report(&self, outcome: &SubmitOutcome, probe: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            SubmitOutcome::Accepted { .. } => b.on_success(),
            SubmitOutcome::Rejected { command_status } => {
                match session::classify(*command_status) {
                    session::StatusClass::Retryable => b.on_failure(Instant::now()),
                    _ => b.on_success(),
                }
            }
            SubmitOutcome::Timeout | SubmitOutcome::Lost => b.on_failure(Instant::now()),
            SubmitOutcome::NotSent if probe => b.on_probe_cancelled(),
            SubmitOutcome::NotSent => {}
        }
        self.publish_breaker(&b);
    }

    /// When a submit refused by the breaker may ask again: the end of its open period, or
    /// shortly while a half-open probe is out.
    fn breaker_retry_at(&self) -> Instant {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match b.state() {
            BreakerState::Open { until } => until,
            _ => Instant::now() + Duration::from_millis(50),
        }
    }

    fn publish_breaker(&self, b: &Breaker) {
        self.health.publish_breaker(self.carrier, &self.name, b);
    }

    fn set_rate(&self, segments_per_second: u32) {
        self.health.set_rate(self.carrier, segments_per_second);
        metrics::carrier_rate(&self.name, segments_per_second);
        let limiter = Arc::new(limiter(segments_per_second));
        *self.limiter.write().unwrap_or_else(|p| p.into_inner()) = limiter;
        let share = share_of(f64::from(segments_per_second), self.flows.len());
        for f in &self.flows {
            f.set_share(share);
        }
    }
}

/// A limiter of `sps` segments per second with a burst of 50 ms worth at most, so that the
/// carrier sees the rate, not a spike.
fn limiter(sps: u32) -> DefaultDirectRateLimiter {
    let sps = NonZeroU32::new(sps).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(sps.get() / 20).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(sps).allow_burst(burst))
}

/// Notifications a shard holds in its lanes at most, beyond those in flight.
const LANE_CAPACITY: usize = 1024;

/// What a shard is connected to.
pub struct ShardLinks {
    pub matcher: Addr<MatcherActor>,
    pub health: Arc<CarrierHealth>,
    /// Every carrier's shard, by carrier id; filled once all are started.
    pub peers: Arc<OnceLock<Vec<Addr<Shard>>>>,
    /// How long a notification waits for a bind before it moves to the next carrier.
    pub failover_after: Duration,
    /// How long an unanswered submit waits before it goes again (`engine.ambiguous_wait_ms`).
    pub ambiguous_wait: Duration,
    /// How every carrier wants texts encoded, to encode again on a hand-over.
    pub encodings: Encodings,
    /// Where a notification is marked `submitting` before it is written; `None`: store off.
    pub store: Option<Store>,
    pub mailbox: usize,
    /// Whose the carrier's rate is. Shared by partitions, the shard sends at one segment a
    /// second until it is told its share ([`SetShare`]).
    pub rate_share: RateShare,
}

pub struct Shard {
    shared: Arc<Shared>,
    cfg: CarrierConfig,
    rate_share: RateShare,
    /// The share of the debit partitions this instance holds (1 unless shared by
    /// partitions).
    share: f64,
    matcher: Addr<MatcherActor>,
    stop: CancellationToken,
    mailbox: usize,
    results_rx: Option<mpsc::Receiver<SubmitResult>>,
    /// The task behind the shard's mark batcher, until the shard starts it on its thread.
    marking: Option<futures::future::BoxFuture<'static, ()>>,
}

impl Shard {
    pub fn new(carrier: CarrierId, cfg: CarrierConfig, links: ShardLinks) -> Shard {
        let (tx, rx) = mpsc::channel(1024);
        let share = match links.rate_share {
            RateShare::Instance => 1.0,
            RateShare::Partitions => 0.0,
        };
        let rate = links.rate_share.rate(cfg.max_segments_per_second, share);
        let name: Arc<str> = cfg.name.as_str().into();
        let breaker = Arc::new(Mutex::new(Breaker::new(BreakerConfig {
            failure_threshold: cfg.breaker_failures,
            open_base: Duration::from_millis(cfg.breaker_open_ms),
            ..BreakerConfig::default()
        })));
        let binds = Binds::new(
            name.clone(),
            carrier,
            cfg.binds,
            links.health.clone(),
            breaker.clone(),
        );
        let flows = if cfg.flow_control {
            let per_bind = share_of(f64::from(rate), cfg.binds);
            let flow = cfg.flow_tuning.flow_config(cfg.window);
            (0..cfg.binds)
                .map(|i| FlowSlot::new(&name, i, per_bind, flow))
                .collect()
        } else {
            Vec::new()
        };
        links.health.set_rate(carrier, rate);
        metrics::carrier_rate(&name, rate);
        let (marks, marking) = links.store.map(Batcher::new).unzip();
        let shared = Arc::new(Shared {
            carrier,
            name,
            source_addr: cfg.source_addr.clone(),
            binds: Arc::new(binds),
            breaker,
            limiter: RwLock::new(Arc::new(limiter(rate))),
            retry: RetryPolicy {
                max_retries: cfg.max_submit_retries,
                base: Duration::from_millis(cfg.retry_backoff_ms),
                cap: Duration::from_millis(cfg.retry_backoff_max_ms),
            },
            failover_after: links.failover_after,
            ambiguous_wait: links.ambiguous_wait,
            health: links.health,
            peers: links.peers,
            encodings: links.encodings,
            marks,
            in_flight: Arc::new(Semaphore::new(cfg.binds * cfg.window)),
            lanes: Mutex::new(Lanes::default()),
            lane_space: Semaphore::new(LANE_CAPACITY),
            lane_ready: Notify::new(),
            flows,
            results: tx,
            consumed_to_submit: metrics::consumed_to_submit(),
            accepted_segments: metrics::submitted(&cfg.name, "accepted"),
            mark_waits: metrics::store_waits("mark"),
        });
        Shard {
            shared,
            cfg,
            rate_share: links.rate_share,
            share,
            matcher: links.matcher,
            stop: CancellationToken::new(),
            mailbox: links.mailbox,
            results_rx: Some(rx),
            marking,
        }
    }

    fn session_config(&self) -> SessionConfig {
        let c = &self.cfg;
        SessionConfig {
            addr: c.address.clone(),
            system_id: c.system_id.clone(),
            password: session::Password::new(c.password.clone()),
            system_type: c.system_type.clone(),
            bind: session::BindKind::Transceiver,
            interface_version: match c.smpp_version {
                SmppVersion::V34 => session::InterfaceVersion::V34,
                SmppVersion::V50 => session::InterfaceVersion::V50,
            },
            address_range: c.address_range.clone(),
            tls: c.tls.as_ref().map(|t| session::TlsConfig {
                server_name: t.server_name.clone(),
                ca_file: t.ca_file.clone(),
                insecure_skip_verify: t.insecure_skip_verify,
            }),
            window: c.window,
            response_timeout: Duration::from_millis(c.response_timeout_ms),
            enquire_link_interval: Duration::from_millis(c.enquire_link_interval_ms),
            bind_timeout: Duration::from_millis(c.bind_timeout_ms),
            max_unanswered_receipts: session::DEFAULT_MAX_UNANSWERED_RECEIPTS,
        }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox);
        if let Some(marking) = self.marking.take() {
            actix::spawn(marking);
        }
        actix::spawn(pump(self.shared.clone()));
        let (inbound_tx, inbound_rx) = mpsc::channel(4096);
        let (submit_kind, receivers) = match self.cfg.bind_type {
            BindType::Transceiver => (BindKind::Transceiver, false),
            BindType::Transmitter => (BindKind::Transmitter, false),
            BindType::TransmitterReceiver => (BindKind::Transmitter, true),
        };
        let reconnect_max = Duration::from_millis(self.cfg.reconnect_backoff_max_ms);
        for i in 0..self.cfg.binds {
            let mut cfg = self.session_config();
            cfg.bind = submit_kind;
            let binds = self.shared.binds.clone();
            let keep = binds::keep(
                binds,
                Role::Submit,
                i,
                cfg,
                reconnect_max,
                inbound_tx.clone(),
                self.stop.clone(),
            );
            actix::spawn(keep);
            if receivers {
                let mut cfg = self.session_config();
                cfg.bind = BindKind::Receiver;
                let binds = self.shared.binds.clone();
                let keep = binds::keep(
                    binds,
                    Role::Receive,
                    i,
                    cfg,
                    reconnect_max,
                    inbound_tx.clone(),
                    self.stop.clone(),
                );
                actix::spawn(keep);
            }
        }
        actix::spawn(forward_receipts(
            self.shared.carrier,
            inbound_rx,
            self.matcher.clone(),
        ));
        if let Some(rx) = self.results_rx.take() {
            actix::spawn(forward_results(rx, self.matcher.clone()));
        }
    }
}

async fn forward_receipts(
    carrier: CarrierId,
    mut rx: mpsc::Receiver<Inbound>,
    matcher: Addr<MatcherActor>,
) {
    let mut buf = Vec::with_capacity(256);
    while rx.recv_many(&mut buf, 256).await > 0 {
        let receipts = (buf.drain(..))
            .filter_map(|i| match i {
                Inbound::Receipt(r, ack) => Some((r, ack)),
                _ => None,
            })
            .collect();
        let batch = Receipts { carrier, receipts };
        if !batch.receipts.is_empty() && matcher.send(batch).await.is_err() {
            return;
        }
    }
}

async fn forward_results(mut rx: mpsc::Receiver<SubmitResult>, matcher: Addr<MatcherActor>) {
    let mut buf = Vec::with_capacity(256);
    while rx.recv_many(&mut buf, 256).await > 0 {
        if matcher
            .send(Submitted(std::mem::take(&mut buf)))
            .await
            .is_err()
        {
            return;
        }
    }
}

impl Handler<Dispatch> for Shard {
    type Result = ResponseFuture<()>;

    /// Admits the batch at the carrier's rate and within its window; returns once every
    /// notification of it is on its way, so that a full carrier slows the intake.
    fn handle(&mut self, Dispatch(batch): Dispatch, _: &mut Context<Self>) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            for n in batch {
                // A place in the lanes, given back when the pump takes the notification.
                let Ok(place) = shared.lane_space.acquire().await else {
                    return;
                };
                place.forget();
                let urgent = n.urgent;
                shared
                    .lanes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(n, urgent);
                shared.lane_ready.notify_one();
            }
        })
    }
}

/// Takes notifications from the lanes, urgent first, and admits each at the carrier's rate
/// and within its window.
async fn pump(shared: Arc<Shared>) {
    loop {
        let n = loop {
            let ready = shared.lane_ready.notified();
            if let Some(n) = shared.lanes.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                break n;
            }
            ready.await;
        };
        shared.lane_space.add_permits(1);
        let Ok(permit) = shared.in_flight.clone().acquire_owned().await else {
            return;
        };
        shared.rate(n.meta.segments).await;
        actix::spawn(submit(shared.clone(), n, permit));
    }
}

/// Submits every segment of `n`, each with its own retries, then reports the verdict or
/// hands `n` to the next carrier of its route.
async fn submit(shared: Arc<Shared>, n: Notification, permit: OwnedSemaphorePermit) {
    let can_hand_over = n.has_fallback();
    if let Some(marks) = &shared.marks {
        // Durably `submitting` before the first byte goes out: after a crash, the record
        // tells a notification the carrier may have from one it cannot.
        let mark = Change::Submitting {
            event_id: n.meta.event_id.clone(),
            carrier: shared.name.to_string(),
            at: time::OffsetDateTime::now_utc(),
        };
        let asked = Instant::now();
        let marked = marks.commit(mark).await;
        (shared.mark_waits).record(asked.elapsed().as_secs_f64());
        if let Err(e) = marked {
            tracing::error!(error = %e, "cannot record a submit; not sending");
            let mut status = n.meta.status(State::Failed);
            status.reason = Some("store_unavailable".into());
            status.carrier = Some(shared.name.to_string());
            let failed = SubmitResult::NotAccepted {
                status: Box::new(status),
                origin: n.origin,
            };
            let _ = shared.results.send(failed).await;
            return;
        }
    }
    (shared.consumed_to_submit).record(n.consumed_at.elapsed().as_secs_f64());
    let part = |i: usize| Submit {
        source_addr: shared.source_addr.clone(),
        destination_addr: n.destination.clone(),
        data_coding: n.text.coding.data_coding(),
        esm_class: n.text.esm_class(),
        short_message: Bytes::copy_from_slice(n.text.parts.get(i).map_or(&[][..], |p| &p[..])),
        registered_delivery: true,
        sar: n.text.sar_for_part(i),
        message_payload: n.text.payload_tlv,
    };
    let sends = (0..n.text.parts.len())
        .map(|i| submit_segment(&shared, part(i), n.deadline, can_hand_over));
    let mut outcomes = join_all(sends).await;
    // Part of the message is with this carrier, so the rest must follow it here: parts that
    // gave up waiting for a bind (to move on) wait again, until the validity ends.
    if outcome::must_stay(&outcomes) {
        let again: Vec<usize> = (outcomes.iter().enumerate())
            .filter(|(_, o)| matches!(o, SubmitOutcome::NotSent))
            .map(|(i, _)| i)
            .collect();
        let sends = (again.iter()).map(|&i| submit_segment(&shared, part(i), n.deadline, false));
        let retried = join_all(sends).await;
        for (&i, o) in again.iter().zip(retried) {
            outcomes[i] = o;
        }
    }
    drop(permit);
    let expired = Instant::now() >= n.deadline;
    let segments = u64::from(n.meta.segments);
    let result = match outcome::conclude(outcomes, can_hand_over, expired) {
        Verdict::Accepted(message_ids) => {
            shared.accepted_segments.increment(segments);
            let origin = n.origin;
            // The notification is kept only when it may have to go again (receipt failover).
            let (meta, resubmit) = match n.receipt_failover.filter(|_| can_hand_over) {
                Some(after) => (n.meta.clone(), Some((Instant::now() + after, Box::new(n)))),
                None => (n.meta, None),
            };
            let accepted = Accepted {
                meta,
                carrier: shared.carrier,
                carrier_name: shared.name.clone(),
                message_ids,
                resubmit,
            };
            SubmitResult::Accepted { accepted, origin }
        }
        Verdict::HandOver { reason } => return hand_over(&shared, n, reason).await,
        Verdict::End {
            state: State::Ambiguous,
            reason,
            command_status,
            ids,
        } if outcome::after_unanswered(n.resent_unanswered) == Unanswered::ResendLater => {
            metrics::submit(&shared.name, reason, segments);
            return resend_later(&shared, n, reason, command_status, ids).await;
        }
        Verdict::End {
            state,
            reason,
            command_status,
            ids,
        } => {
            // A second unanswered submit: nobody knows whether the customer has it.
            let state = match state {
                State::Ambiguous => State::Unconfirmed,
                other => other,
            };
            metrics::submit(&shared.name, reason, segments);
            let mut status = n.meta.status(state);
            status.reason = Some(reason.to_owned());
            status.carrier = Some(shared.name.to_string());
            status.command_status = command_status;
            status.message_ids = ids;
            SubmitResult::NotAccepted {
                status: Box::new(status),
                origin: n.origin,
            }
        }
    };
    let _ = shared.results.send(result).await;
}

/// Publishes `ambiguous` for `n` (it does not decide its Kafka record: the resend will),
/// waits `ambiguous_wait`, then sends it again to this carrier flagged `possible_duplicate`.
async fn resend_later(
    shared: &Arc<Shared>,
    mut n: Notification,
    reason: &'static str,
    command_status: Option<u32>,
    ids: Vec<String>,
) {
    let mut status = n.meta.status(State::Ambiguous);
    status.reason = Some(reason.to_owned());
    status.carrier = Some(shared.name.to_string());
    status.command_status = command_status;
    status.message_ids = ids;
    let _ = shared
        .results
        .send(SubmitResult::Progress {
            status: Box::new(status),
        })
        .await;
    n.meta.possible_duplicate = true;
    n.resent_unanswered = true;
    let (wait, peers, carrier) = (shared.ambiguous_wait, shared.peers.clone(), shared.carrier);
    actix::spawn(async move {
        tokio::time::sleep(wait).await;
        let Some(me) = peers.get().and_then(|p| p.get(carrier)) else {
            return;
        };
        if me.send(Dispatch(vec![n])).await.is_err() {
            tracing::error!("a carrier shard is gone");
        }
    });
}

/// Moves `n` to the next carrier of its route that is up (or simply the next), with a
/// `retrying` status naming the carrier it leaves.
async fn hand_over(shared: &Shared, mut n: Notification, reason: &'static str) {
    let mut status = n.meta.status(State::Retrying);
    status.reason = Some(reason.to_owned());
    status.carrier = Some(shared.name.to_string());
    let _ = shared
        .results
        .send(SubmitResult::Progress {
            status: Box::new(status),
        })
        .await;
    metrics::handed_over(&shared.name, reason);
    n.route_pos = shared.health.choose(&n.route, n.route_pos + 1);
    let (from, to) = (
        shared.encodings.get(shared.carrier),
        shared.encodings.get(n.carrier()),
    );
    if from != to {
        // The next carrier wants the text encoded or split another way.
        n.text = encoding::segment_with(&n.body, n.reference, &to.copied().unwrap_or_default());
        n.meta.segments = n.text.parts.len() as u32;
    }
    let Some(peer) = shared.peers.get().and_then(|p| p.get(n.carrier())) else {
        return;
    };
    if peer.send(Dispatch(vec![n])).await.is_err() {
        tracing::error!("a carrier shard is gone");
    }
}

/// One segment through any bind that is up, retried as the carrier's policy says. Every
/// retry takes its own place in the carrier's rate. Gives up (as `NotSent`) when no bind
/// comes up before the deadline, or within the failover time when another carrier remains.
async fn submit_segment(
    shared: &Shared,
    submit: Submit,
    deadline: Instant,
    can_hand_over: bool,
) -> SubmitOutcome {
    let mut attempt = 0;
    loop {
        let wait_until = if can_hand_over {
            deadline.min(Instant::now() + shared.failover_after)
        } else {
            deadline
        };
        let Some((bind, session)) = shared.binds.pick_until(wait_until).await else {
            return SubmitOutcome::NotSent;
        };
        let flow = shared.flows.get(bind);
        let ticket = match flow {
            Some(f) => Some(f.ready().await),
            None => None,
        };
        let admit = shared.admit();
        if admit == Admit::No {
            // The breaker is open: this carrier takes nothing now. With another carrier to
            // go to, move on; on the last one, wait for the breaker until the deadline.
            drop(ticket);
            let now = Instant::now();
            if can_hand_over || now >= deadline {
                return SubmitOutcome::NotSent;
            }
            tokio::time::sleep_until(shared.breaker_retry_at().min(deadline)).await;
            continue;
        }
        let outcome = session.submit(submit.clone()).await;
        shared.report(&outcome, admit == Admit::Probe);
        if let Some(ticket) = ticket {
            ticket.finish(answer(&outcome));
        }
        let next = shared.retry.next(&outcome, attempt, &mut rand::rng());
        match next {
            Next::Done => return outcome,
            Next::RetryNow => {}
            Next::RetryAfter(d) => {
                if Instant::now() + d >= deadline {
                    return outcome;
                }
                tokio::time::sleep(d).await;
            }
        }
        metrics::submit_retry(&shared.name, outcome.label());
        attempt += 1;
        shared.rate(1).await;
    }
}

/// What an outcome says about the bind's pace; `None` when no answer came.
fn answer(outcome: &SubmitOutcome) -> Option<Answer> {
    match outcome {
        SubmitOutcome::Accepted { .. } => Some(Answer::Accepted),
        SubmitOutcome::Rejected { command_status } => match session::classify(*command_status) {
            session::StatusClass::Throttled | session::StatusClass::QueueFull => {
                Some(Answer::Throttled)
            }
            _ => Some(Answer::Other),
        },
        SubmitOutcome::Timeout | SubmitOutcome::Lost | SubmitOutcome::NotSent => None,
    }
}

/// Sets the carrier's rate (configuration reload): this instance's, or the deployment's to
/// share ([`RateShare`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRate(pub u32);

impl Handler<SetRate> for Shard {
    type Result = ();

    fn handle(&mut self, SetRate(sps): SetRate, _: &mut Context<Self>) {
        if sps != self.cfg.max_segments_per_second {
            tracing::info!(carrier = %self.shared.name, from = self.cfg.max_segments_per_second, to = sps, "rate changed");
            self.cfg.max_segments_per_second = sps;
            self.shared.set_rate(self.rate());
        }
    }
}

/// The share of the debit partitions this instance holds now (0 to 1), for a rate shared
/// by partitions (`engine.rate_share`); ignored otherwise.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetShare(pub f64);

impl Handler<SetShare> for Shard {
    type Result = ();

    fn handle(&mut self, SetShare(share): SetShare, _: &mut Context<Self>) {
        if self.rate_share != RateShare::Partitions || share == self.share {
            return;
        }
        let (from, to) = (
            self.rate(),
            self.rate_share
                .rate(self.cfg.max_segments_per_second, share),
        );
        self.share = share;
        if from != to {
            tracing::info!(carrier = %self.shared.name, share, from, to, "rate share changed");
            self.shared.set_rate(to);
        }
    }
}

impl Shard {
    /// The rate this instance sends the carrier at.
    fn rate(&self) -> u32 {
        self.rate_share
            .rate(self.cfg.max_segments_per_second, self.share)
    }
}

/// Notifications this carrier accepted whose receipts did not come within their receipt
/// failover time, matcher -> shard: each goes on to the next carrier of its route.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NoReceipt(pub Vec<Notification>);

impl Handler<NoReceipt> for Shard {
    type Result = ();

    /// Returns at once: the hand-overs report through the results channel, which the
    /// matcher drains, so waiting here could deadlock with it.
    fn handle(&mut self, NoReceipt(batch): NoReceipt, _: &mut Context<Self>) {
        for n in batch {
            let shared = self.shared.clone();
            actix::spawn(async move { hand_over(&shared, n, "no_receipt").await });
        }
    }
}

/// Unbinds every session; sent once on shutdown after the pipeline drained.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unbind;

impl Handler<Unbind> for Shard {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Unbind, _: &mut Context<Self>) -> Self::Result {
        self.stop.cancel();
        let sessions = self.shared.binds.sessions();
        Box::pin(async move {
            join_all(sessions.iter().map(Session::unbind)).await;
        })
    }
}
