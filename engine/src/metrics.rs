//! Every metric the engine emits, in one place. Labels are low-cardinality only (carrier,
//! state, reason, outcome, and a bind's slot number, bounded by the carrier's `binds`): never
//! a phone number, an event id or a message id.

use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Bucket bounds of every `*_seconds` histogram, the SMPP connector's too: 0.5 ms to 60 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds of the other histograms, counts per group commit.
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0,
];

/// How often the exporter folds the samples recorded since into its histograms (it keeps
/// them until then, ~24 bytes each).
const UPKEEP: Duration = Duration::from_secs(1);

/// The Prometheus exporter as the engine installs it. Histograms are exported as
/// histograms with fixed buckets rather than as the exporter's default summaries: a summary
/// keeps a quantile sketch of up to 256 KiB per bucket of its rolling window (~18 MB for the
/// engine's histograms at load), cannot be aggregated across engines, and forgets what came
/// before its window; buckets are a few counters each, and a scraper gets quantiles from
/// them as from any Prometheus histogram (`docs/adr/0007-metrics-histograms.md`).
pub fn exporter() -> Result<PrometheusBuilder, BuildError> {
    Ok(PrometheusBuilder::new()
        .set_buckets(COUNT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .upkeep_timeout(UPKEEP))
}

pub fn events_consumed(n: u64) {
    counter!("pigeon_events_consumed_total").increment(n);
}

pub fn event_rejected(reason: &'static str) {
    counter!("pigeon_events_rejected_total", "reason" => reason).increment(1);
}

pub fn notification_skipped(reason: &'static str) {
    counter!("pigeon_notifications_skipped_total", "reason" => reason).increment(1);
}

/// `n` statuses in `state` acknowledged by the broker.
pub fn statuses_published(state: &'static str, n: u64) {
    counter!("pigeon_statuses_published_total", "state" => state).increment(n);
}

pub fn status_publish_failed() {
    counter!("pigeon_status_publish_failures_total").increment(1);
}

pub fn submit(carrier: &str, outcome: &'static str, segments: u64) {
    submitted(carrier, outcome).increment(segments);
}

/// The handle of `carrier`'s segments counter for `outcome` (kept by a shard for the usual
/// outcome: a lookup by name allocates the carrier's label).
pub fn submitted(carrier: &str, outcome: &'static str) -> Counter {
    counter!("pigeon_segments_submitted_total", "carrier" => carrier.to_owned(), "outcome" => outcome)
}

/// A segment submitted again after `outcome` (`not_sent`, `rejected`).
pub fn submit_retry(carrier: &str, outcome: &'static str) {
    counter!("pigeon_submit_retries_total", "carrier" => carrier.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A notification moved from `carrier` to the next carrier of its route.
pub fn handed_over(carrier: &str, reason: &'static str) {
    counter!("pigeon_handovers_total", "carrier" => carrier.to_owned(), "reason" => reason)
        .increment(1);
}

/// The handle of `carrier`'s circuit breaker state gauge (see [`set_breaker_state`]).
pub fn breaker_gauge(carrier: &str) -> Gauge {
    gauge!("pigeon_carrier_breaker_state", "carrier" => carrier.to_owned())
}

/// Sets a breaker state gauge: 0 closed, 1 half-open, 2 open.
pub fn set_breaker_state(gauge: &Gauge, state: &'static str) {
    let v = match state {
        "closed" => 0.0,
        "half_open" => 1.0,
        _ => 2.0,
    };
    gauge.set(v);
}

/// `n` receipts of `carrier` with this outcome (counted per batch, not per receipt).
pub fn receipts(carrier: &str, outcome: &'static str, n: u64) {
    if n > 0 {
        counter!("pigeon_receipts_total", "carrier" => carrier.to_owned(), "outcome" => outcome)
            .increment(n);
    }
}

/// Relayed receipts held for another try (`relay.rs`): nothing on this instance awaited
/// them when read.
pub fn relay_held(n: usize) {
    gauge!("pigeon_relay_receipts_held").set(n as f64);
}

pub fn receipts_awaited(n: usize) {
    gauge!("pigeon_receipts_awaited").set(n as f64);
}

/// Receipts waiting for their acceptance (a count that stays up points at receipts whose
/// ids the engine cannot match: a carrier's id form, say).
pub fn receipts_parked(n: usize) {
    gauge!("pigeon_receipts_parked").set(n as f64);
}

/// Time the source spent waiting for the pipeline to take a batch (backpressure).
pub fn source_blocked(micros: u64) {
    counter!("pigeon_source_blocked_microseconds_total").increment(micros);
}

pub fn offsets_committed(partitions: usize) {
    counter!("pigeon_offset_commits_total").increment(partitions as u64);
}

/// The debit partitions this instance holds, and their share of the topic's (with carrier
/// rates shared by partitions, `engine.rate_share`).
pub fn partitions_held(held: usize, share: f64) {
    gauge!("pigeon_partitions_held").set(held as f64);
    gauge!("pigeon_partitions_share").set(share);
}

/// The rate this instance sends `carrier` at, in segments/s: its `max_segments_per_second`,
/// or its share of it (`engine.rate_share`).
pub fn carrier_rate(carrier: &str, segments_per_second: u32) {
    gauge!("pigeon_carrier_rate_segments_per_second", "carrier" => carrier.to_owned())
        .set(f64::from(segments_per_second));
}

pub fn carrier_binds(carrier: &str, up: usize) {
    gauge!("pigeon_carrier_binds_up", "carrier" => carrier.to_owned()).set(up as f64);
}

/// Seconds from a record's Kafka timestamp (set by its producer) to the engine taking it from
/// the consumer: the producer's linger, the broker and the fetch. Across machines it includes
/// their clock difference. A handle, registered once: a record per debit costs no lookup.
pub fn broker_hop() -> Histogram {
    histogram!("pigeon_broker_hop_seconds")
}

/// Seconds from the engine taking a record from the consumer to a submit of its notification
/// going to a bind (after its `submitting` mark): the engine's own share of the latency. A
/// handle, registered once.
pub fn consumed_to_submit() -> Histogram {
    histogram!("pigeon_consumed_to_submit_seconds")
}

/// The handle of the histogram of seconds from a debit's `occurred_at` to a carrier
/// accepting its notification.
pub fn debit_to_accept() -> Histogram {
    histogram!("pigeon_debit_to_accept_seconds")
}

/// The AIMD rate allowed to bind slot `bind` of `carrier`, in segments/s: a handle, registered
/// once per slot so that updating it allocates nothing.
pub fn bind_rate(carrier: &str, bind: usize) -> Gauge {
    gauge!("pigeon_bind_rate_segments_per_second", "carrier" => carrier.to_owned(), "bind" => bind.to_string())
}

/// Multiplicative decreases of bind slot `bind` of `carrier` after a throttling answer.
pub fn flow_decreases(carrier: &str, bind: usize) -> Counter {
    counter!("pigeon_bind_rate_decreases_total", "carrier" => carrier.to_owned(), "bind" => bind.to_string())
}

/// A consumed record whose event id the store already knew (`resend_flagged`,
/// `republished`).
pub fn replayed(what: &'static str) {
    counter!("pigeon_records_replayed_total", "what" => what).increment(1);
}

/// A status API lookup asked of the deployment's other instances (`api.peers`): `found`,
/// `not_found` (every peer answered), `unavailable` (a peer could not be asked).
pub fn peer_lookup(outcome: &'static str) {
    counter!("pigeon_api_peer_lookups_total", "outcome" => outcome).increment(1);
}

/// One group of store writes, with how many changes it carried.
pub fn store_commit(changes: usize) {
    histogram!("pigeon_store_commit_changes").record(changes as f64);
}

/// One group commit of the store's writer: requests folded into it, and the keys and bytes
/// its batch wrote (nothing when it wrote nothing).
pub fn store_group(requests: usize, written: Option<(u64, u64)>) {
    counter!("pigeon_store_requests_total").increment(requests as u64);
    histogram!("pigeon_store_group_requests").record(requests as f64);
    if let Some((keys, bytes)) = written {
        counter!("pigeon_store_batches_total").increment(1);
        counter!("pigeon_store_keys_written_total").increment(keys);
        counter!("pigeon_store_bytes_written_total").increment(bytes);
    }
}

/// Time one group commit took in the writer: folding its requests into the records they
/// change (`fold`), and encoding and committing them to the journal and memtables (`write`).
pub fn store_group_time(fold: std::time::Duration, write: std::time::Duration) {
    histogram!("pigeon_store_group_seconds", "phase" => "fold").record(fold.as_secs_f64());
    histogram!("pigeon_store_group_seconds", "phase" => "write").record(write.as_secs_f64());
}

/// One persist of the journal by the store's sync thread (for every group written since
/// the previous one), and whether it synced to disk.
pub fn store_sync(took: std::time::Duration, fsync: bool) {
    histogram!("pigeon_store_group_seconds", "phase" => "sync").record(took.as_secs_f64());
    if fsync {
        counter!("pigeon_store_fsyncs_total").increment(1);
    }
}

/// How long a claim or a commit waited for the store, from asking to the answer (queue,
/// group commit, and the caller's thread picking the answer up).
pub fn store_wait(op: &'static str, waited: std::time::Duration) {
    store_waits(op).record(waited.as_secs_f64());
}

/// The handle of the store wait histogram of `op` (kept where it is recorded per
/// notification).
pub fn store_waits(op: &'static str) -> Histogram {
    histogram!("pigeon_store_wait_seconds", "op" => op)
}

/// The store's staged records (open, not indexed yet) after a group commit, and how many
/// the group indexed as open because they were staged for `STAGE_FOR` without ending.
pub fn store_staged(staged: usize, indexed_open: u64) {
    gauge!("pigeon_store_staged_records").set(staged as f64);
    counter!("pigeon_store_indexed_open_total").increment(indexed_open);
}

/// The store's memory: bytes in fjall's memtables and in its block cache.
pub fn store_memory(memtables: u64, block_cache: u64) {
    gauge!("pigeon_store_memtable_bytes").set(memtables as f64);
    gauge!("pigeon_store_block_cache_bytes").set(block_cache as f64);
}

/// Keys a compaction dropped as expired from `keyspace` (`receipts`, `records`,
/// `by_transaction`; `store/ttl.rs`), counted once per compaction.
pub fn store_expired(keyspace: &'static str, keys: u64) {
    if keys > 0 {
        counter!("pigeon_store_expired_total", "keyspace" => keyspace).increment(keys);
    }
}

/// Customers whose known preference (`subscribed`, `opted_out`, `not_subscribed`) differs
/// from `eligibility.default`: a handle per preference.
pub fn eligibility_overrides(preference: &'static str) -> Gauge {
    gauge!("pigeon_eligibility_overrides", "preference" => preference)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` that start with `prefix`, each as (the rest of its name and
    /// labels, value).
    fn series<'a>(text: &'a str, prefix: &str) -> Vec<(&'a str, &'a str)> {
        (text.lines())
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| l.rsplit_once(' '))
            .collect()
    }

    #[test]
    fn histograms_are_exported_as_buckets_not_quantiles() {
        let recorder = exporter().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let hop = broker_hop();
            hop.record(0.004);
            hop.record(0.004);
            hop.record(0.25);
            store_commit(3);
        });
        let text = handle.render();
        assert!(!text.contains("quantile"), "{text}");
        let hop = series(&text, "pigeon_broker_hop_seconds_bucket");
        assert_eq!(hop.len(), SECONDS_BUCKETS.len() + 1, "{text}");
        assert!(hop.contains(&("{le=\"0.003\"}", "0")), "{hop:?}");
        assert!(hop.contains(&("{le=\"0.005\"}", "2")), "{hop:?}");
        assert!(hop.contains(&("{le=\"0.2\"}", "2")), "{hop:?}");
        assert!(hop.contains(&("{le=\"0.3\"}", "3")), "{hop:?}");
        assert!(hop.contains(&("{le=\"+Inf\"}", "3")), "{hop:?}");
        let changes = series(&text, "pigeon_store_commit_changes_bucket");
        assert_eq!(changes.len(), COUNT_BUCKETS.len() + 1, "{text}");
        assert!(changes.contains(&("{le=\"2\"}", "0")), "{changes:?}");
        assert!(changes.contains(&("{le=\"4\"}", "1")), "{changes:?}");
    }
}
