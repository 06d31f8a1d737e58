//! Records of the handover topic (marks of the debit partitions' owners) through their
//! decoder.
//!
//! Checks: no panic; a mark read is within the limits, and encoding it again reads back the
//! same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon_kafka::handover::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(mark) = decode(data) {
        assert!(!mark.owner.is_empty() && mark.owner.len() <= 256);
        assert!(mark.partition >= 0 && mark.upto >= -1 && mark.inherited >= -1);
        assert!(!mark.released || mark.upto == -1);
        assert_eq!(decode(&encode(&mark)), Ok(mark));
    }
});
