//! Circuit breaker of one carrier: stop sending to a carrier that keeps failing, then let a
//! single probe decide when to resume.
//!
//! Plain logic, no I/O, no clock of its own: the caller passes `now` (a `tokio::time::Instant`,
//! so tests run with paused time), asks [`Breaker::try_acquire`] before each submit and reports
//! each verdict. Modelled on linkerd2-proxy's `consecutive_failures` breaker.
//!
//! State machine ([`State`]):
//! - Closed -> Open: `failure_threshold` failures in a row, or every bind of the carrier is
//!   down ([`Breaker::on_all_binds_down`]). Open for `open_base`.
//! - Open -> HalfOpen: the open period has ended (seen by `try_acquire` or `refresh`).
//! - HalfOpen -> HalfOpen (probe in flight): `try_acquire` admits exactly one probe.
//! - HalfOpen -> Closed: a success. The open period is reset to `open_base`.
//! - HalfOpen -> Open: the probe failed (or every bind went down). The open period doubles,
//!   up to `open_max`.
//! - HalfOpen (probe in flight) -> HalfOpen: the probe was never written
//!   ([`Breaker::on_probe_cancelled`]); the next `try_acquire` admits another one.
//!
//! - Open -> HalfOpen at once: a bind is back up after the breaker opened because every bind
//!   was lost ([`Breaker::on_binds_up`]); a probe decides as usual.
//!
//! Binds coming back up never close the breaker by themselves, and never shorten an open
//! period that submit failures started; see [`Breaker::on_binds_up`].
//!
//! What counts as a failure is the caller's decision. Intended: a submit refused with a
//! retryable or permanent *system* status (the carrier's fault: system error, bind or
//! routing trouble), or a submit never answered (timeout). Not a failure: a per-message
//! permanent refusal (invalid destination, bad length, ...): the carrier is healthy and
//! answering, the message is wrong. Throttling (0x58, 0x14) is neither: it belongs to flow
//! control ([`crate::flow`]), not to the breaker.

use std::time::Duration;

use tokio::time::Instant;

/// Thresholds of one carrier's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker (0 is treated as 1).
    pub failure_threshold: u32,
    /// First open period; doubles after each failed probe.
    pub open_base: Duration,
    /// The open period never exceeds this.
    pub open_max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 20,
            open_base: Duration::from_secs(5),
            open_max: Duration::from_secs(60),
        }
    }
}

/// Where the breaker stands. Each variant lists the transitions out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Traffic flows.
    /// - A success resets `consecutive_failures`; a failure adds one.
    /// - -> Open when `consecutive_failures` reaches the threshold, or all binds are down.
    Closed { consecutive_failures: u32 },
    /// Nothing is admitted before `until`.
    /// - Verdicts arriving now are stragglers sent before the trip: ignored.
    /// - -> HalfOpen at `until`.
    Open { until: Instant },
    /// One probe decides.
    /// - `try_acquire` admits one probe and sets `probe_in_flight`; nothing else is admitted.
    /// - -> Closed on a success.
    /// - -> Open (longer period) on a failure while a probe is in flight, or all binds down.
    /// - A cancelled probe clears `probe_in_flight`.
    HalfOpen { probe_in_flight: bool },
}

impl State {
    /// `"closed"`, `"open"` or `"half_open"`: the label for metrics and the status API.
    pub fn label(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

/// The answer of [`Breaker::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: send.
    Yes,
    /// Half-open: send this one submit as the probe and report its verdict.
    Probe,
    /// Do not send to this carrier now.
    No,
}

/// Circuit breaker of one carrier.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: State,
    /// Length of the next open period: `open_base` doubled once per failed probe, capped.
    open_for: Duration,
    /// The breaker is open because every bind was lost, not because submits failed.
    opened_by_binds: bool,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            state: State::Closed {
                consecutive_failures: 0,
            },
            open_for: cfg.open_base.min(cfg.open_max),
            opened_by_binds: false,
        }
    }

    /// The current state (as of the last call that was given `now`).
    pub fn state(&self) -> State {
        self.state
    }

    /// `"closed"`, `"open"` or `"half_open"`.
    pub fn state_label(&self) -> &'static str {
        self.state.label()
    }

    /// How long the next trip keeps the breaker open.
    pub fn open_period(&self) -> Duration {
        self.open_for
    }

    /// Applies the time-driven transition (Open -> HalfOpen at `until`), so that the state
    /// shown by the status API is current even when nothing is being sent.
    pub fn refresh(&mut self, now: Instant) -> State {
        if let State::Open { until } = self.state {
            if now >= until {
                self.state = State::HalfOpen {
                    probe_in_flight: false,
                };
            }
        }
        self.state
    }

    /// May one submit go to this carrier now? `Probe` must be followed by a verdict
    /// ([`Self::on_success`], [`Self::on_failure`]) or by [`Self::on_probe_cancelled`],
    /// or the breaker stays half-open with nothing admitted.
    pub fn try_acquire(&mut self, now: Instant) -> Admit {
        match self.refresh(now) {
            State::Closed { .. } => Admit::Yes,
            State::Open { .. } => Admit::No,
            State::HalfOpen {
                probe_in_flight: true,
            } => Admit::No,
            State::HalfOpen {
                probe_in_flight: false,
            } => {
                self.state = State::HalfOpen {
                    probe_in_flight: true,
                };
                Admit::Probe
            }
        }
    }

    /// The carrier accepted a submit.
    pub fn on_success(&mut self) {
        match self.state {
            State::Closed { .. } | State::HalfOpen { .. } => self.close(),
            // A straggler sent before the trip; a probe decides, not it.
            State::Open { .. } => {}
        }
    }

    /// A submit failed in the carrier's own way (see the module doc for what counts).
    pub fn on_failure(&mut self, now: Instant) {
        match self.state {
            State::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= self.cfg.failure_threshold.max(1) {
                    self.trip(now);
                } else {
                    self.state = State::Closed {
                        consecutive_failures: failures,
                    };
                }
            }
            State::HalfOpen {
                probe_in_flight: true,
            } => self.probe_failed(now),
            // No probe was admitted, so this answers a submit sent before the trip: it was
            // already counted in the decision to open.
            State::HalfOpen {
                probe_in_flight: false,
            } => {}
            State::Open { .. } => {}
        }
    }

    /// The probe was not written after all (no bind free, shutdown): the next
    /// [`Self::try_acquire`] admits another probe. Does nothing in other states.
    pub fn on_probe_cancelled(&mut self) {
        if let State::HalfOpen {
            probe_in_flight: true,
        } = self.state
        {
            self.state = State::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    /// Every bind of the carrier is down: nothing can be sent, so stop admitting at once
    /// rather than waiting for `failure_threshold` submits to fail. While half-open this
    /// counts as a failed probe; while open it changes nothing.
    pub fn on_all_binds_down(&mut self, now: Instant) {
        match self.state {
            State::Closed { .. } => {
                self.trip(now);
                self.opened_by_binds = true;
            }
            State::HalfOpen { .. } => {
                self.probe_failed(now);
                self.opened_by_binds = true;
            }
            State::Open { .. } => {}
        }
    }

    /// A bind of the carrier is up again. If only the loss of every bind opened the
    /// breaker, one probe may go at once (half-open) instead of at the end of the open
    /// period: carriers reset their sessions routinely, and the reconnect takes a fraction
    /// of a second where the open period takes seconds. It never closes the breaker by
    /// itself, and an open period that submit failures started runs out as usual: a
    /// successful bind proves the TCP link and the credentials, not the submit path
    /// (carriers accept binds while their SMSC rejects or drops submits), so a probe must
    /// succeed, and one that fails doubles the open period.
    pub fn on_binds_up(&mut self) {
        if matches!(self.state, State::Open { .. }) && self.opened_by_binds {
            self.state = State::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    /// -> Closed, with the open period reset.
    fn close(&mut self) {
        self.state = State::Closed {
            consecutive_failures: 0,
        };
        self.open_for = self.cfg.open_base.min(self.cfg.open_max);
    }

    /// Closed -> Open for the base period.
    fn trip(&mut self, now: Instant) {
        self.opened_by_binds = false;
        self.open_for = self.cfg.open_base.min(self.cfg.open_max);
        self.state = State::Open {
            until: now + self.open_for,
        };
    }

    /// HalfOpen -> Open for twice the previous period, capped.
    fn probe_failed(&mut self, now: Instant) {
        self.opened_by_binds = false;
        self.open_for = self.open_for.saturating_mul(2).min(self.cfg.open_max);
        self.state = State::Open {
            until: now + self.open_for,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::time::advance;

    const CFG: BreakerConfig = BreakerConfig {
        failure_threshold: 3,
        open_base: Duration::from_secs(5),
        open_max: Duration::from_secs(60),
    };

    fn closed(consecutive_failures: u32) -> State {
        State::Closed {
            consecutive_failures,
        }
    }

    fn half_open(probe_in_flight: bool) -> State {
        State::HalfOpen { probe_in_flight }
    }

    fn open_until(until: Instant) -> State {
        State::Open { until }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A breaker tripped by failures at the current (paused) time.
    fn tripped() -> Breaker {
        let mut b = Breaker::new(CFG);
        for _ in 0..CFG.failure_threshold {
            b.on_failure(Instant::now());
        }
        b
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let d = BreakerConfig::default();
        assert_eq!(d.failure_threshold, 20);
        assert_eq!(d.open_base, secs(5));
        assert_eq!(d.open_max, secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_counts_consecutive_failures_and_a_success_resets_them() {
        let mut b = Breaker::new(CFG);
        assert_eq!(b.try_acquire(Instant::now()), Admit::Yes);
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(b.state(), closed(2));
        b.on_success();
        assert_eq!(b.state(), closed(0));
        b.on_failure(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(b.try_acquire(Instant::now()), Admit::Yes);
        assert_eq!(b.state_label(), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_to_open_after_threshold_failures() {
        let t0 = Instant::now();
        let b = &mut tripped();
        assert_eq!(b.state(), open_until(t0 + secs(5)));
        assert_eq!(b.state_label(), "open");
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_to_open_when_all_binds_are_down() {
        let mut b = Breaker::new(CFG);
        b.on_all_binds_down(Instant::now());
        assert_eq!(b.state(), open_until(Instant::now() + secs(5)));
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
    }

    #[tokio::test(start_paused = true)]
    async fn open_ignores_stragglers_and_binds_up() {
        let b = &mut tripped();
        let open = b.state();
        b.on_success();
        b.on_failure(Instant::now());
        b.on_binds_up();
        b.on_all_binds_down(Instant::now());
        assert_eq!(b.state(), open);
        advance(secs(4)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
    }

    #[tokio::test(start_paused = true)]
    async fn open_to_half_open_admits_exactly_one_probe() {
        let b = &mut tripped();
        advance(secs(5) - Duration::from_millis(1)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
        advance(Duration::from_millis(1)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        assert_eq!(b.state(), half_open(true));
        assert_eq!(b.state_label(), "half_open");
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
        advance(secs(100)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_shows_half_open_without_admitting() {
        let b = &mut tripped();
        advance(secs(5)).await;
        assert_eq!(b.refresh(Instant::now()), half_open(false));
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_to_closed_on_success_resets_the_period() {
        let b = &mut tripped();
        advance(secs(5)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        b.on_failure(Instant::now());
        assert_eq!(b.open_period(), secs(10));
        advance(secs(10)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        b.on_success();
        assert_eq!(b.state(), closed(0));
        assert_eq!(b.open_period(), secs(5));
        assert_eq!(b.try_acquire(Instant::now()), Admit::Yes);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_to_open_on_a_failed_probe_doubling_up_to_the_max() {
        let b = &mut tripped();
        let mut period = secs(5);
        for _ in 0..6 {
            advance(period).await;
            assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
            b.on_failure(Instant::now());
            period = (period * 2).min(secs(60));
            assert_eq!(b.state(), open_until(Instant::now() + period));
            assert_eq!(b.open_period(), period);
        }
        assert_eq!(period, secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_without_a_probe_in_flight_is_a_straggler() {
        let b = &mut tripped();
        advance(secs(5)).await;
        b.refresh(Instant::now());
        b.on_failure(Instant::now());
        assert_eq!(b.state(), half_open(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot() {
        let b = &mut tripped();
        advance(secs(5)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        b.on_probe_cancelled();
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
    }

    #[tokio::test(start_paused = true)]
    async fn binds_back_after_losing_them_all_let_one_probe_go_at_once() {
        let mut b = Breaker::new(CFG);
        b.on_all_binds_down(Instant::now());
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
        b.on_binds_up();
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        assert_eq!(b.try_acquire(Instant::now()), Admit::No, "one probe only");
        b.on_success();
        assert_eq!(b.state(), closed(0));
    }

    #[tokio::test(start_paused = true)]
    async fn binds_up_never_shortens_an_open_period_that_failures_started() {
        let b = &mut tripped();
        b.on_all_binds_down(Instant::now());
        b.on_binds_up();
        assert_eq!(b.try_acquire(Instant::now()), Admit::No);
        advance(secs(5)).await;
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        // The probe fails: open for twice as long, and a reconnect does not cut it short.
        b.on_failure(Instant::now());
        b.on_binds_up();
        assert_eq!(b.state(), open_until(Instant::now() + secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn binds_lost_again_while_half_open_doubles_the_period() {
        let mut b = Breaker::new(CFG);
        b.on_all_binds_down(Instant::now());
        b.on_binds_up();
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
        b.on_all_binds_down(Instant::now());
        assert_eq!(b.state(), open_until(Instant::now() + secs(10)));
        b.on_binds_up();
        assert_eq!(b.try_acquire(Instant::now()), Admit::Probe);
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Success,
        Failure,
        Advance(u64),
        AllBindsDown,
        BindsUp,
        Cancel,
        Acquire,
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            2 => Just(Ev::Success),
            4 => Just(Ev::Failure),
            3 => (0u64..20_000).prop_map(Ev::Advance),
            1 => Just(Ev::AllBindsDown),
            1 => Just(Ev::BindsUp),
            1 => Just(Ev::Cancel),
            6 => Just(Ev::Acquire),
        ]
    }

    proptest! {
        #[test]
        fn never_more_than_one_probe_and_nothing_while_open(
            events in proptest::collection::vec(ev(), 1..300),
            threshold in 0u32..5,
        ) {
            let cfg = BreakerConfig { failure_threshold: threshold, ..CFG };
            let mut b = Breaker::new(cfg);
            let mut now = Instant::now();
            // Probes admitted since the last verdict, cancel or trip.
            let mut probes = 0u32;
            for e in events {
                match e {
                    Ev::Success => { b.on_success(); probes = 0; }
                    Ev::Failure => { b.on_failure(now); probes = 0; }
                    Ev::Advance(ms) => now += Duration::from_millis(ms),
                    Ev::AllBindsDown => { b.on_all_binds_down(now); probes = 0; }
                    Ev::BindsUp => b.on_binds_up(),
                    Ev::Cancel => { b.on_probe_cancelled(); probes = 0; }
                    Ev::Acquire => {
                        let before = b.state();
                        let admit = b.try_acquire(now);
                        match before {
                            State::Open { until } if now < until => {
                                prop_assert_eq!(admit, Admit::No);
                            }
                            State::Closed { .. } => prop_assert_eq!(admit, Admit::Yes),
                            _ => prop_assert_ne!(admit, Admit::Yes),
                        }
                        if admit == Admit::Probe {
                            probes += 1;
                        }
                        prop_assert!(probes <= 1, "two probes in flight");
                    }
                }
                prop_assert!(b.open_period() >= cfg.open_base);
                prop_assert!(b.open_period() <= cfg.open_max);
                if let State::Open { until } = b.state() {
                    prop_assert!(until <= now + cfg.open_max);
                }
            }
        }
    }
}
