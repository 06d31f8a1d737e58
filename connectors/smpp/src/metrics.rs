//! Every metric this crate records, in one place, with low-cardinality labels only.
//!
//! Role: name the counters and histograms of the SMPP layer and give the session task one
//! small function per event. Labels are fixed words (command, direction, outcome, reason) —
//! never a phone number, message id or system id.

use std::time::Duration;

/// Counter: PDUs read or written, labels `command` (snake_case SMPP name) and `direction`
/// (`rx` / `tx`).
pub const PDUS_TOTAL: &str = "pigeon_smpp_pdus_total";
/// Counter: submit results, label `outcome` (`accepted`, `rejected`, `timeout`, `not_sent`,
/// `lost`).
pub const SUBMIT_OUTCOMES_TOTAL: &str = "pigeon_smpp_submit_outcomes_total";
/// Histogram: seconds from writing a `submit_sm` to reading its response.
pub const SUBMIT_RESPONSE_SECONDS: &str = "pigeon_smpp_submit_response_seconds";
/// Counter: receipts seen, label `result` (`forwarded`, `unparsed`, `not_forwarded`,
/// `refused_busy`: more than `max_unanswered_receipts` awaited their ack; `not_acknowledged`,
/// `ack_timeout`).
pub const RECEIPTS_TOTAL: &str = "pigeon_smpp_receipts_total";
/// Counter: responses whose request had already timed out or was never sent.
pub const UNMATCHED_RESPONSES_TOTAL: &str = "pigeon_smpp_unmatched_responses_total";
/// Counter: `deliver_sm` PDUs rusmpp could not decode, acknowledged and read leniently.
pub const MALFORMED_DELIVER_SM_TOTAL: &str = "pigeon_smpp_malformed_deliver_sm_total";
/// Counter: sessions bound.
pub const BINDS_TOTAL: &str = "pigeon_smpp_binds_total";
/// Counter: bind attempts that failed, label `reason` (`connect`, `timeout`, `refused`,
/// `tls`, `config`, `protocol`).
pub const BIND_FAILURES_TOTAL: &str = "pigeon_smpp_bind_failures_total";
/// Counter: sessions closed, label `reason` (`unbound`, `peer_unbound`, `peer_closed`,
/// `decode_error`, `protocol_error`, `io_error`, `enquire_link_timeout`, `write_timeout`,
/// `dropped`).
pub const SESSIONS_CLOSED_TOTAL: &str = "pigeon_smpp_sessions_closed_total";
/// Counter: milliseconds the socket task waited for room in the inbound mailbox.
pub const INBOUND_BLOCKED_MS_TOTAL: &str = "pigeon_smpp_inbound_blocked_milliseconds_total";

/// Registers descriptions with the installed recorder (call once at start-up; optional).
pub fn describe() {
    metrics::describe_counter!(PDUS_TOTAL, "smpp pdus read or written");
    metrics::describe_counter!(SUBMIT_OUTCOMES_TOTAL, "submit_sm results by outcome");
    metrics::describe_histogram!(
        SUBMIT_RESPONSE_SECONDS,
        metrics::Unit::Seconds,
        "time from writing submit_sm to its response"
    );
    metrics::describe_counter!(RECEIPTS_TOTAL, "delivery receipts by result");
    metrics::describe_counter!(UNMATCHED_RESPONSES_TOTAL, "responses matching no request");
    metrics::describe_counter!(
        MALFORMED_DELIVER_SM_TOTAL,
        "deliver_sm pdus rusmpp could not decode, read leniently"
    );
    metrics::describe_counter!(BINDS_TOTAL, "successful binds");
    metrics::describe_counter!(BIND_FAILURES_TOTAL, "failed binds by reason");
    metrics::describe_counter!(SESSIONS_CLOSED_TOTAL, "sessions closed by reason");
    metrics::describe_counter!(
        INBOUND_BLOCKED_MS_TOTAL,
        metrics::Unit::Milliseconds,
        "time spent waiting for room in the inbound mailbox"
    );
}

pub(crate) fn pdu(command: &'static str, direction: &'static str) {
    pdu_counter((command, direction)).increment(1);
}

fn pdu_counter((command, direction): (&'static str, &'static str)) -> metrics::Counter {
    metrics::counter!(PDUS_TOTAL, "command" => command, "direction" => direction)
}

/// Handles of one labelled counter, by label values, each looked up in the recorder's
/// registry once: a session counts several PDUs per message, and each lookup builds and
/// hashes a key (70–140 ns; ~10–40 ns through a kept handle). Keep one per session (a
/// handle belongs to the recorder installed when it was looked up).
pub(crate) struct Counters<K> {
    kept: Vec<(K, metrics::Counter)>,
    look_up: fn(K) -> metrics::Counter,
}

impl<K: PartialEq + Copy> Counters<K> {
    /// Adds one to the counter labelled `key`.
    pub(crate) fn increment(&mut self, key: K) {
        if let Some((_, counter)) = self.kept.iter().find(|(k, _)| *k == key) {
            counter.increment(1);
            return;
        }
        let counter = (self.look_up)(key);
        counter.increment(1);
        self.kept.push((key, counter));
    }
}

/// [`PDUS_TOTAL`] by (command, direction).
pub(crate) fn pdus() -> Counters<(&'static str, &'static str)> {
    Counters {
        kept: Vec::new(),
        look_up: pdu_counter,
    }
}

/// The [`SUBMIT_RESPONSE_SECONDS`] histogram's handle.
pub(crate) fn submit_response_times() -> metrics::Histogram {
    metrics::histogram!(SUBMIT_RESPONSE_SECONDS)
}

pub(crate) fn submit_outcome(outcome: &'static str) {
    metrics::counter!(SUBMIT_OUTCOMES_TOTAL, "outcome" => outcome).increment(1);
}

pub(crate) fn receipt(result: &'static str) {
    receipt_counter(result).increment(1);
}

fn receipt_counter(result: &'static str) -> metrics::Counter {
    metrics::counter!(RECEIPTS_TOTAL, "result" => result)
}

/// [`RECEIPTS_TOTAL`] by result.
pub(crate) fn receipts() -> Counters<&'static str> {
    Counters {
        kept: Vec::new(),
        look_up: receipt_counter,
    }
}

pub(crate) fn unmatched_response() {
    metrics::counter!(UNMATCHED_RESPONSES_TOTAL).increment(1);
}

pub(crate) fn malformed_deliver_sm() {
    metrics::counter!(MALFORMED_DELIVER_SM_TOTAL).increment(1);
}

pub(crate) fn bound() {
    metrics::counter!(BINDS_TOTAL).increment(1);
}

pub(crate) fn bind_failure(reason: &'static str) {
    metrics::counter!(BIND_FAILURES_TOTAL, "reason" => reason).increment(1);
}

pub(crate) fn session_closed(reason: &'static str) {
    metrics::counter!(SESSIONS_CLOSED_TOTAL, "reason" => reason).increment(1);
}

pub(crate) fn inbound_blocked(d: Duration) {
    metrics::counter!(INBOUND_BLOCKED_MS_TOTAL)
        .increment(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    /// Counters by their labels, and how many times each was looked up.
    #[derive(Default)]
    struct Counting {
        counters: Mutex<BTreeMap<String, (Arc<AtomicU64>, u32)>>,
    }

    impl Counting {
        fn get(&self, labels: &str) -> (u64, u32) {
            let counters = self.counters.lock().unwrap();
            counters
                .get(labels)
                .map_or((0, 0), |(n, lookups)| (n.load(Ordering::Relaxed), *lookups))
        }
    }

    impl Recorder for Counting {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key.labels().map(|l| l.value().to_owned()).collect();
            let mut counters = self.counters.lock().unwrap();
            let entry = counters.entry(labels.join("/")).or_default();
            entry.1 += 1;
            Counter::from_arc(entry.0.clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn kept_pdu_counters_count_each_command_and_direction_apart_and_look_each_up_once() {
        let recorder = Counting::default();
        metrics::with_local_recorder(&recorder, || {
            let mut pdus = pdus();
            for _ in 0..3 {
                pdus.increment(("submit_sm", "tx"));
            }
            pdus.increment(("submit_sm_resp", "rx"));
            pdus.increment(("deliver_sm", "rx"));
            pdus.increment(("deliver_sm", "rx"));
            pdus.increment(("deliver_sm_resp", "tx"));
        });
        assert_eq!(recorder.get("submit_sm/tx"), (3, 1));
        assert_eq!(recorder.get("submit_sm_resp/rx"), (1, 1));
        assert_eq!(recorder.get("deliver_sm/rx"), (2, 1));
        assert_eq!(recorder.get("deliver_sm_resp/tx"), (1, 1));
        assert_eq!(recorder.get("submit_sm/rx"), (0, 0));
    }
}
