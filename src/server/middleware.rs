//! Middleware: API keys and roles on `/v1` (admin keys on the audit routes), one log line per request (in a span with the request id),
//! the request id in problem bodies, and panics turned into a 500 problem.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{AppState, REQUEST_ID};
use crate::problem::{PROBLEM_JSON, Problem};

/// Who is calling, from the key presented: graders grade; admins also read full rubrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Grader,
    Admin,
}

/// Whether `presented` is one of `keys`: every key is compared, in constant time, so timing
/// does not reveal which one nearly matched.
fn matches_any(keys: &[secrecy::SecretString], presented: &str) -> bool {
    keys.iter().fold(false, |acc, k| {
        acc | bool::from(k.expose_secret().as_bytes().ct_eq(presented.as_bytes()))
    })
}

/// Keys on `/v1`: with `server.api_keys` set, a request needs one of them or an admin key
/// (`Authorization: Bearer <key>` or `x-api-key`); without, grading is open. An admin key
/// (`server.admin_keys`) makes the request an admin's. A key that matches nothing is refused
/// even on an open server (it is someone's mistake). Keys are never logged.
pub async fn require_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let server = &state.engine.settings().server;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let role = match presented {
        Some(p) if matches_any(&server.admin_keys, p) => Some(Role::Admin),
        Some(p) if matches_any(&server.api_keys, p) => Some(Role::Grader),
        Some(_) => None,
        None if server.api_keys.is_empty() => Some(Role::Grader),
        None => None,
    };
    let open = server.api_keys.is_empty() && server.admin_keys.is_empty();
    match role {
        Some(role) => {
            req.extensions_mut().insert(role);
            next.run(req).await
        }
        None if open => {
            req.extensions_mut().insert(Role::Grader);
            next.run(req).await
        }
        None => {
            let detail = if presented.is_some() {
                "the API key is not valid"
            } else {
                "this server needs an API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
            };
            unauthorized(detail)
        }
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

fn unauthorized(detail: &str) -> Response {
    let mut resp = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        detail,
    )
    .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Reviewing and reading stored grades need an admin key (`server.admin_keys`): 401 without a
/// key, 403 with a key that is not an admin's, 403 when no admin key is configured.
pub async fn require_admin(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let admins = &state.engine.settings().server.admin_keys;
    let forbidden = |detail: &str| {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail).into_response()
    };
    match presented_key(&headers) {
        _ if admins.is_empty() => forbidden(
            "reviewing and reading stored grades need an admin key, and this server has none: set server.admin_keys (GRADER__SERVER__ADMIN_KEYS='[\"…\"]')",
        ),
        None | Some("") => unauthorized(
            "this needs an admin key: send `Authorization: Bearer <admin key>` or `x-api-key: <admin key>`",
        ),
        Some(p) if matches_any(admins, p) => next.run(req).await,
        Some(_) => forbidden("this key is not an admin key (server.admin_keys)"),
    }
}

/// One log line per request, inside a span carrying the request id.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let _g = span.enter();
    let status = resp.status().as_u16();
    if status >= 500 {
        tracing::error!(
            status,
            ms = started.elapsed().as_millis() as u64,
            "request failed"
        );
    } else {
        tracing::info!(status, ms = started.elapsed().as_millis() as u64, "request");
    }
    resp
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::internal().into_response()
}

/// Problems carry the request id (the `x-request-id` header) so a client can quote it and an
/// operator can find the log lines. Only problem bodies are rewritten; they are small.
pub async fn problem_request_id(req: Request, next: Next) -> Response {
    // Set on the request by `SetRequestIdLayer`; the response gets the header further out.
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let resp = next.run(req).await;
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let Some(id) = id.filter(|_| is_problem) else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Problem::internal().into_response();
    };
    let Ok(mut problem) = serde_json::from_slice::<Problem>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    problem.request_id = Some(id);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
