//! The HTTP status and admin API (axum): notification lookups, live carrier state,
//! configuration reload, and the health and readiness probes.
//!
//! The API knows nothing of actix or the pipeline. It reads and acts through three traits —
//! [`Notifications`] (the store's read side), [`Carriers`] (live carrier state) and [`Admin`]
//! (reload) — that the pipeline implements, so the whole API is tested here with fakes.
//!
//! - [`router`] builds the routes; [`serve`] runs them on a listener until a cancellation.
//! - Everything under `/v1` needs `Authorization: Bearer <token>` ([`auth`]); the probes
//!   `/healthz` and `/readyz` do not.
//! - A notification lookup this instance cannot answer goes to its peers ([`Peers`],
//!   `api.peers`): with several instances, each holds the records of the debits it consumed.
//! - Operator documentation: `docs/api.md`.

mod auth;
mod config;
mod handlers;
mod peers;
#[cfg(test)]
mod tests;

use std::future::IntoFuture;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use futures::future::BoxFuture;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::ApiConfig;
pub use peers::{HttpPeers, Peers, Unavailable, PEER_TIMEOUT, SCOPE_HEADER, SCOPE_LOCAL};

/// Longest path parameter (event or transaction id) accepted, in bytes; longer ones get 400.
pub const MAX_PATH_PARAM_BYTES: usize = 128;
/// Longest time one request may take before it is answered 503 `{"error":"timeout"}`.
/// A reload that outlives it still completes; only its answer is lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`serve`] waits, once stopped, for requests in flight before it drops them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Read side of the notification store. Called on the blocking thread pool, so an
/// implementation may read from disk.
pub trait Notifications: Send + Sync + 'static {
    /// The record of one event, or `None` when the store does not know it.
    fn by_event_id(&self, id: &str) -> anyhow::Result<Option<serde_json::Value>>;
    /// Every record of one transaction, in any order; empty when none is known.
    fn by_transaction_id(&self, id: &str) -> anyhow::Result<Vec<serde_json::Value>>;
}

/// Live carrier state. Called on the async runtime: it must not block.
pub trait Carriers: Send + Sync + 'static {
    /// One view per configured carrier, in configuration order.
    fn carriers(&self) -> Vec<CarrierView>;
}

/// Administrative actions.
pub trait Admin: Send + Sync + 'static {
    /// Reads and validates the configuration file again and applies it: `Ok` with a summary
    /// of what changed, or `Err` with every validation error. The future runs as its own task,
    /// so it completes even when the client that asked goes away.
    fn reload(&self) -> BoxFuture<'static, Result<serde_json::Value, Vec<String>>>;
}

/// One carrier as `GET /v1/carriers` shows it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct CarrierView {
    pub name: String,
    /// Binds currently bound.
    pub binds_up: usize,
    /// Binds configured.
    pub binds: usize,
    pub breaker: BreakerView,
    /// Whether routing may send to this carrier now (a bind up and the breaker not open).
    pub up: bool,
    /// The rate this instance sends the carrier at (its share with `engine.rate_share =
    /// "partitions"`); `None` when unlimited or unknown.
    pub rate_segments_per_second: Option<f64>,
}

/// A carrier's circuit breaker state, serialised as `"closed"`, `"open"` or `"half_open"`.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BreakerView {
    Closed,
    Open,
    HalfOpen,
}

impl From<&crate::breaker::State> for BreakerView {
    fn from(state: &crate::breaker::State) -> Self {
        match state {
            crate::breaker::State::Closed { .. } => BreakerView::Closed,
            crate::breaker::State::Open { .. } => BreakerView::Open,
            crate::breaker::State::HalfOpen { .. } => BreakerView::HalfOpen,
        }
    }
}

/// Everything the handlers reach. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The bearer token of every `/v1` route. Never logged; an empty token refuses them all.
    pub token: Arc<str>,
    pub notifications: Arc<dyn Notifications>,
    pub carriers: Arc<dyn Carriers>,
    pub admin: Arc<dyn Admin>,
    /// `/readyz` answers 200 while this is true, 503 otherwise.
    pub ready: Arc<AtomicBool>,
    /// The deployment's other instances, asked what this one's store does not hold
    /// (`api.peers`); `None`: this instance answers alone.
    pub peers: Option<Arc<dyn Peers>>,
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/notifications/{event_id}", get(handlers::notification))
        .route(
            "/v1/transactions/{transaction_id}/notifications",
            get(handlers::transaction_notifications),
        )
        .route("/v1/carriers", get(handlers::carriers))
        .route("/v1/admin/reload", post(handlers::reload))
        .route_layer(middleware::from_fn_with_state(
            state.token.clone(),
            auth::require_bearer,
        ));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .merge(v1)
        .fallback(handlers::not_found)
        .layer(middleware::from_fn(handlers::refuse_bodies))
        .layer(middleware::from_fn(handlers::deadline))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `stop` is cancelled, then stops accepting, lets the
/// requests in flight finish (at most [`DRAIN_TIMEOUT`]) and returns.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "http api listening");
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future();
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = server => {
            tracing::info!(%addr, "http api stopped");
            result
        }
        () = drain_deadline => {
            tracing::warn!(%addr, "http api drain timed out, dropping open requests");
            Ok(())
        }
    }
}
