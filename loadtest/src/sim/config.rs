//! What each simulated carrier is: where it listens, which accounts it accepts, and how it
//! answers (receipt delay and state, bind quota, message-id form).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use pigeon_smpp::receipt::ReceiptState;
use serde::{Deserialize, Serialize};

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

/// How message ids in `submit_sm_resp` (and the receipts) are spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdFormat {
    /// Lowercase hexadecimal, zero-padded to 8 digits (`0000002a`).
    #[default]
    Hex,
    /// Plain decimal (`42`).
    Decimal,
}

impl IdFormat {
    pub fn format(self, n: u64) -> String {
        match self {
            IdFormat::Hex => format!("{n:08x}"),
            IdFormat::Decimal => n.to_string(),
        }
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
    /// Form of the message ids handed out.
    pub id_format: IdFormat,
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
}

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
    fn id_formats() {
        assert_eq!(IdFormat::Hex.format(42), "0000002a");
        assert_eq!(IdFormat::Decimal.format(42), "42");
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
