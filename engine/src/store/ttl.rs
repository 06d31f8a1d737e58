//! Expiry by compaction: fjall runs these filters over a keyspace when it compacts it, and
//! they drop what has expired. Nothing is written per key to expire it, and no scan looks
//! for expired keys; until a compaction reaches one, it is still there.
//!
//! - `receipts`: a carrier message id's key once its expiry has passed (its acceptance +
//!   `store.receipt_ttl_ms`); reads treat it as absent at once
//!   ([`super::Store::receipt_owner`]).
//! - `records` and `by_transaction`: an ended notification's record and its transaction
//!   key once `store.record_retention_ms` has passed since it was received. A record not
//!   ended stays whatever its age (the reconciler ends it). Until a compaction drops it, the
//!   record is still read, and still makes its event id a duplicate.

use std::sync::Arc;

use fjall::compaction::filter::{
    CompactionFilter, CompactionFilterResult, Context, Factory, ItemAccessor, Verdict,
};
use time::OffsetDateTime;

use super::codec;
use super::keys::{self, ReceiptValue};

/// The filter of each keyspace that has one; `retention_ms` 0 keeps records forever.
pub(super) fn assign(keyspace: &str, retention_ms: i64) -> Option<Arc<dyn Factory>> {
    let kind = match keyspace {
        keys::RECEIPTS => Kind::Receipts,
        keys::RECORDS if retention_ms > 0 => Kind::Records { retention_ms },
        keys::BY_TRANSACTION if retention_ms > 0 => Kind::Transactions { retention_ms },
        _ => return None,
    };
    Some(Arc::new(Expiry(kind)))
}

#[derive(Clone, Copy)]
enum Kind {
    Receipts,
    Records { retention_ms: i64 },
    Transactions { retention_ms: i64 },
}

struct Expiry(Kind);

impl Factory for Expiry {
    fn name(&self) -> &str {
        match self.0 {
            Kind::Receipts => "receipt-ttl",
            Kind::Records { .. } => "record-retention",
            Kind::Transactions { .. } => "transaction-retention",
        }
    }

    fn make_filter(&self, _: &Context) -> Box<dyn CompactionFilter> {
        Box::new(Expired {
            kind: self.0,
            now_ms: keys::unix_ms(OffsetDateTime::now_utc()),
            removed: 0,
        })
    }
}

/// One compaction's filter, with the time it started and how many keys it removed.
struct Expired {
    kind: Kind,
    now_ms: i64,
    removed: u64,
}

impl Drop for Expired {
    /// The compaction is over: its count goes to `pigeon_store_expired_total`.
    fn drop(&mut self) {
        let keyspace = match self.kind {
            Kind::Receipts => keys::RECEIPTS,
            Kind::Records { .. } => keys::RECORDS,
            Kind::Transactions { .. } => keys::BY_TRANSACTION,
        };
        crate::metrics::store_expired(keyspace, self.removed);
    }
}

impl CompactionFilter for Expired {
    fn filter_item(&mut self, item: ItemAccessor<'_>, _: &Context) -> CompactionFilterResult {
        let value = item.value()?;
        // A value too short or malformed to say is corrupt: kept, for reads to report.
        let expired = match self.kind {
            Kind::Receipts => ReceiptValue::expiry_of(&value)
                .is_some_and(|expires_ms| is_expired(expires_ms, self.now_ms)),
            Kind::Records { retention_ms } => {
                codec::record_span(&value).is_some_and(|(state, began_ms)| {
                    state.is_terminal()
                        && is_expired(began_ms.saturating_add(retention_ms), self.now_ms)
                })
            }
            Kind::Transactions { retention_ms } => keys::transaction_value_began(&value)
                .is_some_and(|began_ms| {
                    is_expired(began_ms.saturating_add(retention_ms), self.now_ms)
                }),
        };
        self.removed += u64::from(expired);
        Ok(if expired {
            Verdict::Remove
        } else {
            Verdict::Keep
        })
    }
}

/// Whether a key expiring at `expires_ms` is gone at `now_ms`.
pub(super) fn is_expired(expires_ms: i64, now_ms: i64) -> bool {
    expires_ms <= now_ms
}
