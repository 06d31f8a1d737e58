//! What the parts do alone on this machine, measured right after a run so that the report
//! can put them beside the engine's rate: a plain consumer reading the run's debits back
//! from the broker, and one SMPP client submitting to a fault-free simulated carrier.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use pigeon_kafka::KafkaConfig;
use pigeon_smpp::session::{connect, Inbound, SessionConfig, Submit};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::time::Instant;

use crate::sim::{Account, CarrierSim, SimConfig};

/// Records per second a consumer of its own reads from `topic` (from the beginning), over
/// at most `want` records or `limit` of time.
pub async fn broker_consume_rate(
    brokers: &str,
    topic: &str,
    want: u64,
    limit: Duration,
) -> anyhow::Result<f64> {
    let mut cfg = KafkaConfig::new(brokers);
    cfg.group_id = format!("pigeon-load-baseline-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = cfg.consumer().create()?;
    consumer.subscribe(&[topic])?;
    // The first record marks the start: the group join is not the broker's read rate.
    let first = tokio::time::timeout(limit, consumer.recv())
        .await
        .context("no record to read back")??;
    drop(first);
    let started = Instant::now();
    let deadline = started + limit;
    let mut n = 1u64;
    while n < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(_)) => n += 1,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// How many records [`broker_hop`] times, and how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HopRate {
    pub count: usize,
    pub per_second: f64,
}

impl HopRate {
    /// Five seconds at `rate` (at least 100/s, at most 50,000/s): enough records for a p99
    /// at any rate, and a rate the broker takes alone.
    pub fn of(rate: f64) -> HopRate {
        let per_second = if rate.is_finite() {
            rate.clamp(100.0, 50_000.0)
        } else {
            1_000.0
        };
        HopRate {
            count: (per_second * 5.0).round() as usize,
            per_second,
        }
    }
}

/// The payload of the hop's warm-up records.
const WARM_UP: u64 = u64::MAX;

/// p50 and p99 in ms of one record's trip through the broker: `rate.count` small records
/// keyed `pigeon-load-hop`, produced to `topic` at `rate.per_second` by one client and
/// consumed by another (with `fetch_wait_ms` as its `fetch.wait.max.ms`) that joined at the
/// end of the topic, once a first record went through (so that neither the producer's
/// connection and metadata nor the consumer's first fetch is timed). Meant for a local run's
/// own broker, after the engine stopped (the records stay in the topic).
pub async fn broker_hop(
    brokers: &str,
    topic: &str,
    fetch_wait_ms: u32,
    rate: HopRate,
) -> anyhow::Result<(f64, f64)> {
    let HopRate {
        count,
        per_second: rate,
    } = rate;
    let mut cfg = KafkaConfig::new(brokers);
    cfg.fetch_wait_max_ms = fetch_wait_ms;
    cfg.group_id = format!("pigeon-load-hop-{}", uuid::Uuid::new_v4().simple());
    cfg.properties
        .insert("auto.offset.reset".into(), "latest".into());
    let consumer: Arc<StreamConsumer> = Arc::new(cfg.consumer().create()?);
    consumer.subscribe(&[topic])?;
    let sent: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; count]));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Duration)>();
    let reader = {
        let (consumer, sent) = (consumer.clone(), sent.clone());
        tokio::spawn(async move {
            use rdkafka::Message;
            while let Ok(m) = consumer.recv().await {
                let now = Instant::now();
                if m.key() != Some(&b"pigeon-load-hop"[..]) {
                    continue;
                }
                let i = m
                    .payload()
                    .and_then(|p| <[u8; 8]>::try_from(p).ok())
                    .map(u64::from_be_bytes);
                if i == Some(WARM_UP) {
                    let _ = tx.send((WARM_UP, Duration::ZERO));
                    continue;
                }
                let at = i.and_then(|i| {
                    let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                    sent.get(i as usize).copied().flatten()
                });
                if let (Some(at), Some(i)) = (at, i) {
                    let _ = tx.send((i, now - at));
                }
            }
        })
    };
    let joined_by = Instant::now() + Duration::from_secs(30);
    while !consumer.assignment().is_ok_and(|a| a.count() > 0) {
        anyhow::ensure!(
            Instant::now() < joined_by,
            "the hop consumer got no partitions"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let publisher = pigeon_kafka::Publisher::new(&super::debit_producer(brokers))?;
    // Until one record went through: the producer is connected and the consumer positioned.
    let hop = |i: u64| pigeon_kafka::Outgoing {
        key: Some(b"pigeon-load-hop".to_vec()),
        payload: i.to_be_bytes().to_vec(),
        headers: Vec::new(),
    };
    let warm_by = Instant::now() + Duration::from_secs(30);
    'warm: loop {
        anyhow::ensure!(
            Instant::now() < warm_by,
            "no record came back through the broker within 30 s"
        );
        for r in publisher.publish(topic, &[hop(WARM_UP)]).await {
            r?;
        }
        let again = Instant::now() + Duration::from_millis(500);
        while let Ok(Some((i, _))) = tokio::time::timeout_at(again, rx.recv()).await {
            if i == WARM_UP {
                break 'warm;
            }
        }
    }
    let start = Instant::now();
    let mut pending = Vec::new();
    for i in 0..count {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate.max(1.0))).await;
        let record = hop(i as u64);
        if let Some(slot) = sent.lock().unwrap_or_else(|p| p.into_inner()).get_mut(i) {
            *slot = Some(Instant::now());
        }
        super::enqueue_all(
            &publisher,
            topic,
            std::slice::from_ref(&record),
            &mut pending,
        )
        .await?;
    }
    for d in pending {
        d.acked().await?;
    }
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut seen, deadline) = (0usize, Instant::now() + Duration::from_secs(30));
    while seen < count {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((WARM_UP, _))) => {}
            Ok(Some((_, d))) => {
                seen += 1;
                h.saturating_record((d.as_micros() as u64).max(1));
            }
            _ => break,
        }
    }
    reader.abort();
    anyhow::ensure!(!h.is_empty(), "no record came back through the broker");
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok((ms(0.5), ms(0.99)))
}

/// Submits per second one bind (window 64, receipts requested and acknowledged) gets from
/// a fault-free simulated carrier in this process, over `count` submits.
pub async fn sim_submit_rate(count: usize) -> anyhow::Result<f64> {
    let account = Account::new("base", "base");
    let carrier = CarrierSim::new(
        "baseline",
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        account.clone(),
    );
    let sim = crate::sim::start(SimConfig {
        carriers: vec![carrier],
    })
    .await?;
    let addr = sim
        .addr("baseline")
        .context("the baseline carrier has no address")?;
    let mut cfg = SessionConfig::new(
        addr.to_string(),
        &account.system_id,
        account.password.as_str(),
    );
    cfg.window = 64;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8192);
    let session = connect(cfg, tx)
        .await
        .context("binding to the baseline carrier")?;
    let drain = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            if let Inbound::Receipt(_, ack) = item {
                ack.ack();
            }
        }
    });
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..128 {
        let (session, next) = (session.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let _ = session
                    .submit(Submit {
                        source_addr: "Bank".into(),
                        destination_addr: format!("447400{:06}", i % 1_000_000),
                        data_coding: 0,
                        esm_class: 0,
                        short_message: Bytes::from_static(b"Card 1234 debited GBP 12.00"),
                        registered_delivery: true,
                        sar: None,
                        message_payload: false,
                    })
                    .await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let rate = count as f64 / started.elapsed().as_secs_f64().max(1e-9);
    session.unbind().await;
    drain.abort();
    sim.stop().await;
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_runs_five_seconds_at_the_rate_within_bounds() {
        assert_eq!(
            HopRate::of(9_500.0),
            HopRate {
                count: 47_500,
                per_second: 9_500.0
            }
        );
        assert_eq!(HopRate::of(1e6).per_second, 50_000.0);
        assert_eq!(HopRate::of(1e6).count, 250_000);
        assert_eq!(HopRate::of(0.0).per_second, 100.0);
        assert_eq!(HopRate::of(f64::NAN).per_second, 1_000.0);
    }
}
