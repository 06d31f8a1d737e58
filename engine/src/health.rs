//! What the intake knows of each carrier's availability, shared lock-free with the shards.
//!
//! A shard marks its carrier up while at least one submitting bind is up and its circuit
//! breaker lets traffic through; the intake sends new notifications to the first carrier of
//! their route that is up, so traffic moves to a fallback as soon as the primary is lost and
//! back as soon as it returns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::routing::CarrierId;

#[derive(Debug)]
struct Carrier {
    binds_up: AtomicUsize,
    breaker_open: AtomicBool,
}

/// Availability of every carrier, indexed by carrier id.
#[derive(Debug)]
pub struct CarrierHealth {
    carriers: Vec<Carrier>,
}

impl CarrierHealth {
    pub fn new(carriers: usize) -> CarrierHealth {
        CarrierHealth {
            carriers: (0..carriers)
                .map(|_| Carrier {
                    binds_up: AtomicUsize::new(0),
                    breaker_open: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    pub fn set_binds_up(&self, carrier: CarrierId, up: usize) {
        if let Some(c) = self.carriers.get(carrier) {
            c.binds_up.store(up, Ordering::Relaxed);
        }
    }

    pub fn set_breaker_open(&self, carrier: CarrierId, open: bool) {
        if let Some(c) = self.carriers.get(carrier) {
            c.breaker_open.store(open, Ordering::Relaxed);
        }
    }

    /// Whether `carrier` can take traffic now.
    pub fn is_up(&self, carrier: CarrierId) -> bool {
        self.carriers.get(carrier).is_some_and(|c| {
            c.binds_up.load(Ordering::Relaxed) > 0 && !c.breaker_open.load(Ordering::Relaxed)
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
        h.set_breaker_open(1, true);
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
