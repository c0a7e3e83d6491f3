//! Operations: `/healthz`, `/readyz`, `/metrics`, and the problems for unknown routes and
//! methods.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::config::JudgeKind;
use crate::engine::admission::Load;
use crate::problem::{Problem, error_chain};

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// "ready", "indexing 812/1824" (after start: rubrics already indexed grade by id, the
    /// others as soon as their points are in), "saturated", or "store unavailable".
    pub status: String,
    /// While indexing after start: texts embedded so far, and to embed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_index: Option<usize>,
    pub rubrics: usize,
    pub embedding_model: String,
    pub store: String,
    pub indexed_points: usize,
    /// Whether an LLM endpoint is configured (then `judge.kind = auto` uses it).
    pub llm_configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_model: Option<String>,
    #[schema(value_type = String)]
    pub default_judge: JudgeKind,
    pub slack_configured: bool,
    pub uptime_seconds: u64,
    /// Why the vector store cannot be read (then not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// The admission queue: grades admitted now and `limits.max_queued_grades`.
    #[schema(value_type = Object)]
    pub queue: Load,
    /// The queue is full: new work gets 503 until grades finish (then not ready).
    pub saturated: bool,
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready: indexing after start (`status`: \"indexing 812/1824\"), no index, the store cannot be reached (`store_error`), or saturated", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let e = &state.engine;
    let (points, store_error) = match e.indexed_questions().await {
        Ok(n) => (n, None),
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "readiness: the vector store cannot be read");
            (0, Some(err.to_string()))
        }
    };
    let queue = e.load();
    let saturated = queue.saturated();
    let indexing = e.indexing();
    let ready = points > 0
        && !e.catalog().is_empty()
        && store_error.is_none()
        && !saturated
        && indexing.is_none();
    let status = match (&indexing, &store_error) {
        (Some(p), _) => p.to_string(),
        (None, Some(_)) => "store unavailable".into(),
        (None, None) if saturated => "saturated".into(),
        (None, None) if ready => "ready".into(),
        (None, None) => "no rubrics indexed".into(),
    };
    let r = Readiness {
        ready,
        status,
        indexed: indexing.map(|p| p.done),
        to_index: indexing.map(|p| p.total),
        store_error,
        queue,
        saturated,
        rubrics: e.catalog().len(),
        embedding_model: e.embedder().model_id().to_string(),
        store: e.store().describe(),
        indexed_points: points,
        llm_configured: e.llm_model().is_some(),
        llm_model: e.llm_model().map(str::to_string),
        default_judge: e.effective_judge(None),
        slack_configured: e.settings().slack.is_configured(),
        uptime_seconds: state.started.elapsed().as_secs(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(
        state.engine.llm_stats(),
        state.engine.audit().map(|a| a.stats()),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

pub async fn not_found(req: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        format!(
            "no route {} {}; see GET /openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}

pub async fn method_not_allowed(req: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}; see GET /openapi.json",
            req.method(),
            req.uri().path()
        ),
    )
}
