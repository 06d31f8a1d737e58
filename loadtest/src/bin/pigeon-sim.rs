//! `pigeon-sim`: the SMSC simulator as a process. Everything it does lives in
//! `pigeon_loadtest::sim`; this file turns flags or a TOML file into a [`SimConfig`], prints
//! `listening carrier=NAME addr=ADDR` per carrier once ready (then `listening stats=ADDR`
//! with `--stats-listen`), optionally rewrites a stats file periodically or serves
//! `GET /stats`, and on SIGTERM/SIGINT writes the final JSON stats and exits 0.
//! Options are described in docs/simulator.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use pigeon_loadtest::sim::file::{parse_listen, parse_receipt_mix, parse_status, FileConfig};
use pigeon_loadtest::sim::{
    parse_receipt_state, Account, CarrierSim, IdFormat, Latency, SimConfig, SimHandle,
};
use std::io::Write as _;
use tokio::signal::unix::{signal, SignalKind};

/// mimalloc, as the engine (`docs/adr/0006-allocator.md`): it allocates per PDU, and the
/// harness shares the machine with the engine it measures, so its own cost should stay small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SMSC simulator speaking SMPP over TCP, one listener per simulated carrier.
#[derive(Debug, Parser)]
#[command(name = "pigeon-sim", version)]
struct Args {
    /// Carrier listen address, `IP:PORT` or `NAME=IP:PORT`; repeat for several carriers
    /// (unnamed ones are carrier1, carrier2, ...).
    #[arg(long, required_unless_present = "config")]
    listen: Vec<String>,
    /// Accepted account `SYSTEM_ID:PASSWORD`, for every `--listen` carrier; repeatable.
    #[arg(long, required_unless_present = "config")]
    account: Vec<String>,
    /// Delay from `submit_sm` to its delivery receipt, in milliseconds.
    #[arg(long, default_value_t = 0)]
    dlr_delay_ms: u64,
    /// State receipts report: delivered (default), undeliverable, expired, rejected, ...
    #[arg(long)]
    receipt_state: Option<String>,
    /// Live binds allowed per `system_id`; one more is refused with ESME_RALYBND.
    #[arg(long)]
    max_binds: Option<usize>,
    /// Message ids as `hex` (default), `decimal` or `uuid`.
    #[arg(long, default_value = "hex")]
    id_format: String,
    #[command(flatten)]
    faults: FaultArgs,
    /// TOML file with a `[[carrier]]` list; replaces the per-carrier flags above.
    #[arg(long, conflicts_with_all = ["listen", "account"])]
    config: Option<PathBuf>,
    /// Serve `GET /stats` (the JSON report) over HTTP on this `IP:PORT`.
    #[arg(long)]
    stats_listen: Option<SocketAddr>,
    /// Where to write the JSON stats (stdout when absent).
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Rewrite the stats file this often (atomically), in milliseconds.
    #[arg(long, requires = "stats_file")]
    stats_interval_ms: Option<u64>,
}

/// Faults for every `--listen` carrier; all off by default (not with `--config`).
#[derive(Debug, clap::Args)]
struct FaultArgs {
    /// Receipt delay is `--dlr-delay-ms` plus a uniform draw in [0, this] ms.
    #[arg(long, default_value_t = 0, conflicts_with = "config")]
    dlr_jitter_ms: u64,
    /// Receipt final states by weight: `DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.03,REJECTD=0.02`.
    #[arg(long, conflicts_with = "config")]
    receipt_mix: Option<String>,
    /// Spell ids in receipts as `hex`, `decimal` or `uuid` (default: as in submit_sm_resp).
    #[arg(long, conflicts_with = "config")]
    receipt_id_format: Option<String>,
    /// Receipt ids in upper case.
    #[arg(long, conflicts_with = "config")]
    receipt_id_uppercase: bool,
    /// Receipt ids without leading zeros.
    #[arg(long, conflicts_with = "config")]
    receipt_id_strip_leading_zeros: bool,
    /// Submits per second per account (all binds); the excess gets ESME_RTHROTTLED (0x58).
    #[arg(long, conflicts_with = "config")]
    throttle_tps: Option<u32>,
    /// Fraction of submits answered with `--error-status`.
    #[arg(long, default_value_t = 0.0, conflicts_with = "config")]
    error_rate: f64,
    /// Status of injected errors, e.g. 0x08 (ESME_RSYSERR, default) or 0x0B (ESME_RINVDSTADR).
    #[arg(long, default_value = "0x08", conflicts_with = "config")]
    error_status: String,
    /// Destinations starting with this always get ESME_RINVDSTADR (0x0B); repeatable.
    #[arg(long, conflicts_with = "config")]
    reject_prefix: Vec<String>,
    /// Fixed delay before each submit_sm_resp, in milliseconds.
    #[arg(long, default_value_t = 0, conflicts_with = "config")]
    response_latency_ms: u64,
    /// Extra uniform delay in [0, this] ms on top of `--response-latency-ms`.
    #[arg(long, default_value_t = 0, conflicts_with = "config")]
    response_jitter_ms: u64,
    /// Fraction of submits whose receipt comes before their submit_sm_resp.
    #[arg(long, default_value_t = 0.0, conflicts_with = "config")]
    receipt_before_response: f64,
    /// Fraction of receipts sent twice.
    #[arg(long, default_value_t = 0.0, conflicts_with = "config")]
    duplicate_receipts: f64,
    /// Fraction of receipts sent on another receiver bind of the account, when there is one.
    #[arg(long, default_value_t = 0.0, conflicts_with = "config")]
    receipts_on_other_bind: f64,
    /// Drop each session (no unbind) this many milliseconds after its bind.
    #[arg(long, conflicts_with = "config")]
    drop_every_ms: Option<u64>,
    /// Fraction of submits accepted but never answered.
    #[arg(long, default_value_t = 0.0, conflicts_with = "config")]
    no_response_rate: f64,
    /// Unanswered submits get no receipt either (by default they still do).
    #[arg(long, conflicts_with = "config")]
    no_response_drops_receipts: bool,
    /// Each session goes silent (half-open) this many milliseconds after its bind.
    #[arg(long, conflicts_with = "config")]
    half_open_after_ms: Option<u64>,
    /// Seed of the fault dice, for repeatable runs.
    #[arg(long, conflicts_with = "config")]
    seed: Option<u64>,
}

impl FaultArgs {
    /// `base` with these faults applied.
    fn apply(&self, base: CarrierSim) -> anyhow::Result<CarrierSim> {
        let receipt_mix = match &self.receipt_mix {
            Some(mix) => parse_receipt_mix(mix)?,
            None => Vec::new(),
        };
        let receipt_id_format = match &self.receipt_id_format {
            Some(f) => Some(IdFormat::parse(f)?),
            None => None,
        };
        Ok(CarrierSim {
            dlr_jitter: Duration::from_millis(self.dlr_jitter_ms),
            receipt_mix,
            receipt_id_format,
            receipt_id_uppercase: self.receipt_id_uppercase,
            receipt_id_strip_leading_zeros: self.receipt_id_strip_leading_zeros,
            throttle_tps: self.throttle_tps,
            error_rate: self.error_rate,
            error_status: parse_status(&self.error_status)?,
            reject_prefixes: self.reject_prefix.clone(),
            response_latency: Latency::new(self.response_latency_ms, self.response_jitter_ms),
            receipt_before_response: self.receipt_before_response,
            duplicate_receipts: self.duplicate_receipts,
            receipts_on_other_bind: self.receipts_on_other_bind,
            drop_every: self.drop_every_ms.map(Duration::from_millis),
            no_response_rate: self.no_response_rate,
            no_response_still_delivers: !self.no_response_drops_receipts,
            half_open_after: self.half_open_after_ms.map(Duration::from_millis),
            seed: self.seed,
            ..base
        })
    }
}

impl Args {
    fn sim_config(&self) -> anyhow::Result<SimConfig> {
        if let Some(path) = &self.config {
            return FileConfig::load(path)?.into_sim_config();
        }
        let accounts = self
            .account
            .iter()
            .map(|a| Account::parse(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let receipt_state = match &self.receipt_state {
            Some(s) => parse_receipt_state(s)?,
            None => CarrierSim::default().receipt_state,
        };
        let id_format = IdFormat::parse(&self.id_format)?;
        let mut carriers = Vec::with_capacity(self.listen.len());
        for (i, l) in self.listen.iter().enumerate() {
            let (name, listen) = parse_listen(l, i)?;
            let base = CarrierSim {
                name,
                listen,
                accounts: accounts.clone(),
                dlr_delay: Duration::from_millis(self.dlr_delay_ms),
                receipt_state,
                max_binds: self.max_binds,
                id_format,
                ..CarrierSim::default()
            };
            carriers.push(self.faults.apply(base)?);
        }
        let cfg = SimConfig { carriers };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = args.sim_config()?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let sim = pigeon_loadtest::sim::start(cfg).await?;
    let stats_addr = match args.stats_listen {
        Some(listen) => Some(sim.serve_stats(listen).await?),
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        for (name, addr) in sim.addrs() {
            writeln!(out, "listening carrier={name} addr={addr}")?;
        }
        if let Some(addr) = stats_addr {
            writeln!(out, "listening stats={addr}")?;
        }
        out.flush()?;
    }
    let interval = args.stats_interval_ms.map(Duration::from_millis);
    let mut tick = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick(), if interval.is_some() => {
                if let Err(e) = write_stats(&sim, args.stats_file.as_deref()) {
                    tracing::warn!(error = %e, "cannot write stats");
                }
            }
        }
    }
    sim.stop().await;
    write_stats(&sim, args.stats_file.as_deref())?;
    Ok(())
}

/// Writes the report to `path` through a temporary file and a rename, or to stdout.
fn write_stats(sim: &SimHandle, path: Option<&Path>) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(&sim.report())?;
    let Some(path) = path else {
        println!("{json}");
        return Ok(());
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, json.as_bytes())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
