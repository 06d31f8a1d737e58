//! SMPP connector: everything Pigeon needs to talk to a carrier's SMSC, and nothing of the engine.
//!
//! - [`encoding`]: GSM 03.38 / UCS-2 choice, encoding, decoding and splitting into segments
//!   (UDH concatenation), plus the inverse used by the simulator to reassemble.
//! - [`receipt`]: delivery-receipt parsing (TLVs first, text second), receipt text formatting,
//!   and message-id normalisation for matching receipts to submits.
//! - [`session`]: one client session per bind (plain TCP or TLS via rustls): bind,
//!   enquire_link, a window of in-flight submits keyed by sequence number with a response
//!   timeout each, receipts answered and handed on, unbind on shutdown.
//!   - `session/config.rs`: [`session::SessionConfig`], [`session::TlsConfig`], bind kinds,
//!     interface version.
//!   - `session/error.rs`: [`session::SessionError`] with the retry hints for reconnect loops.
//!   - `session/tls.rs`: rustls client config and handshake.
//!   - `session/bind.rs`: connect and bind handshake.
//!   - `session/codec.rs`: PDU framing around rusmpp's codec; undecodable PDUs as frames.
//!   - `session/lenient.rs`: forgiving reader for `deliver_sm` PDUs rusmpp refuses.
//!   - `session/task/`: the socket task, sole owner of the connection (batched writes).
//!   - [`session::window`]: the pending-request window (pure logic, paused-time tests).
//!   - `session/pdu.rs`: PDU building and reading on top of rusmpp.
//!   - `session/status.rs`: [`session::classify`], the one place `command_status` is judged.
//! - [`metrics`]: every metric name of the crate, low-cardinality labels only.

pub mod encoding;
pub mod metrics;
pub mod receipt;
pub mod session;
