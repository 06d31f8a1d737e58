//! Building a [`Router`] from plain inputs, reporting every problem at once.
//!
//! Role: the one place where names become ids and files become tables. [`RouterSpec`] holds
//! plain values (no configuration types), so the configuration layer maps onto it, and a
//! reload can build and check a new router before swapping it in.
//!
//! Rules checked, all problems collected:
//! - carriers: names non-empty and distinct; a carrier's index is its [`CarrierId`];
//! - operators: names non-empty and distinct, at most 65,536; an operator with no tiers is
//!   known (prefixes and porting may name it, metrics label it) but uses the default route;
//! - routes: every tier non-empty, every weight at least 1, every carrier known and in the
//!   route once; a default route, when given, non-empty;
//! - prefixes (inline and files) and porting files: well-formed, operators known, and no
//!   prefix or number given two different operators (the same pair twice is accepted).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::number::{self, Msisdn};
use super::prefixes::{NumberTable, Prefix, PrefixTable};
use super::routes::{Entry, Route};
use super::table_file::{self, Key, Kind, Row, MAX_LINE_ERRORS};
use super::{CarrierId, OperatorId, RouteId, Router};

/// Carriers of one tier with their weights (each at least 1).
pub type TierSpec = Vec<(String, u32)>;
/// Tiers in order of preference.
pub type RouteSpec = Vec<TierSpec>;

/// Everything a [`Router`] is built from, as plain values.
#[derive(Debug, Clone, Default)]
pub struct RouterSpec {
    /// Carrier names; a carrier's index here is its [`CarrierId`].
    pub carriers: Vec<String>,
    /// Operator name and its route; an operator's index here is its [`OperatorId`]. An
    /// empty route means the operator uses the default route.
    pub operators: Vec<(String, RouteSpec)>,
    /// Route for numbers with no operator, or whose operator has no route.
    pub default_route: Option<RouteSpec>,
    /// Inline `(prefix, operator)` pairs; a prefix may have a leading `+`.
    pub prefixes: Vec<(String, String)>,
    /// `prefix,operator` CSV files (see [`super::table_file`]).
    pub prefix_files: Vec<PathBuf>,
    /// `number,operator` CSV files of ported numbers, which win over prefixes.
    pub porting_files: Vec<PathBuf>,
    /// Operator name (or `*` for every other destination) -> how long an accepted
    /// notification waits for its receipt before it goes through the next carrier.
    pub receipt_failover: Vec<(String, std::time::Duration)>,
}

/// Carriers in order of preference, one per tier: the primary, then each fallback (the
/// form of the current configuration's routes).
pub fn ordered_route(carriers: &[String]) -> RouteSpec {
    carriers.iter().map(|c| vec![(c.clone(), 1)]).collect()
}

/// Where an entry came from: `source` 0 is the inline list (`line` its index), `n` is file
/// `n - 1` of its kind.
#[derive(Debug, Clone, Copy)]
struct Origin {
    source: u32,
    line: u32,
}

/// One table entry before the table is built; 32 bytes, so loading 1,000,000 lines peaks
/// at about 32 MB above the finished table.
type Staged<K> = (K, OperatorId, Origin);

/// The routes of a router, by id, and which operator uses which.
struct Routes {
    routes: Vec<Route>,
    operator_routes: Vec<Option<RouteId>>,
    default_route: Option<RouteId>,
    entries_total: usize,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Router {
    /// Builds and checks a router; on failure, every problem found, one per string.
    pub fn from_config(spec: &RouterSpec) -> Result<Router, Vec<String>> {
        let mut errs = Vec::new();
        let carrier_ids = index_names("carriers", spec.carriers.iter(), &mut errs);
        if spec.operators.len() > usize::from(u16::MAX) + 1 {
            let n = spec.operators.len();
            errs.push(format!("operators: {n} given, at most 65536"));
        }
        let operator_ids = index_names("operators", spec.operators.iter().map(|o| &o.0), &mut errs);
        let routes = build_routes(spec, &carrier_ids, &mut errs);
        let operator = |name: &str| operator_ids.get(name).map(|&i| OperatorId(i as u16));
        let (prefixes, numbers) = stage_tables(spec, operator, &mut errs);
        let mut operator_failover = vec![None; spec.operators.len()];
        let mut default_failover = None;
        for (name, after) in &spec.receipt_failover {
            match (name.as_str(), operator(name)) {
                ("*", _) => default_failover = Some(*after),
                (_, Some(op)) => operator_failover[usize::from(op.0)] = Some(*after),
                (_, None) => errs.push(format!(
                    "receipt_failover: {name:?} is not an operator with a route (or `*`)"
                )),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        number::warm_up();
        Ok(Router {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            carriers: spec.carriers.clone(),
            operators: spec.operators.iter().map(|(n, _)| n.clone()).collect(),
            operator_routes: routes.operator_routes,
            default_route: routes.default_route,
            routes: routes.routes,
            entries_total: routes.entries_total,
            prefixes: PrefixTable::from_entries(
                prefixes.into_iter().map(|(p, o, _)| (p, o)).collect(),
            ),
            porting: NumberTable::from_entries(
                numbers.into_iter().map(|(n, o, _)| (n, o)).collect(),
            ),
            operator_failover,
            default_failover,
        })
    }
}

/// Name -> index, reporting empty and repeated names.
fn index_names<'a>(
    what: &str,
    names: impl Iterator<Item = &'a String>,
    errs: &mut Vec<String>,
) -> HashMap<&'a str, usize> {
    let mut ids = HashMap::new();
    for (i, name) in names.enumerate() {
        if name.is_empty() {
            errs.push(format!("{what}[{i}]: empty name"));
        } else if ids.contains_key(name.as_str()) {
            errs.push(format!("{what}[{i}]: {name:?} given twice"));
        } else {
            ids.insert(name.as_str(), i);
        }
    }
    ids
}

/// Checks and interns every route: operators with identical tiers share one.
fn build_routes(
    spec: &RouterSpec,
    carrier_ids: &HashMap<&str, CarrierId>,
    errs: &mut Vec<String>,
) -> Routes {
    let mut routes: Vec<Route> = Vec::new();
    let mut intern = |tiers: Vec<Vec<Entry>>| match routes.iter().position(|r| r.same_tiers(&tiers))
    {
        Some(i) => RouteId(i as u32),
        None => {
            routes.push(Route::new(tiers));
            RouteId(routes.len() as u32 - 1)
        }
    };
    let operator_routes = (spec.operators.iter())
        .map(|(name, route)| {
            if route.is_empty() {
                return None; // uses the default route
            }
            let at = format!("operators.{name}");
            check_route(&at, route, carrier_ids, errs).map(&mut intern)
        })
        .collect();
    let default_route = match &spec.default_route {
        Some(r) if r.is_empty() => {
            errs.push("default_route: route is empty".to_owned());
            None
        }
        Some(r) => check_route("default_route", r, carrier_ids, errs).map(&mut intern),
        None => None,
    };
    let mut entries_total = 0;
    for r in &mut routes {
        r.set_offset(entries_total);
        entries_total += r.entry_count();
    }
    Routes {
        routes,
        operator_routes,
        default_route,
        entries_total,
    }
}

/// Reads the inline prefixes and every file into entries sorted by key, reporting malformed
/// entries and keys given two different operators.
fn stage_tables(
    spec: &RouterSpec,
    mut operator: impl FnMut(&str) -> Option<OperatorId>,
    errs: &mut Vec<String>,
) -> (Vec<Staged<Prefix>>, Vec<Staged<Msisdn>>) {
    let mut prefixes: Vec<Staged<Prefix>> = Vec::new();
    for (i, (prefix, op)) in spec.prefixes.iter().enumerate() {
        let at = format!("prefixes[{prefix:?}]");
        let p = Prefix::parse(prefix).map_err(|e| errs.push(format!("{at}: {e}")));
        let o = operator(op).ok_or_else(|| errs.push(format!("{at}: unknown operator {op:?}")));
        if let (Ok(p), Ok(o)) = (p, o) {
            let line = u32::try_from(i).unwrap_or(u32::MAX);
            prefixes.push((p, o, Origin { source: 0, line }));
        }
    }
    let mut numbers: Vec<Staged<Msisdn>> = Vec::new();
    let mut file_errors = Vec::new();
    let files = (spec
        .prefix_files
        .iter()
        .map(|f| (f, Kind::Prefixes))
        .enumerate())
    .chain(
        spec.porting_files
            .iter()
            .map(|f| (f, Kind::Numbers))
            .enumerate(),
    );
    for (i, (path, kind)) in files {
        let source = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let mut add = |r: Row| {
            let origin = Origin {
                source,
                line: r.line,
            };
            match r.key {
                Key::Prefix(p) => prefixes.push((p, r.operator, origin)),
                Key::Number(n) => numbers.push((n, r.operator, origin)),
            }
        };
        table_file::read_file(path, kind, &mut operator, &mut add, &mut file_errors);
    }
    errs.extend(file_errors.iter().map(ToString::to_string));

    let name = |op: OperatorId| {
        spec.operators
            .get(usize::from(op.0))
            .map_or("", |o| o.0.as_str())
    };
    let place = |files: &[PathBuf], o: Origin| match (o.source as usize).checked_sub(1) {
        None => format!(
            "prefixes[{:?}]",
            spec.prefixes
                .get(o.line as usize)
                .map_or("", |p| p.0.as_str())
        ),
        Some(f) => format!(
            "{}:{}",
            files.get(f).map_or("?".into(), |p| p.display().to_string()),
            o.line
        ),
    };
    prefixes.sort_by_key(|r| r.0);
    conflicts(&prefixes, errs, |(p, op, o), (_, op2, o2)| {
        let (a, b) = (
            place(&spec.prefix_files, *o),
            place(&spec.prefix_files, *o2),
        );
        let (x, y) = (name(*op), name(*op2));
        format!(
            "prefix +{}: operator {x:?} at {a} but {y:?} at {b}",
            p.digits()
        )
    });
    numbers.sort_by_key(|r| r.0);
    conflicts(&numbers, errs, |(n, op, o), (_, op2, o2)| {
        let (a, b) = (
            place(&spec.porting_files, *o),
            place(&spec.porting_files, *o2),
        );
        let (x, y) = (name(*op), name(*op2));
        format!(
            "ported number {}: operator {x:?} at {a} but {y:?} at {b}",
            n.masked()
        )
    });
    (prefixes, numbers)
}

/// Checks one route; its tiers of entries if it has no problem.
fn check_route(
    at: &str,
    route: &RouteSpec,
    carriers: &HashMap<&str, CarrierId>,
    errs: &mut Vec<String>,
) -> Option<Vec<Vec<Entry>>> {
    let before = errs.len();
    let mut seen = HashSet::new();
    let mut tiers = Vec::with_capacity(route.len());
    for (t, tier) in route.iter().enumerate() {
        let at = format!("{at}: tier {}", t + 1);
        if tier.is_empty() {
            errs.push(format!("{at}: no carriers"));
        }
        let mut entries = Vec::with_capacity(tier.len());
        for (name, weight) in tier {
            if *weight == 0 {
                errs.push(format!("{at}: carrier {name:?}: weight must be at least 1"));
            }
            match carriers.get(name.as_str()) {
                None => errs.push(format!("{at}: unknown carrier {name:?}")),
                Some(&carrier) if !seen.insert(carrier) => {
                    errs.push(format!("{at}: carrier {name:?} already in this route"))
                }
                Some(&carrier) => entries.push(Entry {
                    carrier,
                    weight: *weight,
                }),
            }
        }
        tiers.push(entries);
    }
    (errs.len() == before).then_some(tiers)
}

/// Reports keys given two different operators in `rows` (sorted by key), at most
/// [`MAX_LINE_ERRORS`] of them, then a count of the rest.
fn conflicts<K: PartialEq>(
    rows: &[Staged<K>],
    errs: &mut Vec<String>,
    describe: impl Fn(&Staged<K>, &Staged<K>) -> String,
) {
    let mut found = 0usize;
    for pair in rows.windows(2) {
        if let [a, b] = pair {
            if a.0 == b.0 && a.1 != b.1 {
                found += 1;
                if found <= MAX_LINE_ERRORS {
                    errs.push(describe(a, b));
                }
            }
        }
    }
    if found > MAX_LINE_ERRORS {
        errs.push(format!(
            "{} more conflicting entries not listed",
            found - MAX_LINE_ERRORS
        ));
    }
}
