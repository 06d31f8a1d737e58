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
//! indexed as open, and later changes are staged again). Entries whose records were all
//! indexed are deleted in the same batch that indexes them.
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

/// The staged entries not deleted yet, oldest first, with when they were written (or
/// found at start-up).
pub(super) type Live = VecDeque<(u64, tokio::time::Instant)>;

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
    let mut live = Live::new();
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
                        open_indexed,
                        transaction_indexed,
                    };
                    map.insert(id, staged);
                }
                StagedItem::Held(id) => {
                    let staged = Staged {
                        kind: StagedKind::Held,
                        seq,
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
        live.push_back((seq, now));
        next = seq + 1;
    }
    Ok((map, live, next))
}
