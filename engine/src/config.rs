//! Engine configuration: a TOML file with environment overrides, validated into typed values.
//!
//! The field docs are the operator docs (`docs/configuration.md` mirrors them). Every key has
//! a default except the broker address and the carriers. Environment variables override the
//! file: `PIGEON_KAFKA__BROKERS=host:9092` sets `kafka.brokers` (double underscore for a dot).

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use pigeon_kafka::KafkaConfig;
use serde::{Deserialize, Serialize};

use crate::template::Template;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub topics: Topics,
    #[serde(default)]
    pub engine: EngineConfig,
    /// Carriers by name, in the order they are tried when a route names several.
    #[serde(default)]
    pub carriers: Vec<CarrierConfig>,
    pub routing: RoutingConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The HTTP status and admin API (`docs/api.md`).
    #[serde(default)]
    pub api: crate::api::ApiConfig,
    /// The durable store.
    #[serde(default)]
    pub store: crate::store::StoreOptions,
    /// Who gets debit SMS: subscriber preferences and the default policy.
    #[serde(default)]
    pub eligibility: crate::eligibility::EligibilityConfig,
    /// Receipts relayed between instances (`relay.rs`); off unless a topic is set.
    #[serde(default)]
    pub relay: crate::relay::RelayConfig,
    /// Handover marks on the debit partitions, for instances lost without handing their
    /// partitions over; off unless a topic is set.
    #[serde(default)]
    pub handover: HandoverSection,
}

/// `[handover]`: what the next owner of a debit partition learns of a lost owner
/// (`pigeon_kafka::handover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverSection {
    /// The topic of the marks, with at least as many partitions as the debit topic; unset:
    /// no marks (one instance, or debits sent again unflagged after the loss of an instance
    /// of several).
    #[serde(default)]
    pub topic: Option<String>,
    /// How many records past the highest consumed a mark reaches. After an instance is lost,
    /// the next owner of each of its partitions sends up to this many more records flagged
    /// `possible_duplicate` than the lost one may have sent; a smaller lease means more marks
    /// (one per half lease consumed per partition).
    #[serde(default = "d_lease_records")]
    pub lease_records: u32,
}

fn d_lease_records() -> u32 {
    2_048
}

impl Default for HandoverSection {
    fn default() -> Self {
        HandoverSection {
            topic: None,
            lease_records: d_lease_records(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Debit events (input).
    #[serde(default = "d_debits")]
    pub debits: String,
    /// Status events (output), keyed by event id.
    #[serde(default = "d_statuses")]
    pub statuses: String,
    /// Undecodable or invalid debit events, with the reason in the record headers.
    #[serde(default = "d_dead_letter")]
    pub dead_letter: String,
}

fn d_debits() -> String {
    "pigeon.debits".into()
}
fn d_statuses() -> String {
    "pigeon.statuses".into()
}
fn d_dead_letter() -> String {
    "pigeon.dead-letter".into()
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            debits: d_debits(),
            statuses: d_statuses(),
            dead_letter: d_dead_letter(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Records taken from Kafka per batch at most.
    #[serde(default = "d_batch_max")]
    pub batch_max: usize,
    /// How long the source waits to fill a batch after its first record. 0 takes what the
    /// consumer already holds (a fetch's records arrive together); batches still grow by
    /// themselves while the intake works on the one before.
    #[serde(default = "d_batch_linger_ms")]
    pub batch_linger_ms: u64,
    /// Capacity of each actor's mailbox, in batches.
    #[serde(default = "d_mailbox")]
    pub mailbox_capacity: usize,
    /// Worker threads (actix arbiters) for carrier shards; 0 means one per core.
    #[serde(default)]
    pub arbiters: usize,
    /// How often done offsets are committed.
    #[serde(default = "d_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// On shutdown, how long to wait for in-flight work and outstanding receipts.
    #[serde(default = "d_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// How long an accepted message waits for its receipt before it is left unconfirmed.
    #[serde(default = "d_receipt_timeout_ms")]
    pub receipt_timeout_ms: u64,
    /// After a crash, a notification that was being written to a carrier with no answer
    /// recorded is `ambiguous`: it waits this long, then goes again flagged
    /// `possible_duplicate`.
    #[serde(default = "d_ambiguous_wait_ms")]
    pub ambiguous_wait_ms: u64,
    /// Largest debit event accepted, in bytes.
    #[serde(default = "d_max_event_bytes")]
    pub max_event_bytes: usize,
    /// How long after the debit its SMS is still worth sending. An event older than this
    /// when consumed is skipped (`stale_event`); a notification no carrier accepted within
    /// it ends `expired` and is never sent late.
    #[serde(default = "d_validity_ms")]
    pub validity_ms: u64,
    /// How long a notification waits for a bind of its carrier before it moves to the next
    /// carrier of its route. New notifications skip a carrier with no bind up at once.
    #[serde(default = "d_failover_after_ms")]
    pub failover_after_ms: u64,
    /// Debit notifications go ahead of other classes (events with a `class` other than
    /// `debit`) waiting for the same carrier.
    #[serde(default)]
    pub priority_lanes: bool,
    /// Whose each carrier's `max_segments_per_second` is: this instance's own, or the whole
    /// deployment's, shared by its instances in proportion to the debit partitions each
    /// holds.
    #[serde(default)]
    pub rate_share: RateShare,
}

/// Whose a carrier's rate is (`engine.rate_share`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateShare {
    /// Each instance may send at the carrier's whole rate.
    #[default]
    Instance,
    /// The rate is the deployment's (the carrier account's): each instance sends at the
    /// share of it that its debit partitions are of the topic's, changed at each rebalance,
    /// so that the instances never send more than the account allows together and the
    /// survivors of an instance lost take its share with its partitions.
    Partitions,
}

impl RateShare {
    /// The rate an instance holding `share` (0 to 1) of the debit partitions may send at,
    /// out of `rate`: at least one segment a second (what a notification begun before its
    /// partitions went elsewhere may still need, a receipt failover say), at most `rate`.
    pub fn rate(self, rate: u32, share: f64) -> u32 {
        match self {
            RateShare::Instance => rate,
            RateShare::Partitions => {
                let shared = (f64::from(rate) * share.clamp(0.0, 1.0)).round() as u32;
                shared.clamp(1, rate.max(1))
            }
        }
    }
}

fn d_batch_max() -> usize {
    512
}
fn d_batch_linger_ms() -> u64 {
    0
}
fn d_mailbox() -> usize {
    16
}
fn d_commit_interval_ms() -> u64 {
    1_000
}
fn d_drain_timeout_ms() -> u64 {
    30_000
}
fn d_receipt_timeout_ms() -> u64 {
    48 * 3_600 * 1_000
}
fn d_max_event_bytes() -> usize {
    4_096
}
fn d_validity_ms() -> u64 {
    600_000
}
fn d_failover_after_ms() -> u64 {
    2_000
}
fn d_ambiguous_wait_ms() -> u64 {
    30_000
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_max: d_batch_max(),
            batch_linger_ms: d_batch_linger_ms(),
            mailbox_capacity: d_mailbox(),
            arbiters: 0,
            commit_interval_ms: d_commit_interval_ms(),
            drain_timeout_ms: d_drain_timeout_ms(),
            receipt_timeout_ms: d_receipt_timeout_ms(),
            ambiguous_wait_ms: d_ambiguous_wait_ms(),
            max_event_bytes: d_max_event_bytes(),
            validity_ms: d_validity_ms(),
            failover_after_ms: d_failover_after_ms(),
            priority_lanes: false,
            rate_share: RateShare::Instance,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// Name used in routes, statuses and metrics.
    pub name: String,
    /// SMSC address, `host:port`.
    pub address: String,
    pub system_id: String,
    /// Never logged.
    pub password: String,
    #[serde(default)]
    pub system_type: String,
    /// SMPP address_range announced in the bind (some carriers route receipts by it).
    #[serde(default)]
    pub address_range: String,
    /// `"3.4"` (default) or `"5.0"`, as announced in the bind.
    #[serde(default)]
    pub smpp_version: SmppVersion,
    /// TLS to the SMSC; absent means plain TCP.
    #[serde(default)]
    pub tls: Option<CarrierTls>,
    /// Alphabet for texts that do not fit GSM 03.38: `gsm7` (default: GSM where every
    /// character fits, else UCS-2), `latin1` (GSM, else ISO-8859-1 where it fits, else UCS-2),
    /// `ucs2` (always UCS-2).
    #[serde(default)]
    pub alphabet: AlphabetConfig,
    /// How long messages are sent: `udh8` (default), `udh16`, `sar` (TLVs), `message_payload`
    /// (one submit, the carrier splits).
    #[serde(default)]
    pub long_messages: LongMessages,
    /// Sender shown to the customer: an alphanumeric name or a number.
    #[serde(default = "d_source_addr")]
    pub source_addr: String,
    /// `transceiver` (default): each bind submits and receives receipts; `transmitter`: submit
    /// only (no receipts expected on these binds); `transmitter_receiver`: each bind is a
    /// transmitter plus a receiver for the receipts, for carriers that want the pair.
    #[serde(default)]
    pub bind_type: BindType,
    /// Simultaneous binds (sessions) to open; never more than the carrier allows. With
    /// `transmitter_receiver`, each counts as two sessions at the carrier.
    #[serde(default = "d_binds")]
    pub binds: usize,
    /// Unanswered submit_sm per bind at most.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Segments per second the carrier allows this account, over all binds.
    #[serde(default = "d_max_sps")]
    pub max_segments_per_second: u32,
    /// Per-bind AIMD flow control (default true): each bind starts at its share of
    /// `max_segments_per_second`, slows down (×0.7) when the carrier throttles (0x58) or says
    /// its queue is full (0x14), creeps back up on clean traffic (+1 % of the share per
    /// second), and keeps no more submits unanswered than its rate and latency need. The
    /// carrier's rate stays the ceiling either way; `false` submits at that rate on every bind.
    #[serde(default = "d_flow_control")]
    pub flow_control: bool,
    /// Tuning of the per-bind AIMD when `flow_control` is on.
    #[serde(default)]
    pub flow_tuning: FlowTuning,
    /// How long to wait for a submit_sm_resp before the submit is ambiguous.
    #[serde(default = "d_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Idle time after which an enquire_link is sent.
    #[serde(default = "d_enquire_link_ms")]
    pub enquire_link_interval_ms: u64,
    /// How long a bind may take.
    #[serde(default = "d_bind_timeout_ms")]
    pub bind_timeout_ms: u64,
    /// Longest wait between two attempts to bind again after a bind was lost or refused
    /// (the first is 100 ms, doubling): at most this long passes between a carrier coming
    /// back and its binds being up again.
    #[serde(default = "d_reconnect_backoff_max_ms")]
    pub reconnect_backoff_max_ms: u64,
    /// Consecutive carrier failures (transient errors, submits without answer) that open
    /// the carrier's circuit breaker; losing every bind opens it too.
    #[serde(default = "d_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker stays open before one probe may go; doubles after each
    /// failed probe, up to 60 s.
    #[serde(default = "d_breaker_open_ms")]
    pub breaker_open_ms: u64,
    /// Further attempts of a segment the carrier throttled, found its queue full for, or
    /// refused with a transient error; also of a segment a closing bind never wrote.
    #[serde(default = "d_max_submit_retries")]
    pub max_submit_retries: u32,
    /// Backoff before the first retry; doubles each retry, with jitter.
    #[serde(default = "d_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Longest backoff between retries.
    #[serde(default = "d_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: u64,
    /// How this carrier's receipt ids relate to its submit_sm_resp ids: `as_is` (default;
    /// after case and leading zeros are normalised), `auto` (learned from the first unmatched
    /// receipts),
    /// `hex_to_decimal` (responses in hex, receipts in decimal), `decimal_to_hex`.
    #[serde(default)]
    pub receipt_id_form: ReceiptIdForm,
}

/// How a bind's rate reacts to throttling (`[carriers.flow_tuning]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowTuning {
    /// Fraction of the bind's share regained per second of clean traffic (0 < x ≤ 1).
    pub increase_per_sec: f64,
    /// Factor applied to the bind's rate on a throttling or queue-full answer (0 < x < 1).
    pub decrease_factor: f64,
    /// The bind's rate never drops below this many segments/s (nor below its share, if
    /// that is lower).
    pub floor_per_sec: f64,
    /// At most one decrease per this interval (or per smoothed latency, if longer).
    pub decrease_interval_ms: u64,
}

impl Default for FlowTuning {
    fn default() -> Self {
        let d = crate::flow::FlowConfig::default();
        FlowTuning {
            increase_per_sec: d.increase_per_sec,
            decrease_factor: d.decrease_factor,
            floor_per_sec: d.floor_per_sec,
            decrease_interval_ms: u64::try_from(d.decrease_interval.as_millis()).unwrap_or(200),
        }
    }
}

impl FlowTuning {
    /// The flow configuration of one bind with window `max_window`.
    pub fn flow_config(&self, max_window: usize) -> crate::flow::FlowConfig {
        crate::flow::FlowConfig {
            increase_per_sec: self.increase_per_sec,
            decrease_factor: self.decrease_factor,
            floor_per_sec: self.floor_per_sec,
            decrease_interval: std::time::Duration::from_millis(self.decrease_interval_ms),
            max_window,
        }
    }

    fn errors(&self, at: &str) -> Vec<String> {
        let mut errs = Vec::new();
        if !(self.increase_per_sec > 0.0 && self.increase_per_sec <= 1.0) {
            errs.push(format!(
                "{at}.flow_tuning.increase_per_sec: must be above 0 and at most 1, got {}",
                self.increase_per_sec
            ));
        }
        if !(self.decrease_factor > 0.0 && self.decrease_factor < 1.0) {
            errs.push(format!(
                "{at}.flow_tuning.decrease_factor: must be between 0 and 1 (exclusive), got {}",
                self.decrease_factor
            ));
        }
        if !(self.floor_per_sec.is_finite() && self.floor_per_sec >= 0.0) {
            errs.push(format!(
                "{at}.flow_tuning.floor_per_sec: must be 0 or more, got {}",
                self.floor_per_sec
            ));
        }
        if self.decrease_interval_ms == 0 || self.decrease_interval_ms > 60_000 {
            errs.push(format!(
                "{at}.flow_tuning.decrease_interval_ms: must be 1..=60000, got {}",
                self.decrease_interval_ms
            ));
        }
        errs
    }
}

/// Alphabet choice of a carrier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphabetConfig {
    #[default]
    Gsm7,
    Latin1,
    Ucs2,
}

/// How a carrier takes long messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongMessages {
    #[default]
    Udh8,
    Udh16,
    Sar,
    MessagePayload,
}

impl CarrierConfig {
    /// How texts are encoded and split for this carrier.
    pub fn segment_options(&self) -> pigeon_smpp::encoding::SegmentOptions {
        use pigeon_smpp::encoding::{Alphabet, Concatenation, SegmentOptions};
        SegmentOptions {
            alphabet: match self.alphabet {
                AlphabetConfig::Gsm7 => Alphabet::Gsm7,
                AlphabetConfig::Latin1 => Alphabet::Latin1,
                AlphabetConfig::Ucs2 => Alphabet::Ucs2Only,
            },
            concatenation: match self.long_messages {
                LongMessages::Udh8 => Concatenation::Udh8,
                LongMessages::Udh16 => Concatenation::Udh16,
                LongMessages::Sar => Concatenation::Sar,
                LongMessages::MessagePayload => Concatenation::MessagePayload,
            },
        }
    }
}

/// SMPP interface version announced in binds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmppVersion {
    #[default]
    #[serde(rename = "3.4")]
    V34,
    #[serde(rename = "5.0")]
    V50,
}

/// TLS to a carrier's SMSC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierTls {
    /// Name the SMSC's certificate must be valid for.
    pub server_name: String,
    /// PEM file of CA certificates to trust; absent trusts the bundled Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate. Dangerous: for test SMSCs with self-signed certificates only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Which SMPP binds are opened to a carrier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindType {
    #[default]
    Transceiver,
    Transmitter,
    TransmitterReceiver,
}

/// How a carrier's receipt ids relate to its submit response ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptIdForm {
    /// Learned from the first unmatched receipts.
    Auto,
    #[default]
    AsIs,
    HexToDecimal,
    DecimalToHex,
}

impl ReceiptIdForm {
    pub fn rule(self) -> crate::matcher::IdRule {
        use crate::matcher::IdRule;
        use pigeon_smpp::receipt::IdForm;
        match self {
            ReceiptIdForm::Auto => IdRule::Learn,
            ReceiptIdForm::AsIs => IdRule::Fixed(IdForm::AsIs),
            ReceiptIdForm::HexToDecimal => IdRule::Fixed(IdForm::HexToDecimal),
            ReceiptIdForm::DecimalToHex => IdRule::Fixed(IdForm::DecimalToHex),
        }
    }
}

impl std::fmt::Debug for CarrierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierConfig")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("system_id", &self.system_id)
            .field("password", &"***")
            .field("binds", &self.binds)
            .field("window", &self.window)
            .field("max_segments_per_second", &self.max_segments_per_second)
            .field("flow_control", &self.flow_control)
            .finish_non_exhaustive()
    }
}

fn d_source_addr() -> String {
    "Pigeon".into()
}
fn d_binds() -> usize {
    1
}
fn d_window() -> usize {
    64
}
fn d_max_sps() -> u32 {
    100
}
fn d_flow_control() -> bool {
    true
}
fn d_response_timeout_ms() -> u64 {
    10_000
}
fn d_enquire_link_ms() -> u64 {
    30_000
}
fn d_bind_timeout_ms() -> u64 {
    10_000
}
fn d_reconnect_backoff_max_ms() -> u64 {
    10_000
}
fn d_breaker_failures() -> u32 {
    20
}
fn d_breaker_open_ms() -> u64 {
    5_000
}
fn d_max_submit_retries() -> u32 {
    5
}
fn d_retry_backoff_ms() -> u64 {
    200
}
fn d_retry_backoff_max_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Route for destinations whose operator is unknown; empty means such events are
    /// skipped with reason `no_route`.
    #[serde(default)]
    pub default_route: RouteConfig,
    /// Operator name -> its route: carriers in order of preference (`["a", "b"]`), or tiers
    /// of weighted carriers (`[["a=3", "b=1"], ["c"]]`: a and b share traffic 3:1, c is the
    /// fallback when neither is up).
    #[serde(default)]
    pub operators: BTreeMap<String, RouteConfig>,
    /// E.164 prefix (with `+`) -> operator name; the longest matching prefix wins.
    #[serde(default)]
    pub prefixes: BTreeMap<String, String>,
    /// CSV files of `prefix,operator` lines (millions of prefixes are fine).
    #[serde(default)]
    pub prefix_files: Vec<std::path::PathBuf>,
    /// CSV files of `number,operator` lines: ported numbers, which win over prefixes.
    #[serde(default)]
    pub porting_files: Vec<std::path::PathBuf>,
    /// Operator name (or `"*"` for all others) -> milliseconds an accepted notification
    /// waits for its receipt before it is sent again through the next carrier of its
    /// route, flagged `possible_duplicate`. Off unless listed: it can cause a second SMS.
    #[serde(default)]
    pub receipt_failover_ms: BTreeMap<String, u64>,
}

/// A route as configured: ordered carriers, or tiers of weighted carriers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RouteConfig {
    Ordered(Vec<String>),
    Tiers(Vec<Vec<String>>),
}

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig::Ordered(Vec::new())
    }
}

impl RouteConfig {
    pub fn is_empty(&self) -> bool {
        match self {
            RouteConfig::Ordered(v) => v.is_empty(),
            RouteConfig::Tiers(t) => t.iter().all(Vec::is_empty),
        }
    }

    /// Tiers of (carrier, weight); `name=weight` entries carry a weight, others weigh 1.
    pub fn spec(&self) -> Result<crate::routing::RouteSpec, String> {
        let entry = |e: &String| -> Result<(String, u32), String> {
            match e.split_once('=') {
                None => Ok((e.clone(), 1)),
                Some((name, w)) => match w.trim().parse::<u32>() {
                    Ok(w) if w > 0 => Ok((name.trim().to_owned(), w)),
                    _ => Err(format!(
                        "{e:?}: the weight after '=' must be a whole number above 0"
                    )),
                },
            }
        };
        match self {
            RouteConfig::Ordered(v) => v.iter().map(|e| entry(e).map(|x| vec![x])).collect(),
            RouteConfig::Tiers(t) => t
                .iter()
                .map(|tier| tier.iter().map(entry).collect())
                .collect(),
        }
    }
}

impl RoutingConfig {
    /// The router's input, with every malformed weight listed.
    pub fn spec(
        &self,
        carriers: &[CarrierConfig],
    ) -> Result<crate::routing::RouterSpec, Vec<String>> {
        let mut errs = Vec::new();
        let mut route = |at: String, r: &RouteConfig| match r.spec() {
            Ok(s) => s,
            Err(e) => {
                errs.push(format!("{at}: {e}"));
                Vec::new()
            }
        };
        let operators = self
            .operators
            .iter()
            .map(|(op, r)| (op.clone(), route(format!("routing.operators.{op}"), r)))
            .collect();
        let default_route = (!self.default_route.is_empty())
            .then(|| route("routing.default_route".to_owned(), &self.default_route));
        let spec = crate::routing::RouterSpec {
            carriers: carriers.iter().map(|c| c.name.clone()).collect(),
            operators,
            default_route,
            prefixes: self
                .prefixes
                .iter()
                .map(|(p, o)| (p.clone(), o.clone()))
                .collect(),
            prefix_files: self.prefix_files.clone(),
            porting_files: self.porting_files.clone(),
            receipt_failover: self
                .receipt_failover_ms
                .iter()
                .map(|(op, ms)| (op.clone(), std::time::Duration::from_millis(*ms)))
                .collect(),
        };
        if errs.is_empty() {
            Ok(spec)
        } else {
            Err(errs)
        }
    }

    /// Builds the router, listing every error (names, prefixes, files).
    pub fn router(
        &self,
        carriers: &[CarrierConfig],
    ) -> Result<crate::routing::Router, Vec<String>> {
        crate::routing::Router::from_config(&self.spec(carriers)?)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Bank name shown in messages (`{bank}`).
    #[serde(default = "d_bank")]
    pub bank: String,
    /// Phone number customers call about a debit they did not make (`{support}`).
    #[serde(default = "d_support")]
    pub support: String,
    /// Locale used when an event's locale has no template.
    #[serde(default = "d_fallback_locale")]
    pub fallback_locale: String,
    /// Locale -> template; see `docs/configuration.md` for the placeholders. The built-in
    /// templates cover `en` and `zh-CN`; entries here add or replace.
    #[serde(default)]
    pub locales: BTreeMap<String, String>,
}

fn d_bank() -> String {
    "Pigeon Bank".into()
}
fn d_support() -> String {
    "+44 20 7946 0000".into()
}
fn d_fallback_locale() -> String {
    "en".into()
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            bank: d_bank(),
            support: d_support(),
            fallback_locale: d_fallback_locale(),
            locales: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus scrape address; empty disables the exporter.
    #[serde(default = "d_metrics_listen")]
    pub listen: String,
}

fn d_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: d_metrics_listen(),
        }
    }
}

/// Top-level sections, the only names environment overrides may start with.
const SECTIONS: &[&str] = &[
    "api",
    "relay",
    "handover",
    "store",
    "eligibility",
    "kafka",
    "topics",
    "engine",
    "carriers",
    "routing",
    "templates",
    "metrics",
];

/// Every problem found in a configuration, each on its own line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Reads `path`, applies `PIGEON_*` environment overrides, and validates the result.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::from_figment(Figment::new().merge(Toml::file_exact(path)))
    }

    /// Parses TOML text (no environment), then validates.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        let fig = Figment::new().merge(Toml::string(text));
        let cfg: Config = fig.extract().map_err(figment_errors)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn from_figment(fig: Figment) -> Result<Config, ConfigErrors> {
        // Only variables naming a section: others with the prefix (PIGEON_CONFIG, tools'
        // own settings) are not configuration.
        let env = Env::prefixed("PIGEON_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                SECTIONS.iter().any(|s| k.starts_with(&format!("{s}__")))
            })
            .split("__");
        let fig = fig.merge(env);
        let cfg: Config = fig.extract().map_err(figment_errors)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types cannot: references between sections, ranges, templates.
    /// Collects every error rather than stopping at the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        if self.kafka.brokers.trim().is_empty() {
            errs.push("kafka.brokers: must name at least one broker".to_owned());
        }
        if self.carriers.is_empty() {
            errs.push("carriers: at least one carrier is needed".to_owned());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.carriers.iter().enumerate() {
            let at = format!("carriers[{i}] ({})", c.name);
            if c.name.is_empty() {
                errs.push(format!("{at}.name: must not be empty"));
            }
            if !names.insert(c.name.as_str()) {
                errs.push(format!("{at}.name: duplicate carrier name"));
            }
            if c.address.parse::<std::net::SocketAddr>().is_err() && !c.address.contains(':') {
                errs.push(format!(
                    "{at}.address: expected host:port, got {:?}",
                    c.address
                ));
            }
            if c.binds == 0 {
                errs.push(format!("{at}.binds: must be at least 1"));
            }
            if c.window == 0 || c.window > 4_096 {
                errs.push(format!("{at}.window: must be 1..=4096, got {}", c.window));
            }
            if c.max_segments_per_second == 0 {
                errs.push(format!("{at}.max_segments_per_second: must be at least 1"));
            }
            if c.system_id.len() > 15 {
                errs.push(format!(
                    "{at}.system_id: at most 15 characters (SMPP limit)"
                ));
            }
            if c.password.len() > 8 {
                errs.push(format!(
                    "{at}.password: at most 8 characters (SMPP 3.4 limit)"
                ));
            }
            if c.source_addr.is_empty() || c.source_addr.len() > 20 {
                errs.push(format!("{at}.source_addr: must be 1..=20 characters"));
            }
            if c.address_range.len() > 40 {
                errs.push(format!(
                    "{at}.address_range: at most 40 characters (SMPP limit)"
                ));
            }
            if let Some(t) = &c.tls {
                if t.server_name.is_empty() {
                    errs.push(format!("{at}.tls.server_name: must not be empty"));
                }
                if let Some(f) = t.ca_file.as_ref().filter(|f| !f.exists()) {
                    errs.push(format!("{at}.tls.ca_file: {} does not exist", f.display()));
                }
            }
            if c.response_timeout_ms == 0 {
                errs.push(format!("{at}.response_timeout_ms: must be above 0"));
            }
            if !(100..=3_600_000).contains(&c.reconnect_backoff_max_ms) {
                errs.push(format!(
                    "{at}.reconnect_backoff_max_ms: must be 100..=3600000, got {}",
                    c.reconnect_backoff_max_ms
                ));
            }
            errs.extend(c.flow_tuning.errors(&at));
        }
        if let Err(e) = self.routing.router(&self.carriers) {
            errs.extend(e.into_iter().map(|e| format!("routing: {e}")));
        }
        for (locale, text) in &self.templates.locales {
            if let Err(e) = Template::parse(text) {
                errs.push(format!("templates.locales.{locale:?}: {e}"));
            }
        }
        errs.extend(self.api.validate());
        errs.extend(self.eligibility.validate());
        errs.extend(self.relay.validate());
        let ours = [
            &self.topics.debits,
            &self.topics.statuses,
            &self.topics.dead_letter,
        ];
        let others = [
            (
                "eligibility.subscribers_topic",
                &self.eligibility.subscribers_topic,
            ),
            ("relay.receipts_topic", &self.relay.receipts_topic),
            ("handover.topic", &self.handover.topic),
        ];
        for (i, (key, topic)) in others.iter().enumerate() {
            let Some(t) = topic.as_ref() else { continue };
            if ours.contains(&t) {
                errs.push(format!("{key}: {t:?} is one of the engine's [topics]"));
            }
            for (earlier, _) in others[..i].iter().filter(|(_, o)| o.as_ref() == Some(t)) {
                errs.push(format!("{key}: it is {earlier}"));
            }
        }
        if self
            .handover
            .topic
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            errs.push("handover.topic: must not be empty when set".to_owned());
        }
        if self.handover.lease_records < 2 {
            errs.push("handover.lease_records: must be at least 2".to_owned());
        }
        let e = &self.engine;
        if e.batch_max == 0 {
            errs.push("engine.batch_max: must be at least 1".to_owned());
        }
        if e.mailbox_capacity == 0 {
            errs.push("engine.mailbox_capacity: must be at least 1".to_owned());
        }
        if e.max_event_bytes < 256 {
            errs.push("engine.max_event_bytes: must be at least 256".to_owned());
        }
        let s = &self.store;
        let least = s.receipt_ttl_ms.max(e.validity_ms);
        if s.record_retention_ms != 0 && s.record_retention_ms < least {
            errs.push(format!(
                "store.record_retention_ms: must be 0 (forever) or at least {least} \
                 (store.receipt_ttl_ms and engine.validity_ms), got {}",
                s.record_retention_ms
            ));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            errs.push(format!(
                "metrics.listen: expected ip:port, got {:?}",
                self.metrics.listen
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

fn figment_errors(e: figment::Error) -> ConfigErrors {
    ConfigErrors(e.into_iter().map(|e| e.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"
        [[carriers]]
        name = "a"
        address = "127.0.0.1:2775"
        system_id = "pigeon"
        password = "secret"
        [routing]
        default_route = ["a"]
        operators = { uk = ["a"] }
        prefixes = { "+44" = "uk" }
    "#;

    #[test]
    fn a_minimal_file_gets_documented_defaults() {
        let c = Config::from_toml(GOOD).expect("valid");
        assert_eq!(c.topics.debits, "pigeon.debits");
        assert_eq!(c.carriers[0].window, 64);
        assert_eq!(c.engine.batch_max, 512);
        assert_eq!(c.kafka.group_id, "pigeon");
    }

    #[test]
    fn every_semantic_error_is_reported_at_once() {
        let bad = GOOD
            .replace(r#"default_route = ["a"]"#, r#"default_route = ["nope"]"#)
            .replace(r#""+44" = "uk""#, r#""44x" = "uk", "+33" = "mars""#)
            .replace(
                r#"password = "secret""#,
                "password = \"far-too-long\"\nwindow = 0",
            );
        let errs = Config::from_toml(&bad).expect_err("invalid").0;
        let all = errs.join("\n");
        assert!(all.contains("default_route"), "{all}");
        assert!(all.contains("44x"), "{all}");
        assert!(all.contains("mars"), "{all}");
        assert!(all.contains("password"), "{all}");
        assert!(all.contains("window"), "{all}");
        assert_eq!(errs.len(), 5, "{all}");
    }

    #[test]
    fn a_shared_rate_is_the_partitions_share_of_the_carrier_s_at_least_one_segment_a_second() {
        let c = Config::from_toml(GOOD).expect("valid");
        assert_eq!(c.engine.rate_share, RateShare::Instance);
        assert_eq!(
            RateShare::Instance.rate(400, 0.25),
            400,
            "the instance's own"
        );
        let c = Config::from_toml(&format!("{GOOD}\n[engine]\nrate_share = \"partitions\""))
            .expect("valid");
        let shared = c.engine.rate_share;
        assert_eq!(shared, RateShare::Partitions);
        assert_eq!(shared.rate(400, 1.0), 400);
        assert_eq!(shared.rate(400, 0.5), 200);
        assert_eq!(shared.rate(400, 1.0 / 3.0), 133);
        assert_eq!(shared.rate(400, 2.0 / 3.0), 267);
        assert_eq!(shared.rate(400, 0.0), 1, "no partition: one a second");
        assert_eq!(shared.rate(1, 0.1), 1);
        assert_eq!(shared.rate(400, 1.5), 400, "never above the carrier's");
        let bad = Config::from_toml(&format!("{GOOD}\n[engine]\nrate_share = \"carrier\""));
        assert!(bad.is_err(), "an unknown share is refused");
    }

    #[test]
    fn record_retention_is_forever_or_outlasts_receipt_keys_and_validity() {
        let c = Config::from_toml(GOOD).expect("valid");
        assert_eq!(c.store.record_retention_ms, 30 * 24 * 3_600 * 1_000);
        let with = |retention: u64, more: &str| {
            Config::from_toml(&format!(
                "{GOOD}\n[store]\nrecord_retention_ms = {retention}\n{more}"
            ))
        };
        assert!(with(0, "").is_ok(), "0 keeps records forever");
        let ttl = c.store.receipt_ttl_ms;
        assert!(with(ttl, "").is_ok());
        let errs = with(ttl - 1, "")
            .expect_err("below the receipt ttl")
            .0
            .join("\n");
        assert!(errs.contains("store.record_retention_ms"), "{errs}");
        let longer = format!("receipt_ttl_ms = 1000\n[engine]\nvalidity_ms = {}", ttl + 5);
        assert!(with(ttl + 4, &longer).is_err(), "below the validity");
        assert!(with(ttl + 5, &longer).is_ok());
    }

    #[test]
    fn the_relay_topic_is_a_topic_of_its_own_and_needs_the_instance_s_name() {
        let with = |relay: &str| Config::from_toml(&format!("{GOOD}\n[relay]\n{relay}"));
        assert!(!Config::from_toml(GOOD).expect("valid").relay.enabled());
        let on =
            with("receipts_topic = \"pigeon.receipts\"\ninstance = \"pigeon-0\"").expect("valid");
        assert!(on.relay.enabled());
        let unnamed = with("receipts_topic = \"pigeon.receipts\"").expect_err("no name");
        assert!(
            unnamed.0.join("\n").contains("relay.instance"),
            "{unnamed:?}"
        );
        let ours = with("receipts_topic = \"pigeon.statuses\"\ninstance = \"a\"")
            .expect_err("the status topic");
        assert_eq!(
            ours.0,
            ["relay.receipts_topic: \"pigeon.statuses\" is one of the engine's [topics]"]
        );
    }

    #[test]
    fn the_handover_topic_is_a_topic_of_its_own_with_a_lease_of_at_least_two() {
        let with = |h: &str| Config::from_toml(&format!("{GOOD}\n[handover]\n{h}"));
        let off = Config::from_toml(GOOD).expect("valid").handover;
        assert_eq!((off.topic, off.lease_records), (None, 2_048));
        let on = with("topic = \"pigeon.handover\"\nlease_records = 64").expect("valid");
        assert_eq!(on.handover.topic.as_deref(), Some("pigeon.handover"));
        assert_eq!(on.handover.lease_records, 64);
        let short = with("topic = \"pigeon.handover\"\nlease_records = 1").expect_err("short");
        assert_eq!(short.0, ["handover.lease_records: must be at least 2"]);
        let debits = with("topic = \"pigeon.debits\"").expect_err("the debit topic");
        assert_eq!(
            debits.0,
            ["handover.topic: \"pigeon.debits\" is one of the engine's [topics]"]
        );
        let shared = Config::from_toml(&format!(
            "{GOOD}\n[relay]\nreceipts_topic = \"x\"\ninstance = \"a\"\n[handover]\ntopic = \"x\""
        ))
        .expect_err("the relay's topic");
        assert_eq!(shared.0, ["handover.topic: it is relay.receipts_topic"]);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail error type
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pigeon.toml", GOOD)?;
            jail.set_env("PIGEON_KAFKA__BROKERS", "10.0.0.5:9092");
            jail.set_env("PIGEON_ENGINE__BATCH_MAX", "64");
            jail.set_env("PIGEON_CONFIG", "pigeon.toml");
            jail.set_env("PIGEON_TEST_BROKERS", "not configuration");
            let c = Config::load(Path::new("pigeon.toml")).map_err(|e| e.to_string())?;
            assert_eq!(c.kafka.brokers, "10.0.0.5:9092");
            assert_eq!(c.engine.batch_max, 64);
            assert_eq!(c.carriers[0].name, "a", "the rest comes from the file");
            Ok(())
        });
    }

    #[test]
    fn carrier_link_options_parse_and_are_checked() {
        let with = GOOD.replace(
            r#"password = "secret""#,
            "password = \"secret\"\nsmpp_version = \"5.0\"\naddress_range = \"^44\"\n\
             bind_type = \"transmitter_receiver\"\n\
             tls = { server_name = \"smsc.example\" }",
        );
        let c = Config::from_toml(&with).expect("valid");
        let a = &c.carriers[0];
        assert_eq!(a.smpp_version, SmppVersion::V50);
        assert_eq!(a.bind_type, BindType::TransmitterReceiver);
        assert_eq!(
            a.tls.as_ref().map(|t| t.server_name.as_str()),
            Some("smsc.example")
        );
        let bad = with.replace(
            "server_name = \"smsc.example\" }",
            "server_name = \"\", ca_file = \"/nonexistent.pem\" }",
        );
        let errs = Config::from_toml(&bad).expect_err("invalid").0.join("\n");
        assert!(
            errs.contains("tls.server_name") && errs.contains("tls.ca_file"),
            "{errs}"
        );
    }

    #[test]
    fn the_reconnect_backoff_is_capped_as_configured_and_checked() {
        let c = Config::from_toml(GOOD).expect("valid");
        assert_eq!(c.carriers[0].reconnect_backoff_max_ms, 10_000);
        let with = |ms: u64| {
            GOOD.replace(
                r#"password = "secret""#,
                &format!("password = \"secret\"\nreconnect_backoff_max_ms = {ms}"),
            )
        };
        let c = Config::from_toml(&with(2_500)).expect("valid");
        assert_eq!(c.carriers[0].reconnect_backoff_max_ms, 2_500);
        for bad in [99, 3_600_001] {
            let errs = Config::from_toml(&with(bad))
                .expect_err("invalid")
                .0
                .join("\n");
            assert!(errs.contains("reconnect_backoff_max_ms"), "{errs}");
        }
    }

    #[test]
    fn flow_tuning_is_configurable_and_checked() {
        let tuned = GOOD.replace(
            r#"password = "secret""#,
            "password = \"secret\"\nflow_tuning = { decrease_factor = 0.5, increase_per_sec = 0.05 }",
        );
        let c = Config::from_toml(&tuned).expect("valid");
        let f = c.carriers[0].flow_tuning.flow_config(7);
        assert_eq!(f.decrease_factor, 0.5);
        assert_eq!(f.increase_per_sec, 0.05);
        assert_eq!(f.max_window, 7);
        assert_eq!(
            f.floor_per_sec,
            crate::flow::FlowConfig::default().floor_per_sec,
            "keys not given keep their defaults"
        );
        let bad = GOOD.replace(
            r#"password = "secret""#,
            "password = \"secret\"\nflow_tuning = { decrease_factor = 1.5, \
             increase_per_sec = 0, floor_per_sec = -1, decrease_interval_ms = 0 }",
        );
        let errs = Config::from_toml(&bad).expect_err("invalid").0;
        assert_eq!(errs.len(), 4, "{errs:?}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = GOOD.replace("[routing]", "[routing]\ndefault_rout = []");
        let errs = Config::from_toml(&bad).expect_err("unknown field").0;
        assert!(errs.join(" ").contains("default_rout"), "{errs:?}");
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let c = Config::from_toml(GOOD).expect("valid");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
