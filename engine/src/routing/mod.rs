//! Operator resolution: destination number -> operator -> route -> carriers to try.
//!
//! Plain, table-driven logic without actors; an immutable [`Router`] is built once from a
//! [`RouterSpec`] (configuration plus table files) and swapped whole on reload.
//!
//! Stages of [`Router::route`], each in its own file:
//! - [`number`]: the destination must be E.164 in shape and valid in its country's numbering
//!   plan (`phonenumber`), else reason `invalid_number`.
//! - [`prefixes`]: the porting table (full numbers) first, then the longest matching prefix,
//!   give the operator; [`table_file`] reads both tables from CSV files.
//! - [`routes`]: the operator's route, or the default route when the operator is unknown or
//!   has none, else reason `no_route`. [`Router::candidates`] then orders the route's
//!   available carriers by tier and smooth weighted round robin, with state in the caller's
//!   [`RouteCursor`].
//! - `build`: [`Router::from_config`] validates a [`RouterSpec`] and reports every problem.
//!
//! Costs, measured by `cargo bench -p pigeon-engine --bench router` on the 2-core dev
//! machine: [`Router::route`] about 6.7 µs, nearly all of it the numbering-plan check;
//! porting and prefix lookups on 1,000,000 prefixes and 100,000 ported numbers 0.1 µs;
//! [`Router::candidates`] 13 ns; loading a 1,000,000-line prefix file 0.23 s, for a table of
//! 10.7 MB (transiently 32 MB more while loading).
//!
//! Numbers are personal data: [`Msisdn`] masks itself in `Debug`, and no error or log here
//! shows more than the last four digits.

mod build;
pub mod number;
mod plan;
pub mod prefixes;
pub mod routes;
pub mod table_file;

pub use build::{ordered_route, RouteSpec, RouterSpec, TierSpec};
pub use number::{InvalidNumber, Msisdn};
pub use prefixes::{NumberTable, Prefix, PrefixError, PrefixTable};
pub use routes::{Entry, Route, RouteCursor};

/// Index of a carrier in [`RouterSpec::carriers`].
pub type CarrierId = usize;

/// An operator, interned: index in [`RouterSpec::operators`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub u16);

/// A route, interned: operators with identical tiers share one, and its round-robin state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub u32);

/// Where a destination's operator came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The porting table names the number.
    Ported,
    /// The longest matching prefix.
    Prefix,
    /// No operator known, or the operator has no route of its own: the default route.
    Default,
}

/// A routable destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub msisdn: Msisdn,
    /// `None` when neither the porting table nor a prefix names the number.
    pub operator: Option<OperatorId>,
    pub route: RouteId,
    pub via: Via,
}

/// Why a destination has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// Not E.164, or not valid in its country's numbering plan.
    #[error("invalid number")]
    InvalidNumber,
    /// No operator route applies and no default route is configured.
    #[error("no route")]
    NoRoute,
}

impl NoRoute {
    /// The reason code in statuses and metrics.
    pub fn code(self) -> &'static str {
        match self {
            NoRoute::InvalidNumber => "invalid_number",
            NoRoute::NoRoute => "no_route",
        }
    }
}

/// Sizes of a router's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    pub prefixes: usize,
    pub ported_numbers: usize,
    pub operators: usize,
    pub routes: usize,
    /// Heap bytes of the prefix and porting tables.
    pub table_bytes: usize,
}

/// The routing tables, immutable once built. Share it (`Arc`) and swap it whole on reload.
#[derive(Debug, Clone)]
pub struct Router {
    /// Tells a [`RouteCursor`] whose routes it holds state for.
    generation: u64,
    carriers: Vec<String>,
    operators: Vec<String>,
    /// Per operator: its own route, or `None` for the default route.
    operator_routes: Vec<Option<RouteId>>,
    default_route: Option<RouteId>,
    routes: Vec<Route>,
    /// Entries over all routes: the size of a cursor's state.
    entries_total: usize,
    prefixes: PrefixTable<OperatorId>,
    porting: NumberTable<OperatorId>,
    /// Per operator: receipt failover time, if it has its own.
    operator_failover: Vec<Option<std::time::Duration>>,
    /// Receipt failover time of every other destination.
    default_failover: Option<std::time::Duration>,
}

impl Router {
    /// How long a notification to this destination waits for its receipt before it goes
    /// through the next carrier of its route; `None`: it does not.
    pub fn receipt_failover(&self, r: &Resolved) -> Option<std::time::Duration> {
        r.operator
            .and_then(|op| {
                self.operator_failover
                    .get(usize::from(op.0))
                    .copied()
                    .flatten()
            })
            .or(self.default_failover)
    }

    /// Validates `destination` (shape, then numbering plan) and resolves it.
    pub fn route(&self, destination: &str) -> Result<Resolved, NoRoute> {
        let n = Msisdn::parse(destination).map_err(|_| NoRoute::InvalidNumber)?;
        self.resolve(n)
    }

    /// Resolves a number already validated: porting table, then longest prefix, then the
    /// default route.
    pub fn resolve(&self, msisdn: Msisdn) -> Result<Resolved, NoRoute> {
        let (operator, via) = match self.porting.get(&msisdn) {
            Some(&op) => (Some(op), Via::Ported),
            None => match self.prefixes.longest(&msisdn) {
                Some(&op) => (Some(op), Via::Prefix),
                None => (None, Via::Default),
            },
        };
        let own = operator.and_then(|op| self.operator_routes.get(usize::from(op.0)).copied());
        let (route, via) = match own.flatten() {
            Some(route) => (route, via),
            None => (self.default_route.ok_or(NoRoute::NoRoute)?, Via::Default),
        };
        Ok(Resolved {
            msisdn,
            operator,
            route,
            via,
        })
    }

    /// Fills `out` with the available carriers of `route` in the order to try: the weighted
    /// pick of the first tier with an available carrier, the rest of that tier, then later
    /// tiers. `out` is left empty when no carrier of the route is available. The round-robin
    /// state is the caller's `cursor`; see [`routes`] for why.
    pub fn candidates(
        &self,
        cursor: &mut RouteCursor,
        route: RouteId,
        available: impl Fn(CarrierId) -> bool,
        out: &mut Vec<CarrierId>,
    ) {
        match self.routes.get(route.0 as usize) {
            Some(r) => cursor.candidates(self.generation, self.entries_total, r, available, out),
            None => out.clear(),
        }
    }

    /// The route's tiers, for display and for callers that order carriers themselves.
    pub fn route_tiers(&self, route: RouteId) -> Option<&Route> {
        self.routes.get(route.0 as usize)
    }

    /// Every route, indexed by [`RouteId`].
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The operator's name: a low-cardinality metric label.
    pub fn operator_name(&self, op: OperatorId) -> Option<&str> {
        self.operators.get(usize::from(op.0)).map(String::as_str)
    }

    pub fn carrier_name(&self, carrier: CarrierId) -> Option<&str> {
        self.carriers.get(carrier).map(String::as_str)
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            prefixes: self.prefixes.len(),
            ported_numbers: self.porting.len(),
            operators: self.operators.len(),
            routes: self.routes.len(),
            table_bytes: self.prefixes.heap_bytes() + self.porting.heap_bytes(),
        }
    }
}

#[cfg(test)]
mod tests;
