//! Records of the subscriber preferences topic (key: customer reference, value: the
//! preference, or a tombstone) applied to the eligibility table.
//!
//! Input: a first octet is the key's length (the rest after it is the value; a first octet
//! of 0xff is a tombstone for the rest as the key).
//!
//! Checks: no panic; the table holds at most one entry per key, and a tombstone or a
//! refused record never leaves the key more permissive than the default.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon::eligibility::{DefaultPolicy, Table};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let table = Table::new(DefaultPolicy::NotSubscribed);
    if n == 0xff {
        let _ = table.apply(rest, None);
        assert!(table.is_empty());
        return;
    }
    let (key, value) = rest.split_at(usize::from(n).min(rest.len()));
    let applied = table.apply(key, Some(value));
    assert!(table.len() <= 1);
    if applied.is_err() {
        assert!(table.is_empty(), "a refused record left an entry");
    }
});
