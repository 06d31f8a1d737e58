//! Reassembly of concatenated messages: segments are grouped by (source, destination,
//! concatenation reference) in a sharded map shared by all sessions of a carrier, so parts
//! spread over several binds still complete. Only multipart traffic touches it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const SHARDS: usize = 16;
/// Above this many partial messages in a shard, stale ones are dropped.
const PURGE_ABOVE: usize = 4096;
/// A partial message older than this is abandoned (its other parts are never coming).
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Where one segment sits in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Concat {
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub seq: u8,
}

impl Concat {
    /// Whether the header describes a real split message (not 1-of-1, not out of range).
    pub fn is_multipart(self) -> bool {
        self.total > 1 && self.seq >= 1 && self.seq <= self.total
    }
}

/// A finished concatenated message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// Payloads of all parts in order, UDH removed.
    pub payload: Vec<u8>,
    pub segments: u8,
}

#[derive(Debug)]
struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    received: u8,
    started: Instant,
}

/// Partial messages of one carrier.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    shards: [Mutex<HashMap<u64, Partial>>; SHARDS],
}

impl Reassembler {
    /// Adds one segment; returns the whole message once its last missing part arrives.
    /// A repeated part replaces the earlier copy and does not count twice.
    pub fn offer(
        &self,
        source: &[u8],
        destination: &[u8],
        concat: Concat,
        payload: &[u8],
    ) -> Option<Assembled> {
        let key = {
            let mut h = DefaultHasher::new();
            source.hash(&mut h);
            destination.hash(&mut h);
            concat.reference.hash(&mut h);
            concat.total.hash(&mut h);
            h.finish()
        };
        // Truncation intended: any bits of the hash pick a shard.
        let mut shard = self.shards[key as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if shard.len() > PURGE_ABOVE {
            shard.retain(|_, p| now.duration_since(p.started) < STALE_AFTER);
        }
        let partial = shard.entry(key).or_insert_with(|| Partial {
            parts: vec![None; usize::from(concat.total)],
            received: 0,
            started: now,
        });
        let index = usize::from(concat.seq).wrapping_sub(1);
        let slot = partial.parts.get_mut(index)?;
        if slot.is_none() {
            partial.received += 1;
        }
        *slot = Some(payload.to_vec());
        if partial.received < concat.total {
            return None;
        }
        let done = shard.remove(&key)?;
        drop(shard);
        let payload = done.parts.into_iter().flatten().flatten().collect();
        Some(Assembled {
            payload,
            segments: concat.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(reference: u16, total: u8, seq: u8) -> Concat {
        Concat {
            reference,
            total,
            seq,
        }
    }

    #[tokio::test]
    async fn parts_in_any_order_complete_once() {
        let r = Reassembler::default();
        assert_eq!(r.offer(b"bank", b"86138", c(7, 3, 3), b"ghi"), None);
        assert_eq!(r.offer(b"bank", b"86138", c(7, 3, 1), b"abc"), None);
        // A repeated part does not complete the message.
        assert_eq!(r.offer(b"bank", b"86138", c(7, 3, 1), b"abc"), None);
        let done = r.offer(b"bank", b"86138", c(7, 3, 2), b"def").unwrap();
        assert_eq!(done.payload, b"abcdefghi");
        assert_eq!(done.segments, 3);
        // The same reference starts afresh afterwards.
        assert_eq!(r.offer(b"bank", b"86138", c(7, 3, 1), b"x"), None);
    }

    #[tokio::test]
    async fn different_destinations_do_not_mix() {
        let r = Reassembler::default();
        assert_eq!(r.offer(b"bank", b"1", c(1, 2, 1), b"a"), None);
        assert_eq!(r.offer(b"bank", b"2", c(1, 2, 2), b"b"), None);
        assert!(r.offer(b"bank", b"1", c(1, 2, 2), b"b").is_some());
    }

    #[test]
    fn multipart_bounds() {
        assert!(c(1, 2, 1).is_multipart());
        assert!(!c(1, 1, 1).is_multipart());
        assert!(!c(1, 2, 0).is_multipart());
        assert!(!c(1, 2, 3).is_multipart());
    }
}
