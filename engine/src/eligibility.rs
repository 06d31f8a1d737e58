//! Subscriber eligibility: whether a customer wants debit SMS, checked by the intake before
//! routing.
//!
//! Preferences come from a subscribers file ([`subscribers_file`], read at start) and/or a
//! compacted topic keyed by customer_ref (followed while the engine runs, through
//! [`pigeon_kafka::TableFollower`]); a topic record wins over the file for the customer it
//! names, being newer, and its tombstone forgets the customer, who then follows the default
//! policy. The engine reads the whole topic before it consumes any debit ([`start`]).
//!
//! The table keeps only the customers whose preference differs from the default policy, so
//! that a file listing every customer as `subscribed` costs nothing under the `subscribed`
//! default. The intake reads it per event under a read lock (updates are rare) and allocates
//! nothing. Plain logic; no actors.

pub mod subscribers_file;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use pigeon_kafka::TableFollower;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::Config;

/// A customer's choice about debit SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    /// Wants them.
    Subscribed,
    /// Asked not to get them: skipped `opted_out`.
    OptedOut,
    /// Never asked for them: skipped `not_subscribed`.
    NotSubscribed,
}

impl Preference {
    pub const ALL: [Preference; 3] = [
        Preference::Subscribed,
        Preference::OptedOut,
        Preference::NotSubscribed,
    ];

    /// `subscribed`, `opted_out` or `not_subscribed`.
    pub fn parse(s: &str) -> Option<Preference> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preference::Subscribed => "subscribed",
            Preference::OptedOut => "opted_out",
            Preference::NotSubscribed => "not_subscribed",
        }
    }

    /// The `skipped` reason code when this preference refuses the SMS.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Preference::Subscribed => None,
            Preference::OptedOut => Some("opted_out"),
            Preference::NotSubscribed => Some("not_subscribed"),
        }
    }
}

/// What a customer with no known preference gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultPolicy {
    /// Debit SMS for everyone not known otherwise (what deployments had before).
    #[default]
    Subscribed,
    /// Only customers known to be subscribed get debit SMS.
    NotSubscribed,
}

impl DefaultPolicy {
    pub fn preference(self) -> Preference {
        match self {
            DefaultPolicy::Subscribed => Preference::Subscribed,
            DefaultPolicy::NotSubscribed => Preference::NotSubscribed,
        }
    }
}

/// `[eligibility]`: who gets debit SMS. Changes need a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityConfig {
    /// Preference of a customer neither the file nor the topic names: `subscribed` (the
    /// default, so that deployments without preference data keep sending) or
    /// `not_subscribed`.
    #[serde(default)]
    pub default: DefaultPolicy,
    /// CSV file of `customer_ref,preference` lines (header optional, `#` comments;
    /// preference `subscribed`, `opted_out` or `not_subscribed`), read at start.
    #[serde(default)]
    pub subscribers_file: Option<PathBuf>,
    /// Compacted topic of preferences keyed by customer_ref, value
    /// `{"preference":"opted_out"}`, a tombstone forgetting the customer. Read from its
    /// beginning before any debit is consumed, then followed; it wins over the file.
    #[serde(default)]
    pub subscribers_topic: Option<String>,
}

impl EligibilityConfig {
    /// Every problem with the section, every malformed line of the file included; empty
    /// when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(path) = &self.subscribers_file {
            let mut problems = Vec::new();
            subscribers_file::read_file(path, &mut |_, _| {}, &mut problems);
            errs.extend(
                problems
                    .iter()
                    .map(|e| format!("eligibility.subscribers_file: {e}")),
            );
        }
        if let Some(topic) = &self.subscribers_topic {
            let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
            if topic.is_empty() || topic.len() > 249 || !topic.bytes().all(legal) {
                errs.push(format!(
                    "eligibility.subscribers_topic: not a topic name (1 to 249 of a-z, A-Z, \
                     0-9, '.', '_', '-'), got {topic:?}"
                ));
            }
        }
        errs
    }
}

/// Customer reference -> preference, for the customers whose preference differs from the
/// default's.
pub struct Table {
    default: Preference,
    entries: RwLock<Entries>,
    /// `pigeon_eligibility_overrides`, by [`Preference::ALL`] order.
    gauges: [metrics::Gauge; 3],
}

#[derive(Default)]
struct Entries {
    map: HashMap<Box<str>, Preference>,
    /// Entries by [`Preference::ALL`] order.
    counts: [usize; 3],
}

fn index(p: Preference) -> usize {
    p as usize
}

/// Never lists entries: customer references are personal data.
impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("default", &self.default)
            .field("overrides", &self.len())
            .finish()
    }
}

impl Table {
    pub fn new(default: DefaultPolicy) -> Table {
        Table {
            default: default.preference(),
            entries: RwLock::new(Entries::default()),
            gauges: Preference::ALL.map(|p| crate::metrics::eligibility_overrides(p.as_str())),
        }
    }

    /// `Err(reason)` when the customer's SMS is not to be sent. Allocates nothing.
    pub fn check(&self, customer_ref: &str) -> Result<(), &'static str> {
        self.preference(customer_ref).refusal().map_or(Ok(()), Err)
    }

    pub fn preference(&self, customer_ref: &str) -> Preference {
        let e = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        if e.map.is_empty() {
            return self.default;
        }
        e.map.get(customer_ref).copied().unwrap_or(self.default)
    }

    /// Customers whose preference differs from the default.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records the customer's preference; one equal to the default's is not kept.
    pub fn set(&self, customer_ref: &str, p: Preference) {
        let mut e = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let old = if p == self.default {
            e.map.remove(customer_ref)
        } else if let Some(slot) = e.map.get_mut(customer_ref) {
            Some(std::mem::replace(slot, p))
        } else {
            e.map.insert(customer_ref.into(), p);
            None
        };
        if old == Some(p) {
            return;
        }
        if let Some(old) = old {
            e.counts[index(old)] -= 1;
        }
        if p != self.default {
            e.counts[index(p)] += 1;
        }
        self.publish(&e.counts);
    }

    /// Forgets the customer, who then follows the default.
    pub fn forget(&self, customer_ref: &str) {
        self.set(customer_ref, self.default);
    }

    /// Applies one record of the subscribers topic: a preference, or a tombstone (`None`).
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordProblem> {
        let customer_ref = std::str::from_utf8(key).map_err(|_| RecordProblem::KeyNotUtf8)?;
        if customer_ref.is_empty() || customer_ref.len() > subscribers_file::MAX_REF_BYTES {
            return Err(RecordProblem::KeyLength);
        }
        let Some(value) = value else {
            self.forget(customer_ref);
            return Ok(());
        };
        #[derive(Deserialize)]
        struct Value<'a> {
            #[serde(borrow)]
            preference: std::borrow::Cow<'a, str>,
        }
        let v: Value<'_> = serde_json::from_slice(value).map_err(|e| {
            RecordProblem::Value(if e.is_data() {
                "no preference string"
            } else {
                "not json"
            })
        })?;
        let p = Preference::parse(&v.preference).ok_or(RecordProblem::UnknownPreference)?;
        self.set(customer_ref, p);
        Ok(())
    }

    fn publish(&self, counts: &[usize; 3]) {
        for (g, n) in self.gauges.iter().zip(counts) {
            g.set(*n as f64);
        }
    }
}

/// Why a subscribers topic record was ignored. Never holds the record's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("key is not utf-8")]
    KeyNotUtf8,
    #[error("key is empty or longer than 64 bytes")]
    KeyLength,
    #[error("value is {0}")]
    Value(&'static str),
    #[error("unknown preference (expected subscribed, opted_out or not_subscribed)")]
    UnknownPreference,
}

/// A customer reference fit for logs: its last four characters when it has eight or more,
/// nothing of it otherwise.
pub fn mask_ref(customer_ref: &[u8]) -> String {
    let Ok(s) = std::str::from_utf8(customer_ref) else {
        return format!("<{} bytes, not utf-8>", customer_ref.len());
    };
    let n = s.chars().count();
    let keep = if n >= 8 { 4 } else { 0 };
    let mut out: String = "*".repeat(n - keep);
    out.extend(s.chars().skip(n - keep));
    out
}

/// The eligibility the intake checks: the table, and the follower keeping it current (it
/// stops when the last handle is dropped).
#[derive(Debug, Clone)]
pub struct Eligibility {
    table: Arc<Table>,
    _follower: Option<Arc<TableFollower>>,
}

impl Eligibility {
    /// A fixed table, followed by nothing.
    pub fn new(table: Table) -> Eligibility {
        Eligibility {
            table: Arc::new(table),
            _follower: None,
        }
    }

    /// Everyone subscribed: what an engine without `[eligibility]` does.
    pub fn everyone() -> Eligibility {
        Self::new(Table::new(DefaultPolicy::Subscribed))
    }

    /// `Err(reason)` (`opted_out`, `not_subscribed`) when the SMS is not to be sent.
    pub fn check(&self, customer_ref: &str) -> Result<(), &'static str> {
        self.table.check(customer_ref)
    }

    pub fn table(&self) -> &Table {
        &self.table
    }
}

/// How often the wait for the subscribers topic says it is still reading.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Loads the subscribers file and, when a topic is set, reads the topic to its end and
/// keeps following it. Returns once the table is complete, so that no debit is decided
/// against part of it.
pub async fn start(cfg: &Config) -> anyhow::Result<Eligibility> {
    let e = &cfg.eligibility;
    let table = Arc::new(Table::new(e.default));
    if let Some(path) = &e.subscribers_file {
        let mut errors = Vec::new();
        let entries = subscribers_file::read_file(path, &mut |r, p| table.set(r, p), &mut errors);
        if !errors.is_empty() {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!("eligibility.subscribers_file: {}", all.join("\n"));
        }
        info!(path = %path.display(), entries, overrides = table.len(), "subscribers file read");
    }
    let Some(topic) = &e.subscribers_topic else {
        return Ok(Eligibility {
            table,
            _follower: None,
        });
    };
    let follower = {
        let (t, name) = (table.clone(), topic.clone());
        let mut ignored = 0u64;
        TableFollower::start(&cfg.kafka, topic, move |key, value| {
            if let Err(problem) = t.apply(&key, value.as_deref()) {
                ignored += 1;
                // The first ones, then a reminder now and then: a wrong topic would flood.
                if ignored <= 100 || ignored.is_multiple_of(10_000) {
                    warn!(
                        topic = %name,
                        customer_ref = %mask_ref(&key),
                        %problem,
                        ignored,
                        "subscribers topic record ignored"
                    );
                }
            }
        })
        .with_context(|| format!("eligibility.subscribers_topic {topic}"))?
    };
    let started = tokio::time::Instant::now();
    {
        let caught_up = follower.wait_caught_up();
        tokio::pin!(caught_up);
        let mut progress = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                r = &mut caught_up => {
                    r.with_context(|| format!("eligibility.subscribers_topic {topic}"))?;
                    break;
                }
                _ = progress.tick() => info!(
                    topic,
                    records = follower.records_read(),
                    "still reading the subscribers topic; debits wait for it"
                ),
            }
        }
    }
    info!(
        topic,
        records = follower.records_read(),
        overrides = table.len(),
        ms = started.elapsed().as_millis() as u64,
        "subscribers topic read; following it"
    );
    Ok(Eligibility {
        table,
        _follower: Some(Arc::new(follower)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(p: &str) -> Vec<u8> {
        format!(r#"{{"preference":"{p}"}}"#).into_bytes()
    }

    #[test]
    fn the_default_policy_decides_for_unknown_customers() {
        let open = Table::new(DefaultPolicy::Subscribed);
        assert_eq!(open.check("cust-1"), Ok(()));
        let closed = Table::new(DefaultPolicy::NotSubscribed);
        assert_eq!(closed.check("cust-1"), Err("not_subscribed"));
        closed.set("cust-2", Preference::Subscribed);
        closed.set("cust-3", Preference::OptedOut);
        assert_eq!(closed.check("cust-2"), Ok(()));
        assert_eq!(closed.check("cust-3"), Err("opted_out"));
        assert_eq!(closed.check("cust-1"), Err("not_subscribed"));
    }

    #[test]
    fn preferences_equal_to_the_default_are_not_kept() {
        let t = Table::new(DefaultPolicy::Subscribed);
        t.set("cust-1", Preference::Subscribed);
        t.set("cust-2", Preference::OptedOut);
        t.set("cust-3", Preference::NotSubscribed);
        assert_eq!(t.len(), 2);
        assert_eq!(t.check("cust-3"), Err("not_subscribed"));
        t.set("cust-2", Preference::Subscribed);
        assert_eq!(t.len(), 1);
        assert_eq!(t.check("cust-2"), Ok(()));
        let counts = t.entries.read().expect("lock").counts;
        assert_eq!(counts, [0, 0, 1]);
    }

    #[test]
    fn topic_records_override_the_file_and_tombstones_restore_the_default() {
        let t = Table::new(DefaultPolicy::NotSubscribed);
        let file = b"customer_ref,preference\nc-1,subscribed\nc-2,subscribed\nc-3,opted_out\n";
        let mut errors = Vec::new();
        subscribers_file::read(&file[..], "s.csv", &mut |r, p| t.set(r, p), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(t.check("c-1"), Ok(()));

        t.apply(b"c-1", Some(&value("opted_out"))).expect("applied");
        assert_eq!(t.check("c-1"), Err("opted_out"), "the topic wins");
        t.apply(b"c-2", None).expect("tombstone");
        assert_eq!(t.check("c-2"), Err("not_subscribed"), "back to the default");
        t.apply(b"c-3", Some(&value("subscribed")))
            .expect("applied");
        assert_eq!(t.check("c-3"), Ok(()));
        t.apply(
            b"c-9",
            Some(br#"{"preference":"opted_out","at":"2026-01-01"}"#),
        )
        .expect("other fields are ignored");
        assert_eq!(t.check("c-9"), Err("opted_out"));
        t.apply(b"c-9", None).expect("tombstone");
        t.apply(b"c-9", None)
            .expect("a tombstone of an unknown customer");
        assert_eq!(t.check("c-9"), Err("not_subscribed"));
        assert_eq!(t.len(), 2, "c-1 opted out, c-3 subscribed");
    }

    #[test]
    fn malformed_topic_records_are_ignored() {
        let t = Table::new(DefaultPolicy::Subscribed);
        t.set("c-1", Preference::OptedOut);
        let cases: [(&[u8], &[u8], RecordProblem); 5] = [
            (b"c-1", b"subscribed", RecordProblem::Value("not json")),
            (
                b"c-1",
                br#"{"pref":"subscribed"}"#,
                RecordProblem::Value("no preference string"),
            ),
            (b"c-1", &value("yes"), RecordProblem::UnknownPreference),
            (b"\xff", &value("subscribed"), RecordProblem::KeyNotUtf8),
            (b"", &value("subscribed"), RecordProblem::KeyLength),
        ];
        for (key, v, problem) in cases {
            assert_eq!(t.apply(key, Some(v)), Err(problem));
        }
        assert_eq!(t.check("c-1"), Err("opted_out"), "unchanged");
    }

    #[test]
    fn references_are_masked_for_logs() {
        assert_eq!(mask_ref(b"cust-100234"), "*******0234");
        assert_eq!(mask_ref(b"c-1"), "***");
        assert_eq!(mask_ref(b"\xffab"), "<3 bytes, not utf-8>");
    }

    const BASE: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"
        [[carriers]]
        name = "a"
        address = "127.0.0.1:2775"
        system_id = "pigeon"
        password = "secret"
        [routing]
        default_route = ["a"]
    "#;

    #[test]
    fn the_section_is_read_checked_and_needs_a_restart_to_change() {
        let with = format!(
            "{BASE}\n[eligibility]\ndefault = \"not_subscribed\"\n\
             subscribers_topic = \"pigeon.subscribers\"\n"
        );
        let new = Config::from_toml(&with).expect("valid");
        assert_eq!(new.eligibility.default, DefaultPolicy::NotSubscribed);
        let old = Config::from_toml(BASE).expect("valid");
        assert_eq!(old.eligibility, EligibilityConfig::default());
        let errs = crate::reload::plan(&old, &new).expect_err("refused");
        assert_eq!(errs, ["eligibility: changes need a restart"]);

        let clash = with.replace("pigeon.subscribers", "pigeon.debits");
        let errs = Config::from_toml(&clash).expect_err("invalid").0;
        assert!(errs[0].contains("one of the engine's [topics]"), "{errs:?}");
        let bad = with.replace("default = \"not_subscribed\"", "default = \"opted_out\"");
        let errs = Config::from_toml(&bad).expect_err("invalid").0.join("\n");
        assert!(errs.contains("opted_out"), "{errs}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail error type
    fn the_environment_can_set_the_section() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pigeon.toml", BASE)?;
            jail.set_env("PIGEON_ELIGIBILITY__DEFAULT", "not_subscribed");
            let c = Config::load(std::path::Path::new("pigeon.toml")).map_err(|e| e.to_string())?;
            assert_eq!(c.eligibility.default, DefaultPolicy::NotSubscribed);
            Ok(())
        });
    }

    #[test]
    fn the_section_is_validated_with_every_error() {
        let cfg = EligibilityConfig {
            default: DefaultPolicy::NotSubscribed,
            subscribers_file: Some("/nonexistent/pigeon/subscribers.csv".into()),
            subscribers_topic: Some("bad topic!".into()),
        };
        let errs = cfg.validate();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("eligibility.subscribers_file"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("eligibility.subscribers_topic"),
            "{errs:?}"
        );
        assert!(EligibilityConfig::default().validate().is_empty());
    }
}
