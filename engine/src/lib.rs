//! Pigeon: consumes card-debit events from Kafka, sends one SMS per debit through carriers'
//! SMPP links, matches delivery receipts, and publishes a status for every event.
//!
//! Map of the crate, in data-path order:
//! - [`csv_pairs`]: the two-column CSV files (routing tables, subscribers), read line by line.
//! - [`config`]: the TOML configuration, validated into typed values.
//! - [`event`]: debit and status event schemas (version 1) and input validation.
//! - [`intake`]: decode, validate, render ([`template`]), encode and segment, route ([`routing`]).
//! - [`eligibility`]: subscriber preferences (file and compacted topic), checked by the intake.
//! - [`lanes`]: priority lanes, debit notifications before lower classes.
//! - [`notification`]: what travels between stages for one debit; number masking.
//! - [`matcher`]: receipt correlation table.
//! - [`health`]: which carriers can take traffic, shared by the shards and the intake.
//! - [`outcome`]: one verdict per notification from its segments' submit outcomes.
//! - [`reload`]: what a configuration reload may change live.
//! - [`retry`]: which submit outcomes are retried, and the backoff.
//! - [`actors`]: the actix shells around the above, and the messages between them.
//! - [`pipeline`]: wiring, start-up and graceful drain.
//! - [`recovery`]: idempotency by event id, and what resumes after a restart or a crash.
//! - [`store`]: the durable record of every notification (fjall), idempotency by event id.
//! - [`api`]: the HTTP status and admin API.
//! - [`metrics`]: every metric the engine emits.

pub mod actors;
pub mod api;
pub mod breaker;
pub mod config;
pub mod csv_pairs;
pub mod eligibility;
pub mod event;
pub mod flow;
pub mod health;
pub mod intake;
pub mod lanes;
pub mod matcher;
pub mod metrics;
pub mod notification;
pub mod outcome;
pub mod pipeline;
pub mod recovery;
pub mod relay;
pub mod reload;
pub mod retry;
pub mod routing;
pub mod store;
pub mod template;
