//! The socket task: the only owner of one session's connection (TCP or TLS).
//!
//! Role: a thin I/O shell around [`Window`]. It reads PDUs first (a `biased` select, so
//! responses are drained before new submits go out), writes submits taken from the handles'
//! mailbox, fires timers (response deadlines, enquire_link), answers the peer's requests, and
//! on close resolves everything still pending and announces [`Inbound::Closed`].
//!
//! Batching: each turn handles one ready source and then everything more that is ready
//! without waiting (PDUs already in the read buffer, actions already in the mailbox, up to
//! [`MAX_BATCH`]); writes go to the framed write buffer and are flushed once per turn, so a
//! busy session makes one `write` syscall per batch instead of one per PDU.
//! `inbound.rs` handles what the peer sends.

mod inbound;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use rusmpp::Command;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info, warn};

use super::codec::holds_frame;
use super::pdu::{self, command_name, mask_number};
use super::window::Window;
use super::{Action, Conn, Inbound, SessionConfig, Shared, SubmitOutcome, BIND_SEQUENCE};
use crate::metrics;

/// Most PDUs or actions handled in one turn before the write buffer is flushed and timers
/// get a look.
const MAX_BATCH: usize = 128;

/// Write-buffer size at which a write flushes before adding more (tokio-util's own
/// backpressure boundary).
const FLUSH_AT: usize = 8 * 1024;

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

/// The window plus counts of what it holds, so no turn has to scan it.
#[derive(Debug)]
struct Pendings {
    window: Window<Pending>,
    submits: usize,
    enquire_links: usize,
    unbinds: usize,
}

impl Pendings {
    fn new() -> Self {
        Self {
            window: Window::starting_at(BIND_SEQUENCE + 1),
            submits: 0,
            enquire_links: 0,
            unbinds: 0,
        }
    }

    fn counter(&mut self, p: &Pending) -> &mut usize {
        match p {
            Pending::Submit { .. } => &mut self.submits,
            Pending::EnquireLink { .. } => &mut self.enquire_links,
            Pending::Unbind => &mut self.unbinds,
        }
    }

    fn insert(&mut self, seq: u32, deadline: Instant, p: Pending) {
        *self.counter(&p) += 1;
        if let Some(old) = self.window.insert(seq, deadline, p) {
            *self.counter(&old) -= 1;
        }
    }

    fn remove(&mut self, seq: u32) -> Option<Pending> {
        let p = self.window.remove(seq)?;
        *self.counter(&p) -= 1;
        Some(p)
    }

    fn expire(&mut self, now: Instant) -> Vec<(u32, Pending)> {
        let expired = self.window.expire(now);
        for (_, p) in &expired {
            *self.counter(p) -= 1;
        }
        expired
    }

    fn drain(&mut self) -> Vec<(u32, Pending)> {
        self.submits = 0;
        self.enquire_links = 0;
        self.unbinds = 0;
        self.window.drain()
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

pub(super) struct SocketTask<S> {
    cfg: SessionConfig,
    conn: Conn<S>,
    actions: mpsc::Receiver<Action>,
    /// False once every handle is gone (stop polling the closed mailbox).
    actions_open: bool,
    inbound: mpsc::Sender<Inbound>,
    shared: Arc<Shared>,
    closed: watch::Sender<bool>,
    pending: Pendings,
    state: State,
    /// When anything was last read (a busy link is alive even if enquire_link is late).
    last_rx: Instant,
    /// Receipts handed on whose `deliver_sm_resp` waits for the receiver's ack: each
    /// resolves to (sequence number, status).
    acks: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, (u32, u32)>>,
    /// PDUs read and written, counted through kept handles.
    pdus: metrics::Counters<(&'static str, &'static str)>,
    /// Receipts by result, counted through kept handles.
    receipts: metrics::Counters<&'static str>,
    submit_response_times: ::metrics::Histogram,
}

impl<S> SocketTask<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(super) fn new(
        cfg: SessionConfig,
        conn: Conn<S>,
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
            pending: Pendings::new(),
            state: State::Bound,
            last_rx: Instant::now(),
            pdus: metrics::pdus(),
            receipts: metrics::receipts(),
            submit_response_times: metrics::submit_response_times(),
            acks: futures::stream::FuturesUnordered::new(),
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

    /// One turn: one ready read, action or timer plus whatever more is ready, the unbind
    /// check, then one flush.
    async fn step(&mut self) -> Result<(), Close> {
        let timer = self.next_timer();
        tokio::select! {
            biased;
            frame = futures::StreamExt::next(&mut self.conn) => {
                self.on_frame(frame).await?;
                let mut n = 1;
                while n < MAX_BATCH && holds_frame(self.conn.read_buffer()) {
                    let frame = futures::StreamExt::next(&mut self.conn).await;
                    self.on_frame(frame).await?;
                    n += 1;
                }
            },
            action = self.actions.recv(), if self.actions_open => {
                self.on_action(action).await?;
                let mut n = 1;
                while n < MAX_BATCH && self.actions_open {
                    let Ok(action) = self.actions.try_recv() else { break };
                    self.on_action(Some(action)).await?;
                    n += 1;
                }
            },
            Some((seq, status)) = futures::StreamExt::next(&mut self.acks), if !self.acks.is_empty() => {
                self.write(pdu::deliver_sm_resp(status, seq)).await?;
                while let Some(Some((seq, status))) =
                    futures::FutureExt::now_or_never(futures::StreamExt::next(&mut self.acks))
                {
                    self.write(pdu::deliver_sm_resp(status, seq)).await?;
                }
            },
            () = sleep_until(timer) => self.on_timers().await?,
        }
        if self.state == (State::Unbinding { unbind_sent: false }) && self.pending.submits == 0 {
            self.send_unbind().await?;
        }
        self.flush().await?;
        self.shared
            .in_flight
            .store(self.pending.submits, Ordering::Relaxed);
        Ok(())
    }

    async fn on_action(&mut self, action: Option<Action>) -> Result<(), Close> {
        match action {
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
        }
    }

    /// The earliest of: a response deadline, the next enquire_link (when bound and none is
    /// outstanding).
    fn next_timer(&self) -> Instant {
        let mut t = self
            .pending
            .window
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + FAR);
        if self.state == State::Bound && self.pending.enquire_links == 0 {
            t = t.min(self.last_rx + self.cfg.enquire_link_interval);
        }
        t
    }

    fn start_unbind(&mut self) {
        if self.state == State::Bound {
            info!(in_flight = self.pending.submits, "unbinding");
            self.shared.permits.close();
            self.state = State::Unbinding { unbind_sent: false };
        }
    }

    async fn send_unbind(&mut self) -> Result<(), Close> {
        let seq = self.pending.window.next_sequence();
        self.write(pdu::unbind(seq)).await?;
        let deadline = Instant::now() + self.cfg.response_timeout;
        self.pending.insert(seq, deadline, Pending::Unbind);
        self.state = State::Unbinding { unbind_sent: true };
        Ok(())
    }

    /// Adds one PDU to the write buffer (flushing first if the buffer is large); the turn's
    /// [`Self::flush`] sends it.
    async fn write(&mut self, cmd: Command) -> Result<(), Close> {
        let name = command_name(cmd.id());
        if self.conn.write_buffer().len() >= FLUSH_AT {
            self.flush().await?;
        }
        // Below the backpressure boundary `feed` only encodes into the buffer.
        match self.conn.feed(cmd).await {
            Ok(()) => {
                self.pdus.increment((name, "tx"));
                Ok(())
            }
            Err(e) => Err(Close::new("io_error", format!("write failed: {e}"))),
        }
    }

    /// Sends the write buffer; a peer that does not read within `response_timeout` closes the
    /// session.
    async fn flush(&mut self) -> Result<(), Close> {
        if self.conn.write_buffer().is_empty() {
            return Ok(());
        }
        match timeout(self.cfg.response_timeout, self.conn.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Close::new("io_error", format!("write failed: {e}"))),
            Err(_) => Err(Close::new("write_timeout", "peer is not reading")),
        }
    }

    async fn on_submit(
        &mut self,
        submit: super::Submit,
        reply: oneshot::Sender<SubmitOutcome>,
    ) -> Result<(), Close> {
        if self.state != State::Bound || !self.cfg.bind.can_submit() {
            let _ = reply.send(SubmitOutcome::NotSent);
            return Ok(());
        }
        let seq = self.pending.window.next_sequence();
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
        self.pending.insert(
            seq,
            sent_at + self.cfg.response_timeout,
            Pending::Submit { reply, sent_at },
        );
        Ok(())
    }

    async fn on_timers(&mut self) -> Result<(), Close> {
        let now = Instant::now();
        for (seq, pending) in self.pending.expire(now) {
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
            && self.pending.enquire_links == 0
            && now >= self.last_rx + self.cfg.enquire_link_interval
        {
            let seq = self.pending.window.next_sequence();
            self.write(pdu::enquire_link(seq)).await?;
            self.pending.insert(
                seq,
                now + self.cfg.response_timeout,
                Pending::EnquireLink { sent_at: now },
            );
        }
        Ok(())
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
        // Unbind before the socket goes, where the link may still carry it, so that the SMSC
        // does not keep a ghost bind that counts against the account's quota.
        let writable = !matches!(
            close.label,
            "unbound" | "peer_unbound" | "peer_closed" | "io_error" | "write_timeout"
        );
        if writable {
            let seq = self.pending.window.next_sequence();
            let _ = timeout(Duration::from_millis(200), self.write(pdu::unbind(seq))).await;
        }
        let mut lost = 0usize;
        for (_, pending) in self.pending.drain() {
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
