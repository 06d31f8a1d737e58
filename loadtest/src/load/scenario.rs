//! Load-test scenarios: what one run offers, to what, what is done to the system under test
//! meanwhile, and what must hold for the run to pass. A scenario is a TOML file (the shipped
//! ones are in `loadtest/scenarios/`); every table refuses unknown keys.
//!
//! ```toml
//! name = "smoke"                 # required, [a-z0-9-]+
//! description = "..."            # what the run proves
//! duration_s = 20                # generation time, > 0
//! settle_timeout_s = 60          # wait for the last statuses after generation (default 120)
//! warmup_s = 0                   # seconds at the start excluded from latency checks (default 0)
//!
//! [profile]                      # offered debits per second
//! kind = "constant"              # constant: rate
//! rate = 500                     # ramp: from, to (linear over duration_s)
//!                                # burst: base, peak, every_s, burst_s (peak for burst_s at
//!                                #   the start of every period of every_s)
//! [mix]
//! chinese = 0.1                  # share to Chinese numbers in zh-CN (UCS-2), default 0.1
//! long = 0.1                     # share with a long merchant name (2 segments), default 0.1
//! ids = "uuid"                   # uuid: UUID event ids, 12-digit transaction ids (default);
//!                                # readable: {run}-{i} and txn-{run}-{i}
//!
//! [[carrier]]                    # the simulator's own [[carrier]] format (sim::file), but
//! name = "carrier-a"             # listen defaults to 127.0.0.1:0 and accounts to
//! dlr_delay_ms = 100             # ["pigeon:secret"]; no [[carrier]] at all: carrier-a and
//!                                # carrier-b, perfect, dlr_delay_ms = 100
//! [engine]                       # merged key by key into deploy/local/pigeon.toml
//! engine = { ambiguous_wait_ms = 2000 }
//!
//! [[chaos]]
//! at_s = 10
//! action = "kill_carrier"        # restart_engine | kill_carrier | restart_carrier
//! carrier = "carrier-a"          # for the carrier actions only
//!
//! [expect]                       # all optional
//! exactly_once = true            # default true
//! min_end_to_end_rate = 20000    # terminal statuses per second over the run
//! max_p99_ms = { produced_to_submit = 50 }   # stage (STAGES) -> ms
//! max_cpu_us_per_notification = 20.0
//! max_rss_mb = 300.0
//! max_lost = 0
//! max_duplicate = 0
//! ```
//!
//! [`Scenario::parse`] checks everything it can without starting anything and reports every
//! problem at once; the carriers go through the simulator's own parsing and validation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use toml::Value;

use super::debits::{DebitMix, IdShape};
use crate::sim::config::SimConfig;
use crate::sim::file::{default_name, FileCarrier, FileConfig};

/// Listen address of a scenario carrier that names none: a free port on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";
/// Account of a scenario carrier that names none: the one `deploy/local/pigeon.toml` binds with.
pub const DEFAULT_ACCOUNT: &str = "pigeon:secret";
/// Latency stages a scenario may bound in `expect.max_p99_ms` (see `summary::Stage`).
pub const STAGES: [&str; 4] = [
    "produced_to_submit",
    "produced_to_receipt_matched",
    "produced_to_status_published",
    "produced_to_status_seen",
];

/// One load-test run, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `[a-z0-9-]+`, used in run ids and report names.
    pub name: String,
    /// What the run proves, for people.
    pub description: String,
    /// How long debits are generated.
    pub duration_s: f64,
    /// How long to wait for the last terminal statuses after generation.
    pub settle_timeout_s: f64,
    /// Seconds at the start whose debits the latency checks leave out.
    pub warmup_s: f64,
    pub profile: Profile,
    pub mix: Mix,
    /// The simulated carriers as `[[carrier]]` tables of the simulator's format, with
    /// `name`, `listen` and `accounts` filled in; [`Scenario::sim_config`] types them.
    pub carriers: Vec<toml::Table>,
    /// Overrides of the engine configuration, see [`Scenario::engine_config`].
    pub engine: toml::Table,
    /// What is done to the system under test, by `at_s`.
    pub chaos: Vec<Chaos>,
    pub expect: Expect,
}

/// Shares of the generated traffic (`[mix]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Share to Chinese numbers in `zh-CN` (UCS-2).
    #[serde(default = "tenth")]
    pub chinese: f64,
    /// Share with a long merchant name (two segments).
    #[serde(default = "tenth")]
    pub long: f64,
    /// How event and transaction ids are spelled: as a payment processor's by default.
    #[serde(default = "uuid_ids")]
    pub ids: IdShape,
}

fn uuid_ids() -> IdShape {
    IdShape::Uuid
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            chinese: tenth(),
            long: tenth(),
            ids: uuid_ids(),
        }
    }
}

/// Offered debits per second over the generation time (`[profile]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Profile {
    /// `rate` debits per second throughout.
    Constant { rate: f64 },
    /// From `from` to `to` debits per second, linearly over the duration.
    Ramp { from: f64, to: f64 },
    /// `peak` for `burst_s` at the start of every period of `every_s`, `base` otherwise.
    Burst {
        base: f64,
        peak: f64,
        every_s: f64,
        burst_s: f64,
    },
}

/// Something done to the system under test `at_s` seconds after generation started.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    pub at_s: f64,
    pub action: ChaosAction,
}

/// What a [`Chaos`] entry does (`action`, with `carrier` for the carrier actions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChaosAction {
    /// Kill the engine with SIGKILL, then start it again on the same store.
    RestartEngine,
    /// Stop the simulated carrier: it stops listening and drops its sessions without an
    /// unbind, keeping the receipts it owes (`SimHandle::kill_carrier`).
    KillCarrier(String),
    /// Bring back a carrier killed earlier, on the same address (`SimHandle::restart_carrier`).
    RestartCarrier(String),
}

impl std::fmt::Display for ChaosAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChaosAction::RestartEngine => f.write_str("restart_engine"),
            ChaosAction::KillCarrier(c) => write!(f, "kill_carrier {c}"),
            ChaosAction::RestartCarrier(c) => write!(f, "restart_carrier {c}"),
        }
    }
}

/// What must hold for the run to pass (`[expect]`); unset bounds are not checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Every debit exactly one terminal status: none lost, none duplicated.
    #[serde(default = "yes")]
    pub exactly_once: bool,
    /// Terminal statuses per second, first debit produced to last terminal status seen.
    pub min_end_to_end_rate: Option<f64>,
    /// Highest p99 latency per stage ([`STAGES`]), milliseconds.
    #[serde(default)]
    pub max_p99_ms: BTreeMap<String, f64>,
    /// Engine CPU (user + system) per notification, microseconds.
    pub max_cpu_us_per_notification: Option<f64>,
    /// Highest resident memory of the engine, MB.
    pub max_rss_mb: Option<f64>,
    /// Debits without a terminal status at the end.
    pub max_lost: Option<u64>,
    /// Debits with more than one terminal outcome.
    pub max_duplicate: Option<u64>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            exactly_once: true,
            min_end_to_end_rate: None,
            max_p99_ms: BTreeMap::new(),
            max_cpu_us_per_notification: None,
            max_rss_mb: None,
            max_lost: None,
            max_duplicate: None,
        }
    }
}

/// The file as written, before defaults and validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    duration_s: f64,
    #[serde(default = "default_settle_timeout_s")]
    settle_timeout_s: f64,
    #[serde(default)]
    warmup_s: f64,
    profile: Profile,
    #[serde(default)]
    mix: Mix,
    carrier: Option<Vec<toml::Table>>,
    #[serde(default)]
    engine: toml::Table,
    #[serde(default)]
    chaos: Vec<RawChaos>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChaos {
    at_s: f64,
    action: ActionKind,
    carrier: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionKind {
    RestartEngine,
    KillCarrier,
    RestartCarrier,
}

fn tenth() -> f64 {
    0.1
}

fn yes() -> bool {
    true
}

fn default_settle_timeout_s() -> f64 {
    120.0
}

impl Scenario {
    /// Parses and validates a scenario; the error lists every problem found, one a line.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let raw: RawScenario = toml::from_str(text).context("invalid scenario")?;
        let mut problems = Vec::new();
        let carriers = match raw.carrier {
            Some(tables) => tables,
            None => default_carriers(),
        };
        let carriers: Vec<toml::Table> = carriers
            .into_iter()
            .enumerate()
            .map(|(i, t)| with_carrier_defaults(i, t))
            .collect();
        let mut chaos = Vec::with_capacity(raw.chaos.len());
        for c in raw.chaos {
            let action = match (c.action, c.carrier) {
                (ActionKind::RestartEngine, None) => Some(ChaosAction::RestartEngine),
                (ActionKind::RestartEngine, Some(carrier)) => {
                    problems.push(format!(
                        "chaos at {} s: restart_engine takes no carrier (got {carrier:?})",
                        c.at_s
                    ));
                    None
                }
                (ActionKind::KillCarrier, Some(carrier)) => Some(ChaosAction::KillCarrier(carrier)),
                (ActionKind::RestartCarrier, Some(carrier)) => {
                    Some(ChaosAction::RestartCarrier(carrier))
                }
                (kind, None) => {
                    problems.push(format!(
                        "chaos at {} s: {} needs a carrier",
                        c.at_s,
                        match kind {
                            ActionKind::KillCarrier => "kill_carrier",
                            _ => "restart_carrier",
                        }
                    ));
                    None
                }
            };
            if let Some(action) = action {
                chaos.push(Chaos {
                    at_s: c.at_s,
                    action,
                });
            }
        }
        chaos.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let scenario = Scenario {
            name: raw.name,
            description: raw.description,
            duration_s: raw.duration_s,
            settle_timeout_s: raw.settle_timeout_s,
            warmup_s: raw.warmup_s,
            profile: raw.profile,
            mix: raw.mix,
            carriers,
            engine: raw.engine,
            chaos,
            expect: raw.expect,
        };
        scenario.check(&mut problems);
        if !problems.is_empty() {
            anyhow::bail!(
                "scenario {:?} is invalid:\n  - {}",
                scenario.name,
                problems.join("\n  - ")
            );
        }
        Ok(scenario)
    }

    /// Reads and parses the scenario file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The simulated carriers, typed and validated by the simulator.
    pub fn sim_config(&self) -> anyhow::Result<SimConfig> {
        let carrier = self
            .carriers
            .iter()
            .map(file_carrier)
            .collect::<anyhow::Result<Vec<_>>>()?;
        FileConfig { carrier }.into_sim_config()
    }

    /// Names of the simulated carriers, in order.
    pub fn carrier_names(&self) -> Vec<String> {
        self.carriers
            .iter()
            .enumerate()
            .map(|(i, t)| carrier_name(t, i))
            .collect()
    }

    /// The generator's traffic shares.
    pub fn mix(&self) -> DebitMix {
        DebitMix {
            chinese: self.mix.chinese,
            long: self.mix.long,
            ids: self.mix.ids,
            ..DebitMix::default()
        }
    }

    /// Debits the profile asks for over the run.
    pub fn count(&self) -> u64 {
        self.profile.count(self.duration_s)
    }

    /// The engine configuration of a local run: `base` (the contents of
    /// `deploy/local/pigeon.toml`) with this scenario's `[engine]` merged in, checked by the
    /// engine's own validation. Every engine carrier must be one of the simulated carriers
    /// (the run points it at that carrier's address). Addresses are left as they are.
    pub fn engine_config(&self, base: &toml::Table) -> anyhow::Result<toml::Table> {
        let mut merged = base.clone();
        merge_into(&mut merged, &self.engine);
        let text = toml::to_string(&merged).context("engine configuration is not TOML")?;
        pigeon::config::Config::from_toml(&text).map_err(|e| {
            anyhow::anyhow!(
                "scenario {:?}: the engine configuration is invalid:\n{e}",
                self.name
            )
        })?;
        let simulated = self.carrier_names();
        let missing: Vec<String> = merged
            .get("carriers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .filter(|name| !simulated.iter().any(|s| s == name))
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "scenario {:?}: engine carriers without a simulated carrier: {} (simulated: {})",
            self.name,
            missing.join(", "),
            simulated.join(", ")
        );
        Ok(merged)
    }

    /// Pushes every problem of the scenario onto `problems`.
    fn check(&self, problems: &mut Vec<String>) {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            problems.push(format!(
                "name {:?} must be lowercase letters, digits and '-'",
                self.name
            ));
        }
        let d = self.duration_s;
        let duration_ok = d.is_finite() && d > 0.0;
        if !duration_ok {
            problems.push(format!("duration_s must be above 0, not {d}"));
        }
        let s = self.settle_timeout_s;
        if !(s.is_finite() && s >= 0.0) {
            problems.push(format!("settle_timeout_s must be 0 or more, not {s}"));
        }
        let w = self.warmup_s;
        if !(w.is_finite() && w >= 0.0) || (duration_ok && w >= d) {
            problems.push(format!(
                "warmup_s must be 0 or more and below duration_s ({d}), not {w}"
            ));
        }
        let mut profile = Vec::new();
        self.profile.check(&mut profile);
        if duration_ok && profile.is_empty() && self.count() == 0 {
            profile.push(format!("profile: no debit at all over {d} s"));
        }
        problems.append(&mut profile);
        for (field, share) in [("chinese", self.mix.chinese), ("long", self.mix.long)] {
            if !(0.0..=1.0).contains(&share) {
                problems.push(format!("mix.{field} must be between 0 and 1, not {share}"));
            }
        }
        self.check_carriers(problems);
        self.check_chaos(problems);
        self.check_expect(problems);
    }

    /// Each carrier alone through the simulator's parsing and validation (so that each
    /// problem names its carrier), then all of them together (duplicate names).
    fn check_carriers(&self, problems: &mut Vec<String>) {
        let mut typed = Vec::new();
        for (i, t) in self.carriers.iter().enumerate() {
            let checked = file_carrier(t).and_then(|c| {
                FileConfig {
                    carrier: vec![c.clone()],
                }
                .into_sim_config()?;
                Ok(c)
            });
            match checked {
                Ok(c) => typed.push(c),
                Err(e) => problems.push(format!("carrier {:?}: {e:#}", carrier_name(t, i))),
            }
        }
        if typed.len() == self.carriers.len() {
            if let Err(e) = (FileConfig { carrier: typed }).into_sim_config() {
                problems.push(format!("carriers: {e:#}"));
            }
        }
    }

    /// Times within the run, known carriers, and kills and restarts that alternate.
    fn check_chaos(&self, problems: &mut Vec<String>) {
        let names = self.carrier_names();
        let mut down = BTreeSet::new();
        for c in &self.chaos {
            let at = c.at_s;
            if !(0.0..=self.duration_s).contains(&at) {
                problems.push(format!(
                    "chaos at {at} s ({}): must be within 0..={} s",
                    c.action, self.duration_s
                ));
            }
            let (carrier, kill) = match &c.action {
                ChaosAction::RestartEngine => continue,
                ChaosAction::KillCarrier(carrier) => (carrier, true),
                ChaosAction::RestartCarrier(carrier) => (carrier, false),
            };
            if !names.contains(carrier) {
                problems.push(format!(
                    "chaos at {at} s ({}): no carrier named {carrier:?} (carriers: {})",
                    c.action,
                    names.join(", ")
                ));
            } else if kill && !down.insert(carrier.as_str()) {
                problems.push(format!(
                    "chaos at {at} s ({}): the carrier is already down",
                    c.action
                ));
            } else if !kill && !down.remove(carrier.as_str()) {
                problems.push(format!(
                    "chaos at {at} s ({}): the carrier was not killed before",
                    c.action
                ));
            }
        }
    }

    fn check_expect(&self, problems: &mut Vec<String>) {
        let e = &self.expect;
        for (stage, ms) in &e.max_p99_ms {
            if !STAGES.contains(&stage.as_str()) {
                problems.push(format!(
                    "expect.max_p99_ms: unknown stage {stage:?} (stages: {})",
                    STAGES.join(", ")
                ));
            }
            if !(ms.is_finite() && *ms > 0.0) {
                problems.push(format!(
                    "expect.max_p99_ms.{stage} must be above 0, not {ms}"
                ));
            }
        }
        for (field, bound) in [
            ("min_end_to_end_rate", e.min_end_to_end_rate),
            ("max_cpu_us_per_notification", e.max_cpu_us_per_notification),
            ("max_rss_mb", e.max_rss_mb),
        ] {
            if let Some(v) = bound.filter(|v| !(v.is_finite() && *v > 0.0)) {
                problems.push(format!("expect.{field} must be above 0, not {v}"));
            }
        }
        if e.exactly_once {
            for (field, bound) in [("max_lost", e.max_lost), ("max_duplicate", e.max_duplicate)] {
                if let Some(n) = bound.filter(|n| *n > 0) {
                    problems.push(format!(
                        "expect.{field} = {n} contradicts exactly_once (set exactly_once = false)"
                    ));
                }
            }
        }
    }
}

/// Deep merge: tables merge key by key, recursively; any other value (arrays included)
/// replaces the one in `base`.
pub fn merge_into(base: &mut toml::Table, overrides: &toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge_into(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Two perfect carriers, as `deploy/local/pigeon.toml` names them, receipts after 100 ms.
fn default_carriers() -> Vec<toml::Table> {
    ["carrier-a", "carrier-b"]
        .into_iter()
        .map(|name| {
            let mut t = toml::Table::new();
            t.insert("name".to_owned(), Value::from(name));
            t.insert("dlr_delay_ms".to_owned(), Value::Integer(100));
            t
        })
        .collect()
}

/// Fills in what a scenario may leave out of a simulator `[[carrier]]`: the name by
/// position (as the simulator would), a free port on loopback, and the demo's account.
fn with_carrier_defaults(index: usize, mut t: toml::Table) -> toml::Table {
    t.entry("name")
        .or_insert_with(|| Value::String(default_name(index)));
    t.entry("listen")
        .or_insert_with(|| Value::from(DEFAULT_LISTEN));
    t.entry("accounts")
        .or_insert_with(|| Value::Array(vec![Value::from(DEFAULT_ACCOUNT)]));
    t
}

fn carrier_name(t: &toml::Table, index: usize) -> String {
    t.get("name")
        .and_then(Value::as_str)
        .map_or_else(|| default_name(index), str::to_owned)
}

fn file_carrier(t: &toml::Table) -> anyhow::Result<FileCarrier> {
    Value::Table(t.clone())
        .try_into::<FileCarrier>()
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))
}

impl Profile {
    /// `constant`, `ramp` or `burst`.
    pub fn kind(&self) -> &'static str {
        match self {
            Profile::Constant { .. } => "constant",
            Profile::Ramp { .. } => "ramp",
            Profile::Burst { .. } => "burst",
        }
    }

    /// Highest rate of the profile, debits per second.
    pub fn peak(&self) -> f64 {
        match *self {
            Profile::Constant { rate } => rate,
            Profile::Ramp { from, to } => from.max(to),
            Profile::Burst { base, peak, .. } => peak.max(base),
        }
    }

    /// Debits per second asked for `t_s` seconds into a run of `duration_s`; 0 outside
    /// `[0, duration_s)`.
    pub fn rate_at(&self, t_s: f64, duration_s: f64) -> f64 {
        if !(0.0..duration_s).contains(&t_s) {
            return 0.0;
        }
        match *self {
            Profile::Constant { rate } => rate,
            Profile::Ramp { from, to } => from + (to - from) * t_s / duration_s,
            Profile::Burst {
                base,
                peak,
                every_s,
                burst_s,
            } => {
                if t_s.rem_euclid(every_s) < burst_s {
                    peak
                } else {
                    base
                }
            }
        }
    }

    /// Debits over a run of `duration_s`: the integral of the rate, rounded.
    pub fn count(&self, duration_s: f64) -> u64 {
        let n = self.integral(duration_s, duration_s).round();
        if n.is_finite() && n > 0.0 {
            n as u64
        } else {
            0
        }
    }

    /// The intended send time of each of the [`Profile::count`] debits, from the start, in
    /// order: debit `i` (from 0) is due when the integral of the rate reaches `i`. Every
    /// offset is within `[0, duration_s]` (below `duration_s` but for rounding).
    pub fn offsets(&self, duration_s: f64) -> impl Iterator<Item = Duration> {
        let profile = *self;
        let mut last = 0.0f64;
        (0..self.count(duration_s)).map(move |i| {
            let t = profile.time_of(i as f64, duration_s);
            // Rounding must not move a debit before its predecessor or past the end.
            if t.is_finite() {
                last = t.clamp(last, duration_s.max(last));
            }
            Duration::from_secs_f64(last)
        })
    }

    /// Debits due in `[0, t_s]` of a run of `duration_s` (the integral of the rate).
    fn integral(&self, t_s: f64, duration_s: f64) -> f64 {
        let t = t_s.clamp(0.0, duration_s.max(0.0));
        match *self {
            Profile::Constant { rate } => rate * t,
            Profile::Ramp { from, to } => from * t + (to - from) * t * t / (2.0 * duration_s),
            Profile::Burst {
                base,
                peak,
                every_s,
                burst_s,
            } => {
                let periods = (t / every_s).floor();
                let u = t - periods * every_s;
                periods * (peak * burst_s + base * (every_s - burst_s))
                    + peak * u.min(burst_s)
                    + base * (u - burst_s).max(0.0)
            }
        }
    }

    /// When the integral of the rate reaches `n`.
    fn time_of(&self, n: f64, duration_s: f64) -> f64 {
        if n <= 0.0 {
            return 0.0;
        }
        match *self {
            Profile::Constant { rate } => n / rate,
            Profile::Ramp { from, to } => {
                // from·t + k·t² = n with k = (to - from) / 2d; the form below is the root
                // in [0, d] for either sign of k, without cancellation.
                let k = (to - from) / (2.0 * duration_s);
                let disc = (from * from + 4.0 * k * n).max(0.0);
                2.0 * n / (from + disc.sqrt())
            }
            Profile::Burst {
                base,
                peak,
                every_s,
                burst_s,
            } => {
                let per_period = peak * burst_s + base * (every_s - burst_s);
                let periods = (n / per_period).floor();
                let r = n - periods * per_period;
                let within = if r < peak * burst_s || base <= 0.0 {
                    (r / peak).min(burst_s)
                } else {
                    burst_s + (r - peak * burst_s) / base
                };
                periods * every_s + within
            }
        }
    }

    fn check(&self, problems: &mut Vec<String>) {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        match *self {
            Profile::Constant { rate } => {
                if !positive(rate) {
                    problems.push(format!(
                        "profile: constant rate must be above 0, not {rate}"
                    ));
                }
            }
            Profile::Ramp { from, to } => {
                if !non_negative(from) || !non_negative(to) {
                    problems.push(format!(
                        "profile: ramp from {from} to {to}: both must be 0 or more"
                    ));
                } else if from == 0.0 && to == 0.0 {
                    problems.push("profile: ramp from 0 to 0 offers nothing".to_owned());
                }
            }
            Profile::Burst {
                base,
                peak,
                every_s,
                burst_s,
            } => {
                if !non_negative(base) || !positive(peak) || peak < base {
                    problems.push(format!(
                        "profile: burst needs 0 <= base <= peak and peak above 0 (base {base}, peak {peak})"
                    ));
                }
                if !positive(every_s) || !positive(burst_s) || burst_s >= every_s {
                    problems.push(format!(
                        "profile: burst needs 0 < burst_s < every_s (burst_s {burst_s}, every_s {every_s})"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 9] = [
        "burst",
        "carrier-outage",
        "chaos",
        "half-peak",
        "million-awaiting",
        "slow-receipts",
        "smoke",
        "steady-peak",
        "throttling-carrier",
    ];

    fn manifest_dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn local_engine_config() -> toml::Table {
        let path = manifest_dir().join("../deploy/local/pigeon.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        toml::from_str(&text).unwrap()
    }

    fn parse_err(text: &str) -> String {
        format!("{:#}", Scenario::parse(text).unwrap_err())
    }

    const MINIMAL: &str =
        "name = \"t\"\nduration_s = 10\n[profile]\nkind = \"constant\"\nrate = 10\n";

    #[test]
    fn shipped_scenarios_parse_and_validate() {
        let dir = manifest_dir().join("scenarios");
        let base = local_engine_config();
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let s = Scenario::load(&path).unwrap();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap();
            assert_eq!(s.name, stem, "{} names itself differently", path.display());
            assert!(
                !s.description.trim().is_empty(),
                "{stem} has no description"
            );
            assert!(s.count() > 0);
            s.sim_config().unwrap();
            s.engine_config(&base)
                .unwrap_or_else(|e| panic!("{stem}: {e:#}"));
            names.insert(s.name);
        }
        assert_eq!(names, NAMES.map(str::to_owned).into());
    }

    #[test]
    fn shipped_scenarios_say_what_was_asked() {
        let load = |name: &str| {
            Scenario::load(&manifest_dir().join(format!("scenarios/{name}.toml"))).unwrap()
        };
        let smoke = load("smoke");
        assert_eq!(smoke.profile, Profile::Constant { rate: 300.0 });
        assert!(smoke.duration_s + smoke.settle_timeout_s < 60.0);
        assert_eq!(
            (smoke.expect.max_lost, smoke.expect.max_duplicate),
            (Some(0), Some(0))
        );
        let peak = load("steady-peak");
        // Offered above the target, as the rate counts the last receipts' delay.
        assert_eq!(peak.profile.count(peak.duration_s), 25_500 * 60);
        assert_eq!(peak.expect.min_end_to_end_rate, Some(25_000.0));
        assert_eq!(peak.expect.max_cpu_us_per_notification, Some(20.0));
        let half = load("half-peak");
        // Half the highest rate reached, which is above the target.
        assert!(half.profile.peak() * 2.0 > peak.profile.peak());
        assert_eq!(
            half.expect.max_p99_ms,
            [("produced_to_submit".to_owned(), 50.0)].into()
        );
        assert_eq!(half.engine, peak.engine, "the same engine and carriers");
        let outage = load("carrier-outage");
        assert_eq!(
            outage.chaos,
            [
                Chaos {
                    at_s: 15.0,
                    action: ChaosAction::KillCarrier("carrier-a".into())
                },
                Chaos {
                    at_s: 35.0,
                    action: ChaosAction::RestartCarrier("carrier-a".into())
                },
            ]
        );
        let throttling = load("throttling-carrier").sim_config().unwrap();
        assert_eq!(throttling.carriers[0].throttle_tps, Some(1000));
        let slow = load("slow-receipts").sim_config().unwrap();
        assert!(slow
            .carriers
            .iter()
            .all(|c| c.dlr_delay == Duration::from_secs(20) && c.dlr_jitter == c.dlr_delay));
        let chaos = load("chaos");
        assert_eq!(chaos.chaos.len(), 2);
        assert!(chaos
            .chaos
            .iter()
            .all(|c| c.action == ChaosAction::RestartEngine));
        assert!(chaos.description.contains("possible_duplicate"));
        assert!(chaos
            .sim_config()
            .unwrap()
            .carriers
            .iter()
            .all(|c| c.drop_every == Some(Duration::from_secs(7)) && c.duplicate_receipts == 0.01));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse_err(
            r#"
            name = "Bad Name"
            duration_s = 10
            warmup_s = 10
            [profile]
            kind = "burst"
            base = 100
            peak = 50
            every_s = 5
            burst_s = 5
            [mix]
            chinese = 1.5
            [[carrier]]
            name = "a"
            error_rate = 2.0
            [[carrier]]
            name = "b"
            dlr_delay = 5
            [[chaos]]
            at_s = 20
            action = "kill_carrier"
            carrier = "zz"
            [[chaos]]
            at_s = 1
            action = "restart_engine"
            carrier = "a"
            [[chaos]]
            at_s = 2
            action = "restart_carrier"
            [[chaos]]
            at_s = 3
            action = "restart_carrier"
            carrier = "a"
            [expect]
            max_p99_ms = { produced_to_nowhere = 5 }
            max_lost = 3
            "#,
        );
        for needle in [
            "name \"Bad Name\" must be lowercase",
            "warmup_s must be 0 or more and below duration_s",
            "0 <= base <= peak",
            "0 < burst_s < every_s",
            "mix.chinese must be between 0 and 1, not 1.5",
            "carrier \"a\": carrier \"a\": error_rate must be between 0 and 1",
            "carrier \"b\": unknown field `dlr_delay`",
            "chaos at 20 s (kill_carrier zz): must be within 0..=10 s",
            "no carrier named \"zz\"",
            "chaos at 1 s: restart_engine takes no carrier",
            "chaos at 2 s: restart_carrier needs a carrier",
            "chaos at 3 s (restart_carrier a): the carrier was not killed before",
            "unknown stage \"produced_to_nowhere\"",
            "expect.max_lost = 3 contradicts exactly_once",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
        }
    }

    #[test]
    fn each_problem_alone() {
        let cases = [
            (
                "rate = 10",
                "rate = 0",
                "constant rate must be above 0, not 0",
            ),
            (
                "duration_s = 10",
                "duration_s = 0",
                "duration_s must be above 0",
            ),
            ("rate = 10", "rate = 0.01", "no debit at all over 10 s"),
            (
                "kind = \"constant\"\nrate = 10",
                "kind = \"ramp\"\nfrom = 0\nto = 0",
                "ramp from 0 to 0 offers nothing",
            ),
            (
                "kind = \"constant\"\nrate = 10",
                "kind = \"ramp\"\nfrom = -1\nto = 5",
                "both must be 0 or more",
            ),
            (
                "duration_s = 10",
                "duration_s = 10\nsettle_timeout_s = -1",
                "settle_timeout_s must be 0 or more",
            ),
        ];
        for (from, to, needle) in cases {
            let err = parse_err(&MINIMAL.replace(from, to));
            assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
        }
        // A ramp down to 0 is fine; so is one from 0.
        Scenario::parse(&MINIMAL.replace(
            "kind = \"constant\"\nrate = 10",
            "kind = \"ramp\"\nfrom = 50\nto = 0",
        ))
        .unwrap();
        let more = [
            ("[mix]\nlong = -0.1\n", "mix.long must be between 0 and 1"),
            ("[[carrier]]\n[[carrier]]\nname = \"carrier1\"\n", "carrier name \"carrier1\" is used twice"),
            ("[[carrier]]\naccounts = [\"nopassword\"]\n", "is not SYSTEM_ID:PASSWORD"),
            ("[[carrier]]\nthrottle_tps = 0\n", "throttle_tps 0"),
            ("[expect]\nmin_end_to_end_rate = 0\n", "expect.min_end_to_end_rate must be above 0"),
            ("[expect]\nmax_p99_ms = { produced_to_submit = -5 }\n", "max_p99_ms.produced_to_submit must be above 0"),
            (
                "[[chaos]]\nat_s = 1\naction = \"kill_carrier\"\ncarrier = \"carrier-a\"\n[[chaos]]\nat_s = 2\naction = \"kill_carrier\"\ncarrier = \"carrier-a\"\n",
                "(kill_carrier carrier-a): the carrier is already down",
            ),
        ];
        for (extra, needle) in more {
            let err = parse_err(&format!("{MINIMAL}{extra}"));
            assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
        }
        let err = parse_err(&format!("carrier = []\n{MINIMAL}"));
        assert!(err.contains("carriers: no carrier configured"), "{err}");
    }

    #[test]
    fn defaults() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!((s.settle_timeout_s, s.warmup_s), (120.0, 0.0));
        assert_eq!(s.description, "");
        assert_eq!(s.mix, Mix::default());
        assert_eq!(s.expect, Expect::default());
        assert!(s.expect.exactly_once);
        assert!(s.engine.is_empty() && s.chaos.is_empty());
        let sim = s.sim_config().unwrap();
        let names: Vec<_> = sim.carriers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["carrier-a", "carrier-b"]);
        assert_eq!(s.carrier_names(), ["carrier-a", "carrier-b"]);
        for c in &sim.carriers {
            assert_eq!(c.dlr_delay, Duration::from_millis(100));
            assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
            assert_eq!(
                c.accounts,
                [crate::sim::config::Account::new("pigeon", "secret")]
            );
            assert_eq!((c.error_rate, c.throttle_tps), (0.0, None));
        }
        let mix = s.mix();
        assert_eq!((mix.chinese, mix.long, mix.malformed_every), (0.1, 0.1, 0));
    }

    #[test]
    fn carriers_get_listen_and_accounts_unless_given() {
        let s = Scenario::parse(&format!(
            "{MINIMAL}[[carrier]]\nname = \"carrier-a\"\nthrottle_tps = 30\n\
             [[carrier]]\nlisten = \"127.0.0.1:2776\"\naccounts = [\"bank:pw\"]\n"
        ))
        .unwrap();
        let sim = s.sim_config().unwrap();
        let (a, b) = (&sim.carriers[0], &sim.carriers[1]);
        assert_eq!(a.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            a.accounts,
            [crate::sim::config::Account::new("pigeon", "secret")]
        );
        assert_eq!((a.dlr_delay, a.throttle_tps), (Duration::ZERO, Some(30)));
        // Named by position, as the simulator names them.
        assert_eq!(b.name, "carrier2");
        assert_eq!(b.listen, "127.0.0.1:2776".parse().unwrap());
        assert_eq!(b.accounts, [crate::sim::config::Account::new("bank", "pw")]);
    }

    #[test]
    fn unknown_keys_are_refused_everywhere() {
        let cases = [
            format!("{MINIMAL}colour = 1\n"),
            MINIMAL.replace("rate = 10", "rate = 10\nburst_s = 1"),
            format!("{MINIMAL}[mix]\nfrench = 0.5\n"),
            format!("{MINIMAL}[[chaos]]\nat_s = 1\naction = \"restart_engine\"\nwhy = \"x\"\n"),
            format!("{MINIMAL}[[chaos]]\nat_s = 1\naction = \"reboot\"\n"),
            format!("{MINIMAL}[expect]\nexactly_twice = true\n"),
            format!("{MINIMAL}[[carrier]]\nname = \"x\"\ndlr_delay = 5\n"),
            MINIMAL.replace("constant", "sine"),
        ];
        for text in cases {
            assert!(Scenario::parse(&text).is_err(), "accepted:\n{text}");
        }
    }

    #[test]
    fn chaos_is_sorted_by_time() {
        let s = Scenario::parse(&format!(
            "{MINIMAL}\
             [[chaos]]\nat_s = 8\naction = \"restart_carrier\"\ncarrier = \"carrier-b\"\n\
             [[chaos]]\nat_s = 2.5\naction = \"restart_engine\"\n\
             [[chaos]]\nat_s = 4\naction = \"kill_carrier\"\ncarrier = \"carrier-b\"\n"
        ))
        .unwrap();
        let got: Vec<(f64, String)> = s
            .chaos
            .iter()
            .map(|c| (c.at_s, c.action.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (2.5, "restart_engine".to_owned()),
                (4.0, "kill_carrier carrier-b".to_owned()),
                (8.0, "restart_carrier carrier-b".to_owned()),
            ]
        );
    }

    #[test]
    fn constant_offsets() {
        let p = Profile::Constant { rate: 100.0 };
        let offsets: Vec<Duration> = p.offsets(2.0).collect();
        assert_eq!(offsets.len(), 200);
        assert_eq!(p.count(2.0), 200);
        assert_eq!(offsets[0], Duration::ZERO);
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(*offsets.last().unwrap() < Duration::from_secs(2));
        assert_eq!(offsets[1], Duration::from_millis(10));
    }

    #[test]
    fn ramp_offsets_speed_up() {
        let p = Profile::Ramp {
            from: 0.0,
            to: 100.0,
        };
        let offsets: Vec<f64> = p.offsets(10.0).map(|d| d.as_secs_f64()).collect();
        assert_eq!(offsets.len(), 500);
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(*offsets.last().unwrap() < 10.0);
        let first_gap = offsets[1] - offsets[0];
        let last_gap = offsets[499] - offsets[498];
        assert!(first_gap > 10.0 * last_gap, "{first_gap} vs {last_gap}");
        // Half the time gives a quarter of the debits.
        assert_eq!(offsets.iter().filter(|t| **t < 5.0).count(), 125);
        // And down again.
        let down = Profile::Ramp {
            from: 100.0,
            to: 0.0,
        };
        let offsets: Vec<f64> = down.offsets(10.0).map(|d| d.as_secs_f64()).collect();
        assert_eq!(offsets.len(), 500);
        assert_eq!(offsets.iter().filter(|t| **t < 5.0).count(), 375);
        assert!(offsets[1] - offsets[0] < offsets[499] - offsets[498]);
    }

    #[test]
    fn burst_count_per_period() {
        let p = Profile::Burst {
            base: 20.0,
            peak: 200.0,
            every_s: 10.0,
            burst_s: 2.0,
        };
        let per_period = 20 * (10 - 2) + 200 * 2;
        assert_eq!(p.count(30.0), 3 * per_period);
        assert_eq!(p.count(25.0), 2 * per_period + 200 * 2 + 20 * 3);
        let offsets: Vec<f64> = p.offsets(30.0).map(|d| d.as_secs_f64()).collect();
        assert_eq!(offsets.len() as u64, 3 * per_period);
        let within =
            |from: f64, to: f64| offsets.iter().filter(|t| (from..to).contains(*t)).count();
        assert_eq!(within(0.0, 2.0), 400);
        assert_eq!(within(2.0, 10.0), 160);
        assert_eq!(within(10.0, 12.0), 400);
        assert_eq!(within(29.0, 30.0), 20);
        // No base at all: silence between bursts.
        let spikes = Profile::Burst {
            base: 0.0,
            peak: 100.0,
            every_s: 5.0,
            burst_s: 1.0,
        };
        let offsets: Vec<f64> = spikes.offsets(10.0).map(|d| d.as_secs_f64()).collect();
        assert_eq!(offsets.len(), 200);
        assert!(offsets.iter().all(|t| *t < 1.0 || (5.0..6.0).contains(t)));
    }

    #[test]
    fn rate_at_each_kind() {
        let c = Profile::Constant { rate: 5.0 };
        assert_eq!((c.rate_at(0.0, 2.0), c.rate_at(1.9, 2.0)), (5.0, 5.0));
        assert_eq!((c.rate_at(2.0, 2.0), c.rate_at(-0.1, 2.0)), (0.0, 0.0));
        let r = Profile::Ramp {
            from: 1000.0,
            to: 25000.0,
        };
        assert_eq!(r.rate_at(0.0, 60.0), 1000.0);
        assert_eq!(r.rate_at(30.0, 60.0), 13000.0);
        assert_eq!(r.rate_at(60.0, 60.0), 0.0);
        let b = Profile::Burst {
            base: 2000.0,
            peak: 20000.0,
            every_s: 10.0,
            burst_s: 2.0,
        };
        let at = |t| b.rate_at(t, 60.0);
        assert_eq!(
            (at(0.0), at(1.99), at(2.0), at(9.9)),
            (20000.0, 20000.0, 2000.0, 2000.0)
        );
        assert_eq!((at(10.0), at(51.0), at(55.0)), (20000.0, 20000.0, 2000.0));
        assert_eq!((c.peak(), r.peak(), b.peak()), (5.0, 25000.0, 20000.0));
        assert_eq!(
            (c.kind(), r.kind(), b.kind()),
            ("constant", "ramp", "burst")
        );
    }

    #[test]
    fn merge_into_is_deep() {
        let mut base: toml::Table = toml::from_str(
            r#"
            top = 1
            list = [1, 2, 3]
            [engine]
            commit_interval_ms = 500
            drain_timeout_ms = 15000
            [engine.inner]
            keep = "yes"
            change = "old"
            "#,
        )
        .unwrap();
        let overrides: toml::Table = toml::from_str(
            r#"
            top = "replaced"
            list = [9]
            new = true
            [engine]
            drain_timeout_ms = 1
            [engine.inner]
            change = "new"
            "#,
        )
        .unwrap();
        merge_into(&mut base, &overrides);
        let want: toml::Table = toml::from_str(
            r#"
            top = "replaced"
            list = [9]
            new = true
            [engine]
            commit_interval_ms = 500
            drain_timeout_ms = 1
            [engine.inner]
            keep = "yes"
            change = "new"
            "#,
        )
        .unwrap();
        assert_eq!(base, want);
        // A table replaces a scalar and the other way round.
        let mut base: toml::Table = toml::from_str("a = 1\n[b]\nc = 2\n").unwrap();
        merge_into(&mut base, &toml::from_str("b = 3\n[a]\nx = 1\n").unwrap());
        assert_eq!(
            base,
            toml::from_str::<toml::Table>("b = 3\n[a]\nx = 1\n").unwrap()
        );
    }

    #[test]
    fn engine_overrides_are_checked() {
        let base = local_engine_config();
        let s = Scenario::parse(&format!(
            "{MINIMAL}[engine.engine]\nambiguous_wait_ms = 2000\n"
        ))
        .unwrap();
        let merged = s.engine_config(&base).unwrap();
        let engine = merged["engine"].as_table().unwrap();
        assert_eq!(engine["ambiguous_wait_ms"].as_integer(), Some(2000));
        assert_eq!(engine["commit_interval_ms"].as_integer(), Some(500));
        // The engine's own validation: an unknown key.
        let bad = Scenario::parse(&format!(
            "{MINIMAL}[engine.engine]\nambiguous_wait = 2000\n"
        ))
        .unwrap();
        assert!(bad.engine_config(&base).is_err());
        // An engine carrier nobody simulates.
        let lonely =
            Scenario::parse(&format!("{MINIMAL}[[carrier]]\nname = \"carrier-a\"\n")).unwrap();
        let err = format!("{:#}", lonely.engine_config(&base).unwrap_err());
        assert!(
            err.contains("without a simulated carrier: carrier-b"),
            "{err}"
        );
    }

    fn profiles() -> impl Strategy<Value = Profile> {
        prop_oneof![
            (0.5f64..2000.0).prop_map(|rate| Profile::Constant { rate }),
            (0.0f64..2000.0, 0.0f64..2000.0)
                .prop_filter("something to offer", |(a, b)| a + b > 1.0)
                .prop_map(|(from, to)| Profile::Ramp { from, to }),
            (0.0f64..1000.0, 1.0f64..2000.0, 0.2f64..20.0, 0.01f64..0.99).prop_map(
                |(base, extra, every_s, share)| Profile::Burst {
                    base,
                    peak: base + extra,
                    every_s,
                    burst_s: every_s * share,
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn offsets_follow_the_integral(p in profiles(), d in 0.1f64..30.0) {
            let mut problems = Vec::new();
            p.check(&mut problems);
            prop_assert!(problems.is_empty(), "{problems:?}");
            let offsets: Vec<f64> = p.offsets(d).map(|o| o.as_secs_f64()).collect();
            prop_assert_eq!(offsets.len() as u64, p.count(d));
            prop_assert_eq!(p.count(d) as f64, p.integral(d, d).round());
            prop_assert!(offsets.first().is_none_or(|t| *t == 0.0));
            prop_assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(offsets.iter().all(|t| *t <= d));
            // Debit i is due when the integral reaches i.
            for (i, t) in offsets.iter().enumerate().step_by(37) {
                let reached = p.integral(*t, d);
                prop_assert!((reached - i as f64).abs() <= 1e-6 * (i as f64).max(1.0) + 1e-6,
                    "debit {} at {} s: integral {}", i, t, reached);
            }
            // The rate is where the integral grows.
            let t = d / 3.0;
            let h = 1e-4 * d;
            let slope = (p.integral(t + h, d) - p.integral(t - h, d)) / (2.0 * h);
            let rate = p.rate_at(t, d);
            let near_edge = matches!(p, Profile::Burst { every_s, burst_s, .. }
                if ((t.rem_euclid(every_s)) - burst_s).abs() < 2.0 * h
                    || t.rem_euclid(every_s) < 2.0 * h
                    || every_s - t.rem_euclid(every_s) < 2.0 * h);
            prop_assert!(near_edge || (slope - rate).abs() <= 1e-3 * rate.max(1.0),
                "rate {} vs slope {}", rate, slope);
        }
    }
}
