//! What the simulator counts: per-carrier atomic counters (no lock on the submit path), the
//! process-wide set of `(destination, text)` digests that tells unique from duplicate
//! messages, and the serialisable [`SimStats`] snapshot.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use pigeon_smpp::encoding::Coding;
use serde::{Deserialize, Serialize};

/// A snapshot of what the simulator has seen; sums over carriers where it says so.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct SimStats {
    /// Successful binds.
    pub binds: u64,
    /// Binds refused (bad credentials or bind quota).
    pub bind_failures: u64,
    /// `submit_sm` PDUs accepted (one per segment).
    pub submits: u64,
    /// Complete messages: single-part submits plus fully reassembled concatenated ones.
    pub messages: u64,
    /// Receipt `deliver_sm` PDUs written (retransmissions included).
    pub receipts_sent: u64,
    /// `deliver_sm_resp` with status 0 for a receipt we sent.
    pub receipts_acked: u64,
    /// `deliver_sm_resp` with an error status: the receipt is sent again a second later.
    #[serde(default)]
    pub receipts_refused: u64,
    /// Receipts written again after a refusal (counted in `receipts_sent` too).
    #[serde(default)]
    pub receipts_resent: u64,
    /// Complete messages whose `(destination, text)` had not been seen before in this process.
    pub unique_pairs: u64,
    /// Complete messages whose `(destination, text)` had been seen before, on any carrier.
    pub duplicate_pairs: u64,
    /// Complete messages per coding: `gsm7`, `ucs2`, or the `data_coding` byte (`0x03`).
    pub data_codings: BTreeMap<String, u64>,
    /// Segments that went into completed concatenated messages.
    pub segments_reassembled: u64,
    /// Submits answered `ESME_RTHROTTLED` (over `throttle_tps`).
    pub throttled: u64,
    /// Submits answered with an injected error (`error_rate` or `reject_prefixes`).
    pub errors: u64,
    /// Submits accepted and never answered (`no_response_rate`).
    pub no_response: u64,
    /// Sessions dropped by `drop_every`.
    pub drops: u64,
    /// Sessions that went half-open (`half_open_after`).
    pub half_opens: u64,
    /// Receipts sent a second time by `duplicate_receipts`.
    pub duplicate_receipts_sent: u64,
    /// Receipts moved to another bind by `receipts_on_other_bind`.
    pub receipts_other_bind: u64,
    /// Receipts sent before their `submit_sm_resp`.
    pub receipts_before_response: u64,
}

impl SimStats {
    /// Adds `other` into `self`, field by field.
    pub fn add(&mut self, other: &SimStats) {
        self.binds += other.binds;
        self.bind_failures += other.bind_failures;
        self.submits += other.submits;
        self.messages += other.messages;
        self.receipts_sent += other.receipts_sent;
        self.receipts_acked += other.receipts_acked;
        self.receipts_refused += other.receipts_refused;
        self.receipts_resent += other.receipts_resent;
        self.unique_pairs += other.unique_pairs;
        self.duplicate_pairs += other.duplicate_pairs;
        self.segments_reassembled += other.segments_reassembled;
        self.throttled += other.throttled;
        self.errors += other.errors;
        self.no_response += other.no_response;
        self.drops += other.drops;
        self.half_opens += other.half_opens;
        self.duplicate_receipts_sent += other.duplicate_receipts_sent;
        self.receipts_other_bind += other.receipts_other_bind;
        self.receipts_before_response += other.receipts_before_response;
        for (k, v) in &other.data_codings {
            *self.data_codings.entry(k.clone()).or_default() += v;
        }
    }
}

/// What `pigeon-sim` writes to its stats file: the totals at the top level, plus each
/// carrier's own numbers under `carriers`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    #[serde(flatten)]
    pub total: SimStats,
    pub carriers: BTreeMap<String, SimStats>,
}

/// The stats name of a `data_coding` byte.
pub fn coding_name(data_coding: u8) -> String {
    match Coding::from_data_coding(data_coding) {
        Some(Coding::Gsm7) => "gsm7".to_string(),
        Some(Coding::Ucs2) => "ucs2".to_string(),
        Some(Coding::Latin1) => "latin1".to_string(),
        None => format!("{data_coding:#04x}"),
    }
}

/// One carrier's live counters, shared by its sessions.
#[derive(Debug)]
pub(crate) struct Counters {
    pub binds: AtomicU64,
    pub bind_failures: AtomicU64,
    pub submits: AtomicU64,
    pub messages: AtomicU64,
    pub receipts_sent: AtomicU64,
    pub receipts_acked: AtomicU64,
    pub receipts_refused: AtomicU64,
    pub receipts_resent: AtomicU64,
    pub unique_pairs: AtomicU64,
    pub duplicate_pairs: AtomicU64,
    pub segments_reassembled: AtomicU64,
    pub throttled: AtomicU64,
    pub errors: AtomicU64,
    pub no_response: AtomicU64,
    pub drops: AtomicU64,
    pub half_opens: AtomicU64,
    pub duplicate_receipts_sent: AtomicU64,
    pub receipts_other_bind: AtomicU64,
    pub receipts_before_response: AtomicU64,
    /// Indexed by the `data_coding` byte.
    codings: [AtomicU64; 256],
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            binds: AtomicU64::new(0),
            bind_failures: AtomicU64::new(0),
            submits: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            receipts_sent: AtomicU64::new(0),
            receipts_acked: AtomicU64::new(0),
            receipts_refused: AtomicU64::new(0),
            receipts_resent: AtomicU64::new(0),
            unique_pairs: AtomicU64::new(0),
            duplicate_pairs: AtomicU64::new(0),
            segments_reassembled: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            no_response: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            half_opens: AtomicU64::new(0),
            duplicate_receipts_sent: AtomicU64::new(0),
            receipts_other_bind: AtomicU64::new(0),
            receipts_before_response: AtomicU64::new(0),
            codings: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Counters {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn count_coding(&self, data_coding: u8) {
        self.codings[usize::from(data_coding)].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> SimStats {
        let mut data_codings = BTreeMap::new();
        for (dc, n) in (0..=u8::MAX).zip(self.codings.iter()) {
            let n = n.load(Relaxed);
            if n > 0 {
                *data_codings.entry(coding_name(dc)).or_default() += n;
            }
        }
        SimStats {
            binds: self.binds.load(Relaxed),
            bind_failures: self.bind_failures.load(Relaxed),
            submits: self.submits.load(Relaxed),
            messages: self.messages.load(Relaxed),
            receipts_sent: self.receipts_sent.load(Relaxed),
            receipts_acked: self.receipts_acked.load(Relaxed),
            receipts_refused: self.receipts_refused.load(Relaxed),
            receipts_resent: self.receipts_resent.load(Relaxed),
            unique_pairs: self.unique_pairs.load(Relaxed),
            duplicate_pairs: self.duplicate_pairs.load(Relaxed),
            data_codings,
            segments_reassembled: self.segments_reassembled.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            errors: self.errors.load(Relaxed),
            no_response: self.no_response.load(Relaxed),
            drops: self.drops.load(Relaxed),
            half_opens: self.half_opens.load(Relaxed),
            duplicate_receipts_sent: self.duplicate_receipts_sent.load(Relaxed),
            receipts_other_bind: self.receipts_other_bind.load(Relaxed),
            receipts_before_response: self.receipts_before_response.load(Relaxed),
        }
    }
}

/// A 128-bit digest of `(destination, text)`; the text itself is never stored.
pub(crate) fn pair_digest(destination: &[u8], text: &[u8]) -> u128 {
    let half = |seed: u64| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        destination.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5eed_0001)) << 64) | u128::from(half(0x5eed_0002))
}

/// Passes an already-uniform digest through as its own hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        // Truncation intended: the low half is as uniform as the whole.
        self.0 = n as u64;
    }
}

const PAIR_SHARDS: usize = 64;

/// Every `(destination, text)` digest seen, sharded so concurrent sessions rarely contend.
pub(crate) struct PairSet {
    shards: [Mutex<HashSet<u128, BuildHasherDefault<DigestHasher>>>; PAIR_SHARDS],
}

impl Default for PairSet {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl std::fmt::Debug for PairSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSet").finish_non_exhaustive()
    }
}

impl PairSet {
    /// Records `digest`; true when it was new.
    pub fn insert(&self, digest: u128) -> bool {
        // Truncation intended: the top bits pick the shard, the low bits the bucket.
        let shard = (digest >> 122) as usize % PAIR_SHARDS;
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_tell_duplicates_apart() {
        let set = PairSet::default();
        assert!(set.insert(pair_digest(b"8613800000000", b"debit 10.00")));
        assert!(!set.insert(pair_digest(b"8613800000000", b"debit 10.00")));
        assert!(set.insert(pair_digest(b"8613800000001", b"debit 10.00")));
        assert!(set.insert(pair_digest(b"8613800000000", b"debit 10.01")));
        // The boundary between the two fields matters.
        assert_ne!(pair_digest(b"ab", b"c"), pair_digest(b"a", b"bc"));
    }

    #[test]
    fn stats_add_sums_codings() {
        let mut a = SimStats {
            submits: 2,
            data_codings: [("gsm7".to_string(), 2)].into(),
            ..SimStats::default()
        };
        let b = SimStats {
            submits: 3,
            data_codings: [("gsm7".to_string(), 1), ("ucs2".to_string(), 4)].into(),
            ..SimStats::default()
        };
        a.add(&b);
        assert_eq!(a.submits, 5);
        assert_eq!(a.data_codings["gsm7"], 3);
        assert_eq!(a.data_codings["ucs2"], 4);
    }
}
