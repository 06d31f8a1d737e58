//! What a scenario run observes, indexed by the debit's sequence number (from the event id,
//! [`RunIds::sequence`], or the destination, [`super::debits::sequence_of`]): when each
//! debit was due (open loop: latency counts from there, so a producer that fell behind does
//! not hide the wait), when a simulated carrier had its message, and its statuses from the
//! status topic.
//!
//! Stages, each from the debit's intended send time:
//! - `produced_to_submit`: the simulated carrier has the complete message (local runs);
//! - `produced_to_receipt_matched`: the terminal status was decided (the engine's `at`;
//!   for `delivered`, when its receipt was matched);
//! - `produced_to_status_published`: the broker's timestamp of that status record;
//! - `produced_to_status_seen`: this run consumed it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use pigeon::event::StatusEvent;
use pigeon_kafka::KafkaConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::debits::RunIds;
use super::summary::{Second, Stage};
use super::verify::Accounting;

/// The stages, in report order: (name, label).
/// Where the generator's own producer is in that: its records acknowledged by the broker
/// (awaited in order, so a record acknowledged before an earlier one counts when that one is).
pub const ACKED: (&str, &str) = (
    "produced_to_acked",
    "debit due → acknowledged by the broker (pigeon-load's producer)",
);

pub const STAGES: [(&str, &str); 4] = [
    (
        "produced_to_submit",
        "debit due → message complete at the carrier",
    ),
    (
        "produced_to_receipt_matched",
        "debit due → terminal status decided (receipt matched)",
    ),
    (
        "produced_to_status_published",
        "debit due → terminal status on the broker",
    ),
    (
        "produced_to_status_seen",
        "debit due → terminal status consumed",
    ),
];

/// Shared between the status consumer, the simulator's observer and the run.
#[derive(Clone)]
pub struct RunCollector {
    inner: Arc<Mutex<Observed>>,
    start: Instant,
    start_wall: OffsetDateTime,
    ids: Arc<RunIds>,
}

/// Progress so far, for the terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub produced: u64,
    pub submitted: u64,
    pub terminal: u64,
}

struct Observed {
    /// Intended send time of debit `i` (index `i - 1`), microseconds from the start.
    due_us: Vec<u64>,
    produced: u64,
    submitted: Vec<bool>,
    submitted_count: u64,
    /// Distinct terminal states per debit, a bit per state.
    terminal: Vec<u32>,
    terminal_count: u64,
    timeline: Vec<Second>,
    stages: [Histogram<u64>; 4],
    /// Debit due -> its record acknowledged by the broker.
    acked: Histogram<u64>,
    states: BTreeMap<String, u64>,
    terminal_states: BTreeMap<String, u64>,
    /// First terminal status of each debit, by `state(reason)`.
    reasons: BTreeMap<String, u64>,
    possible_duplicate: u64,
    last_terminal: Option<Instant>,
    /// Debits due before this are left out of the stage latencies.
    warmup_us: u64,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 1 h, 3 significant digits: constant, valid bounds.
    match Histogram::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(h) => h,
        Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
    }
}

impl Observed {
    fn second(&mut self, at: Duration) -> &mut Second {
        let t = u32::try_from(at.as_secs())
            .unwrap_or(u32::MAX)
            .min(24 * 3600);
        while self.timeline.len() <= t as usize {
            let t = self.timeline.len() as u32;
            self.timeline.push(Second {
                t,
                ..Second::default()
            });
        }
        &mut self.timeline[t as usize]
    }
}

impl RunCollector {
    /// A collector for debits `1..=due.len()` with `ids`, debit `i` due at `start + due[i-1]`;
    /// debits due before `warmup` count everywhere but in the stage latencies.
    pub fn new(ids: RunIds, due: &[Duration], start: Instant, warmup: Duration) -> RunCollector {
        let n = due.len();
        let mut observed = Observed {
            due_us: due.iter().map(|d| d.as_micros() as u64).collect(),
            produced: 0,
            submitted: vec![false; n],
            submitted_count: 0,
            terminal: vec![0; n],
            terminal_count: 0,
            timeline: Vec::new(),
            stages: [histogram(), histogram(), histogram(), histogram()],
            acked: histogram(),
            states: BTreeMap::new(),
            terminal_states: BTreeMap::new(),
            reasons: BTreeMap::new(),
            possible_duplicate: 0,
            last_terminal: None,
            warmup_us: warmup.as_micros() as u64,
        };
        for d in due {
            observed.second(*d).offered += 1;
        }
        let wall_now = OffsetDateTime::now_utc();
        let now = Instant::now();
        let start_wall = if start >= now {
            wall_now + (start - now)
        } else {
            wall_now - (now - start)
        };
        RunCollector {
            inner: Arc::new(Mutex::new(observed)),
            start,
            start_wall,
            ids: Arc::new(ids),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Observed> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wall-clock time generation started.
    pub fn start_wall(&self) -> OffsetDateTime {
        self.start_wall
    }

    /// `n` more debits were handed to the producer now.
    pub fn produced(&self, n: u64) {
        let at = self.start.elapsed();
        let mut o = self.lock();
        o.produced += n;
        o.second(at).produced += n;
    }

    /// A simulated carrier has the complete message for `destination` now.
    pub fn submitted(&self, destination: &str) {
        let now = Instant::now();
        let Some(i) = super::debits::sequence_of(destination) else {
            return;
        };
        let mut o = self.lock();
        let Some(idx) = (i as usize)
            .checked_sub(1)
            .filter(|&x| x < o.submitted.len())
        else {
            return;
        };
        if std::mem::replace(&mut o.submitted[idx], true) {
            return;
        }
        o.submitted_count += 1;
        let since = now.saturating_duration_since(self.start);
        o.second(since).submitted += 1;
        let late = since.as_micros() as u64;
        let due = o.due_us[idx];
        if due >= o.warmup_us {
            o.stages[0].saturating_record(late.saturating_sub(due).max(1));
        }
    }

    /// Takes one status record: its event, its broker timestamp (ms since the epoch).
    pub fn status(&self, status: &StatusEvent, broker_ms: Option<i64>) {
        let Some(i) = self.ids.sequence(&status.event_id) else {
            return;
        };
        let now = Instant::now();
        let mut o = self.lock();
        let Some(idx) = (i as usize)
            .checked_sub(1)
            .filter(|&x| x < o.terminal.len())
        else {
            return;
        };
        *o.states
            .entry(status.state.as_str().to_owned())
            .or_default() += 1;
        if status.possible_duplicate {
            o.possible_duplicate += 1;
        }
        if !status.state.is_terminal() {
            return;
        }
        let bit = 1u32 << (status.state as u32);
        let before = o.terminal[idx];
        o.terminal[idx] |= bit;
        if before & bit == 0 {
            *o.terminal_states
                .entry(status.state.as_str().to_owned())
                .or_default() += 1;
        }
        o.last_terminal = Some(now);
        if before != 0 {
            return;
        }
        o.terminal_count += 1;
        let key = match &status.reason {
            Some(r) => format!("{}({r})", status.state.as_str()),
            None => status.state.as_str().to_owned(),
        };
        *o.reasons.entry(key).or_default() += 1;
        let since = now.saturating_duration_since(self.start);
        o.second(since).terminal += 1;
        let due_us = o.due_us[idx];
        if due_us < o.warmup_us {
            return;
        }
        let due_wall = self.start_wall + Duration::from_micros(due_us);
        let us = |d: time::Duration| d.whole_microseconds().clamp(1, i128::from(u64::MAX)) as u64;
        o.stages[1].saturating_record(us(status.at - due_wall));
        if let Some(ms) = broker_ms {
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
            if let Ok(at) = at {
                o.stages[2].saturating_record(us(at - due_wall));
            }
        }
        let seen = since.as_micros() as u64;
        o.stages[3].saturating_record(seen.saturating_sub(due_us).max(1));
    }

    /// The broker acknowledged debit `i`'s record now.
    pub fn acked(&self, i: u64) {
        let now = Instant::now();
        let mut o = self.lock();
        let Some(&due) = (i as usize).checked_sub(1).and_then(|x| o.due_us.get(x)) else {
            return;
        };
        if due >= o.warmup_us {
            let late = now.saturating_duration_since(self.start).as_micros() as u64;
            o.acked.saturating_record(late.saturating_sub(due).max(1));
        }
    }

    pub fn progress(&self) -> Progress {
        let o = self.lock();
        Progress {
            produced: o.produced,
            submitted: o.submitted_count,
            terminal: o.terminal_count,
        }
    }

    /// When the last terminal status was seen.
    pub fn last_terminal(&self) -> Option<Instant> {
        self.lock().last_terminal
    }

    /// Statuses flagged `possible_duplicate`.
    pub fn possible_duplicates(&self) -> u64 {
        self.lock().possible_duplicate
    }

    /// First terminal status of each debit, by `state(reason)`.
    pub fn reasons(&self) -> BTreeMap<String, u64> {
        self.lock().reasons.clone()
    }

    /// Accounting over debits `1..=produced`, the timeline and the stage latencies.
    pub fn finish(&self, produced: u64) -> (Accounting, Vec<Second>, Vec<Stage>) {
        let o = self.lock();
        let mut a = Accounting {
            expected: produced,
            by_state: o.terminal_states.clone(),
            all_statuses: o.states.clone(),
            ..Accounting::default()
        };
        for (idx, bits) in o.terminal.iter().take(produced as usize).enumerate() {
            match bits.count_ones() {
                0 => {
                    a.missing += 1;
                    if a.missing_sample.len() < 10 {
                        a.missing_sample.push(self.ids.event_id(idx as u64 + 1));
                    }
                }
                1 => a.terminal += 1,
                _ => {
                    a.terminal += 1;
                    a.duplicated += 1;
                }
            }
        }
        let mut stages: Vec<Stage> = STAGES
            .iter()
            .zip(&o.stages)
            .map(|((name, label), h)| stage(name, label, h))
            .collect();
        if !o.acked.is_empty() {
            stages.push(stage(ACKED.0, ACKED.1, &o.acked));
        }
        (a, o.timeline.clone(), stages)
    }
}

/// Consumes `topic` from the beginning in the consumer group `group`, handing every status
/// of the run to the collector once `cell` holds it (statuses before that belong to no
/// debit of the run). Runs until the task is aborted.
pub fn consume_statuses(
    kafka: &KafkaConfig,
    topic: &str,
    group: &str,
    cell: Arc<std::sync::OnceLock<RunCollector>>,
) -> anyhow::Result<(Arc<StreamConsumer>, tokio::task::JoinHandle<()>)> {
    let mut cfg = kafka.clone();
    cfg.group_id = group.to_owned();
    let consumer: Arc<StreamConsumer> = Arc::new(cfg.consumer().create()?);
    consumer.subscribe(&[topic])?;
    let c = consumer.clone();
    let task = tokio::spawn(async move {
        loop {
            let m = match c.recv().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "status consume error");
                    continue;
                }
            };
            let (Some(payload), Some(me)) = (m.payload(), cell.get()) else {
                continue;
            };
            // Cheap filter before parsing: other runs' statuses may share the topic.
            if !contains(payload, me.ids.prefix().as_bytes()) {
                continue;
            }
            if let Ok(status) = serde_json::from_slice::<StatusEvent>(payload) {
                me.status(&status, m.timestamp().to_millis());
            }
        }
    });
    Ok((consumer, task))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn stage(name: &str, label: &str, h: &Histogram<u64>) -> Stage {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let empty = h.is_empty();
    Stage {
        name: name.to_owned(),
        label: label.to_owned(),
        count: h.len(),
        p50: if empty { 0.0 } else { ms(0.50) },
        p90: if empty { 0.0 } else { ms(0.90) },
        p99: if empty { 0.0 } else { ms(0.99) },
        p999: if empty { 0.0 } else { ms(0.999) },
        max: if empty { 0.0 } else { h.max() as f64 / 1000.0 },
    }
}

/// Terminal states that count as failed in the report's counts.
pub fn is_failure(state: &str) -> bool {
    matches!(
        state,
        "failed" | "rejected" | "undeliverable" | "unconfirmed"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::IdShape;
    use pigeon::event::State;

    fn status(ids: &RunIds, i: u64, state: State, at: OffsetDateTime) -> StatusEvent {
        StatusEvent {
            schema_version: 1,
            event_id: ids.event_id(i),
            transaction_id: None,
            state,
            reason: None,
            detail: None,
            carrier: None,
            message_ids: Vec::new(),
            segments: 1,
            command_status: None,
            destination: None,
            occurred_at: None,
            at,
            possible_duplicate: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledgements_count_from_the_intended_time_after_the_warm_up() {
        let start = Instant::now();
        let due: Vec<Duration> = (0..3).map(|i| Duration::from_millis(i * 500)).collect();
        let c = RunCollector::new(
            RunIds::new("r", IdShape::Readable),
            &due,
            start,
            Duration::from_millis(400),
        );
        c.produced(3);
        tokio::time::advance(Duration::from_millis(1_200)).await;
        c.acked(1); // due at 0: in the warm-up
        c.acked(2); // due at 0.5 s: 0.7 s
        c.acked(3); // due at 1.0 s: 0.2 s
        c.acked(9); // no such debit
        let (_, _, stages) = c.finish(3);
        let acked = stages
            .iter()
            .find(|s| s.name == ACKED.0)
            .expect("acked stage");
        assert_eq!(acked.count, 2);
        assert!((acked.max - 700.0).abs() < 1.0, "{acked:?}");
        assert!((acked.p50 - 200.0).abs() < 1.0, "{acked:?}");
        // Nothing acknowledged: no such stage.
        let quiet = RunCollector::new(
            RunIds::new("q", IdShape::Readable),
            &due,
            start,
            Duration::ZERO,
        );
        let (_, _, stages) = quiet.finish(3);
        assert!(stages.iter().all(|s| s.name != ACKED.0));
    }

    #[tokio::test(start_paused = true)]
    async fn stages_count_from_the_intended_time_and_accounting_is_per_debit() {
        for shape in [IdShape::Readable, IdShape::Uuid] {
            stages_and_accounting(shape).await;
        }
    }

    async fn stages_and_accounting(shape: IdShape) {
        let start = Instant::now();
        let due: Vec<Duration> = (0..4).map(|i| Duration::from_millis(i * 500)).collect();
        let ids = RunIds::new("r", shape);
        let c = RunCollector::new(ids.clone(), &due, start, Duration::ZERO);
        c.produced(4);
        tokio::time::advance(Duration::from_millis(1_700)).await;
        // Debit 2 was due at 0.5 s; its message arrives at 1.7 s: 1.2 s late.
        c.submitted(&super::super::debits::uk_number(2));
        c.submitted(&super::super::debits::uk_number(2));
        c.submitted("+447911123456");
        let wall = c.start_wall() + Duration::from_millis(1_700);
        c.status(&status(&ids, 2, State::Accepted, wall), None);
        c.status(&status(&ids, 2, State::Delivered, wall), Some(0));
        c.status(&status(&ids, 3, State::Delivered, wall), None);
        c.status(&status(&ids, 3, State::Failed, wall), None);
        let other = RunIds::new("other", shape);
        c.status(&status(&other, 1, State::Delivered, wall), None);
        c.status(&status(&ids, 9, State::Delivered, wall), None);
        let p = c.progress();
        assert_eq!((p.produced, p.submitted, p.terminal), (4, 1, 2));
        let (a, timeline, stages) = c.finish(4);
        assert_eq!(
            (a.expected, a.terminal, a.missing, a.duplicated),
            (4, 2, 2, 1)
        );
        assert_eq!(a.missing_sample, vec![ids.event_id(1), ids.event_id(4)]);
        assert_eq!(timeline.iter().map(|s| s.offered).sum::<u64>(), 4);
        assert_eq!(timeline[1].submitted, 1);
        assert_eq!(timeline[1].terminal, 2);
        assert_eq!(c.reasons(), BTreeMap::from([("delivered".to_owned(), 2)]));
        let submit = &stages[0];
        assert_eq!(submit.count, 1);
        assert!((submit.p50 - 1_200.0).abs() < 2.0, "{submit:?}");
        // Debit 3 was due at 1.0 s, decided at 1.7 s.
        assert_eq!(stages[1].count, 2);
        assert!((stages[1].max - 1_200.0).abs() < 2.0, "{:?}", stages[1]);
        // A broker timestamp of 0 is long before the debit: counted as 1 µs, not negative.
        assert_eq!(stages[2].count, 1);
        assert_eq!(stages[3].count, 2);
    }
}
