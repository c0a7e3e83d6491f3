//! Serving while the engine starts: the port answers as soon as it is bound. Until the engine
//! has loaded what is indexed (a moment; nothing is embedded then), `/healthz` is 200, `/readyz`
//! is 503 `{"status": "starting"}`, and every other route is a 503 problem with `Retry-After`;
//! then the full router takes over, and `/readyz` reports indexing progress itself.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower::ServiceExt;

use crate::problem::Problem;

/// `/readyz` while starting.
#[derive(Debug, Serialize)]
struct Starting {
    ready: bool,
    status: &'static str,
}

/// The routes served until the engine is built.
fn warmup_router() -> Router {
    Router::new()
        .route("/healthz", get(super::ops::healthz))
        .route(
            "/readyz",
            get(|| async {
                let body = Starting {
                    ready: false,
                    status: "starting",
                };
                (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body))
            }),
        )
        .fallback(|| async {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "Starting",
                "grader is starting; retry when GET /readyz answers 200",
            );
            p.retry_after = Some(1);
            let r: Response = p.into_response();
            r
        })
}

/// One router for the whole life of the server: the warm-up routes until `ready` is set, the
/// full router after.
pub fn switching_router(ready: Arc<OnceLock<Router>>) -> Router {
    let warmup = warmup_router();
    let svc = tower::service_fn(move |req: Request| {
        let router = ready.get().cloned().unwrap_or_else(|| warmup.clone());
        router.oneshot(req)
    });
    Router::new().fallback_service(svc)
}
