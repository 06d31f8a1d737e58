//! Throughput of ONE bind: pipelines `count` submits through a single [`Session`] and prints
//! submits per second, outcome counts and response-time percentiles.
//!
//! ```text
//! cargo run --release -p pigeon-smpp --example bind_throughput -- \
//!     --addr 127.0.0.1:2775 --system-id pigeon --password secret --window 64 --count 200000
//! ```
//!
//! `--concurrency` submit futures (default 2 × window) keep the window full; receipts are
//! drained from the inbound channel and counted. Two latencies are shown: the wire response
//! time (submit_sm written to its response, from the session's own histogram, caught by a
//! small metrics recorder installed here) and the whole `Session::submit` call (window wait
//! included).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use metrics::{Counter, Gauge, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use pigeon_smpp::session::{connect, Inbound, Session, SessionConfig, Submit, TlsConfig};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "measure one smpp bind's submit throughput")]
struct Args {
    /// SMSC address, `host:port`.
    #[arg(long, default_value = "127.0.0.1:2775")]
    addr: String,
    #[arg(long, default_value = "pigeon")]
    system_id: String,
    #[arg(long, default_value = "secret")]
    password: String,
    /// Submits awaiting a response at once.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Submits to send.
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Concurrent submit futures (default: 2 × window).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Do not ask for delivery receipts.
    #[arg(long)]
    no_receipts: bool,
    /// Connect over TLS, verifying the certificate for this name.
    #[arg(long)]
    tls_server_name: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    response_timeout_ms: u64,
}

/// A metrics recorder that keeps only the session's response-time histogram.
struct ResponseTimes(Arc<Mutex<Histogram<u64>>>);

struct Record(Arc<Mutex<Histogram<u64>>>);

impl metrics::HistogramFn for Record {
    fn record(&self, seconds: f64) {
        let micros = (seconds * 1e6).max(1.0) as u64;
        let mut h = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        h.saturating_record(micros);
    }
}

impl Recorder for ResponseTimes {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        if key.name() == pigeon_smpp::metrics::SUBMIT_RESPONSE_SECONDS {
            metrics::Histogram::from_arc(Arc::new(Record(Arc::clone(&self.0))))
        } else {
            metrics::Histogram::noop()
        }
    }
}

fn histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

fn submit(i: usize, receipts: bool) -> Submit {
    Submit {
        source_addr: "Bank".into(),
        destination_addr: format!("49151{:08}", i % 100_000_000),
        data_coding: 0,
        esm_class: 0,
        short_message: Bytes::from_static(b"Your account 1234 was debited EUR 12.00"),
        registered_delivery: receipts,
        sar: None,
        message_payload: false,
    }
}

/// What one submitting task saw.
struct Worker {
    latency: Histogram<u64>,
    outcomes: BTreeMap<&'static str, u64>,
}

async fn run_worker(
    session: Session,
    next: Arc<AtomicUsize>,
    count: usize,
    receipts: bool,
) -> Result<Worker> {
    let mut w = Worker {
        latency: histogram()?,
        outcomes: BTreeMap::new(),
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return Ok(w);
        }
        let started = Instant::now();
        let outcome = session.submit(submit(i, receipts)).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        w.latency.saturating_record(micros.max(1));
        *w.outcomes.entry(outcome.label()).or_default() += 1;
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let wire = Arc::new(Mutex::new(histogram()?));
    metrics::set_global_recorder(ResponseTimes(Arc::clone(&wire)))
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;

    let mut cfg = SessionConfig::new(&args.addr, &args.system_id, args.password.as_str());
    cfg.window = args.window;
    cfg.response_timeout = Duration::from_millis(args.response_timeout_ms);
    cfg.tls = args.tls_server_name.clone().map(TlsConfig::new);
    let (tx, mut rx) = mpsc::channel(8192);
    let session = connect(cfg, tx)
        .await
        .with_context(|| format!("bind to {}", args.addr))?;

    let receipts = Arc::new(AtomicU64::new(0));
    let drain = {
        let receipts = Arc::clone(&receipts);
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                match item {
                    Inbound::Receipt(_, ack) => {
                        ack.ack();
                        receipts.fetch_add(1, Ordering::Relaxed);
                    }
                    Inbound::Closed { reason } => return Some(reason),
                }
            }
            None
        })
    };

    let concurrency = args.concurrency.unwrap_or(2 * args.window).max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(run_worker(
            session.clone(),
            Arc::clone(&next),
            args.count,
            !args.no_receipts,
        ));
    }
    let mut latency = histogram()?;
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    while let Some(done) = workers.join_next().await {
        let w = done??;
        latency.add(&w.latency)?;
        for (k, v) in w.outcomes {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    let accepted = outcomes.get("accepted").copied().unwrap_or(0);

    // Receipts for the accepted submits, for at most 10 s more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !args.no_receipts
        && receipts.load(Ordering::Relaxed) < accepted
        && Instant::now() < deadline
        && !session.is_closed()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receipt_count = receipts.load(Ordering::Relaxed);
    session.unbind().await;
    let closed = tokio::time::timeout(Duration::from_secs(5), drain).await;

    let secs = elapsed.as_secs_f64();
    println!(
        "bind_throughput: {} submits, window {}, concurrency {} in {:.2} s",
        args.count, args.window, concurrency, secs
    );
    println!("submits/s: {:.0}", args.count as f64 / secs);
    println!("outcomes: {outcomes:?}");
    println!("receipts: {receipt_count} (of {accepted} accepted)");
    {
        let wire = wire.lock().unwrap_or_else(PoisonError::into_inner);
        println!(
            "response time (submit_sm written -> resp), ms: p50 {:.2} p99 {:.2} max {:.2}",
            ms(&wire, 0.5),
            ms(&wire, 0.99),
            wire.max() as f64 / 1000.0
        );
    }
    println!(
        "submit() call incl. window wait, ms: p50 {:.2} p99 {:.2} max {:.2}",
        ms(&latency, 0.5),
        ms(&latency, 0.99),
        latency.max() as f64 / 1000.0
    );
    if let Ok(Ok(Some(reason))) = closed {
        println!("session closed: {reason}");
    }
    Ok(())
}
