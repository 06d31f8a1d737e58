//! One ESME connection: the task that owns the socket, answers every PDU, and keeps the
//! receipts it owes on its own timer wheel ([`DelayQueue`]). Nothing here is locked per
//! PDU; counters are atomics and the submit path touches shared maps only for multipart
//! reassembly and the duplicate digest. Hostile or broken input ends this session only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, SubmitSm, SubmitSmResp,
};
use rusmpp::tokio_codec::{CommandCodec, DecodeError, EncodeError};
use rusmpp::types::COctetString;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use time::OffsetDateTime;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::{debug, info};

use super::dlr::{next_message_id, smpp_date, wants_receipt, PendingReceipt};
use super::registry::{BindRefused, Handoff};
use super::server::CarrierShared;
use super::stats::Counters;
use super::submit;

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

/// What woke the session up.
enum Event {
    Killed,
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
    let mut session = Session {
        id: carrier.registry.next_session_id(),
        carrier,
        peer,
        state: State::Open,
        receipts: DelayQueue::new(),
        outstanding: HashMap::new(),
        next_seq: 1,
        writer: FramedWrite::new(wr, CommandCodec::new()),
        handoff_tx,
    };
    let reader = FramedRead::new(rd, CommandCodec::new());
    let reason = match session.serve(reader, &mut handoff_rx, &cancel).await {
        Ok(reason) => reason,
        Err(e) => {
            debug!(error = %e, "session write failed");
            "write failed"
        }
    };
    session.finish(reason, handoff_rx);
}

impl Session {
    async fn serve(
        &mut self,
        mut reader: Reader,
        handoff_rx: &mut mpsc::Receiver<Handoff>,
        cancel: &CancellationToken,
    ) -> Result<&'static str, EncodeError> {
        let mut orphan_check = tokio::time::interval(ORPHAN_CHECK);
        orphan_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => Event::Killed,
                Some(due) = self.receipts.next(), if !self.receipts.is_empty() => {
                    Event::Due(due.into_inner())
                }
                Some(h) = handoff_rx.recv() => Event::Handoff(h),
                frame = reader.next() => Event::Frame(frame),
                _ = orphan_check.tick() => Event::OrphanCheck,
            };
            match event {
                Event::Killed => return Ok("carrier stopped"),
                Event::Frame(frame) => {
                    if let Some(reason) = self.on_frames(frame, &mut reader).await? {
                        return Ok(reason);
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
            if self.outstanding.remove(&seq).is_some() && command.status() == CommandStatus::EsmeRok
            {
                Counters::incr(&self.carrier.counters.receipts_acked);
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
                self.reply(CommandStatus::EsmeRok, seq, bind_resp(kind))
                    .await?;
                Ok(Flow::Continue)
            }
        }
    }

    async fn submit(&mut self, seq: u32, sm: &SubmitSm) -> Result<(), EncodeError> {
        let may_submit = matches!(&self.state, State::Bound { kind, .. } if kind.can_submit());
        if !may_submit {
            return self
                .reply(CommandStatus::EsmeRinvbndsts, seq, submit_resp(""))
                .await;
        }
        let Some((concat, payload)) = submit::split(sm) else {
            return self
                .reply(CommandStatus::EsmeRinvesmclass, seq, submit_resp(""))
                .await;
        };
        let carrier = Arc::clone(&self.carrier);
        Counters::incr(&carrier.counters.submits);
        let message_id = next_message_id(carrier.cfg.id_format);
        self.reply(CommandStatus::EsmeRok, seq, submit_resp(&message_id))
            .await?;
        submit::count_message(&carrier, sm, concat, payload);
        let state = carrier.cfg.receipt_state;
        if wants_receipt(u8::from(sm.registered_delivery), state) {
            let receipt = PendingReceipt {
                message_id,
                handset: sm.destination_addr.clone(),
                handset_ton: sm.dest_addr_ton,
                handset_npi: sm.dest_addr_npi,
                esme: sm.source_addr.clone(),
                esme_ton: sm.source_addr_ton,
                esme_npi: sm.source_addr_npi,
                submit_date: smpp_date(OffsetDateTime::now_utc()),
                state,
            };
            self.receipts.insert(receipt, carrier.cfg.dlr_delay);
        }
        Ok(())
    }

    /// Sends `first` and every other receipt already due; passes on those it cannot carry.
    async fn on_due(&mut self, first: PendingReceipt) -> Result<(), EncodeError> {
        let can_receive = matches!(&self.state, State::Bound { kind, .. } if kind.can_receive());
        let mut elsewhere = Vec::new();
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(receipt) = next {
            if can_receive {
                self.send_receipt(receipt).await?;
            } else {
                elsewhere.push(Handoff {
                    deadline: Instant::now(),
                    receipt,
                });
            }
            handled += 1;
            next = if handled < MAX_BATCH {
                self.receipts
                    .next()
                    .now_or_never()
                    .flatten()
                    .map(|e| e.into_inner())
            } else {
                None
            };
        }
        if let State::Bound { system_id, .. } = &self.state {
            self.carrier.registry.route(system_id, self.id, elsewhere);
        }
        SinkExt::<Command>::flush(&mut self.writer).await
    }

    async fn send_receipt(&mut self, receipt: PendingReceipt) -> Result<(), EncodeError> {
        let seq = self.next_seq;
        // Sequence numbers run 1..=0x7FFF_FFFF.
        self.next_seq = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
        let deliver = receipt.to_deliver_sm();
        self.writer
            .feed(Command::new(CommandStatus::EsmeRok, seq, deliver))
            .await?;
        self.outstanding.insert(seq, receipt);
        Counters::incr(&self.carrier.counters.receipts_sent);
        Ok(())
    }

    fn adopt_orphans(&mut self) {
        let State::Bound { system_id, kind } = &self.state else {
            return;
        };
        if !kind.can_receive() || !self.carrier.registry.has_orphans() {
            return;
        }
        for h in self.carrier.registry.take_orphans(system_id) {
            self.receipts.insert_at(h.receipt, h.deadline);
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

    /// Leaves the registry and passes every receipt still owed (queued, handed over, or sent
    /// and not acknowledged) to another bind of the account, or to the carrier to keep.
    fn finish(mut self, reason: &'static str, mut handoff_rx: mpsc::Receiver<Handoff>) {
        let State::Bound { system_id, .. } = &self.state else {
            debug!(peer = %self.peer, reason, "connection closed before bind");
            return;
        };
        let registry = &self.carrier.registry;
        registry.unbind(system_id, self.id);
        let now = Instant::now();
        let mut owed: Vec<Handoff> = self
            .outstanding
            .drain()
            .map(|(_, receipt)| Handoff {
                deadline: now,
                receipt,
            })
            .collect();
        // Unlisted first, then closed: a hand-off either landed before the close (and is
        // drained here) or fails and stays with the carrier. None is lost in between.
        handoff_rx.close();
        while let Ok(h) = handoff_rx.try_recv() {
            owed.push(h);
        }
        while let Some(key) = self.receipts.peek() {
            let expired = self.receipts.remove(&key);
            owed.push(Handoff {
                deadline: expired.deadline(),
                receipt: expired.into_inner(),
            });
        }
        info!(carrier = %self.carrier.cfg.name, peer = %self.peer, system_id, reason, receipts_owed = owed.len(), "session closed");
        registry.route(system_id, self.id, owed);
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
