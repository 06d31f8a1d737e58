//! Why a session could not be set up, and how long to wait before the next attempt.

use std::time::Duration;

/// `ESME_RALYBND`: the account is already bound (bind quota reached).
pub const ESME_RALYBND: u32 = 0x05;
/// `ESME_RBINDFAIL`: bind failed.
pub const ESME_RBINDFAIL: u32 = 0x0D;
/// `ESME_RINVPASWD`: invalid password.
pub const ESME_RINVPASWD: u32 = 0x0E;
/// `ESME_RINVSYSID`: invalid system_id.
pub const ESME_RINVSYSID: u32 = 0x0F;

/// Why [`super::connect`] failed.
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
    /// The TLS settings cannot be used (unreadable or empty CA file, bad server name).
    #[error("invalid tls config: {0}")]
    TlsConfig(String),
    /// The TLS handshake failed on the certificate or the protocol (wrong server name,
    /// untrusted or expired certificate, no common cipher suite).
    #[error("tls handshake with {server_name} failed: {reason}")]
    TlsHandshake { server_name: String, reason: String },
}

impl SessionError {
    /// Whether the SMSC refused the bind because the account's bind quota is used up
    /// (`ESME_RALYBND`, 0x05): too many binds live, perhaps ghosts of a dropped connection.
    pub fn is_quota(&self) -> bool {
        matches!(
            self,
            SessionError::BindRefused {
                command_status: ESME_RALYBND
            }
        )
    }

    /// The least a reconnect loop should wait before the next bind attempt after this
    /// error, so that refusals never turn into a bind storm. Apply it as a floor under the
    /// caller's own backoff (with jitter):
    ///
    /// - 30 s: bind quota reached (`ESME_RALYBND` 0x05) or bind throttled (0x58): ghost binds
    ///   take the SMSC's own timeout to go away.
    /// - 60 s: bind failed or credentials refused (`ESME_RBINDFAIL` 0x0D, `ESME_RINVPASWD`
    ///   0x0E, `ESME_RINVSYSID` 0x0F), invalid config, TLS config or certificate problems:
    ///   configuration faults that retrying fast cannot fix, and some carriers lock accounts
    ///   after repeated failed binds.
    /// - zero: connect refused, I/O, timeout, protocol errors and other refusal codes:
    ///   use the caller's normal backoff.
    pub fn retry_after_hint(&self) -> Duration {
        match self {
            SessionError::BindRefused { command_status } => match *command_status {
                ESME_RALYBND | 0x58 => Duration::from_secs(30),
                ESME_RBINDFAIL | ESME_RINVPASWD | ESME_RINVSYSID => Duration::from_secs(60),
                _ => Duration::ZERO,
            },
            SessionError::InvalidConfig(_)
            | SessionError::TlsConfig(_)
            | SessionError::TlsHandshake { .. } => Duration::from_secs(60),
            SessionError::Connect { .. }
            | SessionError::Io(_)
            | SessionError::BindTimeout
            | SessionError::Protocol(_) => Duration::ZERO,
        }
    }

    /// A fixed word for the bind-failure metric.
    pub(super) fn label(&self) -> &'static str {
        match self {
            SessionError::Connect { .. } => "connect",
            SessionError::BindRefused { .. } => "refused",
            SessionError::BindTimeout => "timeout",
            SessionError::TlsConfig(_) | SessionError::TlsHandshake { .. } => "tls",
            SessionError::InvalidConfig(_) => "config",
            SessionError::Io(_) | SessionError::Protocol(_) => "protocol",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(command_status: u32) -> SessionError {
        SessionError::BindRefused { command_status }
    }

    #[test]
    fn quota_is_only_already_bound() {
        assert!(refused(ESME_RALYBND).is_quota());
        assert!(!refused(ESME_RBINDFAIL).is_quota());
        assert!(!refused(ESME_RINVPASWD).is_quota());
        assert!(!SessionError::BindTimeout.is_quota());
    }

    #[test]
    fn retry_hints_never_storm_on_refusals() {
        assert_eq!(
            refused(ESME_RALYBND).retry_after_hint(),
            Duration::from_secs(30)
        );
        for s in [ESME_RBINDFAIL, ESME_RINVPASWD, ESME_RINVSYSID] {
            assert_eq!(refused(s).retry_after_hint(), Duration::from_secs(60));
        }
        assert_eq!(refused(0x08).retry_after_hint(), Duration::ZERO);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let connect = SessionError::Connect {
            addr: "x".into(),
            source: io,
        };
        assert_eq!(connect.retry_after_hint(), Duration::ZERO);
        assert_eq!(SessionError::BindTimeout.retry_after_hint(), Duration::ZERO);
        let tls = SessionError::TlsHandshake {
            server_name: "smsc".into(),
            reason: "bad name".into(),
        };
        assert_eq!(tls.retry_after_hint(), Duration::from_secs(60));
    }
}
