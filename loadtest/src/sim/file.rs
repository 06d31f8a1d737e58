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
//! id_format = "hex"             # optional: hex (default), decimal or uuid
//!
//! # Faults, all optional and off by default (docs/simulator.md has the details).
//! dlr_jitter_ms = 300           # receipt delay is dlr_delay_ms + uniform [0, jitter]
//! receipt_mix = { DELIVRD = 0.9, UNDELIV = 0.05, EXPIRED = 0.03, REJECTD = 0.02 }
//! receipt_id_format = "decimal" # receipts spell ids differently from submit_sm_resp
//! receipt_id_uppercase = false
//! receipt_id_strip_leading_zeros = false
//! throttle_tps = 30             # per account over all its binds; excess gets ESME_RTHROTTLED
//! error_rate = 0.01             # fraction of submits answered with error_status
//! error_status = 0x08           # ESME_RSYSERR (default); 0x0B is ESME_RINVDSTADR
//! reject_prefixes = ["86199"]   # destinations always answered ESME_RINVDSTADR
//! response_latency = { fixed_ms = 20, jitter_ms = 80 }
//! receipt_before_response = 0.01
//! duplicate_receipts = 0.01
//! receipts_on_other_bind = 0.1
//! drop_every_ms = 60000         # drop each session this long after its bind
//! no_response_rate = 0.001      # accepted, never answered
//! no_response_still_delivers = true
//! half_open_after_ms = 300000   # go silent this long after the bind
//! seed = 42                     # repeatable fault dice
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use super::config::{
    parse_receipt_state, Account, CarrierSim, IdFormat, Latency, SimConfig, ESME_RSYSERR,
};
use pigeon_smpp::receipt::ReceiptState;

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
    #[serde(default)]
    pub dlr_jitter_ms: u64,
    /// State name (or `stat:` text) to weight.
    #[serde(default)]
    pub receipt_mix: BTreeMap<String, f64>,
    pub receipt_id_format: Option<IdFormat>,
    #[serde(default)]
    pub receipt_id_uppercase: bool,
    #[serde(default)]
    pub receipt_id_strip_leading_zeros: bool,
    pub throttle_tps: Option<u32>,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default = "default_error_status")]
    pub error_status: u32,
    #[serde(default)]
    pub reject_prefixes: Vec<String>,
    #[serde(default)]
    pub response_latency: Latency,
    #[serde(default)]
    pub receipt_before_response: f64,
    #[serde(default)]
    pub duplicate_receipts: f64,
    #[serde(default)]
    pub receipts_on_other_bind: f64,
    pub drop_every_ms: Option<u64>,
    #[serde(default)]
    pub no_response_rate: f64,
    #[serde(default = "yes")]
    pub no_response_still_delivers: bool,
    pub half_open_after_ms: Option<u64>,
    pub seed: Option<u64>,
}

fn default_error_status() -> u32 {
    ESME_RSYSERR
}

fn yes() -> bool {
    true
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
            let receipt_mix = c
                .receipt_mix
                .iter()
                .map(|(state, w)| Ok((parse_receipt_state(state)?, *w)))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("carrier {name:?}: receipt_mix"))?;
            carriers.push(CarrierSim {
                name,
                listen: c.listen,
                accounts,
                dlr_delay: Duration::from_millis(c.dlr_delay_ms),
                receipt_state,
                max_binds: c.max_binds,
                id_format: c.id_format,
                dlr_jitter: Duration::from_millis(c.dlr_jitter_ms),
                receipt_mix,
                receipt_id_format: c.receipt_id_format,
                receipt_id_uppercase: c.receipt_id_uppercase,
                receipt_id_strip_leading_zeros: c.receipt_id_strip_leading_zeros,
                throttle_tps: c.throttle_tps,
                error_rate: c.error_rate,
                error_status: c.error_status,
                reject_prefixes: c.reject_prefixes,
                response_latency: c.response_latency,
                receipt_before_response: c.receipt_before_response,
                duplicate_receipts: c.duplicate_receipts,
                receipts_on_other_bind: c.receipts_on_other_bind,
                drop_every: c.drop_every_ms.map(Duration::from_millis),
                no_response_rate: c.no_response_rate,
                no_response_still_delivers: c.no_response_still_delivers,
                half_open_after: c.half_open_after_ms.map(Duration::from_millis),
                seed: c.seed,
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

/// Parses a `--receipt-mix` value: `STATE=WEIGHT,...` (`DELIVRD=0.9,UNDELIV=0.1`).
pub fn parse_receipt_mix(s: &str) -> anyhow::Result<Vec<(ReceiptState, f64)>> {
    s.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (state, weight) = item
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("receipt mix item {item:?} is not STATE=WEIGHT"))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .with_context(|| format!("receipt mix weight {weight:?} is not a number"))?;
            Ok((parse_receipt_state(state.trim())?, weight))
        })
        .collect()
}

/// Parses a command status: `0x58` (hexadecimal) or `88` (decimal).
pub fn parse_status(s: &str) -> anyhow::Result<u32> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.with_context(|| format!("command status {s:?} is not a number like 0x08"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn fault_fields_parse() {
        let cfg = FileConfig::parse(
            r#"
            [[carrier]]
            listen = "127.0.0.1:0"
            accounts = ["bank:secret"]
            dlr_jitter_ms = 300
            receipt_mix = { DELIVRD = 0.9, undeliverable = 0.1 }
            receipt_id_format = "decimal"
            receipt_id_uppercase = true
            throttle_tps = 30
            error_rate = 0.25
            error_status = 0x0B
            reject_prefixes = ["86199"]
            response_latency = { fixed_ms = 20, jitter_ms = 80 }
            duplicate_receipts = 0.5
            drop_every_ms = 60000
            no_response_rate = 0.1
            no_response_still_delivers = false
            half_open_after_ms = 1000
            seed = 42
            "#,
        )
        .unwrap()
        .into_sim_config()
        .unwrap();
        let c = &cfg.carriers[0];
        assert_eq!(c.dlr_jitter, Duration::from_millis(300));
        assert_eq!(
            c.receipt_mix,
            [
                (ReceiptState::Delivered, 0.9),
                (ReceiptState::Undeliverable, 0.1)
            ]
        );
        assert_eq!(c.receipt_id_format, Some(IdFormat::Decimal));
        assert!(c.receipt_id_uppercase && !c.receipt_id_strip_leading_zeros);
        assert_eq!((c.throttle_tps, c.error_status), (Some(30), 0x0B));
        assert_eq!(c.reject_prefixes, ["86199"]);
        assert_eq!(c.response_latency, Latency::new(20, 80));
        assert_eq!(c.drop_every, Some(Duration::from_secs(60)));
        assert!(!c.no_response_still_delivers);
        assert_eq!(
            (c.half_open_after, c.seed),
            (Some(Duration::from_secs(1)), Some(42))
        );
        // Defaults: no fault at all.
        let plain =
            FileConfig::parse("[[carrier]]\nlisten = \"127.0.0.1:0\"\naccounts = [\"a:b\"]\n")
                .unwrap()
                .into_sim_config()
                .unwrap();
        let d = &plain.carriers[0];
        assert_eq!((d.error_rate, d.error_status), (0.0, ESME_RSYSERR));
        assert!(d.no_response_still_delivers && d.throttle_tps.is_none());
        // Out-of-range values are refused at load time.
        let bad = "[[carrier]]\nlisten = \"127.0.0.1:0\"\naccounts = [\"a:b\"]\nerror_rate = 2.0\n";
        assert!(FileConfig::parse(bad).unwrap().into_sim_config().is_err());
        let bad = "[[carrier]]\nlisten = \"127.0.0.1:0\"\naccounts = [\"a:b\"]\nreceipt_mix = { LOST = 1.0 }\n";
        assert!(FileConfig::parse(bad).unwrap().into_sim_config().is_err());
    }

    #[test]
    fn mixes_and_statuses_parse() {
        assert_eq!(
            parse_receipt_mix("DELIVRD=0.9, expired=0.1").unwrap(),
            [(ReceiptState::Delivered, 0.9), (ReceiptState::Expired, 0.1)]
        );
        assert!(parse_receipt_mix("DELIVRD").is_err());
        assert!(parse_receipt_mix("DELIVRD=lots").is_err());
        assert_eq!(parse_status("0x58").unwrap(), 0x58);
        assert_eq!(parse_status("11").unwrap(), 11);
        assert!(parse_status("0xZZ").is_err());
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
