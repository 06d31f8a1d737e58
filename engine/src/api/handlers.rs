//! Route handlers, the cross-cutting middleware (body refusal, deadline) and the error body.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::HttpBody;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::peers::{Peers, Unavailable, SCOPE_HEADER, SCOPE_LOCAL};
use super::{ApiState, Notifications, MAX_PATH_PARAM_BYTES, REQUEST_TIMEOUT};

/// Every answer that is not a success, with its status and JSON body
/// `{"error": <code>, ...}`.
#[derive(Debug)]
pub(super) enum ApiError {
    /// 400: a path parameter that is too long or cannot be decoded.
    BadRequest(&'static str),
    /// 401, with `WWW-Authenticate: Bearer`.
    Unauthorized,
    /// 404.
    NotFound,
    /// 413: a request with a body; no route takes one.
    PayloadTooLarge,
    /// 422: the configuration file was refused; every reason listed.
    InvalidConfiguration(Vec<String>),
    /// 500: the store failed; details are in the log only.
    Internal,
    /// 503: the request took longer than [`REQUEST_TIMEOUT`].
    Timeout,
    /// 503: this instance does not hold the record and these peers could not be asked, so
    /// "not found" cannot be said.
    PeersUnavailable(Vec<String>),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "message": message}),
            ),
            ApiError::Unauthorized => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"error": "unauthorized"})),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "not_found"})),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "payload_too_large"}),
            ),
            ApiError::InvalidConfiguration(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid_configuration", "errors": errors}),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal"}),
            ),
            ApiError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "timeout"})),
            ApiError::PeersUnavailable(peers) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "peers_unavailable", "peers": peers}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 while the pipeline is ready to take traffic, 503 otherwise.
pub(super) async fn readyz(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready"})),
        )
            .into_response()
    }
}

/// `GET /v1/notifications/{event_id}`: the stored record of one event.
pub(super) async fn notification(
    State(state): State<ApiState>,
    headers: HeaderMap,
    event_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let event_id = path_param(event_id)?;
    let id = event_id.clone();
    let record = lookup(state.notifications, "by_event_id", move |store| {
        store.by_event_id(&id)
    })
    .await?;
    if let Some(record) = record {
        return Ok(Json(record));
    }
    let Some(peers) = peers_to_ask(state.peers, &headers) else {
        return Err(ApiError::NotFound);
    };
    let answer = peers.notification(event_id).await;
    crate::metrics::peer_lookup(match &answer {
        Ok(Some(_)) => "found",
        Ok(None) => "not_found",
        Err(_) => "unavailable",
    });
    match answer {
        Ok(found) => found.map(Json).ok_or(ApiError::NotFound),
        Err(Unavailable(peers)) => Err(ApiError::PeersUnavailable(peers)),
    }
}

/// The peers to ask after a local miss: none when there are none, or when the request is
/// itself a peer's (scoped to this instance's store).
fn peers_to_ask(peers: Option<Arc<dyn Peers>>, headers: &HeaderMap) -> Option<Arc<dyn Peers>> {
    let scope = headers.get(SCOPE_HEADER).and_then(|v| v.to_str().ok());
    peers.filter(|_| scope != Some(SCOPE_LOCAL))
}

/// `GET /v1/transactions/{transaction_id}/notifications`: every record of one transaction.
pub(super) async fn transaction_notifications(
    State(state): State<ApiState>,
    headers: HeaderMap,
    transaction_id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let transaction_id = path_param(transaction_id)?;
    let id = transaction_id.clone();
    let mut records = lookup(state.notifications, "by_transaction_id", move |store| {
        store.by_transaction_id(&id)
    })
    .await?;
    if let Some(peers) = peers_to_ask(state.peers, &headers) {
        let answer = peers.transaction(transaction_id).await;
        crate::metrics::peer_lookup(match &answer {
            Ok(found) if !found.is_empty() => "found",
            Ok(_) => "not_found",
            Err(_) => "unavailable",
        });
        let theirs = answer.map_err(|Unavailable(peers)| ApiError::PeersUnavailable(peers))?;
        // A record two instances hold (a debit consumed again after its partition moved)
        // is shown once.
        let id = |r: &Value| r["event_id"].as_str().map(str::to_owned);
        let mut seen: HashSet<String> = records.iter().filter_map(id).collect();
        records.extend((theirs.into_iter()).filter(|r| id(r).is_none_or(|id| seen.insert(id))));
    }
    if records.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(json!({"notifications": records})))
}

/// `GET /v1/carriers`: each carrier's binds, breaker and rate.
pub(super) async fn carriers(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({"carriers": state.carriers.carriers()}))
}

/// `POST /v1/admin/reload`: applies the configuration file again. The reload runs as its own
/// task, so a client that goes away, or the request deadline, does not cut it halfway.
pub(super) async fn reload(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    match tokio::spawn(state.admin.reload()).await {
        Ok(Ok(summary)) => {
            tracing::info!("configuration reloaded through the http api");
            Ok(Json(summary))
        }
        Ok(Err(errors)) => {
            tracing::warn!(
                errors = errors.len(),
                "configuration reload through the http api refused"
            );
            Err(ApiError::InvalidConfiguration(errors))
        }
        Err(e) => {
            tracing::warn!(error = %e, "configuration reload task failed");
            Err(ApiError::Internal)
        }
    }
}

/// Any other path: 404 with the JSON error body.
pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Middleware: no route takes a body, so a request announcing one (or of unknown length) is
/// answered 413 before it reaches a handler, and its body is never read.
pub(super) async fn refuse_bodies(request: Request, next: Next) -> Response {
    if request.body().size_hint().upper() == Some(0) {
        next.run(request).await
    } else {
        ApiError::PayloadTooLarge.into_response()
    }
}

/// Middleware: answers 503 when a request takes longer than [`REQUEST_TIMEOUT`].
pub(super) async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("http api request timed out");
            ApiError::Timeout.into_response()
        }
    }
}

/// The decoded path parameter, at most [`MAX_PATH_PARAM_BYTES`] long.
fn path_param(param: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(value) = param.map_err(|_| ApiError::BadRequest("invalid path parameter"))?;
    if value.len() > MAX_PATH_PARAM_BYTES {
        return Err(ApiError::BadRequest("path parameter too long"));
    }
    Ok(value)
}

/// Runs one store read on the blocking pool. Failures are logged with the operation only (no
/// id, so nothing personal) and answered 500.
async fn lookup<T, F>(
    store: Arc<dyn Notifications>,
    operation: &'static str,
    read: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Notifications) -> anyhow::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || read(store.as_ref())).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(operation, error = %format!("{e:#}"), "notification store read failed");
            Err(ApiError::Internal)
        }
        Err(e) => {
            tracing::warn!(operation, error = %e, "notification store read task failed");
            Err(ApiError::Internal)
        }
    }
}
