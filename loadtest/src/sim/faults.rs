//! The machinery behind a carrier's faults: [`Latency`] (a delay distribution), the
//! per-session [`Dice`] that decides which submit or receipt a fault hits (seeded when the
//! carrier has a `seed`, so tests are repeatable), and the per-account [`Throttle`] that
//! answers submits above `throttle_tps` with `ESME_RTHROTTLED`. Nothing here locks per
//! submit: dice are owned by one session, a throttle is one atomic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pigeon_smpp::receipt::ReceiptState;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ids::splitmix64;

/// A delay drawn uniformly from `[fixed_ms, fixed_ms + jitter_ms]` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    #[serde(default)]
    pub fixed_ms: u64,
    #[serde(default)]
    pub jitter_ms: u64,
}

impl Latency {
    pub fn new(fixed_ms: u64, jitter_ms: u64) -> Self {
        Self {
            fixed_ms,
            jitter_ms,
        }
    }

    /// No delay at all (the default): responses are written straight away.
    pub fn is_zero(&self) -> bool {
        self.fixed_ms == 0 && self.jitter_ms == 0
    }
}

/// Random choices of one session. Seeded from the carrier's `seed` and the session number,
/// so the same connections making the same submits meet the same faults.
#[derive(Debug)]
pub(crate) struct Dice {
    rng: SmallRng,
}

impl Dice {
    pub fn new(seed: Option<u64>, session_id: u64) -> Self {
        let rng = match seed {
            Some(seed) => SmallRng::seed_from_u64(seed ^ splitmix64(session_id)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Self { rng }
    }

    /// True with probability `p`; draws nothing when `p` is 0, so a carrier without faults
    /// never touches the generator.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        p >= 1.0 || self.rng.random::<f64>() < p
    }

    /// `base` plus a uniform draw in `[0, jitter]`.
    pub fn delay(&mut self, base: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return base;
        }
        let extra = self.rng.random_range(0..=duration_ms(jitter));
        base + Duration::from_millis(extra)
    }

    pub fn latency(&mut self, l: Latency) -> Duration {
        self.delay(
            Duration::from_millis(l.fixed_ms),
            Duration::from_millis(l.jitter_ms),
        )
    }

    /// A state drawn from `mix` by weight; `fallback` when the mix is empty.
    pub fn receipt_state(
        &mut self,
        mix: &[(ReceiptState, f64)],
        fallback: ReceiptState,
    ) -> ReceiptState {
        let total: f64 = mix.iter().map(|(_, w)| w.max(0.0)).sum();
        if total <= 0.0 {
            return fallback;
        }
        let mut x = self.rng.random::<f64>() * total;
        for (state, w) in mix {
            let w = w.max(0.0);
            if x < w {
                return *state;
            }
            x -= w;
        }
        // Rounding left a sliver past the last weight.
        mix.iter()
            .rev()
            .find(|(_, w)| *w > 0.0)
            .map_or(fallback, |(s, _)| *s)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A token bucket over all binds of one account (GCRA form: one atomic "theoretical arrival
/// time"). Holds one second's worth of submits: a burst of `tps` passes at once, then
/// `tps` per second.
#[derive(Debug)]
pub(crate) struct Throttle {
    base: Instant,
    /// Nanoseconds between two submits at the allowed rate.
    interval_ns: u64,
    /// How far ahead of now the bucket may be booked (the burst).
    tolerance_ns: u64,
    /// Nanoseconds after `base` at which the next submit would be on schedule.
    tat: AtomicU64,
}

impl Throttle {
    pub fn new(tps: u32, now: Instant) -> Self {
        let tps = u64::from(tps.max(1));
        let interval_ns = 1_000_000_000 / tps;
        Self {
            base: now,
            interval_ns,
            tolerance_ns: interval_ns * (tps - 1),
            tat: AtomicU64::new(0),
        }
    }

    /// Takes a token for one segment submitted at `now`; false when over the rate.
    pub fn admit(&self, now: Instant) -> bool {
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let mut tat = self.tat.load(Relaxed);
        loop {
            let start = tat.max(now_ns);
            if start - now_ns > self.tolerance_ns {
                return false;
            }
            let next = start.saturating_add(self.interval_ns);
            match self.tat.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

/// The throttles of one carrier, one per `system_id`; looked up on bind only.
#[derive(Debug, Default)]
pub(crate) struct Throttles {
    by_account: Mutex<HashMap<String, Arc<Throttle>>>,
}

impl Throttles {
    pub fn get(&self, system_id: &str, tps: u32) -> Arc<Throttle> {
        let mut map = self
            .by_account
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(system_id.to_string())
                .or_insert_with(|| Arc::new(Throttle::new(tps, Instant::now()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttle_passes_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let t = Throttle::new(100, t0);
        let burst = (0..300).filter(|_| t.admit(t0)).count();
        assert_eq!(burst, 100);
        // 100 ms later, ten more tokens.
        let later = t0 + Duration::from_millis(100);
        assert_eq!((0..50).filter(|_| t.admit(later)).count(), 10);
        // Spread evenly at the rate, everything passes.
        let t = Throttle::new(10, t0);
        assert!((0..100).all(|i| t.admit(t0 + Duration::from_millis(100 * i))));
    }

    #[test]
    fn dice_follow_the_rates_and_the_seed() {
        let mut a = Dice::new(Some(7), 1);
        let hits = (0..10_000).filter(|_| a.chance(0.2)).count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        assert!(!(0..100).any(|_| a.chance(0.0)));
        assert!((0..100).all(|_| a.chance(1.0)));
        let draws = |seed| {
            let mut d = Dice::new(Some(seed), 3);
            (0..64).map(|_| d.chance(0.5)).collect::<Vec<_>>()
        };
        assert_eq!(draws(9), draws(9));
        assert_ne!(draws(9), draws(10));
    }

    #[test]
    fn delays_stay_in_range_and_states_follow_the_mix() {
        let mut d = Dice::new(Some(1), 0);
        for _ in 0..1_000 {
            let l = d.latency(Latency::new(10, 5));
            assert!((10..=15).contains(&l.as_millis()), "{l:?}");
        }
        assert_eq!(d.latency(Latency::default()), Duration::ZERO);
        let mix = [
            (ReceiptState::Delivered, 0.9),
            (ReceiptState::Undeliverable, 0.1),
        ];
        let failed = (0..10_000)
            .filter(|_| d.receipt_state(&mix, ReceiptState::Delivered) != ReceiptState::Delivered)
            .count();
        assert!((800..1_200).contains(&failed), "{failed}");
        assert_eq!(
            d.receipt_state(&[], ReceiptState::Expired),
            ReceiptState::Expired
        );
    }
}
