//! The receipt table's time to live: fjall runs this filter over the `receipts` keyspace
//! when it compacts it, and drops every key whose expiry has passed. Nothing is written per
//! receipt key to expire it, and no scan looks for expired ones; until a compaction reaches
//! an expired key, reads treat it as absent ([`super::Store::receipt_owner`]).

use std::sync::Arc;

use fjall::compaction::filter::{
    CompactionFilter, CompactionFilterResult, Context, Factory, ItemAccessor, Verdict,
};
use time::OffsetDateTime;

use super::keys::{self, ReceiptValue};

/// Gives fjall the filter of the keyspaces that have one (only `receipts`).
pub(super) fn assign(keyspace: &str) -> Option<Arc<dyn Factory>> {
    (keyspace == keys::RECEIPTS).then(|| Arc::new(ReceiptTtl) as Arc<dyn Factory>)
}

struct ReceiptTtl;

impl Factory for ReceiptTtl {
    fn name(&self) -> &str {
        "receipt-ttl"
    }

    fn make_filter(&self, _: &Context) -> Box<dyn CompactionFilter> {
        Box::new(Expired {
            now_ms: keys::unix_ms(OffsetDateTime::now_utc()),
        })
    }
}

/// One compaction's filter, with the time it started.
struct Expired {
    now_ms: i64,
}

impl CompactionFilter for Expired {
    fn filter_item(&mut self, item: ItemAccessor<'_>, _: &Context) -> CompactionFilterResult {
        let value = item.value()?;
        Ok(match ReceiptValue::expiry_of(&value) {
            Some(expires_ms) if is_expired(expires_ms, self.now_ms) => Verdict::Remove,
            // A value too short to hold an expiry is corrupt: kept, for reads to report.
            _ => Verdict::Keep,
        })
    }
}

/// Whether a receipt key expiring at `expires_ms` is gone at `now_ms`.
pub(super) fn is_expired(expires_ms: i64, now_ms: i64) -> bool {
    expires_ms <= now_ms
}
