//! `pigeon-sim`: the SMSC simulator as a process. Everything it does lives in
//! `pigeon_loadtest::sim`; this file turns flags or a TOML file into a [`SimConfig`], prints
//! `listening carrier=NAME addr=ADDR` per carrier once ready, optionally rewrites a stats
//! file periodically, and on SIGTERM/SIGINT writes the final JSON stats and exits 0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use pigeon_loadtest::sim::file::{parse_listen, FileConfig};
use pigeon_loadtest::sim::{
    parse_receipt_state, Account, CarrierSim, IdFormat, SimConfig, SimHandle,
};
use std::io::Write as _;
use tokio::signal::unix::{signal, SignalKind};

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
    /// Message ids as `hex` (default) or `decimal`.
    #[arg(long, default_value = "hex")]
    id_format: String,
    /// TOML file with a `[[carrier]]` list; replaces the per-carrier flags above.
    #[arg(long, conflicts_with_all = ["listen", "account"])]
    config: Option<PathBuf>,
    /// Where to write the JSON stats (stdout when absent).
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Rewrite the stats file this often (atomically), in milliseconds.
    #[arg(long, requires = "stats_file")]
    stats_interval_ms: Option<u64>,
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
        let id_format = match self.id_format.to_ascii_lowercase().as_str() {
            "hex" => IdFormat::Hex,
            "decimal" => IdFormat::Decimal,
            other => anyhow::bail!("unknown id format {other:?} (hex or decimal)"),
        };
        let mut carriers = Vec::with_capacity(self.listen.len());
        for (i, l) in self.listen.iter().enumerate() {
            let (name, listen) = parse_listen(l, i)?;
            carriers.push(CarrierSim {
                name,
                listen,
                accounts: accounts.clone(),
                dlr_delay: Duration::from_millis(self.dlr_delay_ms),
                receipt_state,
                max_binds: self.max_binds,
                id_format,
            });
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
    {
        let mut out = std::io::stdout().lock();
        for (name, addr) in sim.addrs() {
            writeln!(out, "listening carrier={name} addr={addr}")?;
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
