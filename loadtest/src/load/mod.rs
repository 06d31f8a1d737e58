//! pigeon-load: produces debit events at a target rate, consumes the status topic, and
//! verifies that every event got exactly one terminal status.
//!
//! - [`debits`]: the generated events (unique texts, a mix of locales and lengths).
//! - [`verify`]: the status collector and the exactly-once accounting.

pub mod baseline;
pub mod collect;
pub mod cpu;
pub mod debits;
pub mod html;
pub mod local;
pub mod run;
pub mod scenario;
pub mod scrape;
pub mod summary;
pub mod verify;

use std::time::Duration;

use anyhow::Context as _;
use pigeon_kafka::{KafkaConfig, Outgoing, Publisher};
use serde::Serialize;
use tokio::time::Instant;

pub use debits::{DebitMix, Generator, IdShape, RunIds};
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
    /// Latencies in milliseconds.
    pub latency_ms: LatencyReport,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Debit produced -> its terminal status consumed by this tool.
    pub produced_to_terminal_seen: Percentiles,
    /// Debit occurred_at -> `accepted` decided by the engine.
    pub debit_to_accepted: Percentiles,
    /// Debit occurred_at -> terminal status decided by the engine.
    pub debit_to_terminal: Percentiles,
    /// Terminal status decided -> consumed by this tool.
    pub status_hop: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} p90 {} p99 {} max {}",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

/// Client settings for producing debits, a payment processor's: records gathered for
/// 10 ms, at most two requests awaiting the broker, not idempotent.
///
/// Both limits keep the broker's work small, which is most of a debit's trip under load on
/// the local broker: tansu stores each produced batch as an object and lists every object of
/// a partition on each fetch, so its CPU grows with the batches a run has stored (one per
/// partition per linger), and it answers a connection's requests one after another. Two
/// requests in flight let batches grow while the broker is slow instead of adding requests.
/// librdkafka's idempotent producer allows five per partition, but once a partition's
/// linger has passed with five out it polls its socket without sleeping until an answer
/// comes (~17 % of a core at 25,000 debits/s); so no idempotence. A debit the producer
/// retried would come twice, as a second record of the same event id, and the accounting
/// shows it. Measurements: `docs/benchmarks.md`, "The broker's work and the generator's
/// producer".
pub(crate) fn debit_producer(brokers: &str) -> KafkaConfig {
    let mut c = KafkaConfig {
        linger_ms: 10,
        ..KafkaConfig::new(brokers)
    };
    for (k, v) in [
        ("enable.idempotence", "false"),
        ("max.in.flight.requests.per.connection", "2"),
    ] {
        c.properties.insert(k.to_owned(), v.to_owned());
    }
    c
}

/// Produces `opts.count` debits at `opts.rate` while collecting statuses, then waits for the
/// stragglers and accounts for every event.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let collector = StatusCollector::start(
        &KafkaConfig::new(&opts.brokers),
        &opts.statuses_topic,
        &opts.run_id,
    )
    .context("subscribing to statuses")?;
    let publisher =
        Publisher::new(&debit_producer(&opts.brokers)).context("creating the producer")?;
    let mut generator = Generator::new(&opts.run_id, opts.mix.clone());
    if !collector
        .wait_assigned(Instant::now() + Duration::from_secs(60))
        .await
    {
        anyhow::bail!("the status consumer got no partitions within 60 s");
    }

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
    let (accounting, last_terminal, lat) = collector.finish(&generator.ids());
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
        latency_ms: LatencyReport {
            produced_to_terminal_seen: Percentiles::of(&lat.produced_to_terminal_seen),
            debit_to_accepted: Percentiles::of(&lat.debit_to_accepted),
            debit_to_terminal: Percentiles::of(&lat.debit_to_terminal),
            status_hop: Percentiles::of(&lat.status_hop),
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
        enqueue_all(publisher, topic, &records, &mut pending).await?;
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

/// Hands every record to the producer without waiting for the broker, waiting only while
/// the producer's local queue is full; the deliveries to await are added to `pending`.
pub async fn enqueue_all(
    publisher: &Publisher,
    topic: &str,
    records: &[Outgoing],
    pending: &mut Vec<pigeon_kafka::Delivery>,
) -> anyhow::Result<()> {
    for r in records {
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
    Ok(())
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
) -> anyhow::Result<Replay> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let collector = StatusCollector::start(&KafkaConfig::new(brokers), statuses_topic, prefix)?;
    collector.wait_assigned(Instant::now() + timeout).await;
    let publisher = Publisher::new(&debit_producer(brokers))?;
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    let mut batch = Vec::new();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut value = serde_json::from_str::<serde_json::Value>(line).ok();
        let id = value.as_ref().and_then(|v| {
            v.get("event_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
        // `"occurred_at": "now"` is stamped with the current time, so that sample files
        // stay fresh; every other line goes out exactly as written.
        let payload = match value.as_mut().and_then(|v| v.get_mut("occurred_at")) {
            Some(at) if at == "now" => {
                *at = serde_json::Value::String(now.clone());
                value
                    .map(|v| v.to_string().into_bytes())
                    .unwrap_or_default()
            }
            _ => line.as_bytes().to_vec(),
        };
        let key = id.clone().unwrap_or_else(|| format!("line-{}", i + 1));
        keys.push(key.clone());
        if let Some(id) = id.filter(|id| id.starts_with(&format!("{prefix}-"))) {
            ids.push(id);
        }
        batch.push(Outgoing {
            key: Some(key.into_bytes()),
            payload,
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
    let statuses: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let s = collector.statuses(&id);
            (id, s)
        })
        .collect();
    Ok(Replay { statuses, keys })
}

/// What [`replay`] saw: statuses per event id in file order, and every record key produced.
#[derive(Debug, Clone)]
pub struct Replay {
    pub statuses: Vec<(String, Vec<pigeon::event::StatusEvent>)>,
    pub keys: Vec<String>,
}

/// Reads the dead-letter topic from the beginning until `want` records keyed by one of
/// `keys` were seen, or until `deadline`: (key, reason) in topic order.
pub async fn dead_letters(
    brokers: &str,
    topic: &str,
    keys: &[String],
    want: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<(String, String)>> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let mut cfg = KafkaConfig::new(brokers);
    cfg.group_id = format!("pigeon-load-dlt-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = cfg.consumer().create()?;
    consumer.subscribe(&[topic])?;
    let mut found = Vec::new();
    while found.len() < want {
        let Ok(m) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let m = m?;
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        if !keys.contains(&key) {
            continue;
        }
        let reason = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == "pigeon.reason")
                    .and_then(|h| h.value)
            })
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        found.push((key, reason));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debits_are_produced_in_few_requests_without_idempotence() {
        let producer = debit_producer("127.0.0.1:9092").producer();
        assert_eq!(producer.get("enable.idempotence"), Some("false"));
        assert_eq!(
            producer.get("max.in.flight.requests.per.connection"),
            Some("2")
        );
        assert_eq!(producer.get("linger.ms"), Some("10"));
    }
}
