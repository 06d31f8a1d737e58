//! SMPP connector: everything Pigeon needs to talk to a carrier's SMSC, and nothing of the engine.
//!
//! - [`encoding`]: text into `short_message` bodies and back. Alphabets: GSM 03.38 (extension
//!   table included, unpacked), ISO-8859-1 (Latin-1) and UCS-2, chosen per carrier
//!   ([`encoding::Alphabet`]). Long texts: 8-bit or 16-bit-reference concatenation UDH, SAR
//!   numbering (parts without UDH, the `sar_*` TLVs per submit) or one `message_payload` TLV
//!   ([`encoding::Concatenation`], [`encoding::segment_with`]); plus the inverse (UDH parsing,
//!   decoding, reassembly) used by the simulator.
//! - [`receipt`]: delivery-receipt parsing (TLVs first, text second), receipt text formatting,
//!   and message-id normalisation for matching receipts to submits.
//! - [`session`]: one client session per bind (plain TCP or TLS via rustls; transceiver,
//!   transmitter or receiver; SMPP 3.4 or 5.0): bind, enquire_link, a window of in-flight
//!   submits keyed by sequence number with a response timeout each, receipts answered and
//!   handed on (also from `deliver_sm` PDUs rusmpp refuses, read leniently), unbind on
//!   shutdown.
//!   - `session/config.rs`: [`session::SessionConfig`], [`session::TlsConfig`], bind kinds,
//!     interface version, address_range.
//!   - `session/error.rs`: [`session::SessionError`] with the retry hints for reconnect loops.
//!   - `session/tls.rs`: rustls client config and handshake.
//!   - `session/bind.rs`: connect and bind handshake.
//!   - `session/codec.rs`: PDU framing by `command_length` around rusmpp's codec; undecodable
//!     PDUs come out as frames, not stream errors.
//!   - `session/lenient.rs`: tolerant reader for `deliver_sm` PDUs rusmpp refuses (receipt TLVs
//!     without their nul, of the wrong length, running past the end).
//!   - `session/task/`: the socket task, sole owner of the connection (batched writes);
//!     `task/inbound.rs` handles what the peer sends.
//!   - [`session::window`]: the pending-request window (pure logic, paused-time tests).
//!   - `session/pdu.rs`: every PDU the session sends (bind, submit_sm with short_message, UDH,
//!     SAR TLVs or message_payload, enquire_link, unbind, responses, generic_nack) and the
//!     reading of receipts; round-trip tests in `session/roundtrip_tests.rs`.
//!   - `session/status.rs`: [`session::classify`], the one place `command_status` is judged.
//!   - `session/fuzzing.rs`: hidden entry points (`pigeon_smpp::fuzzing`) for the fuzz targets
//!     in `fuzz/`, so they run the session's own reader.
//! - [`metrics`]: every metric name of the crate, low-cardinality labels only.

pub mod encoding;
pub mod metrics;
pub mod receipt;
pub mod session;

/// Entry points for the fuzz targets (`fuzz/`); not an API.
#[doc(hidden)]
pub use session::fuzzing;
