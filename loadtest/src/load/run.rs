//! One scenario run, end to end: set up the system under test (locally, or use the one at
//! given addresses), generate debits open loop at the profile's intended send times, do
//! the scenario's chaos on schedule, show progress, wait for the last statuses, account
//! for every debit, measure the parts alone, and write `summary.json` and `report.html`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use pigeon_kafka::{KafkaConfig, Outgoing, Publisher};
use rdkafka::consumer::Consumer;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::baseline::HopRate;
use super::collect::{self, consume_statuses, RunCollector};
use super::cpu::CpuSnapshot;
use super::local::{self, Broker, EngineProcess};
use super::scenario::{ChaosAction, Scenario};
use super::summary::{
    Baselines, Check, Counts, EngineUsage, MachineUsage, Mark, Offered, RunSummary,
};
use super::{Generator, RunIds};
use crate::sim::{self, SimHandle, SubmitObserver};

/// Where the system under test comes from.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start a broker (on `broker_port`, its own instance), the scenario's simulated
    /// carriers and the engine (`engine_bin`, configured from `base_config` plus the
    /// scenario's overrides) on this machine.
    Local {
        repo_root: PathBuf,
        engine_bin: PathBuf,
        base_config: PathBuf,
        broker_port: u16,
    },
    /// Everything already runs: produce to and consume from `brokers` only.
    External { brokers: String },
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: Scenario,
    /// Where the report, the engine's configuration, log and store go.
    pub out: PathBuf,
    pub target: Target,
    pub debits_topic: String,
    pub statuses_topic: String,
    /// Measure the broker and a simulated carrier alone after the run (local runs).
    pub baselines: bool,
    /// Print a progress line every second to standard error.
    pub progress: bool,
}

/// The engine of a local run, across restarts.
struct Engine {
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    process: EngineProcess,
    /// CPU seconds of the processes killed before this one.
    cpu_before: f64,
    peak_rss_mb: f64,
    restarts: u32,
    /// Its Prometheus endpoint, if the configuration has one.
    metrics: Option<SocketAddr>,
    /// Its consumer's `fetch.wait.max.ms`.
    fetch_wait_ms: u32,
}

impl Engine {
    fn cpu_seconds(&self) -> f64 {
        self.cpu_before + self.process.cpu_seconds()
    }

    fn sample(&mut self) {
        self.peak_rss_mb = self.peak_rss_mb.max(self.process.rss_mb());
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        self.sample();
        self.cpu_before += self.process.cpu_seconds();
        self.process.kill9();
        self.process = EngineProcess::start(&self.bin, &self.config, &self.log)?;
        self.restarts += 1;
        Ok(())
    }
}

/// The parts a local run started.
struct System {
    broker: Option<Broker>,
    sim: Option<SimHandle>,
    engine: Option<Arc<Mutex<Engine>>>,
}

/// CPU seconds of the run's engine processes so far (`None`: the run did not start one).
async fn engine_cpu(system: &System) -> Option<f64> {
    match &system.engine {
        Some(e) => Some(e.lock().await.cpu_seconds()),
        None => None,
    }
}

/// Runs the scenario and writes its report into `opts.out`.
pub async fn run_scenario(opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let sc = &opts.scenario;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let run_id = format!(
        "{}-{}",
        sc.name,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let cell: Arc<OnceLock<RunCollector>> = Arc::new(OnceLock::new());

    let (brokers, system) = match &opts.target {
        Target::Local { .. } => set_up_local(opts, &run_id, &cell).await?,
        Target::External { brokers } => {
            anyhow::ensure!(
                sc.chaos.is_empty(),
                "chaos needs a local run: the engine and carriers are not this run's"
            );
            (
                brokers.clone(),
                System {
                    broker: None,
                    sim: None,
                    engine: None,
                },
            )
        }
    };
    let result = drive(opts, &run_id, &brokers, &system, &cell).await;
    if let Some(engine) = &system.engine {
        engine.lock().await.process.kill9();
    }
    if let Some(sim) = &system.sim {
        sim.stop().await;
    }
    if let Some(b) = &system.broker {
        b.stop();
    }
    let summary = result?;
    let json = serde_json::to_vec_pretty(&summary).context("serialising the summary")?;
    std::fs::write(opts.out.join("summary.json"), json).context("writing summary.json")?;
    std::fs::write(opts.out.join("report.html"), super::html::render(&summary))
        .context("writing report.html")?;
    Ok(summary)
}

async fn set_up_local(
    opts: &RunOptions,
    run_id: &str,
    cell: &Arc<OnceLock<RunCollector>>,
) -> anyhow::Result<(String, System)> {
    let Target::Local {
        repo_root,
        engine_bin,
        base_config,
        broker_port,
    } = &opts.target
    else {
        anyhow::bail!("not a local run");
    };
    let broker = Broker::new(repo_root, &opts.out.join("broker"), *broker_port);
    status(
        opts,
        &format!("starting the broker on {}", broker.address()),
    );
    broker.restart()?;
    let brokers = broker.address();
    let observer = {
        let cell = cell.clone();
        SubmitObserver::new(move |_, destination| {
            if let Some(c) = cell.get() {
                c.submitted(destination);
            }
        })
    };
    let sim = sim::start_observed(opts.scenario.sim_config()?, Some(observer)).await?;
    let base = std::fs::read_to_string(base_config)
        .with_context(|| format!("reading {}", base_config.display()))?;
    let store = opts.out.join("store");
    let _ = std::fs::remove_dir_all(&store);
    let text = local::engine_config(
        &base,
        &opts.scenario.engine,
        &brokers,
        run_id,
        &store,
        &sim.addrs(),
        Some(super::scrape::free_local_addr()?),
    )?;
    // What the engine will listen on (the scenario's overrides may have set another address).
    let parsed = text.parse::<toml::Table>().ok();
    let metrics =
        (parsed.as_ref()).and_then(|t| t.get("metrics")?.get("listen")?.as_str()?.parse().ok());
    let fetch_wait_ms = (parsed.as_ref())
        .and_then(|t| t.get("kafka")?.get("fetch_wait_max_ms")?.as_integer())
        .and_then(|ms| u32::try_from(ms).ok())
        .unwrap_or(KafkaConfig::new(&brokers).fetch_wait_max_ms);
    let config = opts.out.join("engine.toml");
    let log = opts.out.join("engine.log");
    std::fs::write(&config, text).context("writing engine.toml")?;
    let _ = std::fs::remove_file(&log);
    status(opts, "starting the engine");
    let process = EngineProcess::start(engine_bin, &config, &log)?;
    local::wait_for_log(
        &log,
        0,
        "partitions assigned",
        Instant::now() + Duration::from_secs(90),
    )
    .await
    .context("the engine did not join its consumer group")?;
    let engine = Engine {
        bin: engine_bin.clone(),
        config,
        log,
        process,
        cpu_before: 0.0,
        peak_rss_mb: 0.0,
        restarts: 0,
        metrics,
        fetch_wait_ms,
    };
    Ok((
        brokers,
        System {
            broker: Some(broker),
            sim: Some(sim),
            engine: Some(Arc::new(Mutex::new(engine))),
        },
    ))
}

fn status(opts: &RunOptions, what: &str) {
    if opts.progress {
        eprintln!("pigeon-load: {what}");
    }
}

async fn drive(
    opts: &RunOptions,
    run_id: &str,
    brokers: &str,
    system: &System,
    cell: &Arc<OnceLock<RunCollector>>,
) -> anyhow::Result<RunSummary> {
    let sc = &opts.scenario;
    // Made first, so that it has the cluster's metadata and its connection by the time the
    // status consumer below holds its partitions.
    let publisher =
        Publisher::new(&super::debit_producer(brokers)).context("creating the producer")?;
    let (consumer, consuming) = consume_statuses(
        &KafkaConfig::new(brokers),
        &opts.statuses_topic,
        &format!("pigeon-load-{run_id}"),
        cell.clone(),
    )?;
    let assigned_by = Instant::now() + Duration::from_secs(60);
    while !consumer.assignment().is_ok_and(|a| a.count() > 0) {
        anyhow::ensure!(
            Instant::now() < assigned_by,
            "the status consumer got no partitions within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let due: Vec<Duration> = sc.profile.offsets(sc.duration_s).collect();
    let start = Instant::now() + Duration::from_millis(100);
    let collector = RunCollector::new(
        RunIds::new(run_id, sc.mix.ids),
        &due,
        start,
        Duration::from_secs_f64(sc.warmup_s.max(0.0)),
    );
    let _ = cell.set(collector.clone());
    let started_at = collector.start_wall();
    status(
        opts,
        &format!(
            "run {run_id}: {} debits over {} s ({} profile, peak {:.0}/s)",
            due.len(),
            sc.duration_s,
            sc.profile.kind(),
            sc.profile.peak()
        ),
    );
    let ticker = opts.progress.then(|| {
        tokio::spawn(progress(
            collector.clone(),
            system.engine.clone(),
            start,
            due.len() as u64,
        ))
    });
    let sampler = system.engine.clone().map(|e| {
        tokio::spawn(async move {
            loop {
                e.lock().await.sample();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });

    let broker_pid = system.broker.as_ref().and_then(Broker::pid);
    let cpu_at_start = CpuSnapshot::take(engine_cpu(system).await, broker_pid);
    let mut marks = Vec::new();
    let produced = generate(
        opts, run_id, &publisher, &collector, &due, start, system, &mut marks,
    )
    .await?;
    let produce_seconds = start.elapsed().as_secs_f64();

    // The stragglers.
    let settle_by = Instant::now() + Duration::from_secs_f64(sc.settle_timeout_s);
    while collector.progress().terminal < produced && Instant::now() < settle_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let machine = CpuSnapshot::take(engine_cpu(system).await, broker_pid).since(&cpu_at_start);
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(s) = sampler {
        s.abort();
    }
    consuming.abort();
    let last = collector.last_terminal();
    let engine = match &system.engine {
        Some(e) => {
            let mut e = e.lock().await;
            e.sample();
            let latency = match e.metrics {
                Some(addr) => match super::scrape::metrics_text(addr).await {
                    Ok(text) => super::scrape::engine_latency(&text),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read the engine's metrics");
                        None
                    }
                },
                None => None,
            };
            let cpu = e.cpu_seconds();
            let clean = e.process.stop(Duration::from_secs(20)).await;
            if !clean {
                tracing::warn!("the engine did not stop cleanly within 20 s");
            }
            Some(EngineUsage {
                cpu_seconds: cpu,
                cpu_us_per_notification: cpu * 1e6 / (produced.max(1) as f64),
                peak_rss_mb: e.peak_rss_mb,
                restarts: e.restarts,
                latency,
            })
        }
        None => None,
    };
    let sim_stats = system.sim.as_ref().map(SimHandle::stats);
    let baselines = match (&system.sim, opts.baselines) {
        (Some(_), true) => {
            status(opts, "measuring the broker and a simulated carrier alone");
            let broker = super::baseline::broker_consume_rate(
                brokers,
                &opts.debits_topic,
                produced,
                Duration::from_secs(60),
            )
            .await
            .unwrap_or(0.0);
            let smpp = super::baseline::sim_submit_rate(produced.clamp(1_000, 100_000) as usize)
                .await
                .unwrap_or(0.0);
            // At the run's peak rate, for five seconds: the hop its debits would make with
            // nothing else on the machine.
            let hop_rate = HopRate::of(sc.profile.peak());
            let fetch_wait_ms = match &system.engine {
                Some(e) => e.lock().await.fetch_wait_ms,
                None => KafkaConfig::new(brokers).fetch_wait_max_ms,
            };
            let (hop_p50, hop_p99) =
                super::baseline::broker_hop(brokers, &opts.debits_topic, fetch_wait_ms, hop_rate)
                    .await
                    .unwrap_or((0.0, 0.0));
            Some(Baselines {
                broker_consume_rate: broker,
                sim_submit_rate: smpp,
                broker_hop_p50_ms: hop_p50,
                broker_hop_p99_ms: hop_p99,
                broker_hop_fetch_wait_ms: fetch_wait_ms,
                broker_hop_rate: hop_rate.per_second,
            })
        }
        _ => None,
    };

    let (accounting, timeline, stages) = collector.finish(produced);
    let end_to_end_seconds = last.map_or(0.0, |t| (t - start).as_secs_f64());
    let outcomes = accounting.by_state.clone();
    let counts = Counts {
        throttled: sim_stats.as_ref().map_or(0, |s| s.throttled),
        failed: (outcomes.iter())
            .filter(|(s, _)| collect::is_failure(s))
            .map(|(_, n)| n)
            .sum(),
        expired: outcomes.get("expired").copied().unwrap_or(0),
        duplicate: accounting.duplicated,
        lost: accounting.missing,
        duplicate_at_carrier: sim_stats.as_ref().map_or(0, |s| s.duplicate_pairs),
        possible_duplicate: collector.possible_duplicates(),
    };
    let mut summary = RunSummary {
        scenario: sc.name.clone(),
        description: sc.description.clone(),
        run_id: run_id.to_owned(),
        started_at: started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        mode: match opts.target {
            Target::Local { .. } => "local".into(),
            Target::External { .. } => "external".into(),
        },
        offered: Offered {
            kind: sc.profile.kind().into(),
            peak_rate: sc.profile.peak(),
            count: due.len() as u64,
            duration_s: sc.duration_s,
        },
        produced,
        produce_seconds,
        end_to_end_seconds,
        end_to_end_rate: if end_to_end_seconds > 0.0 {
            accounting.terminal as f64 / end_to_end_seconds
        } else {
            0.0
        },
        timeline,
        stages,
        outcomes,
        outcome_reasons: collector.reasons(),
        counts,
        exactly_once: accounting.exactly_once(),
        accounting,
        engine,
        baselines,
        machine,
        events: marks,
        checks: Vec::new(),
        passed: false,
    };
    summary.checks = checks(sc, &summary);
    summary.passed = summary.checks.iter().all(|c| c.passed);
    Ok(summary)
}

/// Produces every debit at its intended time (a late producer catches up rather than
/// shifting the schedule), doing the scenario's chaos on the way; returns how many it
/// produced.
#[allow(clippy::too_many_arguments)]
async fn generate(
    opts: &RunOptions,
    run_id: &str,
    publisher: &Publisher,
    collector: &RunCollector,
    due: &[Duration],
    start: Instant,
    system: &System,
    marks: &mut Vec<Mark>,
) -> anyhow::Result<u64> {
    let mut generator = Generator::new(run_id, opts.scenario.mix());
    let mut chaos = opts.scenario.chaos.iter().peekable();
    let mut pending = Vec::new();
    // The broker's acknowledgements are awaited beside the generator, never by it: waiting
    // here would hold back the debits due meanwhile, and their latency would be this
    // program's.
    let (acks, unacked) = tokio::sync::mpsc::unbounded_channel();
    let acker = tokio::spawn(await_acks(unacked, collector.clone()));
    let mut i = 0usize;
    while (i < due.len() || chaos.peek().is_some()) && !acker.is_finished() {
        let next_debit = due.get(i).map(|d| start + *d);
        let next_chaos = chaos
            .peek()
            .map(|c| start + Duration::from_secs_f64(c.at_s));
        let wake = match (next_debit, next_chaos) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        tokio::time::sleep_until(wake).await;
        let now = Instant::now();
        while let Some(c) = chaos.next_if(|c| start + Duration::from_secs_f64(c.at_s) <= now) {
            let what = act(&c.action, system).await?;
            status(
                opts,
                &format!("t={:.1}s {what}", start.elapsed().as_secs_f64()),
            );
            marks.push(Mark {
                t: start.elapsed().as_secs_f64(),
                what,
            });
        }
        let mut batch = Vec::new();
        while i < due.len() && start + due[i] <= now && batch.len() < 2_000 {
            i += 1;
            let ev = generator.event(i as u64);
            let payload = serde_json::to_vec(&ev).context("serialising a debit")?;
            batch.push(Outgoing {
                key: Some(ev.event_id.into_bytes()),
                payload,
                headers: Vec::new(),
            });
        }
        super::enqueue_all(publisher, &opts.debits_topic, &batch, &mut pending).await?;
        collector.produced(batch.len() as u64);
        let first = (i - batch.len() + 1) as u64;
        for (d, n) in pending.drain(..).zip(first..) {
            // The acker stops only on a failed delivery, which the loop's test then sees.
            let _ = acks.send((n, d));
        }
    }
    drop(acks);
    acker.await.context("the acknowledgement task failed")??;
    Ok(i as u64)
}

/// Awaits the broker's acknowledgement of each debit record, in order, telling the collector;
/// stops at the first failed delivery.
async fn await_acks(
    mut unacked: tokio::sync::mpsc::UnboundedReceiver<(u64, pigeon_kafka::Delivery)>,
    collector: RunCollector,
) -> anyhow::Result<()> {
    while let Some((n, d)) = unacked.recv().await {
        d.acked().await?;
        collector.acked(n);
    }
    Ok(())
}

/// Does one chaos action; says what was done.
async fn act(action: &ChaosAction, system: &System) -> anyhow::Result<String> {
    match action {
        ChaosAction::RestartEngine => {
            let engine = system.engine.as_ref().context("no engine to restart")?;
            engine.lock().await.restart()?;
            Ok("engine killed (SIGKILL) and restarted".into())
        }
        ChaosAction::KillCarrier(name) => {
            let sim = system.sim.as_ref().context("no simulated carriers")?;
            anyhow::ensure!(sim.kill_carrier(name).await, "carrier {name} is not up");
            Ok(format!("{name} down"))
        }
        ChaosAction::RestartCarrier(name) => {
            let sim = system.sim.as_ref().context("no simulated carriers")?;
            sim.restart_carrier(name).await?;
            Ok(format!("{name} up"))
        }
    }
}

/// Prints a line a second: where the run is, and the last second's rates.
async fn progress(
    collector: RunCollector,
    engine: Option<Arc<Mutex<Engine>>>,
    start: Instant,
    total: u64,
) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut before = collector.progress();
    let mut cpu_before = match &engine {
        Some(e) => e.lock().await.cpu_seconds(),
        None => 0.0,
    };
    loop {
        tick.tick().await;
        let p = collector.progress();
        let engine_part = match &engine {
            Some(e) => {
                let e = e.lock().await;
                let cpu = e.cpu_seconds();
                let part = format!(
                    " | engine {:>3.0}% cpu {:>4.0} MB",
                    (cpu - cpu_before) * 100.0,
                    e.process.rss_mb()
                );
                cpu_before = cpu;
                part
            }
            None => String::new(),
        };
        eprintln!(
            "[{:>4}s] produced {:>9} of {} ({:>6}/s)  at carriers {:>9} ({:>6}/s)  terminal {:>9} ({:>6}/s){engine_part}",
            start.elapsed().as_secs(),
            p.produced,
            total,
            p.produced - before.produced,
            p.submitted,
            p.submitted - before.submitted,
            p.terminal,
            p.terminal - before.terminal,
        );
        before = p;
    }
}

/// The scenario's expectations against what the run found.
fn checks(sc: &Scenario, s: &RunSummary) -> Vec<Check> {
    let e = &sc.expect;
    let mut out = Vec::new();
    let mut check = |name: &str, expected: String, actual: String, passed: bool| {
        out.push(Check {
            name: name.to_owned(),
            expected,
            actual,
            passed,
        });
    };
    if e.exactly_once {
        check(
            "exactly once",
            "every debit one terminal status".into(),
            format!(
                "{} of {} terminal, {} missing, {} duplicated",
                s.accounting.terminal,
                s.accounting.expected,
                s.accounting.missing,
                s.accounting.duplicated
            ),
            s.exactly_once && s.produced == s.offered.count,
        );
    }
    if let Some(min) = e.min_end_to_end_rate {
        check(
            "end-to-end rate",
            format!(">= {min:.0}/s"),
            format!("{:.0}/s", s.end_to_end_rate),
            s.end_to_end_rate >= min,
        );
    }
    for (stage, max) in &e.max_p99_ms {
        let found = s.stages.iter().find(|st| &st.name == stage);
        check(
            &format!("p99 {stage}"),
            format!("<= {max} ms"),
            found.map_or("not measured".into(), |st| format!("{:.1} ms", st.p99)),
            found.is_some_and(|st| st.count > 0 && st.p99 <= *max),
        );
    }
    let engine = s.engine.as_ref();
    if let Some(max) = e.max_cpu_us_per_notification {
        check(
            "engine CPU per notification",
            format!("<= {max} µs"),
            engine.map_or("not measured".into(), |u| {
                format!("{:.1} µs", u.cpu_us_per_notification)
            }),
            engine.is_some_and(|u| u.cpu_us_per_notification <= max),
        );
    }
    if let Some(max) = e.max_rss_mb {
        check(
            "engine memory",
            format!("<= {max} MB"),
            engine.map_or("not measured".into(), |u| {
                format!("{:.0} MB", u.peak_rss_mb)
            }),
            engine.is_some_and(|u| u.peak_rss_mb <= max),
        );
    }
    if let Some(max) = e.max_lost {
        check(
            "lost",
            format!("<= {max}"),
            s.counts.lost.to_string(),
            s.counts.lost <= max,
        );
    }
    if let Some(max) = e.max_duplicate {
        check(
            "duplicate",
            format!("<= {max}"),
            s.counts.duplicate.to_string(),
            s.counts.duplicate <= max,
        );
    }
    out
}

/// The repository root when this program runs from its `target/<profile>/` directory.
pub fn repo_root_beside_me() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    me.ancestors()
        .find(|p| p.join("deploy/local/broker.sh").exists())
        .map(Path::to_path_buf)
}

/// The summary as a few lines of text for the terminal.
pub fn text_summary(s: &RunSummary) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "scenario {} ({}): {}",
        s.scenario,
        s.run_id,
        if s.passed { "PASSED" } else { "FAILED" }
    );
    let _ = writeln!(
        t,
        "offered {} debits ({} profile, peak {:.0}/s); produced {} in {:.1} s; {} terminal in {:.1} s end to end ({:.0}/s)",
        s.offered.count,
        s.offered.kind,
        s.offered.peak_rate,
        s.produced,
        s.produce_seconds,
        s.accounting.terminal,
        s.end_to_end_seconds,
        s.end_to_end_rate
    );
    let _ = writeln!(t, "outcomes: {:?}", s.outcome_reasons);
    let c = &s.counts;
    let _ = writeln!(
        t,
        "throttled {} failed {} expired {} duplicate {} lost {} duplicate at carrier {} possible_duplicate {}",
        c.throttled, c.failed, c.expired, c.duplicate, c.lost, c.duplicate_at_carrier, c.possible_duplicate
    );
    for st in &s.stages {
        let _ = writeln!(
            t,
            "{:<30} n={:<8} p50 {:>8.1} p90 {:>8.1} p99 {:>8.1} p99.9 {:>8.1} max {:>8.1} ms",
            st.name, st.count, st.p50, st.p90, st.p99, st.p999, st.max
        );
    }
    if let Some(e) = &s.engine {
        let _ = writeln!(
            t,
            "engine: {:.2} s CPU, {:.1} µs per notification, peak RSS {:.0} MB, {} restart(s)",
            e.cpu_seconds, e.cpu_us_per_notification, e.peak_rss_mb, e.restarts
        );
        if let Some(l) = &e.latency {
            let _ = writeln!(
                t,
                "as the engine measured it: produced → taken from the broker p50 {:.1} ms p99 {:.1} ms; taken → handed to a carrier (its own share) p50 {:.1} ms p99 {:.1} ms",
                l.broker_hop_p50_ms, l.broker_hop_p99_ms, l.engine_p50_ms, l.engine_p99_ms
            );
        }
    }
    if let Some(b) = &s.baselines {
        let _ = writeln!(
            t,
            "alone on this machine: broker consume {:.0}/s, simulated carrier submit {:.0}/s (engine end to end {:.0}/s); one record through the broker at {:.0}/s p50 {:.1} ms p99 {:.1} ms (fetch wait {} ms)",
            b.broker_consume_rate, b.sim_submit_rate, s.end_to_end_rate, b.broker_hop_rate, b.broker_hop_p50_ms, b.broker_hop_p99_ms, b.broker_hop_fetch_wait_ms
        );
    }
    if let Some(m) = &s.machine {
        let _ = writeln!(t, "{}", machine_line(m));
    }
    for m in &s.events {
        let _ = writeln!(t, "t={:.1}s {}", m.t, m.what);
    }
    for c in &s.checks {
        let _ = writeln!(
            t,
            "[{}] {}: expected {}, got {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.expected,
            c.actual
        );
    }
    t
}

/// The machine's CPU while the debits flowed, and each part's share of it.
fn machine_line(m: &MachineUsage) -> String {
    let part = |name: &str, secs: Option<f64>| secs.map(|v| format!("{name} {v:.1} s, "));
    let parts = [
        part("engine", m.engine_cpu_seconds),
        part("broker", m.broker_cpu_seconds),
    ];
    format!(
        "machine while the debits flowed ({:.1} s, {:.0} cores): {:.0} % busy, {:.1} CPU s: {}pigeon-load {:.1} s (generator, simulated carriers, status consumer), the rest {:.1} s",
        m.seconds,
        m.cores,
        m.busy_share * 100.0,
        m.busy_cpu_seconds,
        parts.into_iter().flatten().collect::<String>(),
        m.harness_cpu_seconds,
        m.rest_cpu_seconds()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::summary::Stage;

    fn scenario(expect: &str) -> Scenario {
        Scenario::parse(&format!(
            "name = \"t\"\nduration_s = 10\n[profile]\nkind = \"constant\"\nrate = 100\n[expect]\n{expect}"
        ))
        .unwrap()
    }

    fn summary() -> RunSummary {
        let mut s = RunSummary {
            produced: 1_000,
            end_to_end_rate: 95.0,
            exactly_once: true,
            stages: vec![Stage {
                name: "produced_to_submit".into(),
                count: 1_000,
                p99: 40.0,
                ..Stage::default()
            }],
            engine: Some(EngineUsage {
                cpu_us_per_notification: 25.0,
                peak_rss_mb: 200.0,
                ..EngineUsage::default()
            }),
            ..RunSummary::default()
        };
        s.offered.count = 1_000;
        s.accounting.expected = 1_000;
        s.accounting.terminal = 1_000;
        s
    }

    fn verdicts(checks: &[Check]) -> Vec<(&str, bool)> {
        checks.iter().map(|c| (c.name.as_str(), c.passed)).collect()
    }

    #[test]
    fn each_expectation_is_checked_against_what_the_run_found() {
        let sc = scenario(
            "min_end_to_end_rate = 90\nmax_p99_ms = { produced_to_submit = 50, produced_to_status_seen = 100 }\nmax_cpu_us_per_notification = 20\nmax_rss_mb = 300\nmax_lost = 0",
        );
        let checks = checks(&sc, &summary());
        assert_eq!(
            verdicts(&checks),
            vec![
                ("exactly once", true),
                ("end-to-end rate", true),
                ("p99 produced_to_status_seen", false),
                ("p99 produced_to_submit", true),
                ("engine CPU per notification", false),
                ("engine memory", true),
                ("lost", true),
            ]
        );
        let unmeasured = checks
            .iter()
            .find(|c| c.name == "p99 produced_to_status_seen");
        assert_eq!(unmeasured.map(|c| c.actual.as_str()), Some("not measured"));
    }

    #[test]
    fn fewer_debits_produced_than_offered_is_not_exactly_once() {
        let mut s = summary();
        s.produced = 999;
        let checks = checks(&scenario(""), &s);
        assert_eq!(verdicts(&checks), vec![("exactly once", false)]);
        let mut s = summary();
        s.exactly_once = false;
        assert_eq!(
            verdicts(&super::checks(&scenario(""), &s)),
            vec![("exactly once", false)]
        );
    }

    #[test]
    fn the_text_summary_names_the_verdict_and_each_check() {
        let mut s = summary();
        s.checks = checks(&scenario("max_cpu_us_per_notification = 20"), &s);
        s.passed = false;
        let text = text_summary(&s);
        assert!(text.contains("FAILED"), "{text}");
        assert!(
            text.contains("[FAIL] engine CPU per notification: expected <= 20 µs, got 25.0 µs"),
            "{text}"
        );
        assert!(text.contains("[pass] exactly once"), "{text}");
    }

    #[test]
    fn the_text_summary_splits_the_machines_cpu_between_the_parts() {
        let mut s = summary();
        assert!(!text_summary(&s).contains("machine while"));
        s.machine = Some(MachineUsage {
            seconds: 62.0,
            cores: 2.0,
            busy_share: 0.93,
            busy_cpu_seconds: 115.3,
            engine_cpu_seconds: Some(58.0),
            broker_cpu_seconds: Some(27.5),
            harness_cpu_seconds: 28.0,
        });
        let text = text_summary(&s);
        assert!(
            text.contains(
                "machine while the debits flowed (62.0 s, 2 cores): 93 % busy, 115.3 CPU s: \
                 engine 58.0 s, broker 27.5 s, pigeon-load 28.0 s (generator, simulated \
                 carriers, status consumer), the rest 1.8 s"
            ),
            "{text}"
        );
        // Against given addresses the run starts neither the engine nor the broker.
        s.machine = Some(MachineUsage {
            engine_cpu_seconds: None,
            broker_cpu_seconds: None,
            ..s.machine.clone().unwrap()
        });
        let text = text_summary(&s);
        assert!(
            text.contains("115.3 CPU s: pigeon-load 28.0 s (generator, simulated carriers, status consumer), the rest 87.3 s"),
            "{text}"
        );
    }
}
