//! What the intake knows of each carrier's availability, shared lock-free with the shards.
//!
//! A shard marks its carrier up while at least one submitting bind is up and its circuit
//! breaker lets traffic through; the intake sends new notifications to the first carrier of
//! their route that is up, so traffic moves to a fallback as soon as the primary is lost and
//! back as soon as it returns.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::time::Instant;

use crate::routing::CarrierId;

#[derive(Debug)]
struct Carrier {
    binds_up: AtomicUsize,
    /// Microseconds after `base` until which the breaker is open; 0 when it is not.
    breaker_open_until: AtomicU64,
}

/// Availability of every carrier, indexed by carrier id.
#[derive(Debug)]
pub struct CarrierHealth {
    carriers: Vec<Carrier>,
    base: Instant,
}

impl CarrierHealth {
    pub fn new(carriers: usize) -> CarrierHealth {
        CarrierHealth {
            carriers: (0..carriers)
                .map(|_| Carrier {
                    binds_up: AtomicUsize::new(0),
                    breaker_open_until: AtomicU64::new(0),
                })
                .collect(),
            base: Instant::now(),
        }
    }

    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_micros().max(1) as u64
    }

    pub fn set_binds_up(&self, carrier: CarrierId, up: usize) {
        if let Some(c) = self.carriers.get(carrier) {
            c.binds_up.store(up, Ordering::Relaxed);
        }
    }

    /// The breaker is open until `until` (`None`: closed or half-open, traffic may come).
    pub fn set_breaker_open_until(&self, carrier: CarrierId, until: Option<Instant>) {
        if let Some(c) = self.carriers.get(carrier) {
            let v = until.map_or(0, |t| self.micros(t));
            c.breaker_open_until.store(v, Ordering::Relaxed);
        }
    }

    /// Whether `carrier` can take traffic now. A breaker whose open period ended counts as
    /// up, so that traffic comes and the probe can close it.
    pub fn is_up(&self, carrier: CarrierId) -> bool {
        self.carriers.get(carrier).is_some_and(|c| {
            let until = c.breaker_open_until.load(Ordering::Relaxed);
            c.binds_up.load(Ordering::Relaxed) > 0
                && (until == 0 || self.micros(Instant::now()) >= until)
        })
    }

    /// Position in `route` of the carrier to use from `from` on: the first that is up, else
    /// `from` itself (it may come back before the notification expires).
    pub fn choose(&self, route: &[CarrierId], from: usize) -> usize {
        (from..route.len())
            .find(|&i| self.is_up(route[i]))
            .unwrap_or(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_keeps_traffic_away_until_its_period_ends() {
        let h = CarrierHealth::new(1);
        h.set_binds_up(0, 1);
        h.set_breaker_open_until(0, Some(Instant::now() + std::time::Duration::from_secs(5)));
        assert!(!h.is_up(0));
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        assert!(h.is_up(0), "half-open: traffic may come for the probe");
    }

    #[test]
    fn traffic_goes_to_the_first_carrier_that_is_up_and_returns() {
        let h = CarrierHealth::new(3);
        let route = [0, 1, 2];
        assert_eq!(
            h.choose(&route, 0),
            0,
            "nothing up yet: stay with the primary"
        );
        h.set_binds_up(0, 1);
        h.set_binds_up(1, 2);
        assert_eq!(h.choose(&route, 0), 0);
        h.set_binds_up(0, 0);
        assert_eq!(h.choose(&route, 0), 1, "primary lost: fallback");
        h.set_breaker_open_until(1, Some(Instant::now() + std::time::Duration::from_secs(60)));
        assert_eq!(h.choose(&route, 0), 0, "nothing up: primary");
        h.set_binds_up(2, 1);
        assert_eq!(h.choose(&route, 0), 2);
        h.set_binds_up(0, 1);
        assert_eq!(h.choose(&route, 0), 0, "primary back: traffic returns");
        assert_eq!(
            h.choose(&route, 1),
            2,
            "from a later position only later carriers"
        );
    }
}
