//! pigeon-load: produces debit events at a target rate, consumes the status topic, and
//! verifies that every event got exactly one terminal status.
//!
//! - [`debits`]: the generated events (unique texts, a mix of locales and lengths).
//! - [`verify`]: the status collector and the exactly-once accounting.

pub mod debits;
pub mod verify;

use std::time::Duration;

use anyhow::Context as _;
use pigeon_kafka::{KafkaConfig, Outgoing, Publisher};
use serde::Serialize;
use tokio::time::Instant;

pub use debits::{DebitMix, Generator};
pub use verify::{Accounting, StatusCollector};

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub brokers: String,
    pub debits_topic: String,
    pub statuses_topic: String,
    pub count: u64,
    /// Debits per second to produce at (open loop: at the intended send times).
    pub rate: u64,
    pub mix: DebitMix,
    /// How long to wait for the last terminal status after the last debit.
    pub settle_timeout: Duration,
    /// Prefix of every event id of this run, so that runs never mix.
    pub run_id: String,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub run_id: String,
    pub count: u64,
    pub produce_seconds: f64,
    pub produce_rate: f64,
    /// From the first debit produced to the last terminal status seen.
    pub end_to_end_seconds: f64,
    pub end_to_end_rate: f64,
    pub accounting: Accounting,
    /// Debit produced -> terminal status consumed, in milliseconds.
    pub latency_ms: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// Produces `opts.count` debits at `opts.rate` while collecting statuses, then waits for the
/// stragglers and accounts for every event.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let kafka = KafkaConfig::new(&opts.brokers);
    let collector = StatusCollector::start(&kafka, &opts.statuses_topic, &opts.run_id)
        .context("subscribing to statuses")?;
    let publisher = Publisher::new(&kafka).context("creating the producer")?;
    let mut generator = Generator::new(&opts.run_id, opts.mix.clone());

    let started = Instant::now();
    let produced = produce(
        &publisher,
        &opts.debits_topic,
        &mut generator,
        opts.count,
        opts.rate,
        &collector,
    )
    .await?;
    let produce_seconds = started.elapsed().as_secs_f64();

    let deadline = Instant::now() + opts.settle_timeout;
    collector.wait_terminal(produced, deadline).await;
    let (accounting, last_terminal, hist) = collector.finish(&generator.ids());
    let end_to_end_seconds = last_terminal.map_or(0.0, |t| (t - started).as_secs_f64());
    Ok(LoadReport {
        run_id: opts.run_id.clone(),
        count: produced,
        produce_seconds,
        produce_rate: produced as f64 / produce_seconds.max(1e-9),
        end_to_end_seconds,
        end_to_end_rate: if end_to_end_seconds > 0.0 {
            accounting.terminal as f64 / end_to_end_seconds
        } else {
            0.0
        },
        accounting,
        latency_ms: Percentiles {
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            max: hist.max(),
        },
    })
}

/// Open-loop production: batch `i` is due at `i * batch / rate` seconds; a late producer
/// catches up rather than shifting the schedule.
pub async fn produce(
    publisher: &Publisher,
    topic: &str,
    generator: &mut Generator,
    count: u64,
    rate: u64,
    collector: &StatusCollector,
) -> anyhow::Result<u64> {
    let rate = rate.max(1);
    let batch = (rate / 100).clamp(1, 500);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut pending = Vec::new();
    while sent < count {
        let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let n = batch.min(count - sent);
        let records: Vec<Outgoing> = (0..n)
            .map(|_| {
                let (key, payload) = generator.next_event();
                Outgoing {
                    key: Some(key),
                    payload,
                    headers: Vec::new(),
                }
            })
            .collect();
        collector.mark_produced(&records);
        for r in &records {
            loop {
                match publisher.enqueue(topic, r) {
                    Ok(d) => {
                        pending.push(d);
                        break;
                    }
                    Err(pigeon_kafka::Enqueue::Full) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(pigeon_kafka::Enqueue::Failed(e)) => return Err(e.into()),
                }
            }
        }
        sent += n;
        if pending.len() >= 10_000 {
            for d in pending.drain(..) {
                d.acked().await?;
            }
        }
    }
    for d in pending {
        d.acked().await?;
    }
    Ok(sent)
}

/// Produces the JSON lines of `file` as they are (valid or not) and waits until every line
/// with a readable `event_id` under `prefix` has a terminal status. Returns each such id with
/// its statuses, in file order.
pub async fn replay(
    brokers: &str,
    debits_topic: &str,
    statuses_topic: &str,
    file: &std::path::Path,
    prefix: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Vec<pigeon::event::StatusEvent>)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let kafka = KafkaConfig::new(brokers);
    let collector = StatusCollector::start(&kafka, statuses_topic, prefix)?;
    let publisher = Publisher::new(&kafka)?;
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let id = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| {
                v.get("event_id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
        let key = id.clone().unwrap_or_else(|| format!("line-{}", i + 1));
        if let Some(id) = id.filter(|id| id.starts_with(&format!("{prefix}-"))) {
            ids.push(id);
        }
        batch.push(Outgoing {
            key: Some(key.into_bytes()),
            payload: line.as_bytes().to_vec(),
            headers: Vec::new(),
        });
    }
    collector.mark_produced(&batch);
    for r in publisher.publish(debits_topic, &batch).await {
        r?;
    }
    collector
        .wait_terminal(ids.len() as u64, Instant::now() + timeout)
        .await;
    Ok(ids
        .into_iter()
        .map(|id| {
            let s = collector.statuses(&id);
            (id, s)
        })
        .collect())
}
