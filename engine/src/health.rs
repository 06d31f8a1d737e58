//! What the intake knows of each carrier's availability, shared lock-free with the shards.
//!
//! A shard marks its carrier up while at least one submitting bind is up and its circuit
//! breaker lets traffic through; the intake sends new notifications to the first carrier of
//! their route that is up, so traffic moves to a fallback as soon as the primary is lost and
//! back as soon as it returns.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::time::Instant;

use crate::routing::CarrierId;

#[derive(Debug)]
struct Carrier {
    binds_up: AtomicUsize,
    /// Microseconds after `base` until which the breaker is open; 0 when it is not.
    breaker_open_until: AtomicU64,
    /// Index in [`BREAKER_STATES`] of the breaker's state, for the status API.
    breaker_state: AtomicU8,
    /// Configured rate, segments per second.
    rate: AtomicU32,
    /// The breaker's state gauge, registered at its first publication (every submit
    /// publishes the state: a lookup by name each time cost 0.9 % of the engine's samples).
    breaker_gauge: OnceLock<metrics::Gauge>,
}

/// Breaker state names, as in metrics and the status API.
pub const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// One carrier as the status API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthView {
    pub binds_up: usize,
    pub breaker: &'static str,
    pub up: bool,
    pub rate: u32,
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
                    breaker_state: AtomicU8::new(0),
                    rate: AtomicU32::new(0),
                    breaker_gauge: OnceLock::new(),
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

    /// Publishes `carrier`'s breaker: to routing (open until), the status API and metrics.
    pub fn publish_breaker(&self, carrier: CarrierId, name: &str, b: &crate::breaker::Breaker) {
        let until = match b.state() {
            crate::breaker::State::Open { until } => Some(until),
            _ => None,
        };
        self.set_breaker_open_until(carrier, until);
        self.set_breaker_state(carrier, b.state_label());
        if let Some(c) = self.carriers.get(carrier) {
            let gauge = c
                .breaker_gauge
                .get_or_init(|| crate::metrics::breaker_gauge(name));
            crate::metrics::set_breaker_state(gauge, b.state_label());
        }
    }

    /// Records the breaker's state by name (one of [`BREAKER_STATES`]).
    fn set_breaker_state(&self, carrier: CarrierId, label: &str) {
        if let Some(c) = self.carriers.get(carrier) {
            let i = BREAKER_STATES.iter().position(|s| *s == label).unwrap_or(0);
            c.breaker_state.store(i as u8, Ordering::Relaxed);
        }
    }

    pub fn set_rate(&self, carrier: CarrierId, segments_per_second: u32) {
        if let Some(c) = self.carriers.get(carrier) {
            c.rate.store(segments_per_second, Ordering::Relaxed);
        }
    }

    /// What the status API shows of `carrier`.
    pub fn view(&self, carrier: CarrierId) -> Option<HealthView> {
        let c = self.carriers.get(carrier)?;
        let state = usize::from(c.breaker_state.load(Ordering::Relaxed));
        Some(HealthView {
            binds_up: c.binds_up.load(Ordering::Relaxed),
            breaker: BREAKER_STATES.get(state).copied().unwrap_or("closed"),
            up: self.is_up(carrier),
            rate: c.rate.load(Ordering::Relaxed),
        })
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
    async fn the_breaker_gauge_follows_every_publication() {
        use crate::breaker::{Breaker, BreakerConfig};
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let prometheus = recorder.handle();
        let h = CarrierHealth::new(1);
        let mut b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            open_base: std::time::Duration::from_secs(5),
            open_max: std::time::Duration::from_secs(5),
        });
        let gauge = r#"pigeon_carrier_breaker_state{carrier="alpha"}"#;
        metrics::with_local_recorder(&recorder, || h.publish_breaker(0, "alpha", &b));
        assert!(prometheus.render().contains(&format!("{gauge} 0")));
        b.on_failure(Instant::now());
        metrics::with_local_recorder(&recorder, || h.publish_breaker(0, "alpha", &b));
        assert!(prometheus.render().contains(&format!("{gauge} 2")), "open");
        assert_eq!(h.view(0).map(|v| v.breaker), Some("open"));
    }

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
