//! The `pigeon` binary: `pigeon run --config FILE` and `pigeon check-config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pigeon::config::Config;
use tokio_util::sync::CancellationToken;
use tracing::info;

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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rusmpp=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
    let cfg = Config::load(&path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        if !cfg.metrics.listen.is_empty() {
            let addr: std::net::SocketAddr =
                cfg.metrics.listen.parse().context("metrics.listen")?;
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(addr)
                .install()
                .context("starting the metrics exporter")?;
        }
        let stop = CancellationToken::new();
        actix_rt::spawn(signals(stop.clone()));
        pigeon::pipeline::run(cfg, stop).await
    })
}

async fn signals(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("signal handlers could not be installed");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("sigterm: stopping"),
        _ = int.recv() => info!("sigint: stopping"),
    }
    stop.cancel();
}
