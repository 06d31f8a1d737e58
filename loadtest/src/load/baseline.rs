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
