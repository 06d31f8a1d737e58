//! Routes: tiers of weighted carriers, and the order in which to try them.
//!
//! Role: given a route and which carriers are available now, list the carriers to try.
//! A route is a list of tiers (primary, then fallbacks); a tier is a list of
//! `(carrier, weight)`. Traffic goes to the first tier that has an available carrier and is
//! spread over that tier's available carriers in proportion to their weights by smooth
//! weighted round robin (as nginx does): deterministic, and over every run of picks whose
//! weights sum to the tier's total, each carrier gets exactly its weight.
//!
//! The round-robin state lives in a [`RouteCursor`] that the caller owns and passes by
//! `&mut`, not in the router: the router stays immutable, so it can be shared and swapped
//! whole on reload, and the one intake that routes keeps its sequence deterministic and free
//! of contention. Several callers each keep a cursor; each spreads exactly, so their sum is
//! off by at most one pick per cursor per cycle.

use super::CarrierId;

/// One carrier in a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub carrier: CarrierId,
    /// At least 1.
    pub weight: u32,
}

/// Tiers in order of preference, none empty, no carrier twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    tiers: Vec<Vec<Entry>>,
    /// Where this route's entries start in a cursor's state.
    offset: usize,
}

impl Route {
    /// `tiers` must be validated (see the module docs); `offset` is set by the router.
    pub(crate) fn new(tiers: Vec<Vec<Entry>>) -> Route {
        Route { tiers, offset: 0 }
    }

    pub(crate) fn set_offset(&mut self, offset: usize) {
        self.offset = offset;
    }

    pub(crate) fn same_tiers(&self, tiers: &[Vec<Entry>]) -> bool {
        self.tiers == tiers
    }

    pub fn tiers(&self) -> &[Vec<Entry>] {
        &self.tiers
    }

    /// Number of entries over all tiers.
    pub fn entry_count(&self) -> usize {
        self.tiers.iter().map(Vec::len).sum()
    }

    /// Every carrier, tier by tier, in configured order.
    pub fn carriers(&self) -> impl Iterator<Item = CarrierId> + '_ {
        self.tiers.iter().flatten().map(|e| e.carrier)
    }
}

/// The caller's smooth weighted round-robin state for every route of one router.
///
/// Made for one router; given routes of another (after a reload), it starts again from zero.
#[derive(Debug, Clone, Default)]
pub struct RouteCursor {
    generation: u64,
    /// nginx's `current_weight`, per entry of every route.
    current: Vec<i64>,
}

impl RouteCursor {
    pub fn new() -> RouteCursor {
        RouteCursor::default()
    }

    /// Fills `out` with the carriers of `route` to try, in order: the weighted pick of the
    /// first tier with an available carrier, that tier's other available carriers in
    /// configured order, then the available carriers of later tiers in configured order.
    /// `available` is asked once per carrier. `out` is left empty when none is available.
    pub(crate) fn candidates(
        &mut self,
        generation: u64,
        entries_total: usize,
        route: &Route,
        available: impl Fn(CarrierId) -> bool,
        out: &mut Vec<CarrierId>,
    ) {
        if self.generation != generation || self.current.len() != entries_total {
            self.generation = generation;
            self.current.clear();
            self.current.resize(entries_total, 0);
        }
        out.clear();
        let mut offset = route.offset;
        for tier in &route.tiers {
            let state = self.current.get_mut(offset..offset + tier.len());
            offset += tier.len();
            let Some(state) = state else { continue };
            if !out.is_empty() {
                out.extend(tier.iter().map(|e| e.carrier).filter(|&c| available(c)));
                continue;
            }
            // nginx: every available entry gains its weight, the largest is picked and loses
            // the total, so the state of the available entries keeps summing to zero.
            let mut total = 0i64;
            let mut best: Option<(usize, usize)> = None; // (entry index, position in out)
            for (i, e) in tier.iter().enumerate() {
                if !available(e.carrier) {
                    continue;
                }
                state[i] += i64::from(e.weight);
                total += i64::from(e.weight);
                if best.is_none_or(|(b, _)| state[i] > state[b]) {
                    best = Some((i, out.len()));
                }
                out.push(e.carrier);
            }
            if let Some((b, at)) = best {
                state[b] -= total;
                out[..=at].rotate_right(1);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(tiers: &[&[(CarrierId, u32)]]) -> Route {
        let tiers: Vec<Vec<Entry>> = tiers
            .iter()
            .map(|t| {
                t.iter()
                    .map(|&(carrier, weight)| Entry { carrier, weight })
                    .collect()
            })
            .collect();
        Route::new(tiers)
    }

    fn pick(c: &mut RouteCursor, r: &Route, avail: impl Fn(CarrierId) -> bool) -> Vec<CarrierId> {
        let mut out = Vec::new();
        c.candidates(1, r.entry_count(), r, avail, &mut out);
        out
    }

    #[test]
    fn nginx_sequence() {
        // nginx's example: weights 5, 1, 1 give a a b a c a a.
        let r = route(&[&[(0, 5), (1, 1), (2, 1)]]);
        let mut c = RouteCursor::new();
        let firsts: Vec<_> = (0..7).map(|_| pick(&mut c, &r, |_| true)[0]).collect();
        assert_eq!(firsts, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn order_is_pick_then_rest_of_tier_then_later_tiers() {
        let r = route(&[&[(0, 1), (1, 3), (2, 1)], &[(3, 1)], &[(4, 1), (5, 1)]]);
        let mut c = RouteCursor::new();
        assert_eq!(pick(&mut c, &r, |_| true), [1, 0, 2, 3, 4, 5]);
        assert_eq!(pick(&mut c, &r, |x| x != 1 && x != 4), [0, 2, 3, 5]);
        assert_eq!(pick(&mut c, &r, |x| x >= 4), [4, 5]);
        assert_eq!(pick(&mut c, &r, |x| x == 5), [5]);
        assert_eq!(pick(&mut c, &r, |_| false), Vec::<CarrierId>::new());
    }

    #[test]
    fn a_new_router_resets_the_cursor() {
        let r = route(&[&[(0, 1), (1, 1)]]);
        let mut c = RouteCursor::new();
        let mut out = Vec::new();
        c.candidates(1, 2, &r, |_| true, &mut out);
        assert_eq!(out, [0, 1]);
        c.candidates(2, 2, &r, |_| true, &mut out);
        assert_eq!(out, [0, 1], "started again from zero");
        assert_eq!(c.generation(), 2);
    }

    proptest! {
        /// Over whole cycles each carrier is picked exactly its weight per cycle, and at every
        /// point each carrier's count is within one of its exact share.
        #[test]
        fn picks_follow_the_weights(
            weights in proptest::collection::vec(1u32..20, 1..6),
            cycles in 1usize..5,
        ) {
            let r = route(&[&weights.iter().copied().enumerate().collect::<Vec<_>>()]);
            let total: u32 = weights.iter().sum();
            let mut c = RouteCursor::new();
            let mut counts = vec![0u64; weights.len()];
            for n in 1..=u64::from(total) * cycles as u64 {
                counts[pick(&mut c, &r, |_| true)[0]] += 1;
                for (i, &w) in weights.iter().enumerate() {
                    let exact = n as f64 * f64::from(w) / f64::from(total);
                    prop_assert!((counts[i] as f64 - exact).abs() < 1.0 + 1e-9,
                        "carrier {i} after {n}: {} vs {exact}", counts[i]);
                }
            }
            for (i, &w) in weights.iter().enumerate() {
                prop_assert_eq!(counts[i], u64::from(w) * cycles as u64);
            }
        }

        /// Unavailable carriers are never offered, and the available ones share by weight.
        #[test]
        fn unavailable_carriers_are_skipped(
            weights in proptest::collection::vec(1u32..20, 2..6),
            fallback in proptest::collection::vec(1u32..5, 1..3),
            down in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let first: Vec<_> = weights.iter().copied().enumerate().collect();
            let n = weights.len();
            let second: Vec<_> = fallback.iter().enumerate().map(|(i, &w)| (n + i, w)).collect();
            let r = route(&[&first, &second]);
            let up = |x: CarrierId| !down[x];
            let total: u32 = weights.iter().enumerate().filter(|&(i, _)| up(i)).map(|(_, w)| w).sum();
            let mut c = RouteCursor::new();
            let mut counts = vec![0u32; n + fallback.len()];
            let rounds = if total == 0 { 10 } else { total * 3 };
            for _ in 0..rounds {
                let out = pick(&mut c, &r, up);
                prop_assert!(out.iter().all(|&x| up(x)), "{out:?}");
                let expected_len = (0..n + fallback.len()).filter(|&x| up(x)).count();
                prop_assert_eq!(out.len(), expected_len);
                if let Some(&x) = out.first() {
                    counts[x] += 1;
                }
            }
            for (i, &w) in weights.iter().enumerate() {
                prop_assert_eq!(counts[i], if up(i) { w * 3 } else { 0 });
            }
            if total == 0 {
                // The first available fallback (weights spread within the fallback tier).
                let fb_total: u32 = second.iter().filter(|(x, _)| up(*x)).map(|(_, w)| w).sum();
                let picked: u32 = counts[n..].iter().sum();
                prop_assert_eq!(picked, if fb_total == 0 { 0 } else { 10 });
            }
        }
    }
}
