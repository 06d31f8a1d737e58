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
    source: usize,
    line: u32,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Router {
    /// Builds and checks a router; on failure, every problem found, one per string.
    pub fn from_config(spec: &RouterSpec) -> Result<Router, Vec<String>> {
        let mut errs = Vec::new();

        let mut carrier_ids: HashMap<&str, CarrierId> = HashMap::new();
        for (i, c) in spec.carriers.iter().enumerate() {
            if c.is_empty() {
                errs.push(format!("carriers[{i}]: empty name"));
            } else if carrier_ids.contains_key(c.as_str()) {
                errs.push(format!("carriers[{i}]: duplicate carrier {c:?}"));
            } else {
                carrier_ids.insert(c, i);
            }
        }

        let mut routes: Vec<Route> = Vec::new();
        let mut intern =
            |tiers: Vec<Vec<Entry>>| match routes.iter().position(|r| r.same_tiers(&tiers)) {
                Some(i) => RouteId(i as u32),
                None => {
                    routes.push(Route::new(tiers));
                    RouteId(routes.len() as u32 - 1)
                }
            };

        if spec.operators.len() > usize::from(u16::MAX) + 1 {
            errs.push(format!(
                "operators: {} given, at most 65536",
                spec.operators.len()
            ));
        }
        let mut operator_ids: HashMap<&str, OperatorId> = HashMap::new();
        let mut operator_routes = Vec::with_capacity(spec.operators.len());
        for (i, (name, route)) in spec.operators.iter().enumerate() {
            let at = format!("operators.{name}");
            if name.is_empty() {
                errs.push(format!("operators[{i}]: empty name"));
            } else if operator_ids.contains_key(name.as_str()) {
                errs.push(format!("{at}: duplicate operator"));
            } else {
                operator_ids.insert(name, OperatorId(i as u16));
            }
            let id = if route.is_empty() {
                None // uses the default route
            } else {
                check_route(&at, route, &carrier_ids, &mut errs).map(&mut intern)
            };
            operator_routes.push(id);
        }
        let default_route = match &spec.default_route {
            Some(r) if r.is_empty() => {
                errs.push("default_route: route is empty".to_owned());
                None
            }
            Some(r) => check_route("default_route", r, &carrier_ids, &mut errs).map(&mut intern),
            None => None,
        };
        let mut entries_total = 0;
        for r in &mut routes {
            r.set_offset(entries_total);
            entries_total += r.entry_count();
        }

        let mut operator = |name: &str| operator_ids.get(name).copied();
        let mut prefix_rows: Vec<(Prefix, OperatorId, Origin)> = Vec::new();
        for (i, (prefix, op)) in spec.prefixes.iter().enumerate() {
            let at = format!("prefixes[{prefix:?}]");
            let p = Prefix::parse(prefix).map_err(|e| errs.push(format!("{at}: {e}")));
            let o = operator(op).ok_or_else(|| errs.push(format!("{at}: unknown operator {op:?}")));
            if let (Ok(p), Ok(o)) = (p, o) {
                let origin = Origin {
                    source: 0,
                    line: i as u32,
                };
                prefix_rows.push((p, o, origin));
            }
        }
        let mut number_rows: Vec<(Msisdn, OperatorId, Origin)> = Vec::new();
        let mut file_errors = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
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
            rows.clear();
            table_file::read_file(path, kind, &mut operator, &mut rows, &mut file_errors);
            for r in &rows {
                let origin = Origin {
                    source: i + 1,
                    line: r.line,
                };
                match r.key {
                    Key::Prefix(p) => prefix_rows.push((p, r.operator, origin)),
                    Key::Number(n) => number_rows.push((n, r.operator, origin)),
                }
            }
        }
        drop(rows);
        errs.extend(file_errors.iter().map(ToString::to_string));

        let names = |op: OperatorId| spec.operators.get(usize::from(op.0)).map_or("", |o| &o.0);
        let place = |files: &[PathBuf], o: Origin| match o.source.checked_sub(1) {
            None => format!("prefixes[{}]", o.line),
            Some(f) => format!(
                "{}:{}",
                files.get(f).map_or("?".into(), |p| p.display().to_string()),
                o.line
            ),
        };
        prefix_rows.sort_by_key(|r| r.0);
        conflicts(&prefix_rows, &mut errs, |(p, op, o), (_, op2, o2)| {
            let (a, b) = (
                place(&spec.prefix_files, *o),
                place(&spec.prefix_files, *o2),
            );
            format!(
                "prefix +{}: operator {:?} at {a} but {:?} at {b}",
                p.digits(),
                names(*op),
                names(*op2)
            )
        });
        number_rows.sort_by_key(|r| r.0);
        conflicts(&number_rows, &mut errs, |(n, op, o), (_, op2, o2)| {
            let (a, b) = (
                place(&spec.porting_files, *o),
                place(&spec.porting_files, *o2),
            );
            format!(
                "ported number {}: operator {:?} at {a} but {:?} at {b}",
                n.masked(),
                names(*op),
                names(*op2)
            )
        });

        if !errs.is_empty() {
            return Err(errs);
        }
        number::warm_up();
        Ok(Router {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            carriers: spec.carriers.clone(),
            operators: spec.operators.iter().map(|(n, _)| n.clone()).collect(),
            operator_routes,
            default_route,
            routes,
            entries_total,
            prefixes: PrefixTable::from_entries(
                prefix_rows.into_iter().map(|(p, o, _)| (p, o)).collect(),
            ),
            porting: NumberTable::from_entries(
                number_rows.into_iter().map(|(n, o, _)| (n, o)).collect(),
            ),
        })
    }
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
fn conflicts<K: PartialEq, O>(
    rows: &[(K, OperatorId, O)],
    errs: &mut Vec<String>,
    describe: impl Fn(&(K, OperatorId, O), &(K, OperatorId, O)) -> String,
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
