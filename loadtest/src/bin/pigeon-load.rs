//! `pigeon-load`: produces debit events at a target rate, waits for their statuses and
//! verifies that each got exactly one terminal status. Exits non-zero when one did not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pigeon::event::State;
use pigeon_loadtest::load::{self, DebitMix, IdShape, LoadOptions};

/// mimalloc, as the engine (`docs/adr/0006-allocator.md`): the generator and its status
/// collector allocate per debit and per status, and the harness shares the machine with the
/// engine it measures, so its own cost should stay small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pigeon-load",
    version,
    about = "Debit generator and exactly-once verifier"
)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:19092")]
    brokers: String,
    #[arg(long, default_value = "pigeon.debits")]
    debits_topic: String,
    #[arg(long, default_value = "pigeon.statuses")]
    statuses_topic: String,
    /// Dead-letter topic, read in `--events` mode.
    #[arg(long, default_value = "pigeon.dead-letter")]
    dead_letter_topic: String,
    /// Debit events to produce.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Debits per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Fraction of Chinese (UCS-2) debits.
    #[arg(long, default_value_t = 0.1)]
    chinese: f64,
    /// Fraction of long (two-segment) debits.
    #[arg(long, default_value_t = 0.1)]
    long: f64,
    /// Seconds to wait for the last status after the last debit.
    #[arg(long, default_value_t = 120)]
    settle_timeout_s: u64,
    /// Prefix of this run's event ids (default: a fresh random one).
    #[arg(long)]
    run_id: Option<String>,
    /// Also write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Instead of generating debits, produce the JSON lines of this file as they are and
    /// print the statuses of those whose event_id starts with `<run-id>-`. An `occurred_at`
    /// of `"now"` is stamped with the current time.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Run a scenario file (`loadtest/scenarios/*.toml`) instead: by default it starts its
    /// own broker, simulated carriers and engine on this machine.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Where a scenario run writes report.html, summary.json, the engine's configuration,
    /// log and store (default `.local/load/<scenario>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scenario against a system that already runs: only produce to and consume from
    /// `--brokers` (no carriers or engine are started; chaos is refused).
    #[arg(long)]
    external: bool,
    /// Port of the scenario run's own broker.
    #[arg(long, default_value_t = 19392)]
    broker_port: u16,
    /// Engine configuration a local scenario run starts from.
    #[arg(long)]
    base_config: Option<PathBuf>,
    /// Skip measuring the broker and a simulated carrier alone after a scenario run.
    #[arg(long)]
    no_baselines: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let opts = LoadOptions {
        brokers: cli.brokers.clone(),
        debits_topic: cli.debits_topic.clone(),
        statuses_topic: cli.statuses_topic.clone(),
        count: cli.count,
        rate: cli.rate,
        mix: DebitMix {
            chinese: cli.chinese,
            long: cli.long,
            malformed_every: 0,
            ids: IdShape::Readable,
        },
        settle_timeout: Duration::from_secs(cli.settle_timeout_s),
        run_id: cli
            .run_id
            .clone()
            .unwrap_or_else(|| format!("load-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pigeon-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = &cli.events {
        return replay(&rt, &opts, file, &cli.dead_letter_topic);
    }
    if let Some(file) = &cli.scenario {
        return scenario(&rt, &cli, file);
    }
    match rt.block_on(load::run(&opts)) {
        Ok(report) => {
            let a = &report.accounting;
            println!(
                "run {}: produced {} debits in {:.2} s ({:.0}/s); {} terminal statuses in {:.2} s end to end ({:.0}/s)",
                report.run_id,
                report.count,
                report.produce_seconds,
                report.produce_rate,
                a.terminal,
                report.end_to_end_seconds,
                report.end_to_end_rate
            );
            println!("terminal states: {:?}", a.by_state);
            println!("all statuses:    {:?}", a.all_statuses);
            let l = &report.latency_ms;
            println!(
                "latency (ms) debit -> accepted:            {}",
                l.debit_to_accepted
            );
            println!(
                "latency (ms) debit -> terminal decided:    {}",
                l.debit_to_terminal
            );
            println!(
                "latency (ms) terminal decided -> seen:     {}",
                l.status_hop
            );
            println!(
                "latency (ms) produced -> terminal seen:    {}",
                l.produced_to_terminal_seen
            );
            println!(
                "accounting: expected {} terminal {} missing {} duplicated {} -> {}",
                a.expected,
                a.terminal,
                a.missing,
                a.duplicated,
                if a.exactly_once() {
                    "exactly once"
                } else {
                    "NOT exactly once"
                }
            );
            if let Some(path) = &cli.report {
                match serde_json::to_vec_pretty(&report) {
                    Ok(json) => {
                        if let Err(e) = std::fs::write(path, json) {
                            eprintln!("pigeon-load: writing {}: {e}", path.display());
                        }
                    }
                    Err(e) => eprintln!("pigeon-load: {e}"),
                }
            }
            if a.exactly_once() {
                ExitCode::SUCCESS
            } else {
                if !a.missing_sample.is_empty() {
                    eprintln!("missing, e.g.: {:?}", a.missing_sample);
                }
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("pigeon-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a scenario file, prints its summary and says where the report is. Exit status 1
/// when an expectation of the scenario failed, 2 when the run could not be done.
fn scenario(rt: &tokio::runtime::Runtime, cli: &Cli, file: &std::path::Path) -> ExitCode {
    match rt.block_on(run_scenario_file(cli, file)) {
        Ok((summary, out)) => {
            print!("{}", load::run::text_summary(&summary));
            println!("report: {}", out.join("report.html").display());
            if summary.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("pigeon-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_scenario_file(
    cli: &Cli,
    file: &std::path::Path,
) -> anyhow::Result<(load::summary::RunSummary, PathBuf)> {
    use anyhow::Context as _;
    use load::run::{RunOptions, Target};
    let scenario = load::scenario::Scenario::load(file)?;
    let root = load::run::repo_root_beside_me()
        .or_else(|| std::env::current_dir().ok())
        .context("no working directory")?;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| root.join(".local/load").join(&scenario.name));
    let target = if cli.external {
        Target::External {
            brokers: cli.brokers.clone(),
        }
    } else {
        Target::Local {
            engine_bin: load::local::EngineProcess::binary_beside_me()?,
            base_config: cli
                .base_config
                .clone()
                .unwrap_or_else(|| root.join("deploy/local/pigeon.toml")),
            repo_root: root,
            broker_port: cli.broker_port,
        }
    };
    let opts = RunOptions {
        scenario,
        out: out.clone(),
        target,
        debits_topic: cli.debits_topic.clone(),
        statuses_topic: cli.statuses_topic.clone(),
        baselines: !cli.no_baselines && !cli.external,
        progress: true,
    };
    let summary = load::run::run_scenario(&opts).await?;
    Ok((summary, out))
}

fn replay(
    rt: &tokio::runtime::Runtime,
    opts: &LoadOptions,
    file: &std::path::Path,
    dead_letter_topic: &str,
) -> ExitCode {
    let replayed = rt.block_on(load::replay(
        &opts.brokers,
        &opts.debits_topic,
        &opts.statuses_topic,
        file,
        &opts.run_id,
        opts.settle_timeout,
    ));
    let replayed = match replayed {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pigeon-load: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut complete = true;
    let mut expect_dead = replayed.keys.len() - replayed.statuses.len();
    for (id, statuses) in &replayed.statuses {
        expect_dead += usize::from(statuses.iter().any(|s| s.state == State::Rejected));
        let steps: Vec<String> = statuses
            .iter()
            .map(|s| {
                let mut step = s.state.as_str().to_owned();
                let mut extra = Vec::new();
                if let Some(c) = &s.carrier {
                    extra.push(format!("carrier={c}"));
                }
                if s.segments > 0 {
                    extra.push(format!("segments={}", s.segments));
                }
                if let Some(r) = &s.reason {
                    extra.push(format!("reason={r}"));
                }
                if let Some(d) = &s.destination {
                    extra.push(format!("to={d}"));
                }
                if !extra.is_empty() {
                    step.push_str(&format!("({})", extra.join(" ")));
                }
                step
            })
            .collect();
        complete &= statuses.iter().any(|s| s.state.is_terminal());
        println!(
            "{id:<10} {}",
            if steps.is_empty() {
                "(no status)".to_owned()
            } else {
                steps.join(" -> ")
            }
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let dead = rt.block_on(async {
        load::dead_letters(
            &opts.brokers,
            dead_letter_topic,
            &replayed.keys,
            expect_dead,
            deadline,
        )
        .await
    });
    match dead {
        Ok(dead) => {
            println!(
                "dead-letter topic {dead_letter_topic}: {} record(s) from this file",
                dead.len()
            );
            for (key, reason) in dead {
                println!("  key {key:<8} reason={reason}");
            }
        }
        Err(e) => eprintln!("pigeon-load: reading dead letters: {e:#}"),
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
