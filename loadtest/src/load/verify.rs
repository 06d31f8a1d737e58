//! Status collection and exactly-once accounting: every produced event must end with
//! exactly one terminal status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

// foldhash rather than SipHash: every status consumed hashes its event id several times.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use hdrhistogram::Histogram;
use pigeon::event::StatusEvent;
use pigeon_kafka::{KafkaConfig, Outgoing};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the statuses say about a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accounting {
    /// Valid events produced.
    pub expected: u64,
    /// Events with at least one terminal status.
    pub terminal: u64,
    /// Events without any terminal status.
    pub missing: u64,
    /// Events with more than one terminal state (the same state twice is one outcome).
    pub duplicated: u64,
    /// Terminal statuses by state.
    pub by_state: BTreeMap<String, u64>,
    /// Every status seen (terminal or not) by state.
    pub all_statuses: BTreeMap<String, u64>,
    /// Up to ten event ids without a terminal status.
    pub missing_sample: Vec<String>,
}

impl Accounting {
    /// Exactly one terminal status per expected event, and nothing else.
    pub fn exactly_once(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.terminal == self.expected
    }
}

struct Seen {
    produced_at: HashMap<String, Instant>,
    /// Ids with a terminal or an ambiguous status: nothing more is owed by the engine now.
    settled: HashSet<String>,
    /// Per event id, the distinct terminal states seen (a bit per state): the same status
    /// published again (after an engine restart) is one outcome, two states are two.
    terminal: HashMap<String, u32>,
    states: BTreeMap<String, u64>,
    terminal_states: BTreeMap<String, u64>,
    statuses: HashMap<String, Vec<StatusEvent>>,
    last_terminal: Option<Instant>,
    latency: Latencies,
}

/// Latency histograms of a run, in milliseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Debit produced -> its terminal status consumed here.
    pub produced_to_terminal_seen: Histogram<u64>,
    /// Debit's occurred_at -> accepted status decided (the engine's clock).
    pub debit_to_accepted: Histogram<u64>,
    /// Debit's occurred_at -> terminal status decided.
    pub debit_to_terminal: Histogram<u64>,
    /// Terminal status decided -> consumed here (the broker hop and this consumer).
    pub status_hop: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 ms to 1 h at 3 significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid bounds")
}

fn record(h: &mut Histogram<u64>, d: time::Duration) {
    h.saturating_record(d.whole_milliseconds().clamp(1, i128::from(u32::MAX)) as u64);
}

impl Seen {
    fn new() -> Seen {
        Seen {
            produced_at: HashMap::new(),
            settled: HashSet::new(),
            terminal: HashMap::new(),
            states: BTreeMap::new(),
            terminal_states: BTreeMap::new(),
            statuses: HashMap::new(),
            last_terminal: None,
            latency: Latencies {
                produced_to_terminal_seen: histogram(),
                debit_to_accepted: histogram(),
                debit_to_terminal: histogram(),
                status_hop: histogram(),
            },
        }
    }
}

/// Consumes the status topic in the background, keeping this run's statuses.
pub struct StatusCollector {
    consumer: Arc<StreamConsumer>,
    seen: Arc<Mutex<Seen>>,
    terminal_count: watch::Receiver<u64>,
    settled_count: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(m: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StatusCollector {
    /// Starts consuming `topic` from the beginning in a group of its own.
    pub fn start(kafka: &KafkaConfig, topic: &str, run_id: &str) -> anyhow::Result<Self> {
        let mut cfg = kafka.clone();
        cfg.group_id = format!("pigeon-load-{run_id}");
        let consumer: Arc<StreamConsumer> = Arc::new(cfg.consumer().create()?);
        consumer.subscribe(&[topic])?;
        let seen = Arc::new(Mutex::new(Seen::new()));
        let (tx, rx) = watch::channel(0u64);
        let (settled_tx, settled_rx) = watch::channel(0u64);
        let prefix = format!("{run_id}-");
        let s = seen.clone();
        let c = consumer.clone();
        let task = tokio::spawn(async move {
            let consumer = c;
            loop {
                let m = match consumer.recv().await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "status consume error");
                        continue;
                    }
                };
                let Some(status) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<StatusEvent>(p).ok())
                    .filter(|st| st.event_id.starts_with(&prefix))
                else {
                    continue;
                };
                let now = Instant::now();
                let wall = time::OffsetDateTime::now_utc();
                let mut seen = lock(&s);
                let settles =
                    status.state.is_terminal() || status.state == pigeon::event::State::Ambiguous;
                if settles && seen.settled.insert(status.event_id.clone()) {
                    let _ = settled_tx.send(seen.settled.len() as u64);
                }
                if let Some(at) = status.occurred_at {
                    if status.state == pigeon::event::State::Accepted {
                        record(&mut seen.latency.debit_to_accepted, status.at - at);
                    }
                }
                *seen
                    .states
                    .entry(status.state.as_str().to_owned())
                    .or_default() += 1;
                if status.state.is_terminal() {
                    let bit = 1u32 << (status.state as u32);
                    let (first, new_state) = {
                        let c = seen.terminal.entry(status.event_id.clone()).or_default();
                        let before = *c;
                        *c |= bit;
                        (before == 0, before & bit == 0)
                    };
                    if new_state {
                        *seen
                            .terminal_states
                            .entry(status.state.as_str().to_owned())
                            .or_default() += 1;
                    }
                    seen.last_terminal = Some(now);
                    if first {
                        let produced = seen.produced_at.get(&status.event_id).copied();
                        if let Some(p) = produced {
                            let h = &mut seen.latency.produced_to_terminal_seen;
                            h.saturating_record((now - p).as_millis().max(1) as u64);
                        }
                        if let Some(at) = status.occurred_at {
                            record(&mut seen.latency.debit_to_terminal, status.at - at);
                        }
                        record(&mut seen.latency.status_hop, wall - status.at);
                        let n = seen.terminal.len() as u64;
                        let _ = tx.send(n);
                    }
                }
                seen.statuses
                    .entry(status.event_id.clone())
                    .or_default()
                    .push(status);
            }
        });
        Ok(StatusCollector {
            consumer,
            seen,
            terminal_count: rx,
            settled_count: settled_rx,
            task,
        })
    }

    /// Waits until the collector's consumer holds its partitions (a group join takes
    /// seconds), so that latency measured from now on is not the join's. False on timeout.
    pub async fn wait_assigned(&self, deadline: Instant) -> bool {
        loop {
            if self.consumer.assignment().is_ok_and(|a| a.count() > 0) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Notes the produce time of these records (keyed by event id).
    pub fn mark_produced(&self, records: &[Outgoing]) {
        let now = Instant::now();
        let mut seen = lock(&self.seen);
        for r in records {
            if let Some(k) = r.key.as_ref().and_then(|k| std::str::from_utf8(k).ok()) {
                seen.produced_at.insert(k.to_owned(), now);
            }
        }
    }

    /// Waits until `n` events have a terminal status, or until `deadline`.
    pub async fn wait_terminal(&self, n: u64, deadline: Instant) -> bool {
        let mut rx = self.terminal_count.clone();
        tokio::time::timeout_at(deadline, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until `n` events have a terminal or an ambiguous status, or until `deadline`.
    pub async fn wait_settled(&self, n: u64, deadline: Instant) -> bool {
        let mut rx = self.settled_count.clone();
        tokio::time::timeout_at(deadline, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Events with a terminal or an ambiguous status so far.
    pub fn settled_count(&self) -> u64 {
        *self.settled_count.borrow()
    }

    /// Events with a terminal status so far.
    pub fn terminal_count(&self) -> u64 {
        *self.terminal_count.borrow()
    }

    /// Every status seen for `event_id`, in order.
    pub fn statuses(&self, event_id: &str) -> Vec<StatusEvent> {
        lock(&self.seen)
            .statuses
            .get(event_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Accounts for `expected` ids; returns the accounting, the time of the last terminal
    /// status, and the latency histograms.
    pub fn finish(&self, expected: &[String]) -> (Accounting, Option<Instant>, Latencies) {
        let seen = lock(&self.seen);
        let mut a = Accounting {
            expected: expected.len() as u64,
            by_state: seen.terminal_states.clone(),
            all_statuses: seen.states.clone(),
            ..Accounting::default()
        };
        for id in expected {
            match seen.terminal.get(id).copied().unwrap_or(0).count_ones() {
                0 => {
                    a.missing += 1;
                    if a.missing_sample.len() < 10 {
                        a.missing_sample.push(id.clone());
                    }
                }
                1 => a.terminal += 1,
                _ => {
                    a.terminal += 1;
                    a.duplicated += 1;
                }
            }
        }
        (a, seen.last_terminal, seen.latency.clone())
    }
}

impl Drop for StatusCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
