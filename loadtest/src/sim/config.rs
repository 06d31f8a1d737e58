//! What each simulated carrier is: where it listens, which accounts it accepts, how it
//! answers (receipt delay and states, bind quota, message-id forms), and the faults it
//! injects. Every fault is off by default: a default carrier is a perfect SMSC.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use pigeon_smpp::receipt::ReceiptState;

pub use super::faults::Latency;
pub use super::ids::IdFormat;
use super::ids::IdSpelling;

/// Longest `system_id` SMPP allows (a 16-octet C string).
pub const MAX_SYSTEM_ID_LEN: usize = 15;
/// Longest `password` SMPP allows (a 9-octet C string).
pub const MAX_PASSWORD_LEN: usize = 8;

/// A whole simulator process: one or more carriers, each with its own listener.
#[derive(Debug, Clone, Default)]
pub struct SimConfig {
    pub carriers: Vec<CarrierSim>,
}

/// One ESME account a carrier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub system_id: String,
    pub password: String,
}

impl Account {
    pub fn new(system_id: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            system_id: system_id.into(),
            password: password.into(),
        }
    }

    /// Parses `SYSTEM_ID:PASSWORD` (the password may itself contain `:`).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (id, pw) = s
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("account {s:?} is not SYSTEM_ID:PASSWORD"))?;
        Ok(Self::new(id, pw))
    }
}

/// One simulated carrier SMSC.
#[derive(Debug, Clone)]
pub struct CarrierSim {
    /// Label in logs and stats (`carrier1`).
    pub name: String,
    /// Where to listen; port 0 picks a free port (see [`super::SimHandle::addrs`]).
    pub listen: SocketAddr,
    /// Accounts allowed to bind; any other `system_id`/`password` gets `ESME_RBINDFAIL`.
    pub accounts: Vec<Account>,
    /// Time from `submit_sm` to its delivery receipt.
    pub dlr_delay: Duration,
    /// State every receipt reports.
    pub receipt_state: ReceiptState,
    /// Live binds allowed per `system_id`; one more gets `ESME_RALYBND`.
    pub max_binds: Option<usize>,
    /// Form of the message ids handed out in `submit_sm_resp`.
    pub id_format: IdFormat,

    /// Receipt delay is `dlr_delay` plus a uniform draw in `[0, dlr_jitter]`.
    pub dlr_jitter: Duration,
    /// Final states drawn by weight for each receipt, e.g. 0.9 `DELIVRD`, 0.05 `UNDELIV`,
    /// 0.03 `EXPIRED`, 0.02 `REJECTD`; replaces `receipt_state` when not empty. Weights need
    /// not sum to 1.
    pub receipt_mix: Vec<(ReceiptState, f64)>,
    /// Form of the id inside receipts; `None` spells it as in `submit_sm_resp`. Hex in the
    /// response and decimal in the receipt is what Vonage does.
    pub receipt_id_format: Option<IdFormat>,
    /// Receipt ids in upper case (`0000002A`).
    pub receipt_id_uppercase: bool,
    /// Receipt ids without leading zeros (`2a`).
    pub receipt_id_strip_leading_zeros: bool,

    /// Submits (segments) per second allowed per account, over all its binds together; the
    /// excess is answered `ESME_RTHROTTLED` (0x58). The bucket holds one second's worth.
    pub throttle_tps: Option<u32>,
    /// Fraction of submits answered with `error_status` (0 to 1).
    pub error_rate: f64,
    /// Status of the `error_rate` failures, e.g. 0x08 (`ESME_RSYSERR`, transient) or 0x0B
    /// (`ESME_RINVDSTADR`, permanent).
    pub error_status: u32,
    /// Destinations starting with one of these always get `ESME_RINVDSTADR` (0x0B).
    pub reject_prefixes: Vec<String>,
    /// Delay before each `submit_sm_resp`; responses keep their order per session.
    pub response_latency: Latency,
    /// Fraction of submits whose receipt is sent before their `submit_sm_resp`.
    pub receipt_before_response: f64,
    /// Fraction of receipts sent twice.
    pub duplicate_receipts: f64,
    /// Fraction of receipts sent on another live receiver/transceiver bind of the account
    /// (when there is one) instead of the session that took the submit.
    pub receipts_on_other_bind: f64,
    /// Each session is dropped (socket closed, no unbind) this long after its bind.
    pub drop_every: Option<Duration>,
    /// Fraction of submits accepted but never answered: they count as received, and their
    /// receipt still comes when `no_response_still_delivers`.
    pub no_response_rate: f64,
    /// Whether unanswered submits still get their receipt (default true).
    pub no_response_still_delivers: bool,
    /// This long after its bind, a session goes silent: it answers nothing and sends
    /// nothing, but keeps the socket (and its bind slot) until the client closes it.
    pub half_open_after: Option<Duration>,
    /// Seed of the fault dice; `None` draws from the operating system.
    pub seed: Option<u64>,
}

impl Default for CarrierSim {
    fn default() -> Self {
        Self {
            name: "carrier1".to_string(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            accounts: Vec::new(),
            dlr_delay: Duration::ZERO,
            receipt_state: ReceiptState::Delivered,
            max_binds: None,
            id_format: IdFormat::Hex,
            dlr_jitter: Duration::ZERO,
            receipt_mix: Vec::new(),
            receipt_id_format: None,
            receipt_id_uppercase: false,
            receipt_id_strip_leading_zeros: false,
            throttle_tps: None,
            error_rate: 0.0,
            error_status: ESME_RSYSERR,
            reject_prefixes: Vec::new(),
            response_latency: Latency::default(),
            receipt_before_response: 0.0,
            duplicate_receipts: 0.0,
            receipts_on_other_bind: 0.0,
            drop_every: None,
            no_response_rate: 0.0,
            no_response_still_delivers: true,
            half_open_after: None,
            seed: None,
        }
    }
}

impl CarrierSim {
    /// A carrier with one account and every other option at its default.
    pub fn new(name: impl Into<String>, listen: SocketAddr, account: Account) -> Self {
        Self {
            name: name.into(),
            listen,
            accounts: vec![account],
            ..Self::default()
        }
    }

    /// How this carrier spells ids in responses and receipts.
    pub(crate) fn id_spelling(&self) -> IdSpelling {
        IdSpelling {
            response: self.id_format,
            receipt: self.receipt_id_format,
            receipt_uppercase: self.receipt_id_uppercase,
            receipt_strip_leading_zeros: self.receipt_id_strip_leading_zeros,
        }
    }

    /// Checks the fault settings of this carrier.
    fn validate_faults(&self) -> anyhow::Result<()> {
        let name = &self.name;
        let rates = [
            ("error_rate", self.error_rate),
            ("receipt_before_response", self.receipt_before_response),
            ("duplicate_receipts", self.duplicate_receipts),
            ("receipts_on_other_bind", self.receipts_on_other_bind),
            ("no_response_rate", self.no_response_rate),
        ];
        for (field, rate) in rates {
            anyhow::ensure!(
                (0.0..=1.0).contains(&rate),
                "carrier {name:?}: {field} must be between 0 and 1, not {rate}"
            );
        }
        anyhow::ensure!(
            self.throttle_tps != Some(0),
            "carrier {name:?} has throttle_tps 0"
        );
        anyhow::ensure!(
            self.error_rate == 0.0 || self.error_status != 0,
            "carrier {name:?}: error_status 0 is not an error"
        );
        anyhow::ensure!(
            self.reject_prefixes.iter().all(|p| !p.is_empty()),
            "carrier {name:?} has an empty reject prefix"
        );
        for (field, d) in [
            ("drop_every", self.drop_every),
            ("half_open_after", self.half_open_after),
        ] {
            anyhow::ensure!(
                d.is_none_or(|d| !d.is_zero()),
                "carrier {name:?}: {field} must be above 0"
            );
        }
        anyhow::ensure!(
            self.receipt_mix
                .iter()
                .all(|(_, w)| w.is_finite() && *w >= 0.0),
            "carrier {name:?}: receipt_mix weights must be 0 or more"
        );
        anyhow::ensure!(
            self.receipt_mix.is_empty() || self.receipt_mix.iter().any(|(_, w)| *w > 0.0),
            "carrier {name:?}: receipt_mix has no positive weight"
        );
        Ok(())
    }
}

/// `ESME_RSYSERR`, the default status of injected errors.
pub const ESME_RSYSERR: u32 = 0x08;

impl SimConfig {
    /// Checks what SMPP or the simulator cannot honour, before any socket is opened.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.carriers.is_empty(), "no carrier configured");
        let mut names = std::collections::HashSet::new();
        for c in &self.carriers {
            anyhow::ensure!(!c.name.is_empty(), "a carrier has an empty name");
            anyhow::ensure!(
                names.insert(c.name.as_str()),
                "carrier name {:?} is used twice",
                c.name
            );
            anyhow::ensure!(
                !c.accounts.is_empty(),
                "carrier {:?} has no account",
                c.name
            );
            anyhow::ensure!(
                c.max_binds != Some(0),
                "carrier {:?} has max_binds 0",
                c.name
            );
            for a in &c.accounts {
                anyhow::ensure!(
                    !a.system_id.is_empty() && a.system_id.len() <= MAX_SYSTEM_ID_LEN,
                    "carrier {:?}: system_id {:?} must be 1 to {MAX_SYSTEM_ID_LEN} characters",
                    c.name,
                    a.system_id
                );
                anyhow::ensure!(
                    a.password.len() <= MAX_PASSWORD_LEN,
                    "carrier {:?}: password of {:?} is longer than {MAX_PASSWORD_LEN} characters",
                    c.name,
                    a.system_id
                );
            }
            c.validate_faults()?;
        }
        Ok(())
    }
}

/// Parses a receipt state by name (`delivered`, `undeliverable`, ...) or by its `stat:` text
/// (`DELIVRD`, `UNDELIV`, ...), case-insensitively.
pub fn parse_receipt_state(s: &str) -> anyhow::Result<ReceiptState> {
    const ALL: [(&str, &str, ReceiptState); 9] = [
        ("enroute", "ENROUTE", ReceiptState::Enroute),
        ("delivered", "DELIVRD", ReceiptState::Delivered),
        ("expired", "EXPIRED", ReceiptState::Expired),
        ("deleted", "DELETED", ReceiptState::Deleted),
        ("undeliverable", "UNDELIV", ReceiptState::Undeliverable),
        ("accepted", "ACCEPTD", ReceiptState::Accepted),
        ("unknown", "UNKNOWN", ReceiptState::Unknown),
        ("rejected", "REJECTD", ReceiptState::Rejected),
        ("skipped", "SKIPPED", ReceiptState::Skipped),
    ];
    ALL.iter()
        .find(|(name, stat, _)| s.eq_ignore_ascii_case(name) || s.eq_ignore_ascii_case(stat))
        .map(|(_, _, state)| *state)
        .ok_or_else(|| anyhow::anyhow!("unknown receipt state {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_validated() {
        let ok = CarrierSim::new("c", "127.0.0.1:0".parse().unwrap(), Account::new("a", "b"));
        let cfg = |c: CarrierSim| SimConfig { carriers: vec![c] }.validate();
        assert!(cfg(ok.clone()).is_ok());
        for bad in [
            CarrierSim {
                error_rate: 1.5,
                ..ok.clone()
            },
            CarrierSim {
                no_response_rate: f64::NAN,
                ..ok.clone()
            },
            CarrierSim {
                throttle_tps: Some(0),
                ..ok.clone()
            },
            CarrierSim {
                error_rate: 0.1,
                error_status: 0,
                ..ok.clone()
            },
            CarrierSim {
                drop_every: Some(Duration::ZERO),
                ..ok.clone()
            },
            CarrierSim {
                receipt_mix: vec![(ReceiptState::Delivered, 0.0)],
                ..ok.clone()
            },
            CarrierSim {
                reject_prefixes: vec![String::new()],
                ..ok.clone()
            },
        ] {
            assert!(cfg(bad).is_err());
        }
    }

    #[test]
    fn accounts_and_states_parse() {
        assert_eq!(
            Account::parse("bank:se:cret").unwrap(),
            Account::new("bank", "se:cret")
        );
        assert!(Account::parse("nopassword").is_err());
        assert_eq!(
            parse_receipt_state("UNDELIV").unwrap(),
            ReceiptState::Undeliverable
        );
        assert_eq!(
            parse_receipt_state("Delivered").unwrap(),
            ReceiptState::Delivered
        );
        assert!(parse_receipt_state("lost").is_err());
    }
}
