//! Per-bind flow control of a carrier shard: for each submitting bind slot, its AIMD rate
//! ([`BindFlow`]), the pacing gate at that rate ([`RateGate`]) and its window, applied on top
//! of the carrier-wide limiter, which stays the hard ceiling over all binds.
//!
//! Window: a bind's session keeps its configured window for as long as it is up, so the
//! recommended window ([`BindFlow::window`]) is enforced here, by a semaphore sized to the
//! configured window. When the recommended window shrinks, the difference is held back:
//! free permits are forgotten at once, and the rest is a debt paid by forgetting permits as
//! submits finish instead of returning them. When it grows, the debt is cancelled first and
//! the remainder added back. So the permits in circulation always converge to the recommended
//! window, without waiting on anything while the state is locked.
//!
//! The state sits behind a std mutex held only for the synchronous update after an answer,
//! never across an await.

use std::sync::{Mutex, MutexGuard};

use ::metrics::{Counter, Gauge};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::flow::{BindFlow, FlowConfig, RateGate};
use crate::metrics;

/// What a submit's answer says about the bind's pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Accepted: clean traffic.
    Accepted,
    /// 0x58 (throttled) or 0x14 (queue full): too fast.
    Throttled,
    /// Any other answer: says nothing about the pace, only about the latency.
    Other,
}

/// Flow control of one bind slot; lives as long as the shard, across reconnects.
pub struct FlowSlot {
    state: Mutex<SlotState>,
    gate: RateGate,
    /// Permits in circulation converge to the recommended window (see the module doc).
    window: Semaphore,
    rate_gauge: Gauge,
    decreases: Counter,
}

struct SlotState {
    flow: BindFlow,
    /// The window the permits converge to.
    target: usize,
    /// Permits still to be forgotten as submits finish.
    debt: usize,
}

impl SlotState {
    /// Moves the permits in circulation towards `window`.
    fn resize(&mut self, sem: &Semaphore, window: usize) {
        if window < self.target {
            let shrink = self.target - window;
            let forgotten = sem.forget_permits(shrink);
            self.debt += shrink - forgotten;
        } else if window > self.target {
            let grow = window - self.target;
            let cancelled = grow.min(self.debt);
            self.debt -= cancelled;
            sem.add_permits(grow - cancelled);
        }
        self.target = window;
    }
}

impl FlowSlot {
    /// Slot `bind` of `carrier`, allowed `share` segments/s (its part of the carrier's rate).
    pub fn new(carrier: &str, bind: usize, share: f64, cfg: FlowConfig) -> FlowSlot {
        let flow = BindFlow::new(share, cfg);
        let target = flow.window();
        let rate_gauge = metrics::bind_rate(carrier, bind);
        rate_gauge.set(flow.rate());
        FlowSlot {
            gate: RateGate::new(flow.rate(), 1),
            window: Semaphore::new(target),
            state: Mutex::new(SlotState {
                flow,
                target,
                debt: 0,
            }),
            rate_gauge,
            decreases: metrics::flow_decreases(carrier, bind),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a place in the bind's window, then for the bind's pace; the submit goes
    /// right after. The place is held until the ticket is finished or dropped.
    pub async fn ready(&self) -> Ticket<'_> {
        // The semaphore is never closed.
        let permit = self.window.acquire().await.ok();
        self.gate.until_ready(1).await;
        Ticket {
            slot: self,
            permit,
            sent: Instant::now(),
        }
    }

    /// The carrier's rate or number of binds changed: a new share, same proportion.
    pub fn set_share(&self, share: f64) {
        let mut s = self.lock();
        s.flow.set_share(share);
        self.gate.set_rate(s.flow.rate());
        self.rate_gauge.set(s.flow.rate());
    }

    /// The allowed rate now, in segments/s.
    pub fn rate(&self) -> f64 {
        self.lock().flow.rate()
    }

    /// The window the bind's permits converge to.
    pub fn window(&self) -> usize {
        self.lock().target
    }

    /// Returns a finished submit's permit, or forgets it while a shrink is owed.
    fn release(&self, s: &mut SlotState, permit: SemaphorePermit<'_>) {
        if s.debt > 0 {
            s.debt -= 1;
            permit.forget();
        } else {
            drop(permit);
        }
    }
}

/// A submit under way on a bind: holds its place in the window.
pub struct Ticket<'a> {
    slot: &'a FlowSlot,
    permit: Option<SemaphorePermit<'a>>,
    sent: Instant,
}

impl Ticket<'_> {
    /// The submit was answered (`Some`) or not (timeout, lost, never written): updates the
    /// bind's rate, gate and window, and frees the place. True if the rate was cut.
    pub fn finish(mut self, answer: Option<Answer>) -> bool {
        let now = Instant::now();
        let slot = self.slot;
        let mut s = slot.lock();
        let before = s.flow.rate();
        let mut cut = false;
        if let Some(answer) = answer {
            s.flow.on_response(now.saturating_duration_since(self.sent));
            match answer {
                Answer::Accepted => s.flow.on_accepted(now),
                Answer::Throttled => cut = s.flow.on_throttled(now),
                Answer::Other => {}
            }
        }
        let rate = s.flow.rate();
        if rate != before {
            slot.gate.set_rate(rate);
            slot.rate_gauge.set(rate);
        }
        if cut {
            slot.decreases.increment(1);
        }
        let window = s.flow.window();
        s.resize(&slot.window, window);
        if let Some(permit) = self.permit.take() {
            slot.release(&mut s, permit);
        }
        cut
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let mut s = self.slot.lock();
            self.slot.release(&mut s, permit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::advance;

    fn slot(share: f64, max_window: usize) -> FlowSlot {
        let cfg = FlowConfig {
            max_window,
            ..FlowConfig::default()
        };
        FlowSlot::new("test", 0, share, cfg)
    }

    fn available(slot: &FlowSlot) -> usize {
        slot.window.available_permits()
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_cuts_the_rate_and_the_gate_follows() {
        let slot = slot(100.0, 10);
        assert_eq!(slot.gate.rate().round(), 100.0);
        let t = slot.ready().await;
        advance(Duration::from_millis(20)).await;
        assert!(t.finish(Some(Answer::Throttled)));
        assert!((slot.rate() - 70.0).abs() < 1e-9);
        assert!((slot.gate.rate() - 70.0).abs() < 1e-3);
        // A second throttle within the hold-off does not cut again.
        let t = slot.ready().await;
        assert!(!t.finish(Some(Answer::Throttled)));
        assert!((slot.rate() - 70.0).abs() < 1e-9);
        // No answer says nothing about the pace.
        let t = slot.ready().await;
        advance(Duration::from_secs(1)).await;
        assert!(!t.finish(None));
        assert!((slot.rate() - 70.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_paces_submits_at_the_slot_rate() {
        let slot = slot(50.0, 10);
        let start = Instant::now();
        for _ in 0..51 {
            slot.ready().await.finish(None);
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(970) && took <= Duration::from_millis(1010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_shrinks_with_debt_and_grows_back() {
        let slot = slot(100.0, 10);
        assert_eq!((slot.window(), available(&slot)), (10, 10));
        // Let the eight go back to back, so that each answer comes 20 ms after its submit.
        slot.gate.set_rate(1e6);
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(slot.ready().await);
        }
        assert_eq!(available(&slot), 2);
        // Answers after 20 ms: 100/s × ~25 ms × 1.5 needs far fewer than 10 places. Free
        // permits go at once, the rest is owed by the submits still out.
        advance(Duration::from_millis(20)).await;
        while let Some(t) = out.pop() {
            t.finish(Some(Answer::Accepted));
            let (target, debt) = {
                let s = slot.lock();
                (s.target, s.debt)
            };
            assert_eq!(available(&slot) + out.len(), target + debt);
        }
        let w = slot.window();
        assert!(w < 10, "{w}");
        assert_eq!(available(&slot), w, "permits converge to the window");
        // A slower carrier needs more places: the window grows back to the maximum.
        for _ in 0..50 {
            let t = slot.ready().await;
            advance(Duration::from_millis(500)).await;
            t.finish(Some(Answer::Accepted));
        }
        assert_eq!(slot.window(), 10);
        assert_eq!(available(&slot), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ticket_pays_the_debt_too() {
        let slot = slot(100.0, 4);
        let held: Vec<_> = [slot.ready().await, slot.ready().await, slot.ready().await]
            .into_iter()
            .collect();
        let last = slot.ready().await;
        assert_eq!(available(&slot), 0);
        // Shrink by hand to 1: three permits owed.
        slot.lock().resize(&slot.window, 1);
        drop(held);
        assert_eq!(available(&slot), 0);
        drop(last);
        assert_eq!(available(&slot), 1);
    }
}
