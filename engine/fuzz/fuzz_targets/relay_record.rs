//! Records of the relay topic (receipts relayed between instances) through their decoder.
//!
//! Checks: no panic; a record read is a receipt within the limits, and encoding it again
//! reads back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pigeon::relay::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok((carrier, receipt)) = decode(data) {
        assert!(!receipt.message_id.trim().is_empty() && receipt.message_id.len() <= 64);
        assert!(carrier.len() <= 256);
        let again = encode(&carrier, &receipt);
        assert_eq!(decode(&again.payload), Ok((carrier, receipt)));
    }
});
