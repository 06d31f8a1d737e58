//! Bearer token check for the `/v1` routes.
//!
//! The token is compared in constant time (`subtle`); only its length can be learnt from
//! timing. It is never logged, and an empty configured token refuses every request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::handlers::ApiError;

/// Middleware: runs the route only when the request carries `Authorization: Bearer <token>`,
/// otherwise answers 401 with `WWW-Authenticate: Bearer`.
pub(super) async fn require_bearer(
    State(token): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(request.headers(), &token) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// Whether `headers` hold the bearer `token`. The scheme is case-insensitive (RFC 7235).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return false;
    };
    let Some((scheme, credentials)) = split_scheme(value.as_bytes()) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer") && bool::from(credentials.ct_eq(token.as_bytes()))
}

/// `b"Bearer  abc "` -> `(b"Bearer", b"abc")`; `None` without a space after the scheme.
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    Some((scheme, rest.trim_ascii()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accepts_the_token_whatever_the_scheme_case() {
        assert!(authorized(&with_auth(&format!("Bearer {TOKEN}")), TOKEN));
        assert!(authorized(&with_auth(&format!("bearer  {TOKEN} ")), TOKEN));
    }

    #[test]
    fn refuses_anything_else() {
        assert!(!authorized(&HeaderMap::new(), TOKEN));
        assert!(!authorized(&with_auth(TOKEN), TOKEN));
        assert!(!authorized(&with_auth(&format!("Basic {TOKEN}")), TOKEN));
        assert!(!authorized(&with_auth("Bearer 0123456789abcdeF"), TOKEN));
        assert!(!authorized(&with_auth("Bearer 0123456789abcde"), TOKEN));
        assert!(!authorized(&with_auth("Bearer 0123456789abcdef0"), TOKEN));
        assert!(!authorized(&with_auth("Bearer "), TOKEN));
    }

    #[test]
    fn an_empty_configured_token_refuses_even_an_empty_credential() {
        assert!(!authorized(&with_auth("Bearer "), ""));
        assert!(!authorized(&HeaderMap::new(), ""));
    }
}
