//! Flow control of one bind: how fast to submit ([`BindFlow`], AIMD), how many submits to keep
//! unanswered (the window), and the pacing gate that enforces the rate ([`RateGate`]).
//!
//! Plain logic, no I/O: the caller passes `now` (`tokio::time::Instant`, so tests run with
//! paused time) and reports each answer. Rates count segments, as carriers do.
//!
//! Rate (AIMD), per bind:
//! - Starts at the bind's share of the carrier's rate ([`share_of`]) and never exceeds it.
//! - Additive increase: each accepted submit adds `increase_per_sec` × share per second elapsed
//!   since the previous rate change, at most one second's worth per call: idle time is not
//!   clean traffic, so a quiet bind regains almost nothing.
//! - Multiplicative decrease: a throttling answer (0x58 `ESME_RTHROTTLED` or 0x14
//!   `ESME_RMSGQFUL`) multiplies the rate by `decrease_factor`, never below the floor; at most
//!   once per `decrease_interval` or smoothed latency, whichever is longer, because the submits
//!   already in flight when the first throttle arrives are throttled too and the cut already
//!   accounts for them.
//!
//! Window: throughput ≈ window / latency, so a bind needs `rate × latency` unanswered submits;
//! [`recommended_window`] adds 50 % headroom over a tail latency estimate and never exceeds the
//! configured window. A larger window only feeds throttling storms and duplicates.
//!
//! Pacing: [`RateGate`] is a small GCRA (the algorithm `governor` uses) whose rate changes
//! with one atomic store. Chosen over rebuilding `governor`'s limiter, whose quota is fixed:
//! a rebuild costs ~27 µs against ~13 ns for a check (`benches/limits.rs`), hands out a fresh
//! full bucket each time, and `governor` reads its own clock (quanta) and sleeps with
//! `futures-timer`, so paused-time tests cannot drive it. The admission check itself costs
//! about the same in both (~13 ns here, ~17 ns in `governor` with its clock read).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Headroom of the window over `rate × tail latency`.
pub const WINDOW_HEADROOM: f64 = 1.5;

/// Lowest rate a [`RateGate`] or a share accepts (segments/s); lower values are raised to it.
pub const MIN_RATE: f64 = 0.001;

/// Highest rate a [`RateGate`] accepts (segments/s): one segment per nanosecond.
pub const MAX_RATE: f64 = 1e9;

/// How early a [`RateGate`] request may go, at least, so that the timer's granularity (tokio
/// rounds sleeps up to the next millisecond) does not shave the rate: waking up to this much
/// late does not delay the next request.
pub const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Tuning of a bind's AIMD and window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowConfig {
    /// Fraction of the share regained per second of clean traffic.
    pub increase_per_sec: f64,
    /// Factor applied to the rate on a throttling answer (0 < factor < 1).
    pub decrease_factor: f64,
    /// The rate never drops below this (segments/s), nor below the share if that is lower.
    pub floor_per_sec: f64,
    /// At most one decrease per this interval (or per smoothed latency, if longer).
    pub decrease_interval: Duration,
    /// The configured window of the bind: the recommended window never exceeds it.
    pub max_window: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            increase_per_sec: 0.01,
            decrease_factor: 0.7,
            floor_per_sec: 1.0,
            decrease_interval: Duration::from_millis(200),
            max_window: 10,
        }
    }
}

/// A bind's share of its carrier's rate: `carrier_rate / binds` (at least one bind).
pub fn share_of(carrier_rate: f64, binds: usize) -> f64 {
    carrier_rate / binds.max(1) as f64
}

/// `ceil(rate × latency × 1.5)`, clamped to `[1, max_window]`: a window that never exceeds
/// what the rate and latency need.
pub fn recommended_window(rate: f64, latency: Duration, max_window: usize) -> usize {
    let max = max_window.max(1);
    let need = (rate * latency.as_secs_f64() * WINDOW_HEADROOM).ceil();
    if need.is_nan() {
        return max;
    }
    // `as` saturates: a huge or infinite need becomes usize::MAX, then the clamp.
    (need as usize).clamp(1, max)
}

/// Smoothed response latency, as TCP estimates round trips (RFC 6298): mean and mean
/// deviation, each an exponentially weighted moving average (gains 1/8 and 1/4).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencyEstimate {
    /// (mean, mean deviation) in seconds; `None` before the first sample.
    smoothed: Option<(f64, f64)>,
}

impl LatencyEstimate {
    /// Feeds one response latency.
    pub fn observe(&mut self, latency: Duration) {
        let r = latency.as_secs_f64();
        self.smoothed = Some(match self.smoothed {
            None => (r, r / 2.0),
            Some((mean, dev)) => (
                mean + (r - mean) / 8.0,
                dev + ((r - mean).abs() - dev) / 4.0,
            ),
        });
    }

    /// The smoothed mean, if any response was seen.
    pub fn mean(&self) -> Option<Duration> {
        self.smoothed.map(|(mean, _)| secs(mean))
    }

    /// A tail estimate standing in for the p99: mean + 4 × mean deviation (TCP's RTO without
    /// its floor). Not an exact percentile: it equals the latency when latency is constant,
    /// and is ≈ p98 for exponentially distributed latency.
    pub fn tail(&self) -> Option<Duration> {
        self.smoothed.map(|(mean, dev)| secs(mean + 4.0 * dev))
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

/// AIMD rate and window of one bind.
#[derive(Debug, Clone)]
pub struct BindFlow {
    cfg: FlowConfig,
    share: f64,
    rate: f64,
    last_decrease: Option<Instant>,
    /// Since when clean traffic has been accruing an increase.
    last_change: Option<Instant>,
    latency: LatencyEstimate,
}

impl BindFlow {
    /// A bind allowed `share` segments/s (see [`share_of`]), starting at its full share.
    pub fn new(share: f64, cfg: FlowConfig) -> Self {
        let share = sane_rate(share);
        Self {
            cfg,
            share,
            rate: share,
            last_decrease: None,
            last_change: None,
            latency: LatencyEstimate::default(),
        }
    }

    /// The allowed rate now, in segments/s: within `[floor, share]`.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The bind's share: the most the rate can reach.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// The lowest the rate can fall: `floor_per_sec`, or the share if that is lower.
    pub fn floor(&self) -> f64 {
        self.cfg.floor_per_sec.max(MIN_RATE).min(self.share)
    }

    /// The window to use now: [`recommended_window`] of the current rate and tail latency;
    /// the configured window until the first response.
    pub fn window(&self) -> usize {
        match self.latency.tail() {
            Some(tail) => recommended_window(self.rate, tail, self.cfg.max_window),
            None => self.cfg.max_window.max(1),
        }
    }

    /// The latency estimate fed by [`Self::on_response`].
    pub fn latency(&self) -> &LatencyEstimate {
        &self.latency
    }

    /// A new share (the carrier's rate or its number of binds changed): the rate keeps its
    /// proportion of the share.
    pub fn set_share(&mut self, share: f64) {
        let share = sane_rate(share);
        let scaled = self.rate / self.share * share;
        self.share = share;
        self.rate = scaled.max(self.floor()).min(share);
    }

    /// A response arrived `latency` after its submit was written (any outcome).
    pub fn on_response(&mut self, latency: Duration) {
        self.latency.observe(latency);
    }

    /// A submit was accepted: additive increase for the clean time since the last change.
    pub fn on_accepted(&mut self, now: Instant) {
        if let Some(since) = self.last_change {
            let clean = now
                .saturating_duration_since(since)
                .min(Duration::from_secs(1));
            let gain = self.share * self.cfg.increase_per_sec * clean.as_secs_f64();
            self.rate = (self.rate + gain.max(0.0)).min(self.share);
        }
        self.last_change = Some(now);
    }

    /// A submit was answered 0x58 (throttled) or 0x14 (queue full): multiplicative decrease,
    /// unless the previous decrease is more recent than the hold-off. True if the rate was cut.
    pub fn on_throttled(&mut self, now: Instant) -> bool {
        let hold = self.latency.mean().map_or(self.cfg.decrease_interval, |m| {
            m.max(self.cfg.decrease_interval)
        });
        if let Some(last) = self.last_decrease {
            if now.saturating_duration_since(last) < hold {
                return false;
            }
        }
        self.rate = (self.rate * self.cfg.decrease_factor)
            .max(self.floor())
            .min(self.share);
        self.last_decrease = Some(now);
        self.last_change = Some(now);
        true
    }
}

/// Paces submits at a rate that can change at runtime: GCRA over segments.
///
/// A request of `n` segments goes when its first segment conforms and is charged for all `n`:
/// the segments of one message leave together and the following requests wait for the debt,
/// so the average rate is exact while no request is refused for being larger than the burst.
/// Lock-free (one compare-and-swap per admitted request); share it behind an `Arc` if needed.
#[derive(Debug)]
pub struct RateGate {
    base: Instant,
    /// Theoretical arrival time of the next segment, in nanoseconds after `base`.
    tat: AtomicU64,
    /// Nanoseconds per segment: `1e9 / rate`.
    interval: AtomicU64,
    /// Segments that may go back to back after an idle period (at least 1).
    burst: u64,
}

impl RateGate {
    /// A gate admitting `per_sec` segments/s, with bursts of up to `burst` segments.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            base: Instant::now(),
            tat: AtomicU64::new(0),
            interval: AtomicU64::new(interval_of(per_sec)),
            burst: u64::from(burst.max(1)),
        }
    }

    /// Changes the rate from the next request on (clamped to `[MIN_RATE, MAX_RATE]`). Cheap:
    /// call it after every [`BindFlow`] update.
    pub fn set_rate(&self, per_sec: f64) {
        self.interval.store(interval_of(per_sec), Ordering::Relaxed);
    }

    /// The rate in segments/s.
    pub fn rate(&self) -> f64 {
        1e9 / self.interval.load(Ordering::Relaxed) as f64
    }

    /// Takes `n` segments if they may go now, or says how long to wait.
    pub fn check(&self, n: u32) -> Result<(), Duration> {
        self.check_at(n, Instant::now())
    }

    /// [`Self::check`] at a given instant.
    pub fn check_at(&self, n: u32, now: Instant) -> Result<(), Duration> {
        let now =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let interval = self.interval.load(Ordering::Relaxed);
        let slack = interval
            .saturating_mul(self.burst - 1)
            .max(TIMER_SLACK.as_nanos() as u64);
        let cost = interval.saturating_mul(u64::from(n));
        // A single counter: Relaxed is enough for the compare-and-swap to be linearizable.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            let allowed_at = start.saturating_sub(slack);
            if allowed_at > now {
                return Err(Duration::from_nanos(allowed_at - now));
            }
            let next = start.saturating_add(cost);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Waits until `n` segments may go, and takes them.
    pub async fn until_ready(&self, n: u32) {
        while let Err(wait) = self.check(n) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// `per_sec` within `[MIN_RATE, MAX_RATE]`; NaN becomes MIN_RATE.
fn sane_rate(per_sec: f64) -> f64 {
    if per_sec.is_nan() {
        MIN_RATE
    } else {
        per_sec.clamp(MIN_RATE, MAX_RATE)
    }
}

fn interval_of(per_sec: f64) -> u64 {
    ((1e9 / sane_rate(per_sec)).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::time::advance;

    const SHARE: f64 = 15.0;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Accepts one submit every `every` for `total`, at paused time.
    async fn clean(flow: &mut BindFlow, every: Duration, total: Duration) {
        let end = Instant::now() + total;
        while Instant::now() < end {
            advance(every).await;
            flow.on_accepted(Instant::now());
        }
    }

    #[test]
    fn share_and_window_math() {
        assert_eq!(share_of(30.0, 2), 15.0);
        assert_eq!(share_of(30.0, 0), 30.0);
        // 15/s × 0.2 s × 1.5 = 4.5 -> 5
        assert_eq!(recommended_window(15.0, ms(200), 10), 5);
        // 100/s × 1 s × 1.5 = 150 -> configured 10
        assert_eq!(recommended_window(100.0, ms(1000), 10), 10);
        // tiny needs still get one
        assert_eq!(recommended_window(1.0, ms(10), 10), 1);
        assert_eq!(recommended_window(0.0, ms(10), 10), 1);
        assert_eq!(recommended_window(15.0, ms(200), 0), 1);
        assert_eq!(recommended_window(f64::INFINITY, ms(200), 7), 7);
        // exactly integral: 10/s × 0.2 s × 1.5 = 3
        assert_eq!(recommended_window(10.0, ms(200), 10), 3);
    }

    #[test]
    fn latency_estimate_follows_rfc_6298() {
        let mut l = LatencyEstimate::default();
        assert_eq!(l.tail(), None);
        l.observe(ms(100));
        assert_eq!(l.mean(), Some(ms(100)));
        assert_eq!(l.tail(), Some(ms(300)));
        for _ in 0..200 {
            l.observe(ms(100));
        }
        let tail = l.tail().unwrap();
        assert!(tail >= ms(100) && tail < ms(101), "{tail:?}");
        for _ in 0..200 {
            l.observe(ms(400));
        }
        assert!(l.mean().unwrap() > ms(399));
    }

    #[tokio::test(start_paused = true)]
    async fn window_follows_rate_and_latency() {
        let mut flow = BindFlow::new(SHARE, FlowConfig::default());
        assert_eq!(flow.window(), 10, "configured window before any response");
        for _ in 0..100 {
            flow.on_response(ms(200));
        }
        assert_eq!(flow.window(), 5);
        assert!(flow.on_throttled(Instant::now()));
        // 10.5/s × 0.2 × 1.5 = 3.15 -> 4
        assert_eq!(flow.window(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_clean_traffic_stays_at_the_share() {
        let mut flow = BindFlow::new(SHARE, FlowConfig::default());
        assert_eq!(flow.rate(), SHARE);
        clean(&mut flow, ms(67), Duration::from_secs(60)).await;
        assert_eq!(flow.rate(), SHARE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_storm_cuts_the_rate_then_it_recovers_to_the_share() {
        let mut flow = BindFlow::new(SHARE, FlowConfig::default());
        clean(&mut flow, ms(67), Duration::from_secs(5)).await;
        // 1 s of throttles every 10 ms: one cut per 200 ms -> 5 cuts.
        let mut cuts = 0;
        for _ in 0..100 {
            cuts += usize::from(flow.on_throttled(Instant::now()));
            advance(ms(10)).await;
        }
        assert_eq!(cuts, 5);
        let cut = SHARE * 0.7f64.powi(5);
        assert!((flow.rate() - cut).abs() < 1e-9, "{}", flow.rate());
        // Recovery: +1 % of the share per second, so (1 - 0.168) / 0.01 ≈ 84 s.
        clean(&mut flow, ms(100), Duration::from_secs(40)).await;
        assert!(
            flow.rate() > cut + 5.0 && flow.rate() < SHARE,
            "{}",
            flow.rate()
        );
        clean(&mut flow, ms(100), Duration::from_secs(50)).await;
        assert_eq!(flow.rate(), SHARE);
    }

    #[tokio::test(start_paused = true)]
    async fn decreases_are_rate_limited_and_stop_at_the_floor() {
        let mut flow = BindFlow::new(SHARE, FlowConfig::default());
        let now = Instant::now();
        assert!(flow.on_throttled(now));
        for _ in 0..50 {
            assert!(!flow.on_throttled(now), "a burst of throttles counts once");
        }
        advance(ms(199)).await;
        assert!(!flow.on_throttled(Instant::now()));
        advance(ms(1)).await;
        assert!(flow.on_throttled(Instant::now()));
        assert!((flow.rate() - SHARE * 0.49).abs() < 1e-9);
        // A slow carrier stretches the hold-off to its latency.
        for _ in 0..50 {
            flow.on_response(ms(500));
        }
        advance(ms(300)).await;
        assert!(!flow.on_throttled(Instant::now()));
        advance(ms(200)).await;
        assert!(flow.on_throttled(Instant::now()));
        for _ in 0..50 {
            advance(Duration::from_secs(1)).await;
            flow.on_throttled(Instant::now());
        }
        assert_eq!(flow.rate(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_clean_traffic() {
        let mut flow = BindFlow::new(SHARE, FlowConfig::default());
        flow.on_accepted(Instant::now());
        flow.on_throttled(Instant::now());
        let cut = flow.rate();
        advance(Duration::from_secs(3600)).await;
        flow.on_accepted(Instant::now());
        assert!((flow.rate() - (cut + SHARE * 0.01)).abs() < 1e-9);
    }

    #[test]
    fn set_share_keeps_the_proportion() {
        let mut flow = BindFlow::new(30.0, FlowConfig::default());
        flow.set_share(15.0);
        assert_eq!((flow.share(), flow.rate()), (15.0, 15.0));
        let tiny = BindFlow::new(0.5, FlowConfig::default());
        assert_eq!(tiny.floor(), 0.5, "the floor never exceeds the share");
    }

    /// Admitted segments over 10 simulated seconds, requests of `n` segments.
    async fn admitted(gate: &RateGate, n: u32, secs: u64) -> u64 {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut segments = 0;
        loop {
            gate.until_ready(n).await;
            if Instant::now() >= end {
                return segments;
            }
            segments += u64::from(n);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_gate_admits_its_rate_within_3_percent() {
        for rate in [15.0, 137.0, 1000.0] {
            for n in [1, 2] {
                let gate = RateGate::new(rate, 1);
                let got = admitted(&gate, n, 10).await as f64;
                let want = rate * 10.0;
                assert!(
                    (got - want).abs() <= want * 0.03,
                    "rate {rate} n {n}: {got} vs {want}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_gate_follows_set_rate() {
        let gate = RateGate::new(20.0, 1);
        let first = admitted(&gate, 1, 5).await;
        gate.set_rate(10.0);
        assert!((gate.rate() - 10.0).abs() < 1e-6);
        let second = admitted(&gate, 2, 5).await;
        assert!((97..=103).contains(&first), "{first}");
        assert!((48..=52).contains(&second), "{second}");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_gate_bursts_and_debts() {
        let gate = RateGate::new(10.0, 3);
        let now = Instant::now();
        assert!(gate.check_at(1, now).is_ok());
        assert!(gate.check_at(1, now).is_ok());
        assert!(gate.check_at(1, now).is_ok());
        assert_eq!(gate.check_at(1, now), Err(ms(100)));
        // Larger than the burst: admitted once the first segment conforms, then paid for.
        let gate = RateGate::new(10.0, 1);
        assert!(gate.check_at(5, now).is_ok());
        assert_eq!(gate.check_at(1, now), Err(ms(498)));
        assert!(gate.check_at(0, now + ms(498)).is_ok());
        gate.set_rate(f64::NAN);
        assert!((gate.rate() - MIN_RATE).abs() < 1e-9);
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Accepted(u64),
        Throttled(u64),
        Response(u64),
        Share(f64),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            5 => (0u64..2_000).prop_map(Ev::Accepted),
            3 => (0u64..500).prop_map(Ev::Throttled),
            2 => (0u64..5_000).prop_map(Ev::Response),
            1 => (0.1f64..500.0).prop_map(Ev::Share),
        ]
    }

    proptest! {
        #[test]
        fn rate_stays_within_floor_and_share(
            share in 0.01f64..1_000.0,
            events in proptest::collection::vec(ev(), 1..400),
        ) {
            let cfg = FlowConfig::default();
            let mut flow = BindFlow::new(share, cfg);
            let mut now = Instant::now();
            for e in events {
                match e {
                    Ev::Accepted(d) => { now += ms(d); flow.on_accepted(now); }
                    Ev::Throttled(d) => { now += ms(d); flow.on_throttled(now); }
                    Ev::Response(l) => flow.on_response(ms(l)),
                    Ev::Share(s) => flow.set_share(s),
                }
                prop_assert!(flow.rate() <= flow.share(), "{} > {}", flow.rate(), flow.share());
                prop_assert!(flow.rate() >= flow.floor(), "{} < {}", flow.rate(), flow.floor());
                prop_assert!((1..=cfg.max_window).contains(&flow.window()));
            }
        }
    }
}
