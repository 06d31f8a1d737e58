//! The socket task: the only owner of one session's TCP connection.
//!
//! Role: a thin I/O shell around [`Window`]. It reads PDUs first (a `biased` select, so
//! responses are drained before new submits go out), writes submits taken from the handles'
//! mailbox, fires timers (response deadlines, enquire_link), answers the peer's requests, and
//! on close resolves everything still pending and announces [`Inbound::Closed`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::{pdus::DeliverSmResp, Command, CommandId, CommandStatus, Pdu};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use super::pdu::{self, command_name, is_response, mask_number};
use super::window::Window;
use super::{Action, Conn, Inbound, SessionConfig, Shared, SubmitOutcome, BIND_SEQUENCE};
use crate::metrics;
use crate::receipt::parse_receipt;

/// A request written and awaiting its response.
#[derive(Debug)]
enum Pending {
    Submit {
        reply: oneshot::Sender<SubmitOutcome>,
        sent_at: Instant,
    },
    EnquireLink {
        sent_at: Instant,
    },
    Unbind,
}

impl Pending {
    fn is_submit(&self) -> bool {
        matches!(self, Pending::Submit { .. })
    }
}

/// Lifecycle after the bind (see the module docs of `session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Taking submits.
    Bound,
    /// Refusing submits, waiting for in-flight ones; `unbind_sent` once the unbind is out.
    Unbinding { unbind_sent: bool },
}

/// Why the session ends: a fixed label for metrics and a sentence for logs and
/// [`Inbound::Closed`].
#[derive(Debug)]
struct Close {
    label: &'static str,
    reason: String,
}

impl Close {
    fn new(label: &'static str, reason: impl Into<String>) -> Self {
        Self {
            label,
            reason: reason.into(),
        }
    }
}

/// How long an idle session waits when there is no timer at all (never in practice: a bound
/// session always has an enquire_link timer).
const FAR: Duration = Duration::from_secs(86_400);

pub(super) struct SocketTask {
    cfg: SessionConfig,
    conn: Conn,
    actions: mpsc::Receiver<Action>,
    /// False once every handle is gone (stop polling the closed mailbox).
    actions_open: bool,
    inbound: mpsc::Sender<Inbound>,
    shared: Arc<Shared>,
    closed: watch::Sender<bool>,
    window: Window<Pending>,
    state: State,
    /// When a PDU was last read: any PDU proves the link is alive.
    last_rx: Instant,
}

impl SocketTask {
    pub(super) fn new(
        cfg: SessionConfig,
        conn: Conn,
        actions: mpsc::Receiver<Action>,
        inbound: mpsc::Sender<Inbound>,
        shared: Arc<Shared>,
        closed: watch::Sender<bool>,
    ) -> Self {
        Self {
            cfg,
            conn,
            actions,
            actions_open: true,
            inbound,
            shared,
            closed,
            window: Window::starting_at(BIND_SEQUENCE + 1),
            state: State::Bound,
            last_rx: Instant::now(),
        }
    }

    pub(super) async fn run(mut self) {
        let close = self.serve().await;
        self.shutdown(close).await;
    }

    async fn serve(&mut self) -> Close {
        loop {
            if let Err(close) = self.step().await {
                return close;
            }
        }
    }

    /// One turn of the loop: one read, action or timer, then the unbind check.
    async fn step(&mut self) -> Result<(), Close> {
        let timer = self.next_timer();
        let step = tokio::select! {
            biased;
            frame = self.conn.next() => match frame {
                // Some SMSCs close right after (or instead of) their unbind_resp.
                None if self.state == (State::Unbinding { unbind_sent: true }) => {
                    Err(Close::new("unbound", "unbound"))
                }
                None => Err(Close::new("peer_closed", "connection closed by peer")),
                Some(Err(e)) => Err(Close::new("decode_error", format!("pdu decode failed: {e}"))),
                Some(Ok(cmd)) => {
                    self.last_rx = Instant::now();
                    self.on_command(cmd).await
                }
            },
            action = self.actions.recv(), if self.actions_open => match action {
                Some(Action::Submit { submit, reply }) => self.on_submit(submit, reply).await,
                Some(Action::Unbind) => {
                    self.start_unbind();
                    Ok(())
                }
                None => {
                    // Every handle is gone: nobody can submit, leave politely.
                    self.actions_open = false;
                    self.start_unbind();
                    Ok(())
                }
            },
            () = sleep_until(timer) => self.on_timers().await,
        };
        step?;
        self.shared
            .in_flight
            .store(self.window.count(Pending::is_submit), Ordering::Relaxed);
        if self.state == (State::Unbinding { unbind_sent: false })
            && !self.window.any(Pending::is_submit)
        {
            self.send_unbind().await?;
        }
        Ok(())
    }

    /// The earliest of: a response deadline, the next enquire_link (when bound and none is
    /// outstanding).
    fn next_timer(&self) -> Instant {
        let now = Instant::now();
        let mut t = now + FAR;
        if let Some(d) = self.window.next_deadline() {
            t = t.min(d);
        }
        if self.state == State::Bound && !self.enquire_pending() {
            t = t.min(self.last_rx + self.cfg.enquire_link_interval);
        }
        t
    }

    fn enquire_pending(&self) -> bool {
        self.window
            .any(|p| matches!(p, Pending::EnquireLink { .. }))
    }

    fn start_unbind(&mut self) {
        if self.state == State::Bound {
            info!(
                in_flight = self.window.count(Pending::is_submit),
                "unbinding"
            );
            self.shared.permits.close();
            self.state = State::Unbinding { unbind_sent: false };
        }
    }

    async fn send_unbind(&mut self) -> Result<(), Close> {
        let seq = self.window.next_sequence();
        self.write(Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind))
            .await?;
        let deadline = Instant::now() + self.cfg.response_timeout;
        self.window.insert(seq, deadline, Pending::Unbind);
        self.state = State::Unbinding { unbind_sent: true };
        Ok(())
    }

    /// Writes one PDU; a peer that does not read within `response_timeout` closes the session.
    async fn write(&mut self, cmd: Command) -> Result<(), Close> {
        let name = command_name(cmd.id());
        match timeout(self.cfg.response_timeout, self.conn.send(cmd)).await {
            Ok(Ok(())) => {
                metrics::pdu(name, "tx");
                Ok(())
            }
            Ok(Err(e)) => Err(Close::new("io_error", format!("write failed: {e}"))),
            Err(_) => Err(Close::new("write_timeout", "peer is not reading")),
        }
    }

    async fn on_submit(
        &mut self,
        submit: super::Submit,
        reply: oneshot::Sender<SubmitOutcome>,
    ) -> Result<(), Close> {
        if self.state != State::Bound {
            let _ = reply.send(SubmitOutcome::NotSent);
            return Ok(());
        }
        let seq = self.window.next_sequence();
        let cmd = match pdu::submit_command(&submit, seq) {
            Ok(cmd) => cmd,
            Err(command_status) => {
                warn!(
                    dest = %mask_number(&submit.destination_addr),
                    command_status,
                    "submit refused locally"
                );
                let _ = reply.send(SubmitOutcome::Rejected { command_status });
                return Ok(());
            }
        };
        if let Err(close) = self.write(cmd).await {
            // Maybe partly written: ambiguous.
            let _ = reply.send(SubmitOutcome::Lost);
            return Err(close);
        }
        debug!(seq, dest = %mask_number(&submit.destination_addr), "submit_sm written");
        let sent_at = Instant::now();
        self.window.insert(
            seq,
            sent_at + self.cfg.response_timeout,
            Pending::Submit { reply, sent_at },
        );
        Ok(())
    }

    async fn on_timers(&mut self) -> Result<(), Close> {
        let now = Instant::now();
        for (seq, pending) in self.window.expire(now) {
            match pending {
                Pending::Submit { reply, .. } => {
                    warn!(seq, "submit_sm response timed out");
                    let _ = reply.send(SubmitOutcome::Timeout);
                }
                Pending::EnquireLink { sent_at } => {
                    if self.last_rx < sent_at {
                        return Err(Close::new(
                            "enquire_link_timeout",
                            "enquire_link unanswered and nothing received",
                        ));
                    }
                    debug!(seq, "enquire_link unanswered but the link is busy");
                }
                Pending::Unbind => {
                    return Err(Close::new("unbound", "unbind_resp timed out"));
                }
            }
        }
        if self.state == State::Bound
            && !self.enquire_pending()
            && now >= self.last_rx + self.cfg.enquire_link_interval
        {
            let seq = self.window.next_sequence();
            self.write(Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink))
                .await?;
            self.window.insert(
                seq,
                now + self.cfg.response_timeout,
                Pending::EnquireLink { sent_at: now },
            );
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), Close> {
        let id = cmd.id();
        let seq = cmd.sequence_number();
        metrics::pdu(command_name(id), "rx");
        if is_response(id) {
            self.on_response(cmd);
            return if self.state == (State::Unbinding { unbind_sent: true })
                && !self.window.any(|p| matches!(p, Pending::Unbind))
            {
                Err(Close::new("unbound", "unbound"))
            } else {
                Ok(())
            };
        }
        match id {
            CommandId::EnquireLink => {
                self.write(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ))
                .await
            }
            CommandId::DeliverSm => self.on_deliver_sm(cmd).await,
            CommandId::Unbind => {
                self.write(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
                    .await?;
                Err(Close::new("peer_unbound", "peer unbound"))
            }
            CommandId::AlertNotification => Ok(()),
            CommandId::BindTransceiver
            | CommandId::BindTransmitter
            | CommandId::BindReceiver
            | CommandId::Outbind
            | CommandId::SubmitSm => Err(Close::new(
                "protocol_error",
                format!("peer sent {} to a client", command_name(id)),
            )),
            other => {
                warn!(
                    command = command_name(other),
                    "unsupported request answered with generic_nack"
                );
                let nack = Command::new(
                    CommandStatus::from(pdu::ESME_RINVCMDID),
                    seq,
                    Pdu::GenericNack,
                );
                self.write(nack).await
            }
        }
    }

    fn on_response(&mut self, cmd: Command) {
        let id = cmd.id();
        let seq = cmd.sequence_number();
        let status = u32::from(cmd.status());
        match self.window.remove(seq) {
            Some(Pending::Submit { reply, sent_at }) => {
                metrics::submit_response_time(sent_at.elapsed());
                let outcome = match (id, cmd.pdu()) {
                    (CommandId::SubmitSmResp, Some(Pdu::SubmitSmResp(r))) if status == 0 => {
                        SubmitOutcome::Accepted {
                            message_id: r.message_id().as_str().to_owned(),
                        }
                    }
                    (CommandId::SubmitSmResp, None) if status == 0 => {
                        warn!(seq, "submit_sm_resp accepted without a message id");
                        SubmitOutcome::Accepted {
                            message_id: String::new(),
                        }
                    }
                    (CommandId::SubmitSmResp | CommandId::GenericNack, _) => {
                        debug!(seq, command_status = status, "submit_sm rejected");
                        SubmitOutcome::Rejected {
                            command_status: status,
                        }
                    }
                    (other, _) => {
                        warn!(
                            seq,
                            command = command_name(other),
                            "wrong response to submit_sm"
                        );
                        SubmitOutcome::Lost
                    }
                };
                let _ = reply.send(outcome);
            }
            Some(Pending::EnquireLink { .. }) | Some(Pending::Unbind) => {}
            None => {
                metrics::unmatched_response();
                debug!(
                    seq,
                    command = command_name(id),
                    command_status = status,
                    "response matches no pending request"
                );
            }
        }
    }

    async fn on_deliver_sm(&mut self, cmd: Command) -> Result<(), Close> {
        let seq = cmd.sequence_number();
        let status = match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => {
                let (tlvs, payload) = pdu::receipt_parts(d);
                if pdu::is_receipt(d, &tlvs) {
                    let sm = d.short_message().as_ref();
                    let text = if sm.is_empty() {
                        payload.unwrap_or(sm)
                    } else {
                        sm
                    };
                    match parse_receipt(text, &tlvs) {
                        Ok(receipt) => {
                            debug!(message_id = %receipt.message_id, state = ?receipt.state, "receipt");
                            self.forward(Inbound::Receipt(receipt)).await
                        }
                        Err(e) => {
                            metrics::receipt("unparsed");
                            warn!(reason = %e, "receipt not understood, acknowledged anyway");
                            0
                        }
                    }
                } else {
                    debug!("mobile-originated deliver_sm acknowledged and ignored");
                    0
                }
            }
            _ => {
                warn!("deliver_sm without a body acknowledged");
                0
            }
        };
        let resp = Command::new(CommandStatus::from(status), seq, DeliverSmResp::default());
        self.write(resp).await
    }

    /// Hands a receipt on; returns the deliver_sm_resp status: 0, or ESME_RX_T_APPN when the
    /// inbound mailbox stays full for `response_timeout` or is gone, so the SMSC retries later.
    async fn forward(&mut self, item: Inbound) -> u32 {
        let started = Instant::now();
        let result = timeout(self.cfg.response_timeout, self.inbound.send(item)).await;
        metrics::inbound_blocked(started.elapsed());
        match result {
            Ok(Ok(())) => {
                metrics::receipt("forwarded");
                0
            }
            Ok(Err(_)) => {
                metrics::receipt("not_forwarded");
                warn!("inbound receiver is gone, receipt refused for redelivery");
                pdu::ESME_RX_T_APPN
            }
            Err(_) => {
                metrics::receipt("not_forwarded");
                warn!("inbound mailbox full, receipt refused for redelivery");
                pdu::ESME_RX_T_APPN
            }
        }
    }

    /// Resolves everything, tells the handles and the engine, closes the socket.
    async fn shutdown(mut self, close: Close) {
        metrics::session_closed(close.label);
        if close.label == "unbound" {
            info!(reason = %close.reason, "session closed");
        } else {
            warn!(reason = %close.reason, "session closed");
        }
        self.shared.permits.close();
        let _ = self.closed.send(true);
        let mut lost = 0usize;
        for (_, pending) in self.window.drain() {
            if let Pending::Submit { reply, .. } = pending {
                lost += 1;
                let _ = reply.send(SubmitOutcome::Lost);
            }
        }
        self.actions.close();
        while let Ok(action) = self.actions.try_recv() {
            if let Action::Submit { reply, .. } = action {
                let _ = reply.send(SubmitOutcome::NotSent);
            }
        }
        self.shared.in_flight.store(0, Ordering::Relaxed);
        if lost > 0 {
            warn!(lost, "in-flight submits lost with the session");
        }
        let _ = timeout(
            self.cfg.response_timeout,
            SinkExt::<Command>::close(&mut self.conn),
        )
        .await;
        let closed = Inbound::Closed {
            reason: close.reason,
        };
        let _ = timeout(self.cfg.response_timeout, self.inbound.send(closed)).await;
    }
}
