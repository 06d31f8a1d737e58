//! The `pigeon` binary: `pigeon run --config FILE` and `pigeon check-config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pigeon::config::Config;
use pigeon::pipeline::{Controls, ReloadRequest};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// mimalloc rather than the system allocator: the store's writer and fjall allocate and
/// free per key, and glibc's per-thread arenas kept growing under load
/// (`docs/adr/0006-allocator.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pigeon",
    version,
    about = "Debit events to SMS, with a known outcome for each"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the engine until SIGTERM or SIGINT, then drains and stops.
    Run {
        #[arg(long, short, env = "PIGEON_CONFIG")]
        config: PathBuf,
    },
    /// Validates a configuration file and reports every error in it.
    CheckConfig { file: PathBuf },
}

/// mimalloc (v3) gives emptied pages back to the system only 1 s after they empty (its
/// default `purge_delay`); with the store's memtable churn that keeps ~55 MB more resident
/// with 360,000 notifications awaiting receipts. 10 ms gives most of it back for ~1 µs of
/// CPU per notification (0 ms: ~10 MB more for ~3 µs; ADR 0006). mimalloc reads its options
/// from the environment before `main` runs, and setting one from Rust takes unsafe code
/// (forbidden here), so `run` starts itself again with the variable set, in the same
/// process (`exec`), unless the operator has set it.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
const PURGE_DELAY_MS: &str = "10";

/// Returns only if the variable is set already or the restart failed (with the reason).
fn restart_with_allocator_options() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return None;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next()?;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(e),
    };
    let err = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env(PURGE_DELAY_VAR, PURGE_DELAY_MS)
        .exec();
    Some(err)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let restart_failed = match cli.command {
        Command::Run { .. } => restart_with_allocator_options(),
        Command::CheckConfig { .. } => None,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rusmpp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(e) = restart_failed {
        tracing::warn!(error = %e, "could not restart with {PURGE_DELAY_VAR}={PURGE_DELAY_MS}: mimalloc's default applies");
    }
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{}: {e}", file.display());
                }
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                ExitCode::from(2)
            }
        },
        Command::Run { config } => match run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pigeon: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    info!(
        "allocator: {PURGE_DELAY_VAR}={}",
        std::env::var(PURGE_DELAY_VAR).unwrap_or_else(|_| "unset".into())
    );
    let path = path.canonicalize().unwrap_or(path);
    let cfg = Config::load(&path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        if !cfg.metrics.listen.is_empty() {
            let addr: std::net::SocketAddr =
                cfg.metrics.listen.parse().context("metrics.listen")?;
            pigeon::metrics::exporter()
                .context("configuring the metrics exporter")?
                .with_http_listener(addr)
                .install()
                .context("starting the metrics exporter")?;
        }
        let stop = CancellationToken::new();
        let (reload_tx, reload) = tokio::sync::mpsc::channel(4);
        actix_rt::spawn(signals(stop.clone(), reload_tx, path.clone()));
        let file = path.clone();
        let config_source: pigeon::pipeline::api::ConfigSource =
            std::sync::Arc::new(move || Config::load(&file).map_err(|e| e.0));
        let controls = Controls {
            stop,
            reload,
            config_source: Some(config_source),
        };
        pigeon::pipeline::run(cfg, controls).await
    })
}

/// SIGTERM and SIGINT stop the engine; SIGHUP reloads the configuration file, which is
/// validated first: a file with errors is refused with every error logged, and the running
/// configuration stays.
async fn signals(stop: CancellationToken, reload: Sender<ReloadRequest>, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("signal handlers could not be installed");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!("sigterm: stopping");
                break;
            }
            _ = int.recv() => {
                info!("sigint: stopping");
                break;
            }
            _ = hup.recv() => match Config::load(&path) {
                Ok(cfg) => {
                    info!(file = %path.display(), "sighup: reloading");
                    let _ = reload.send(ReloadRequest { config: cfg, reply: None }).await;
                }
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::warn!(error = %e, "sighup: configuration refused");
                    }
                }
            },
        }
    }
    stop.cancel();
}
