//! What a scenario run reports: the JSON summary (`summary.json`) and the data behind the
//! HTML page (`report.html`, [`super::html`]). Times are seconds from the start of
//! generation; latencies are milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::verify::Accounting;

/// Everything one run of a scenario found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    /// Scenario name (`smoke`, `steady-peak`, ...).
    pub scenario: String,
    pub description: String,
    /// Prefix of every event id of the run.
    pub run_id: String,
    /// When generation started, RFC 3339.
    pub started_at: String,
    /// `local` (broker, simulator and engine started by the run) or `external`.
    pub mode: String,
    /// The rate profile as offered.
    pub offered: Offered,
    /// Debits produced, and over how long.
    pub produced: u64,
    pub produce_seconds: f64,
    /// First debit produced → last terminal status seen.
    pub end_to_end_seconds: f64,
    /// Terminal statuses per second over `end_to_end_seconds`.
    pub end_to_end_rate: f64,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
    /// Latency of each stage, from the debit's intended send time (open loop: a late
    /// producer does not hide the wait).
    pub stages: Vec<Stage>,
    /// Terminal statuses by state.
    pub outcomes: BTreeMap<String, u64>,
    /// First terminal status of each debit by state and reason, `failed(carrier_refused)`.
    #[serde(default)]
    pub outcome_reasons: BTreeMap<String, u64>,
    pub counts: Counts,
    pub accounting: Accounting,
    pub exactly_once: bool,
    /// The engine process, when the run started it.
    pub engine: Option<EngineUsage>,
    /// What the broker and the simulator do alone on this machine, for comparison.
    pub baselines: Option<Baselines>,
    /// Where the machine's CPU went while the debits flowed.
    #[serde(default)]
    pub machine: Option<MachineUsage>,
    /// Injected events (engine restarts, carrier outages), in time order.
    pub events: Vec<Mark>,
    /// The scenario's expectations and whether each held.
    pub checks: Vec<Check>,
    /// Every check passed (and the accounting was exactly once).
    pub passed: bool,
}

/// The offered load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Offered {
    /// `constant`, `ramp` or `burst`.
    pub kind: String,
    /// Highest rate of the profile, debits per second.
    pub peak_rate: f64,
    /// Debits the profile asks for, over `duration_s`.
    pub count: u64,
    pub duration_s: f64,
}

/// One second of the run: events that happened in `[t, t + 1)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    pub t: u32,
    /// Debits due by the profile in that second.
    pub offered: u64,
    /// Debits produced.
    pub produced: u64,
    /// Messages whose first `submit_sm` reached a simulated carrier (local runs).
    pub submitted: u64,
    /// Terminal statuses seen.
    pub terminal: u64,
}

/// Latency of one stage, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stage {
    /// `produced_to_submit`, `produced_to_receipt_matched`, `produced_to_status_published`,
    /// `produced_to_status_seen`.
    pub name: String,
    /// What it measures, for people.
    pub label: String,
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Counts a load tester asks about first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    /// Submits a simulated carrier answered `ESME_RTHROTTLED`.
    pub throttled: u64,
    /// Terminal `failed` (and `rejected`, `undeliverable`) statuses.
    pub failed: u64,
    /// Terminal `expired` statuses.
    pub expired: u64,
    /// Events with more than one terminal outcome.
    pub duplicate: u64,
    /// Events without a terminal status at the end.
    pub lost: u64,
    /// Messages a simulated carrier received twice (same destination and text).
    pub duplicate_at_carrier: u64,
    /// Statuses flagged `possible_duplicate`.
    pub possible_duplicate: u64,
}

/// CPU and memory of the engine process over the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EngineUsage {
    /// User + system CPU seconds (all engine processes of the run, restarts included).
    pub cpu_seconds: f64,
    pub cpu_us_per_notification: f64,
    /// Highest resident memory seen, MB.
    pub peak_rss_mb: f64,
    pub restarts: u32,
    /// The engine's own latency measurements at the end of the run.
    #[serde(default)]
    pub latency: Option<EngineLatency>,
}

/// The machine's CPU from the first debit due until the last terminal status came (or the
/// run stopped waiting), and each part's share of it, CPU seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MachineUsage {
    /// Wall-clock seconds of that span.
    pub seconds: f64,
    /// Cores the machine has (its CPU ticks over the span).
    pub cores: f64,
    /// Busy share of all the cores' time (user, system, interrupts, steal).
    pub busy_share: f64,
    /// Busy CPU seconds of the whole machine.
    pub busy_cpu_seconds: f64,
    /// The engine (`None`: the run did not start it).
    pub engine_cpu_seconds: Option<f64>,
    /// The broker (`None`: the run did not start it).
    pub broker_cpu_seconds: Option<f64>,
    /// pigeon-load itself: the generator, the simulated carriers, the status consumer.
    pub harness_cpu_seconds: f64,
}

impl MachineUsage {
    /// Busy CPU seconds of every other process of the machine.
    pub fn rest_cpu_seconds(&self) -> f64 {
        let parts = (self.engine_cpu_seconds.into_iter())
            .chain(self.broker_cpu_seconds)
            .sum::<f64>()
            + self.harness_cpu_seconds;
        (self.busy_cpu_seconds - parts).max(0.0)
    }
}

/// Latency as the engine measured it (its histograms: everything the last engine process
/// recorded, quantiles interpolated within their buckets), ms.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EngineLatency {
    /// A debit's Kafka timestamp (its producer's clock) to the engine taking it from the
    /// consumer: the producer's linger, the broker and the fetch.
    pub broker_hop_p50_ms: f64,
    pub broker_hop_p99_ms: f64,
    /// Taken from the consumer to a submit handed to a bind: the engine's own share.
    pub engine_p50_ms: f64,
    pub engine_p99_ms: f64,
}

/// Rates of the parts alone, measured on the same machine right after the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Baselines {
    /// A plain consumer reading the run's debits from the broker, records per second.
    pub broker_consume_rate: f64,
    /// One SMPP client submitting to a fault-free simulated carrier, submits per second.
    pub sim_submit_rate: f64,
    /// One record's trip through the broker alone (produced by one client, consumed by
    /// another, at `broker_hop_rate`), ms: the hop every debit makes before the engine sees
    /// it, with nothing else loading the machine.
    #[serde(default)]
    pub broker_hop_p50_ms: f64,
    #[serde(default)]
    pub broker_hop_p99_ms: f64,
    /// The hop consumer's `fetch.wait.max.ms`: the engine's, so that the hop is the one its
    /// debits make (a broker that holds every fetch for the whole wait adds up to it).
    #[serde(default)]
    pub broker_hop_fetch_wait_ms: u32,
    /// Records a second the hop was measured at (the run's peak rate, within bounds).
    #[serde(default)]
    pub broker_hop_rate: f64,
}

/// Something that happened to the system under test.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Mark {
    pub t: f64,
    pub what: String,
}

/// One expectation of the scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}
