//! Staged records: the latest version of a notification that is still on its way, kept in
//! one entry per group (the `staged` keyspace, keyed by a sequence number) instead of in the
//! indexed keyspaces.
//!
//! A notification changes three or four times within a second or two (submitting,
//! accepted, delivered). Writing each version to `records`, `open` and `by_transaction`
//! costs a random-key insert into a memtable per key, then flushes and compactions; a
//! group's staged entry is one insert with a sequential key, whatever it holds. So an open
//! record goes to the group's entry, and reaches the indexed keyspaces only when it ends
//! (its terminal version, once) or when it has been staged for [`STAGE_FOR`] (then it is
//! indexed as open, and later changes are staged again). An entry is deleted once no
//! record's latest version is in it and no older entry it overrules is left ([`Live`]):
//! with prompt receipts within a fraction of a second, so that fjall's flush finds it
//! deleted and writes no table of it.
//!
//! The writer keeps what the entries say in a [`StagedMap`], shared with readers: a read
//! looks there first, then in the index. At start-up the map is rebuilt by reading the
//! entries in order; a later item for an event replaces an earlier one. A record the map has
//! held unchanged for [`COMPACT_AFTER`] is kept encoded, as the index stores it (~200 bytes
//! instead of ~1 KiB decoded): one that changes again changes soon (its receipt came
//! promptly), while one waiting longer may be one of a million waiting.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

use fjall::Keyspace;
use foldhash::HashMap;

use super::codec::{self, StagedItem};
use super::{NotificationRecord, StoreError};

/// How long a record may stay staged before it is indexed as open. Most notifications end
/// (a prompt receipt) well within it and are indexed once, terminal; one waiting longer
/// for its receipt is indexed when this has passed.
pub const STAGE_FOR: Duration = Duration::from_secs(2);

/// How much later than [`STAGE_FOR`] the oldest entry may be before the writer indexes
/// what is due: indexing scans the whole map, so it runs about this often, not per group.
/// Not more: the group that indexes them holds all those records decoded and their keys in
/// one batch (at 12,000/s with late receipts, a second's worth took ~20 MB at once).
pub(super) const STAGE_SLACK: Duration = Duration::from_millis(250);

/// How long a staged record is kept decoded without changing before it is kept encoded.
pub const COMPACT_AFTER: Duration = Duration::from_millis(500);

/// How much later than [`COMPACT_AFTER`] the oldest record kept decoded may be before the
/// writer encodes those due: it goes through the whole map to find them.
pub(super) const COMPACT_SLACK: Duration = Duration::from_millis(250);

/// What the staged entries say about one event.
#[derive(Debug, Clone)]
pub(super) struct Staged {
    pub kind: StagedKind,
    /// The entry that holds it.
    pub seq: u64,
    /// The first entry since it was last staged anew that names it: earlier versions of it
    /// may be in entries from there on.
    pub first: u64,
    /// Whether the open index names it (it was indexed as open before it changed again).
    pub open_indexed: bool,
    /// Whether the transaction index has it under its transaction id (a record's transaction
    /// id never changes once it has one).
    pub transaction_indexed: bool,
}

#[derive(Debug, Clone)]
pub(super) enum StagedKind {
    /// An open record, newer than anything the index has (boxed, as the writer holds it:
    /// it moves between the writer's maps).
    Record(Box<NotificationRecord>),
    /// The same, unchanged for [`COMPACT_AFTER`]: encoded as `codec::encode_record` does.
    Encoded(Box<[u8]>),
    /// Terminal and in the index; its status waits for the broker (see
    /// [`super::Change::Held`]).
    Held,
}

impl StagedKind {
    /// The record it holds (decoded, if it is kept encoded); `None` for a hold.
    pub(super) fn record(
        &self,
        event_id: &str,
    ) -> Result<Option<Cow<'_, NotificationRecord>>, StoreError> {
        match self {
            StagedKind::Record(r) => Ok(Some(Cow::Borrowed(r))),
            StagedKind::Encoded(bytes) => codec::decode_record(event_id, bytes)
                .map(Cow::Owned)
                .map(Some),
            StagedKind::Held => Ok(None),
        }
    }

    /// Whether one of its record's strings may be `s`: an encoded record is searched as
    /// bytes (its strings are stored as they are), so that a lookup decodes only the few
    /// that may match.
    pub(super) fn may_hold(&self, s: &str) -> bool {
        match self {
            StagedKind::Record(_) => true,
            StagedKind::Encoded(bytes) => memchr::memmem::find(bytes, s.as_bytes()).is_some(),
            StagedKind::Held => false,
        }
    }
}

pub(super) type StagedMap = HashMap<String, Staged>;

/// Keeps encoded every record of the map in entries up to `upto` that is still decoded,
/// using `buf` to encode.
pub(super) fn compact(map: &mut StagedMap, upto: u64, buf: &mut Vec<u8>) {
    for s in map.values_mut().filter(|s| s.seq <= upto) {
        if let StagedKind::Record(r) = &s.kind {
            codec::encode_record(r, buf);
            s.kind = StagedKind::Encoded(buf.as_slice().into());
        }
    }
}

/// One staged entry not deleted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LiveEntry {
    pub seq: u64,
    /// When it was written (or found at start-up).
    pub at: tokio::time::Instant,
    /// How many records (and holds) have their latest version in it; `None` for an entry
    /// found at start-up, which is not counted and stays until it is due.
    holds: Option<u32>,
    /// The first entry that may still hold an earlier version of a record one of its
    /// `gone` items ends: it stays while any entry from there on before it does.
    floor: Option<u64>,
}

/// The staged entries not deleted yet, oldest first.
///
/// An entry is deleted as soon as nothing needs it: no record's latest version is in it,
/// and no older entry that its `gone` items overrule is left. With prompt receipts that
/// is a fraction of a second, before fjall flushes its memtable, so the entry never reaches
/// a table on disk. Otherwise it goes when it is due, after [`STAGE_FOR`]. Start-up
/// rebuilds the map from what is left in order; so each record's latest item among the
/// entries left must be the one that counts, which the rules above keep true: an entry
/// with an outdated version of a record is followed by one with a later item for it, for
/// as long as it stays.
#[derive(Debug, Default)]
pub(super) struct Live(VecDeque<LiveEntry>);

impl Live {
    pub(super) fn front(&self) -> Option<&LiveEntry> {
        self.0.front()
    }

    pub(super) fn pop_front(&mut self) -> Option<LiveEntry> {
        self.0.pop_front()
    }

    /// An entry just written, holding the latest version of `holds` records, and `gone`
    /// items that overrule entries from `floor` on.
    pub(super) fn written(
        &mut self,
        seq: u64,
        at: tokio::time::Instant,
        holds: u32,
        floor: Option<u64>,
    ) {
        let entry = LiveEntry {
            seq,
            at,
            holds: Some(holds),
            floor,
        };
        self.0.push_back(entry);
    }

    /// An entry found at start-up.
    pub(super) fn found(&mut self, seq: u64, at: tokio::time::Instant) {
        let entry = LiveEntry {
            seq,
            at,
            holds: None,
            floor: None,
        };
        self.0.push_back(entry);
    }

    /// A record's latest version is no longer in entry `seq` (if it is still here).
    pub(super) fn release(&mut self, seq: u64) {
        if let Ok(i) = self.0.binary_search_by_key(&seq, |e| e.seq) {
            if let Some(h) = &mut self.0[i].holds {
                *h = h.saturating_sub(1);
            }
        }
    }

    /// Removes the entries nothing needs any more, handing each to `dead`; returns the
    /// newest entry left.
    pub(super) fn sweep(&mut self, mut dead: impl FnMut(u64)) -> Option<u64> {
        let mut last = None;
        self.0.retain(|e| {
            let after_floor = |f| last.is_none_or(|l| l < f);
            if e.holds == Some(0) && e.floor.is_none_or(after_floor) {
                dead(e.seq);
                false
            } else {
                last = Some(e.seq);
                true
            }
        });
        last
    }

    /// The last entry written `older_than` before `now` or earlier.
    pub(super) fn last_before(
        &self,
        now: tokio::time::Instant,
        older_than: Duration,
    ) -> Option<u64> {
        let bound = now.checked_sub(older_than)?;
        let n = self.0.partition_point(|e| e.at <= bound);
        n.checked_sub(1).map(|last| self.0[last].seq)
    }

    #[cfg(test)]
    pub(super) fn seqs(&self) -> Vec<u64> {
        self.0.iter().map(|e| e.seq).collect()
    }

    /// The oldest entry after `seq`.
    pub(super) fn first_after(&self, seq: u64) -> Option<&LiveEntry> {
        let n = self.0.partition_point(|e| e.seq <= seq);
        self.0.get(n)
    }
}

/// `staged` key of an entry.
pub(super) fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Rebuilds the map from the stored entries; also returns them (as live from `now`) and
/// the next sequence number.
pub(super) fn replay(
    ks: &Keyspace,
    now: tokio::time::Instant,
) -> Result<(StagedMap, Live, u64), StoreError> {
    let mut map = StagedMap::default();
    let mut live = Live::default();
    let mut next = 1;
    for guard in ks.iter() {
        let (k, v) = guard.into_inner()?;
        let seq =
            k.as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: super::keys::printable(&k),
                    why: "staged key is not 8 bytes".into(),
                })?;
        for item in codec::decode_staged(&k, &v)? {
            match item {
                StagedItem::Record {
                    record,
                    open_indexed,
                    transaction_indexed,
                } => {
                    let transaction_indexed =
                        transaction_indexed && record.transaction_id.is_some();
                    let id = record.event_id.clone();
                    let staged = Staged {
                        kind: StagedKind::Record(Box::new(record)),
                        seq,
                        first: map.get(&id).map_or(seq, |s: &Staged| s.first),
                        open_indexed,
                        transaction_indexed,
                    };
                    map.insert(id, staged);
                }
                StagedItem::Held(id) => {
                    let staged = Staged {
                        kind: StagedKind::Held,
                        seq,
                        first: map.get(&id).map_or(seq, |s: &Staged| s.first),
                        open_indexed: false,
                        transaction_indexed: false,
                    };
                    map.insert(id, staged);
                }
                StagedItem::Gone(id) => {
                    map.remove(&id);
                }
            }
        }
        live.found(seq, now);
        next = seq + 1;
    }
    Ok((map, live, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(live: &mut Live) -> (Vec<u64>, Option<u64>) {
        let mut dead = Vec::new();
        let newest = live.sweep(|s| dead.push(s));
        (dead, newest)
    }

    #[test]
    fn an_entry_goes_once_no_record_has_its_latest_version_there() {
        let t = tokio::time::Instant::now();
        let mut live = Live::default();
        live.written(1, t, 2, None);
        live.written(2, t, 1, None);
        live.release(1);
        assert_eq!(sweep(&mut live), (vec![], Some(2)));
        live.release(1);
        assert_eq!(sweep(&mut live), (vec![1], Some(2)));
        assert_eq!(live.seqs(), [2]);
        // An entry already gone: nothing to do.
        live.release(1);
        assert_eq!(sweep(&mut live), (vec![], Some(2)));
    }

    #[test]
    fn gone_items_keep_their_entry_while_an_entry_they_overrule_stays() {
        let t = tokio::time::Instant::now();
        let mut live = Live::default();
        live.written(1, t, 1, None);
        live.written(2, t, 1, None);
        // Ends records first named in entry 2 (its own, not 1's).
        live.written(3, t, 0, Some(2));
        assert_eq!(sweep(&mut live), (vec![], Some(3)));
        live.release(2);
        // 2 goes, and then 3 overrules nothing left: 1 is older than its floor.
        assert_eq!(sweep(&mut live), (vec![2, 3], Some(1)));
        // Ends a record first named in entry 1.
        live.written(4, t, 0, Some(1));
        assert_eq!(sweep(&mut live), (vec![], Some(4)));
        live.release(1);
        assert_eq!(sweep(&mut live), (vec![1, 4], None));
    }

    #[test]
    fn entries_found_at_start_up_stay_until_they_are_due() {
        let t = tokio::time::Instant::now();
        let mut live = Live::default();
        live.found(1, t);
        live.written(2, t, 0, Some(1));
        live.release(1);
        assert_eq!(sweep(&mut live), (vec![], Some(2)));
        assert_eq!(live.pop_front().map(|e| e.seq), Some(1));
        assert_eq!(sweep(&mut live), (vec![2], None));
    }
}
