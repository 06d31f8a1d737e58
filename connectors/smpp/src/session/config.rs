//! What one session needs to know: address, credentials, bind kind, window, timeouts, TLS.
//!
//! Role: the typed, validated session configuration. [`SessionConfig::new`] gives the common
//! defaults; [`super::connect`] validates before dialling.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::SessionError;

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
    /// Receipts only; [`super::Session::submit`] answers `NotSent` at once.
    Receiver,
}

impl BindKind {
    /// Whether this bind may send `submit_sm`.
    pub fn can_submit(self) -> bool {
        self != BindKind::Receiver
    }
}

/// The `interface_version` announced in the bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InterfaceVersion {
    /// SMPP 3.4 (0x34), what nearly every carrier speaks.
    #[default]
    V34,
    /// SMPP 5.0 (0x50); PDUs stay 3.4-compatible, only the announcement changes.
    V50,
}

impl InterfaceVersion {
    /// The octet sent in the bind.
    pub fn octet(self) -> u8 {
        match self {
            InterfaceVersion::V34 => 0x34,
            InterfaceVersion::V50 => 0x50,
        }
    }
}

/// TLS for one carrier (SMPP over TLS, usually port 3550).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Name the SMSC's certificate must be valid for (DNS name or IP address).
    pub server_name: String,
    /// PEM file of the CA certificates to trust; `None` trusts the Mozilla roots bundled
    /// through `webpki-roots`.
    pub ca_file: Option<PathBuf>,
    /// DANGEROUS: accept any certificate for any name, so anyone on the path can read and
    /// change the traffic. For tests against self-signed SMSCs only; never in production.
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Verified TLS to `server_name` against the bundled Mozilla roots.
    pub fn new(server_name: impl Into<String>) -> Self {
        Self {
            server_name: server_name.into(),
            ca_file: None,
            insecure_skip_verify: false,
        }
    }
}

/// Receipts awaiting their receiver's ack per session, by default: far above what SMSCs
/// send unanswered (their windows are tens to hundreds), about 1 MB at most.
pub const DEFAULT_MAX_UNANSWERED_RECEIPTS: usize = 1_024;

/// Everything one session needs; validated by [`super::connect`].
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
    /// Announced in the bind; SMPP 3.4 unless the carrier asks for 5.0.
    pub interface_version: InterfaceVersion,
    /// `address_range` of the bind (up to 40 characters); usually empty.
    pub address_range: String,
    /// TLS to the SMSC, or plain TCP when `None`.
    pub tls: Option<TlsConfig>,
    /// Most submits awaiting a response at once (at least 1).
    pub window: usize,
    /// How long a request waits for its response before it counts as timed out.
    pub response_timeout: Duration,
    /// Silence after which an enquire_link is sent.
    pub enquire_link_interval: Duration,
    /// Bound on TCP connect, TLS handshake and bind together.
    pub bind_timeout: Duration,
    /// Most receipts handed on whose `deliver_sm_resp` waits for the receiver's ack (at least
    /// 1). A receipt beyond them is answered at once with `ESME_RX_T_APPN`, without being
    /// handed on, and the SMSC delivers it again later: an SMSC that sends receipts faster
    /// than the receiver makes them durable cannot grow the session's memory.
    pub max_unanswered_receipts: usize,
}

impl SessionConfig {
    /// A transceiver config with common defaults: SMPP 3.4, plain TCP, window 10, response
    /// timeout 10 s, enquire_link every 30 s, bind timeout 10 s, empty system_type and
    /// address_range, [`DEFAULT_MAX_UNANSWERED_RECEIPTS`].
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
            interface_version: InterfaceVersion::V34,
            address_range: String::new(),
            tls: None,
            window: 10,
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            bind_timeout: Duration::from_secs(10),
            max_unanswered_receipts: DEFAULT_MAX_UNANSWERED_RECEIPTS,
        }
    }

    pub(super) fn validate(&self) -> Result<(), SessionError> {
        let bad = |m: &str| Err(SessionError::InvalidConfig(m.to_owned()));
        if self.window == 0 {
            return bad("window must be at least 1");
        }
        if self.window > Semaphore::MAX_PERMITS {
            return bad("window is too large");
        }
        if self.max_unanswered_receipts == 0 {
            return bad("max_unanswered_receipts must be at least 1");
        }
        if self.response_timeout.is_zero() || self.bind_timeout.is_zero() {
            return bad("timeouts must be positive");
        }
        if self.enquire_link_interval.is_zero() {
            return bad("enquire_link_interval must be positive");
        }
        if self.address_range.len() > 40 {
            return bad("address_range is longer than 40 characters");
        }
        if let Some(tls) = &self.tls {
            if tls.server_name.is_empty() {
                return bad("tls server_name must not be empty");
            }
        }
        Ok(())
    }
}
