//! One SMPP client session per bind.
//!
//! Role: own one TCP connection to an SMSC from bind to unbind. [`connect`] binds and spawns
//! the socket task (see `task.rs`), the only code that touches the socket; callers hold a
//! cheap, cloneable [`Session`] handle and send it actions. Submits are pipelined up to
//! `window` in flight, each keyed by sequence number with its own response timeout (see
//! [`window`]); receipts are acknowledged and handed on as [`Inbound::Receipt`].
//!
//! Lifecycle (states of the socket task):
//! - **binding**: TCP connect and bind request, bounded by `bind_timeout`; a refusal is
//!   [`SessionError::BindRefused`].
//! - **bound**: submits are written as window slots allow; enquire_link is sent after
//!   `enquire_link_interval` without receiving anything; the peer's enquire_link, deliver_sm
//!   and unbind are answered.
//! - **unbinding** (after [`Session::unbind`] or when every handle is dropped): new submits are
//!   refused (`NotSent`), in-flight ones get their response or time out, then unbind is sent
//!   and its response awaited (bounded by `response_timeout`).
//! - **closed**: every pending submit is resolved (`Lost` if written, `NotSent` if not) and
//!   [`Inbound::Closed`] is sent once. Reached from any state on unbind, peer close, I/O or
//!   decode error, a hostile PDU, or an unanswered enquire_link on an otherwise silent link.

mod bind;
mod pdu;
mod status;
mod task;
pub mod window;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{info, warn, Instrument};

use bind::{bind, Conn, BIND_SEQUENCE};
pub use pdu::mask_number;
pub use status::{classify, StatusClass};

use crate::metrics;
use crate::receipt::Receipt;

/// An SMPP password; its `Debug` prints `***` so it never reaches a log.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the bind PDU only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Which bind to request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BindKind {
    /// Submits and receipts on one connection.
    #[default]
    Transceiver,
    /// Submits only.
    Transmitter,
    /// Receipts only.
    Receiver,
}

/// Everything one session needs; validated by [`connect`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `host:port` of the SMSC.
    pub addr: String,
    /// Up to 15 characters.
    pub system_id: String,
    /// Up to 8 characters.
    pub password: Password,
    /// Up to 12 characters; often empty.
    pub system_type: String,
    pub bind: BindKind,
    /// Most submits awaiting a response at once (at least 1).
    pub window: usize,
    /// How long a request waits for its response before it counts as timed out.
    pub response_timeout: Duration,
    /// Silence after which an enquire_link is sent.
    pub enquire_link_interval: Duration,
    /// Bound on TCP connect plus bind.
    pub bind_timeout: Duration,
}

impl SessionConfig {
    /// A transceiver config with common defaults: window 10, response timeout 10 s,
    /// enquire_link every 30 s, bind timeout 10 s, empty system_type.
    pub fn new(
        addr: impl Into<String>,
        system_id: impl Into<String>,
        password: impl Into<Password>,
    ) -> Self {
        Self {
            addr: addr.into(),
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            bind: BindKind::Transceiver,
            window: 10,
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            bind_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<(), SessionError> {
        let bad = |m: &str| Err(SessionError::InvalidConfig(m.to_owned()));
        if self.window == 0 {
            return bad("window must be at least 1");
        }
        if self.window > Semaphore::MAX_PERMITS {
            return bad("window is too large");
        }
        if self.response_timeout.is_zero() || self.bind_timeout.is_zero() {
            return bad("timeouts must be positive");
        }
        if self.enquire_link_interval.is_zero() {
            return bad("enquire_link_interval must be positive");
        }
        Ok(())
    }
}

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
    /// At most 254 octets, UDH included.
    pub short_message: bytes::Bytes,
    /// Ask for a final delivery receipt (`registered_delivery` 1).
    pub registered_delivery: bool,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A delivery receipt (already acknowledged to the SMSC).
    Receipt(Receipt),
    /// The session ended; sent once, last.
    Closed { reason: String },
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("invalid session config: {0}")]
    InvalidConfig(String),
    #[error("tcp connect to {addr} failed")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("i/o error during bind")]
    Io(#[source] std::io::Error),
    #[error("bind did not complete within the bind timeout")]
    BindTimeout,
    #[error("bind refused with command_status {command_status:#010x}")]
    BindRefused { command_status: u32 },
    #[error("protocol error during bind: {0}")]
    Protocol(String),
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
    actions: mpsc::Sender<Action>,
    shared: Arc<Shared>,
    closed: watch::Receiver<bool>,
}

impl Session {
    /// Sends one segment: waits for a window slot, then for the response or the timeout.
    /// Many may be awaited at once (pipelined).
    pub async fn submit(&self, s: Submit) -> SubmitOutcome {
        let outcome = self.submit_inner(s).await;
        metrics::submit_outcome(outcome.label());
        outcome
    }

    async fn submit_inner(&self, submit: Submit) -> SubmitOutcome {
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

/// TCP connect and bind (both within `bind_timeout`), then spawn the socket task.
pub async fn connect(
    cfg: SessionConfig,
    inbound: mpsc::Sender<Inbound>,
) -> Result<Session, SessionError> {
    cfg.validate()?;
    let span = tracing::info_span!("smpp_session", system_id = %cfg.system_id, addr = %cfg.addr);
    let framed = match tokio::time::timeout(cfg.bind_timeout, bind(&cfg))
        .instrument(span.clone())
        .await
    {
        Ok(Ok(framed)) => framed,
        Ok(Err(e)) => {
            metrics::bind_failure(match &e {
                SessionError::Connect { .. } => "connect",
                SessionError::BindRefused { .. } => "refused",
                _ => "protocol",
            });
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
    span.in_scope(|| info!(bind = ?cfg.bind, window = cfg.window, "session bound"));

    let shared = Arc::new(Shared {
        permits: Semaphore::new(cfg.window),
        in_flight: AtomicUsize::new(0),
    });
    let (actions_tx, actions_rx) = mpsc::channel(cfg.window.saturating_add(4));
    let (closed_tx, closed_rx) = watch::channel(false);
    let task = task::SocketTask::new(
        cfg,
        framed,
        actions_rx,
        inbound,
        Arc::clone(&shared),
        closed_tx,
    );
    tokio::spawn(task.run().instrument(span));
    Ok(Session {
        actions: actions_tx,
        shared,
        closed: closed_rx,
    })
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
