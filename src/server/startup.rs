//! Serving while the engine starts: the port answers as soon as it is bound. Until the rubric
//! set is indexed, `/healthz` is 200, `/readyz` is 503 with the progress ("indexing 812/1824"),
//! and every other route is a 503 problem with `Retry-After`; then the full router takes over.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower::ServiceExt;

use crate::problem::Problem;

/// How far start-up has got, shared by the indexing task and the warm-up routes.
#[derive(Debug, Default)]
pub struct Warmup {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Warmup {
    pub fn set(&self, done: usize, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(done, Ordering::Relaxed);
    }

    /// "starting", or "indexing 812/1824".
    pub fn status(&self) -> String {
        match (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        ) {
            (_, 0) => "starting".into(),
            (done, total) => format!("indexing {done}/{total}"),
        }
    }
}

/// `/readyz` while starting.
#[derive(Debug, Serialize)]
struct Starting {
    ready: bool,
    status: String,
    indexed: usize,
    to_index: usize,
}

/// The routes served until the engine is ready.
fn warmup_router(warmup: Arc<Warmup>) -> Router {
    let readyz = {
        let warmup = warmup.clone();
        move || async move {
            let body = Starting {
                ready: false,
                status: warmup.status(),
                indexed: warmup.done.load(Ordering::Relaxed),
                to_index: warmup.total.load(Ordering::Relaxed),
            };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body))
        }
    };
    Router::new()
        .route("/healthz", get(super::ops::healthz))
        .route("/readyz", get(readyz))
        .fallback(move || async move {
            let mut r: Response = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "Starting",
                format!(
                    "grader is starting ({}); retry when GET /readyz answers 200",
                    warmup.status()
                ),
            )
            .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        })
}

/// One router for the whole life of the server: the warm-up routes until `ready` is set, the
/// full router after.
pub fn switching_router(ready: Arc<OnceLock<Router>>, warmup: Arc<Warmup>) -> Router {
    let warmup = warmup_router(warmup);
    let svc = tower::service_fn(move |req: Request| {
        let router = ready.get().cloned().unwrap_or_else(|| warmup.clone());
        router.oneshot(req)
    });
    Router::new().fallback_service(svc)
}
