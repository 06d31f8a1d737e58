//! The `pigeon-sim --config FILE` format (TOML), and the parsing shared with the command line.
//!
//! ```toml
//! [[carrier]]
//! name = "cmcc"                 # optional; carrier1, carrier2, ... by position
//! listen = "127.0.0.1:2775"     # port 0 picks a free port
//! accounts = ["bank:secret"]    # SYSTEM_ID:PASSWORD, one or more
//! dlr_delay_ms = 200            # optional, default 0
//! receipt_state = "delivered"   # optional: delivered, undeliverable, expired, ... or DELIVRD, UNDELIV, ...
//! max_binds = 2                 # optional, default unlimited
//! id_format = "hex"             # optional: hex (default) or decimal
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use super::config::{parse_receipt_state, Account, CarrierSim, IdFormat, SimConfig};

/// A whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// One entry per simulated carrier.
    pub carrier: Vec<FileCarrier>,
}

/// One `[[carrier]]` entry; field docs are in the module doc.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCarrier {
    pub name: Option<String>,
    pub listen: SocketAddr,
    pub accounts: Vec<String>,
    #[serde(default)]
    pub dlr_delay_ms: u64,
    pub receipt_state: Option<String>,
    pub max_binds: Option<usize>,
    #[serde(default)]
    pub id_format: IdFormat,
}

impl FileConfig {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).context("invalid simulator configuration")
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The typed configuration, validated.
    pub fn into_sim_config(self) -> anyhow::Result<SimConfig> {
        let mut carriers = Vec::with_capacity(self.carrier.len());
        for (i, c) in self.carrier.into_iter().enumerate() {
            let name = c.name.unwrap_or_else(|| default_name(i));
            let accounts = c
                .accounts
                .iter()
                .map(|a| Account::parse(a))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("carrier {name:?}"))?;
            let receipt_state = match &c.receipt_state {
                Some(s) => parse_receipt_state(s).with_context(|| format!("carrier {name:?}"))?,
                None => CarrierSim::default().receipt_state,
            };
            carriers.push(CarrierSim {
                name,
                listen: c.listen,
                accounts,
                dlr_delay: Duration::from_millis(c.dlr_delay_ms),
                receipt_state,
                max_binds: c.max_binds,
                id_format: c.id_format,
            });
        }
        let cfg = SimConfig { carriers };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `carrier1`, `carrier2`, ... for the carrier at `index` (0-based).
pub fn default_name(index: usize) -> String {
    format!("carrier{}", index + 1)
}

/// Parses a `--listen` value: `ADDR` or `NAME=ADDR`; unnamed carriers are named by position.
pub fn parse_listen(s: &str, index: usize) -> anyhow::Result<(String, SocketAddr)> {
    let (name, addr) = match s.split_once('=') {
        Some((name, addr)) => (name.to_string(), addr),
        None => (default_name(index), s),
    };
    let addr = addr
        .parse()
        .with_context(|| format!("listen address {addr:?} is not IP:PORT"))?;
    Ok((name, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pigeon_smpp::receipt::ReceiptState;

    #[test]
    fn file_round_trip() {
        let cfg = FileConfig::parse(
            r#"
            [[carrier]]
            listen = "127.0.0.1:0"
            accounts = ["bank:secret"]

            [[carrier]]
            name = "cu"
            listen = "127.0.0.1:2776"
            accounts = ["bank:secret", "other:pw"]
            dlr_delay_ms = 250
            receipt_state = "UNDELIV"
            max_binds = 2
            id_format = "decimal"
            "#,
        )
        .unwrap()
        .into_sim_config()
        .unwrap();
        assert_eq!(cfg.carriers[0].name, "carrier1");
        assert_eq!(cfg.carriers[0].receipt_state, ReceiptState::Delivered);
        let cu = &cfg.carriers[1];
        assert_eq!(cu.name, "cu");
        assert_eq!(cu.accounts.len(), 2);
        assert_eq!(cu.dlr_delay, Duration::from_millis(250));
        assert_eq!(cu.receipt_state, ReceiptState::Undeliverable);
        assert_eq!(cu.max_binds, Some(2));
        assert_eq!(cu.id_format, IdFormat::Decimal);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = FileConfig::parse(
            "[[carrier]]\nlisten = \"127.0.0.1:0\"\naccounts = [\"a:b\"]\ndlr_delay = 5\n",
        );
        assert!(err.is_err());
    }

    #[test]
    fn listen_values() {
        let (name, addr) = parse_listen("127.0.0.1:2775", 1).unwrap();
        assert_eq!((name.as_str(), addr.port()), ("carrier2", 2775));
        let (name, _) = parse_listen("cmcc=127.0.0.1:0", 0).unwrap();
        assert_eq!(name, "cmcc");
        assert!(parse_listen("cmcc=nowhere", 0).is_err());
    }
}
