//! `pigeon-sim`: an SMSC simulator that behaves like a carrier over real TCP SMPP, run
//! in-process by tests and the load harness, or as the `pigeon-sim` binary.
//!
//! Map of the module, in the order a PDU meets it:
//! - [`config`]: what each carrier is (listen address, accounts, receipt delay and states,
//!   bind quota, message-id forms) and which faults it injects (all off by default).
//! - `server`: [`start`] binds one listener per carrier; [`SimHandle`] reads stats, kills and
//!   restarts carriers, serves the stats endpoint, and shuts down.
//! - `session`: one task per connection owning the socket: binds, `enquire_link`, `unbind`,
//!   `submit_sm` answers (with their faults), delayed responses, the receipts it owes on a
//!   per-session `DelayQueue`, and the connection faults (drop, half-open).
//! - `faults`: latency distributions, the seeded per-session dice, the per-account throttle.
//! - `submit`: what a `submit_sm` adds to the stats (payload, concatenation, duplicates).
//! - `reassembly`: concatenated parts grouped by (source, destination, reference).
//! - `ids`: the process-wide message numbers and how responses and receipts spell them.
//! - `dlr`: the pending receipt and its `deliver_sm` (text plus TLVs).
//! - `registry`: live binds per account, the bind quota, and receipts handed to another
//!   bind or kept until one appears.
//! - [`stats`]: atomic counters and the [`SimStats`] snapshot.
//! - [`file`]: the TOML configuration file of the binary.
//! - `http`: `GET /stats`, the live [`SimReport`] as JSON.
//!
//! Behaviour a client can rely on:
//! - wrong `system_id`/`password`: bind response `ESME_RBINDFAIL` (0x0D), then close;
//! - more live binds of one `system_id` than `max_binds`: `ESME_RALYBND` (0x05), then close;
//! - `submit_sm` unbound or on a receiver bind: `ESME_RINVBNDSTS` (0x04);
//! - malformed UDH: `ESME_RINVESMCLASS` (0x43);
//! - other operations: `generic_nack` with `ESME_RINVCMDID` (0x03);
//! - undecodable bytes: the session closes, nothing else does;
//! - each accepted `submit_sm` (each segment) gets a process-unique message id and, when
//!   `registered_delivery` asks, one receipt after `dlr_delay` on the same session, or on
//!   another receiver/transceiver bind of the account if that one cannot take it; receipts
//!   unacknowledged when a session ends are sent again elsewhere (a duplicate, as carriers do).
//!
//! Faults a carrier can be configured with (docs/simulator.md describes each): throttling
//! (`ESME_RTHROTTLED`), injected error statuses and rejected destination prefixes, response
//! latency, receipt delay jitter and a final-state mix, receipt ids spelt differently from
//! the response, receipts before responses, duplicated receipts, receipts on another bind,
//! periodic drops, unanswered submits, and half-open sessions. Each is counted in
//! [`SimStats`].

pub mod config;
mod dlr;
mod faults;
pub mod file;
mod http;
mod ids;
mod reassembly;
mod registry;
mod server;
mod session;
pub mod stats;
mod submit;

pub use config::{parse_receipt_state, Account, CarrierSim, IdFormat, Latency, SimConfig};
pub use pigeon_smpp::receipt::ReceiptState;
pub use server::{start, start_observed, SimHandle, SubmitObserver};
pub use stats::{SimReport, SimStats};
