//! One SMPP client session per bind.
//!
//! Role: own one connection to an SMSC (plain TCP or TLS) from bind to unbind. [`connect`]
//! binds and spawns the socket task (see `task/`), the only code that touches the socket;
//! callers hold a cheap, cloneable [`Session`] handle and send it actions. Submits are
//! pipelined up to `window` in flight, each keyed by sequence number with its own response
//! timeout (see [`window`]); receipts are acknowledged and handed on as [`Inbound::Receipt`].
//!
//! Lifecycle (states of the socket task):
//! - **binding**: TCP connect, TLS handshake when configured, bind request, all bounded by
//!   `bind_timeout`; a refusal is [`SessionError::BindRefused`] (see
//!   [`SessionError::retry_after_hint`] before trying again).
//! - **bound**: submits are written as window slots allow (a receiver bind refuses them with
//!   `NotSent`); enquire_link is sent after `enquire_link_interval` without receiving
//!   anything; the peer's enquire_link, deliver_sm and unbind are answered.
//! - **unbinding** (after [`Session::unbind`] or when every handle is dropped): new submits are
//!   refused (`NotSent`), in-flight ones get their response or time out, then unbind is sent
//!   and its response awaited (bounded by `response_timeout`).
//! - **closed**: every pending submit is resolved (`Lost` if written, `NotSent` if not) and
//!   [`Inbound::Closed`] is sent once. Reached from any state on unbind, peer close, I/O or
//!   framing error, an undecodable PDU other than a `deliver_sm` (those are acknowledged and
//!   read leniently), a hostile PDU, or an unanswered enquire_link on an otherwise silent link.
//!
//! Files: `config.rs` (settings), `error.rs` ([`SessionError`]), `tls.rs` (rustls),
//! `bind.rs` (handshake), `codec.rs` (framing), `lenient.rs` (broken receipts), `task/`
//! (socket task), `pdu.rs` (PDU building: short_message, SAR TLVs, message_payload),
//! `status.rs` ([`classify`]), [`window`], `fuzzing.rs` (hidden hooks for `fuzz/`).

mod bind;
mod codec;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod lenient;
mod pdu;
mod status;
mod task;
mod tls;
pub mod window;

#[cfg(test)]
mod roundtrip_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{info, warn, Instrument};

use bind::{bind, dial, Conn, BIND_SEQUENCE};
pub use config::{
    BindKind, InterfaceVersion, Password, SessionConfig, TlsConfig, DEFAULT_MAX_UNANSWERED_RECEIPTS,
};
pub use error::{SessionError, ESME_RALYBND, ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID};
pub use pdu::mask_number;
pub use status::{classify, StatusClass};

use crate::metrics;
use crate::receipt::Receipt;

/// One `submit_sm` (one segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// Alphanumeric sender (TON 5 NPI 0, up to 11 characters), short code of up to 8 digits
    /// (TON 3 NPI 0) or E.164 digits (TON 1 NPI 1).
    pub source_addr: String,
    /// E.164 digits without '+' (a leading '+' is tolerated), sent TON 1 NPI 1.
    pub destination_addr: String,
    pub data_coding: u8,
    pub esm_class: u8,
    /// The message body: at most 254 octets (UDH included) in `short_message`, or up to
    /// 65,535 octets when `message_payload` is set. Longer ones are refused locally
    /// (`Rejected` 0x01).
    pub short_message: bytes::Bytes,
    /// Ask for a final delivery receipt (`registered_delivery` 1).
    pub registered_delivery: bool,
    /// SAR numbering of this part, `(sar_msg_ref_num, sar_total_segments,
    /// sar_segment_seqnum)`, sent as the TLVs 0x020C, 0x020E and 0x020F (the body then carries
    /// no UDH; see [`crate::encoding::Segmented::sar_for_part`]). A total of 0 or a sequence
    /// outside `1..=total` is refused locally (`Rejected` 0xC4).
    pub sar: Option<(u16, u8, u8)>,
    /// Send the body in the `message_payload` TLV (0x0424) with an empty `short_message`
    /// (see [`crate::encoding::Segmented::payload_tlv`]).
    pub message_payload: bool,
}

/// How one submit ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubmitOutcome {
    /// The SMSC took it and named it.
    Accepted { message_id: String },
    /// The SMSC refused it (also via generic_nack), or it was invalid and never written (then
    /// with the status an SMSC would give: 0x01 length, 0x0A source, 0x0B destination). See
    /// [`classify`].
    Rejected { command_status: u32 },
    /// Written, no response in time: ambiguous, the SMSC may have accepted it.
    Timeout,
    /// The session closed (or was unbinding) before it was written: safe to send elsewhere.
    NotSent,
    /// Written, then the session closed before a response: ambiguous.
    Lost,
}

impl SubmitOutcome {
    /// Whether the SMSC may or may not have taken the message (retrying risks a duplicate).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, SubmitOutcome::Timeout | SubmitOutcome::Lost)
    }

    /// A fixed word for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            SubmitOutcome::Accepted { .. } => "accepted",
            SubmitOutcome::Rejected { .. } => "rejected",
            SubmitOutcome::Timeout => "timeout",
            SubmitOutcome::NotSent => "not_sent",
            SubmitOutcome::Lost => "lost",
        }
    }
}

/// What the session hands back unasked.
#[derive(Debug)]
pub enum Inbound {
    /// A delivery receipt. Its `deliver_sm` is answered when the [`ReceiptAck`] says so:
    /// status 0 once [`ReceiptAck::ack`] is called (the receiver has made the receipt's
    /// outcome safe); `ESME_RX_T_APPN` (the SMSC sends it again later) when the ack is
    /// dropped, or not given within the session's `response_timeout`.
    Receipt(Receipt, ReceiptAck),
    /// The session ended; sent once, last.
    Closed { reason: String },
}

/// The answer to one receipt's `deliver_sm`, owed by whoever received the receipt.
#[derive(Debug)]
pub struct ReceiptAck(Option<oneshot::Sender<()>>);

impl ReceiptAck {
    /// An ack and what it says: `Ok(())` once acked, an error once dropped unacked. For
    /// receipts that did not come from a session but whose sender still wants the answer.
    pub fn channel() -> (ReceiptAck, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (ReceiptAck(Some(tx)), rx)
    }

    /// The receipt is safe with the receiver: answer the SMSC with status 0.
    pub fn ack(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }

    /// An ack that answers nothing (for receipts that did not come from a session).
    pub fn detached() -> ReceiptAck {
        ReceiptAck(None)
    }
}

/// Requests from handles to the socket task.
#[derive(Debug)]
enum Action {
    Submit {
        submit: Submit,
        reply: oneshot::Sender<SubmitOutcome>,
    },
    Unbind,
}

/// State shared by the handles and the socket task.
#[derive(Debug)]
struct Shared {
    /// One permit per window slot; closed when the session stops taking submits.
    permits: Semaphore,
    /// Submits written and awaiting a response (kept by the task).
    in_flight: AtomicUsize,
}

/// A cheap, cloneable handle to one bound session.
#[derive(Clone, Debug)]
pub struct Session {
    bind: BindKind,
    actions: mpsc::Sender<Action>,
    shared: Arc<Shared>,
    closed: watch::Receiver<bool>,
}

impl Session {
    /// Sends one segment: waits for a window slot, then for the response or the timeout.
    /// Many may be awaited at once (pipelined). A receiver bind answers `NotSent` at once.
    pub async fn submit(&self, s: Submit) -> SubmitOutcome {
        let outcome = self.submit_inner(s).await;
        metrics::submit_outcome(outcome.label());
        outcome
    }

    async fn submit_inner(&self, submit: Submit) -> SubmitOutcome {
        if !self.bind.can_submit() {
            return SubmitOutcome::NotSent;
        }
        let Ok(_permit) = self.shared.permits.acquire().await else {
            return SubmitOutcome::NotSent;
        };
        if self.is_closed() {
            return SubmitOutcome::NotSent;
        }
        let (reply, answer) = oneshot::channel();
        if self
            .actions
            .send(Action::Submit { submit, reply })
            .await
            .is_err()
        {
            return SubmitOutcome::NotSent;
        }
        // The task answers every submit it takes; a dropped reply means it died mid-way.
        answer.await.unwrap_or(SubmitOutcome::Lost)
    }

    /// Stops taking submits, waits for in-flight responses (each bounded by
    /// `response_timeout`), sends unbind, waits for unbind_resp (bounded), closes.
    pub async fn unbind(&self) {
        self.shared.permits.close();
        let _ = self.actions.send(Action::Unbind).await;
        self.closed().await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the session has closed, for whatever reason.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }

    /// Submits written and awaiting a response.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

/// A bound connection, plain or TLS.
enum Bound {
    Plain(Conn<TcpStream>),
    Tls(Box<Conn<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// TCP connect, TLS handshake when configured, and bind.
async fn establish(cfg: &SessionConfig) -> Result<Bound, SessionError> {
    let tcp = dial(cfg).await?;
    Ok(match &cfg.tls {
        None => Bound::Plain(bind(cfg, tcp).await?),
        Some(tls_cfg) => {
            let stream = tls::handshake(tcp, tls_cfg).await?;
            Bound::Tls(Box::new(bind(cfg, stream).await?))
        }
    })
}

/// Connect, TLS and bind (all within `bind_timeout`), then spawn the socket task.
pub async fn connect(
    cfg: SessionConfig,
    inbound: mpsc::Sender<Inbound>,
) -> Result<Session, SessionError> {
    cfg.validate()?;
    let span = tracing::info_span!("smpp_session", system_id = %cfg.system_id, addr = %cfg.addr);
    let bound = match tokio::time::timeout(cfg.bind_timeout, establish(&cfg))
        .instrument(span.clone())
        .await
    {
        Ok(Ok(bound)) => bound,
        Ok(Err(e)) => {
            metrics::bind_failure(e.label());
            span.in_scope(|| warn!(error = %e, "bind failed"));
            return Err(e);
        }
        Err(_) => {
            metrics::bind_failure("timeout");
            span.in_scope(|| warn!("bind timed out"));
            return Err(SessionError::BindTimeout);
        }
    };
    metrics::bound();
    span.in_scope(|| {
        info!(
            bind = ?cfg.bind,
            window = cfg.window,
            tls = cfg.tls.is_some(),
            "session bound"
        )
    });
    Ok(match bound {
        Bound::Plain(conn) => spawn_task(cfg, conn, inbound, span),
        Bound::Tls(conn) => spawn_task(cfg, *conn, inbound, span),
    })
}

/// Spawns the socket task over a bound connection and returns its handle.
fn spawn_task<S>(
    cfg: SessionConfig,
    conn: Conn<S>,
    inbound: mpsc::Sender<Inbound>,
    span: tracing::Span,
) -> Session
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        permits: Semaphore::new(cfg.window),
        in_flight: AtomicUsize::new(0),
    });
    let bind = cfg.bind;
    let (actions_tx, actions_rx) = mpsc::channel(cfg.window.saturating_add(4));
    let (closed_tx, closed_rx) = watch::channel(false);
    let task = task::SocketTask::new(
        cfg,
        conn,
        actions_rx,
        inbound,
        Arc::clone(&shared),
        closed_tx,
    );
    tokio::spawn(task.run().instrument(span));
    Session {
        bind,
        actions: actions_tx,
        shared,
        closed: closed_rx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked() {
        let cfg = SessionConfig::new("127.0.0.1:1", "esme", "s3cret");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cret"));
        assert!(dbg.contains("***"));
        assert_eq!(cfg.password.expose(), "s3cret");
    }

    #[test]
    fn classification() {
        assert_eq!(classify(0x58), StatusClass::Throttled);
        assert_eq!(classify(0x14), StatusClass::QueueFull);
        assert_eq!(classify(0x08), StatusClass::Retryable);
        assert_eq!(classify(0x00), StatusClass::Retryable);
        assert_eq!(classify(0x0B), StatusClass::Permanent);
        assert_eq!(classify(0x0A), StatusClass::Permanent);
        assert_eq!(classify(0xC2), StatusClass::Permanent);
        assert_eq!(classify(0x400), StatusClass::Retryable);
    }

    #[test]
    fn config_validation() {
        let mut cfg = SessionConfig::new("x", "y", "z");
        assert!(cfg.validate().is_ok());
        cfg.window = 0;
        assert!(matches!(
            cfg.validate(),
            Err(SessionError::InvalidConfig(_))
        ));
    }

    #[test]
    fn outcome_labels() {
        assert!(SubmitOutcome::Timeout.is_ambiguous());
        assert!(SubmitOutcome::Lost.is_ambiguous());
        assert!(!SubmitOutcome::NotSent.is_ambiguous());
        assert_eq!(
            SubmitOutcome::Rejected { command_status: 8 }.label(),
            "rejected"
        );
    }
}
