//! One ESME connection: the task that owns the socket, answers every PDU, keeps the receipts
//! it owes on its own timer wheel ([`DelayQueue`]) and its delayed responses in an ordered
//! [`outbox::Outbox`], and plays the carrier's connection faults (drop, half-open). Nothing
//! here is locked per PDU; counters are atomics and the submit path touches shared maps only
//! for multipart reassembly and the duplicate digest. Hostile or broken input ends this
//! session only.
//!
//! - this file: the event loop, binds, link PDUs, and the connection faults;
//! - `submit`: `submit_sm` with its faults (throttle, errors, silence, latency);
//! - `receipts`: sending receipts (duplicates, other binds) and handing over what is owed;
//! - `outbox`: responses held back by `response_latency`, in order.

mod outbox;
mod receipts;
mod submit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use rusmpp::pdus::{BindReceiverResp, BindTransceiverResp, BindTransmitterResp, SubmitSmResp};
use rusmpp::tokio_codec::{CommandCodec, DecodeError, EncodeError};
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, Sleep};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, info};

use super::dlr::PendingReceipt;
use super::faults::{Dice, Throttle};
use super::registry::{BindRefused, Handoff};
use super::server::CarrierShared;
use super::stats::Counters;
use outbox::Outbox;

/// How long a receipt the ESME refused waits before it is sent again.
const RECEIPT_RETRY: Duration = Duration::from_secs(1);

/// Receipts other sessions may queue towards this one before they are kept for later.
const HANDOFF_CAPACITY: usize = 4096;
/// Inbound PDUs (or due receipts) handled before the writer is flushed.
const MAX_BATCH: usize = 256;
/// How often a receiver looks for receipts kept for its account.
const ORPHAN_CHECK: Duration = Duration::from_millis(500);
/// `system_id` the simulator answers binds with (longest allowed is 15 characters).
const SMSC_SYSTEM_ID: &str = "pigeon-sim";

/// The kind of bind an ESME asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    fn can_submit(self) -> bool {
        self != BindKind::Receiver
    }
    fn can_receive(self) -> bool {
        self != BindKind::Transmitter
    }
}

/// Where a session is in its life.
#[derive(Debug)]
enum State {
    /// Connected, not bound: `bind_*` and `enquire_link` are answered, `submit_sm` is refused.
    Open,
    /// Bound: submits (transmitter, transceiver) and receipts (receiver, transceiver) flow.
    /// Left by `unbind`, a refused bind, bad input, the peer closing, or the carrier dying.
    Bound { system_id: String, kind: BindKind },
}

/// Whether to keep serving after a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// A connection fault scheduled for this session (`drop_every`, `half_open_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnFault {
    /// Close the socket without an unbind.
    Drop,
    /// Stop answering and sending, keep the socket until the client closes it.
    HalfOpen,
}

/// How serving ended.
#[derive(Debug)]
enum End {
    /// The session is over; the reason is logged.
    Closed(&'static str),
    /// The session went silent; it lingers until the client gives up.
    HalfOpen,
}

/// What woke the session up.
enum Event {
    Killed,
    Fault,
    Responses,
    Frame(Option<Result<Command, DecodeError>>),
    Due(PendingReceipt),
    Handoff(Handoff),
    OrphanCheck,
}

type Reader = FramedRead<OwnedReadHalf, CommandCodec>;

struct Session {
    carrier: Arc<CarrierShared>,
    id: u64,
    peer: SocketAddr,
    state: State,
    /// Receipts owed, keyed by when they are due.
    receipts: DelayQueue<PendingReceipt>,
    /// Receipts sent and not yet acknowledged, by `deliver_sm` sequence number.
    outstanding: HashMap<u32, PendingReceipt>,
    next_seq: u32,
    writer: FramedWrite<OwnedWriteHalf, CommandCodec>,
    handoff_tx: mpsc::Sender<Handoff>,
    /// Fault decisions of this session.
    dice: Dice,
    /// The account's `throttle_tps` bucket, once bound.
    throttle: Option<Arc<Throttle>>,
    /// `submit_sm_resp`s held back by `response_latency`.
    outbox: Outbox,
    /// The connection fault due when `fault_timer` fires.
    fault: Option<ConnFault>,
    fault_timer: Pin<Box<Sleep>>,
}

/// Serves one accepted connection until it closes or `cancel` fires.
pub(crate) async fn run(
    carrier: Arc<CarrierShared>,
    stream: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (handoff_tx, mut handoff_rx) = mpsc::channel(HANDOFF_CAPACITY);
    let id = carrier.registry.next_session_id();
    let mut session = Session {
        id,
        dice: Dice::new(carrier.cfg.seed, id),
        carrier,
        peer,
        state: State::Open,
        receipts: DelayQueue::new(),
        outstanding: HashMap::new(),
        next_seq: 1,
        writer: FramedWrite::new(wr, CommandCodec::new()),
        handoff_tx,
        throttle: None,
        outbox: Outbox::new(),
        fault: None,
        fault_timer: Box::pin(tokio::time::sleep_until(Instant::now())),
    };
    let mut reader = FramedRead::new(rd, CommandCodec::new());
    let reason = match session.serve(&mut reader, &mut handoff_rx, &cancel).await {
        Ok(End::Closed(reason)) => reason,
        Ok(End::HalfOpen) => black_hole(reader.into_inner(), &cancel).await,
        Err(e) => {
            debug!(error = %e, "session write failed");
            "write failed"
        }
    };
    session.finish(reason, handoff_rx);
}

/// A half-open session: reads only to notice the client closing (the bytes are dropped),
/// writes nothing, and keeps its bind slot until the client gives up or the carrier stops.
async fn black_hole(mut rd: OwnedReadHalf, cancel: &CancellationToken) -> &'static str {
    let mut sink = [0u8; 4096];
    loop {
        tokio::select! {
            () = cancel.cancelled() => return "carrier stopped while half-open",
            read = rd.read(&mut sink) => match read {
                Ok(0) | Err(_) => return "peer gave up on a half-open session",
                Ok(_) => {}
            },
        }
    }
}

impl Session {
    async fn serve(
        &mut self,
        reader: &mut Reader,
        handoff_rx: &mut mpsc::Receiver<Handoff>,
        cancel: &CancellationToken,
    ) -> Result<End, EncodeError> {
        let mut orphan_check = tokio::time::interval(ORPHAN_CHECK);
        orphan_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => Event::Killed,
                () = self.fault_timer.as_mut(), if self.fault.is_some() => Event::Fault,
                () = self.outbox.timer(), if !self.outbox.is_empty() => Event::Responses,
                Some(due) = self.receipts.next(), if !self.receipts.is_empty() => {
                    Event::Due(due.into_inner())
                }
                Some(h) = handoff_rx.recv() => Event::Handoff(h),
                frame = reader.next() => Event::Frame(frame),
                _ = orphan_check.tick() => Event::OrphanCheck,
            };
            match event {
                Event::Killed => return Ok(End::Closed("carrier stopped")),
                Event::Fault => return Ok(self.on_fault()),
                Event::Responses => self.send_due_responses().await?,
                Event::Frame(frame) => {
                    if let Some(reason) = self.on_frames(frame, reader).await? {
                        return Ok(End::Closed(reason));
                    }
                }
                Event::Due(receipt) => self.on_due(receipt).await?,
                Event::Handoff(h) => {
                    self.receipts.insert_at(h.receipt, h.deadline);
                }
                Event::OrphanCheck => self.adopt_orphans(),
            }
        }
    }

    /// Handles `first` and whatever else is already buffered, then flushes once.
    async fn on_frames(
        &mut self,
        first: Option<Result<Command, DecodeError>>,
        reader: &mut Reader,
    ) -> Result<Option<&'static str>, EncodeError> {
        let mut frame = first;
        let mut handled = 0;
        let outcome = loop {
            match frame {
                None => break Some("peer closed"),
                Some(Err(e)) => {
                    info!(peer = %self.peer, error = %e, "closing session on undecodable input");
                    break Some("bad input");
                }
                Some(Ok(command)) => {
                    if self.on_command(command).await? == Flow::Close {
                        break Some("closed by protocol");
                    }
                }
            }
            handled += 1;
            if handled >= MAX_BATCH {
                break None;
            }
            match reader.next().now_or_never() {
                Some(next) => frame = next,
                None => break None,
            }
        };
        SinkExt::<Command>::flush(&mut self.writer).await?;
        Ok(outcome)
    }

    async fn on_command(&mut self, command: Command) -> Result<Flow, EncodeError> {
        let seq = command.sequence_number();
        if command.id() == CommandId::DeliverSmResp {
            // Some ESMEs send it header-only; accept it with or without a body.
            match self.outstanding.remove(&seq) {
                Some(_) if command.status() == CommandStatus::EsmeRok => {
                    Counters::incr(&self.carrier.counters.receipts_acked);
                }
                // Refused (e.g. ESME_RX_T_APPN): as an SMSC does, send it again later.
                Some(mut receipt) => {
                    Counters::incr(&self.carrier.counters.receipts_refused);
                    receipt.refused = true;
                    self.receipts
                        .insert_at(receipt, Instant::now() + RECEIPT_RETRY);
                }
                None => {}
            }
            return Ok(Flow::Continue);
        }
        let Some(pdu) = command.pdu() else {
            if command.id().is_response() {
                return Ok(Flow::Continue);
            }
            // An operation without the body it needs: answer and drop the session.
            self.reply(CommandStatus::EsmeRinvcmdlen, seq, Pdu::GenericNack)
                .await?;
            return Ok(Flow::Close);
        };
        match pdu {
            Pdu::BindTransmitter(b) => {
                let creds = (b.system_id.as_str(), b.password.as_str());
                self.bind(seq, BindKind::Transmitter, creds).await
            }
            Pdu::BindReceiver(b) => {
                let creds = (b.system_id.as_str(), b.password.as_str());
                self.bind(seq, BindKind::Receiver, creds).await
            }
            Pdu::BindTransceiver(b) => {
                let creds = (b.system_id.as_str(), b.password.as_str());
                self.bind(seq, BindKind::Transceiver, creds).await
            }
            Pdu::SubmitSm(sm) => {
                self.submit(seq, sm).await?;
                Ok(Flow::Continue)
            }
            Pdu::EnquireLink => {
                self.reply(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
                    .await?;
                Ok(Flow::Continue)
            }
            Pdu::Unbind => {
                // Answer everything held back before saying goodbye.
                for response in self.outbox.drain() {
                    self.writer.feed(response).await?;
                }
                self.reply(CommandStatus::EsmeRok, seq, Pdu::UnbindResp)
                    .await?;
                Ok(Flow::Close)
            }
            _ if command.id().is_response() => Ok(Flow::Continue),
            _ => {
                self.reply(CommandStatus::EsmeRinvcmdid, seq, Pdu::GenericNack)
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn bind(
        &mut self,
        seq: u32,
        kind: BindKind,
        (system_id, password): (&str, &str),
    ) -> Result<Flow, EncodeError> {
        if matches!(self.state, State::Bound { .. }) {
            self.reply(CommandStatus::EsmeRalybnd, seq, bind_resp(kind))
                .await?;
            return Ok(Flow::Continue);
        }
        let cfg = &self.carrier.cfg;
        let known = cfg
            .accounts
            .iter()
            .any(|a| a.system_id == system_id && a.password == password);
        if !known {
            Counters::incr(&self.carrier.counters.bind_failures);
            info!(carrier = %cfg.name, peer = %self.peer, system_id, "bind refused: bad credentials");
            self.reply(CommandStatus::EsmeRbindfail, seq, bind_resp(kind))
                .await?;
            return Ok(Flow::Close);
        }
        let bound = self.carrier.registry.bind(
            system_id,
            self.id,
            kind.can_receive(),
            self.handoff_tx.clone(),
            cfg.max_binds,
        );
        match bound {
            Err(BindRefused::QuotaReached) => {
                Counters::incr(&self.carrier.counters.bind_failures);
                info!(carrier = %cfg.name, peer = %self.peer, system_id, "bind refused: bind quota reached");
                self.reply(CommandStatus::EsmeRalybnd, seq, bind_resp(kind))
                    .await?;
                Ok(Flow::Close)
            }
            Ok(kept) => {
                Counters::incr(&self.carrier.counters.binds);
                info!(carrier = %cfg.name, peer = %self.peer, system_id, ?kind, kept_receipts = kept.len(), "bound");
                self.state = State::Bound {
                    system_id: system_id.to_string(),
                    kind,
                };
                for h in kept {
                    self.receipts.insert_at(h.receipt, h.deadline);
                }
                self.throttle = cfg
                    .throttle_tps
                    .map(|tps| self.carrier.throttles.get(system_id, tps));
                self.schedule_conn_fault();
                self.reply(CommandStatus::EsmeRok, seq, bind_resp(kind))
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Arms the earliest of `drop_every` and `half_open_after`, counted from the bind.
    fn schedule_conn_fault(&mut self) {
        let cfg = &self.carrier.cfg;
        let faults = [
            (cfg.drop_every, ConnFault::Drop),
            (cfg.half_open_after, ConnFault::HalfOpen),
        ];
        let Some((after, fault)) = faults
            .into_iter()
            .filter_map(|(after, fault)| after.map(|a| (a, fault)))
            .min_by_key(|(after, _)| *after)
        else {
            return;
        };
        self.fault = Some(fault);
        self.fault_timer.as_mut().reset(Instant::now() + after);
    }

    fn on_fault(&mut self) -> End {
        let counters = &self.carrier.counters;
        match self.fault.take() {
            Some(ConnFault::HalfOpen) => {
                Counters::incr(&counters.half_opens);
                info!(carrier = %self.carrier.cfg.name, peer = %self.peer, "session goes half-open (fault)");
                End::HalfOpen
            }
            Some(ConnFault::Drop) | None => {
                Counters::incr(&counters.drops);
                End::Closed("dropped (fault)")
            }
        }
    }

    async fn reply(
        &mut self,
        status: CommandStatus,
        seq: u32,
        pdu: Pdu,
    ) -> Result<(), EncodeError> {
        self.writer.feed(Command::new(status, seq, pdu)).await
    }
}

fn bind_resp(kind: BindKind) -> Pdu {
    let id = COctetString::from_string(SMSC_SYSTEM_ID.to_string()).unwrap_or_default();
    match kind {
        BindKind::Transmitter => BindTransmitterResp::builder().system_id(id).build().into(),
        BindKind::Receiver => BindReceiverResp::builder().system_id(id).build().into(),
        BindKind::Transceiver => BindTransceiverResp::builder().system_id(id).build().into(),
    }
}

fn submit_resp(message_id: &str) -> Pdu {
    let id = COctetString::from_string(message_id.to_string()).unwrap_or_default();
    SubmitSmResp::builder().message_id(id).build().into()
}
