//! `POST /v1/grade` and `POST /v1/grade/batch`: request bodies checked into grading requests,
//! admission into the bounded queue (503 with `Retry-After` when it is full), a timeout per
//! grade (its work is dropped, not finished in the background), and per-item outcomes for
//! batches (one bad item fails alone).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonBody;
use super::metrics::JudgeLabel;
use crate::config::JudgeKind;
use crate::engine::{GradeRequest, LimitError, QuestionRef};
use crate::grade::Grade;
use crate::problem::Problem;

/// `POST /v1/grade` body. Name the question one way: `question_id`, or `question` (matched to a
/// rubric), or `question` + `reference_answer` (graded against the reference).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GradeBody {
    pub question_id: Option<String>,
    pub question: Option<String>,
    pub reference_answer: Option<String>,
    /// Other acceptable phrasings of `reference_answer` (only with it).
    pub reference_answers: Option<Vec<String>>,
    pub answer: Option<String>,
    /// `auto` (default), `coverage`, `llm` or `hybrid`.
    #[schema(value_type = Option<String>)]
    pub judge: Option<JudgeKind>,
    /// LLM samples to vote over (1..=15).
    pub samples: Option<u32>,
    /// Who answered (an id or e-mail of your choosing), stored with the grade so
    /// `grader purge --candidate` can delete it.
    pub candidate: Option<String>,
}

impl GradeBody {
    /// Check the body into a grading request; `prefix` names batch items (`items[3].`).
    pub fn validate(mut self, prefix: &str) -> Result<GradeRequest, Problem> {
        let f = |name: &str| format!("{prefix}{name}");
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let answer = self.answer.ok_or_else(|| {
            Problem::validation(
                &f("answer"),
                format!(
                    "{} is required: send the candidate's answer text",
                    f("answer")
                ),
            )
        })?;
        if answer.trim().is_empty() {
            return Err(Problem::validation(
                &f("answer"),
                format!("{} is empty: send the candidate's answer text", f("answer")),
            ));
        }
        let question = match (
            nonempty(self.question_id),
            nonempty(self.question),
            nonempty(self.reference_answer),
        ) {
            (Some(id), None, None) => QuestionRef::Id(id),
            (None, Some(q), None) => QuestionRef::Text(q),
            (None, Some(q), Some(r)) => QuestionRef::AdHoc {
                question: q,
                reference_answer: r,
                alternatives: self.reference_answers.take().unwrap_or_default(),
            },
            (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                return Err(Problem::validation(
                    &f("question_id"),
                    "name the question one way: question_id, or question (optionally with reference_answer), not both",
                ));
            }
            (None, None, Some(_)) => {
                return Err(Problem::validation(
                    &f("question"),
                    "reference_answer needs the question it answers: add `question`",
                ));
            }
            (None, None, None) => {
                return Err(Problem::validation(
                    &f("question_id"),
                    "name the question: send question_id, or question (optionally with reference_answer)",
                ));
            }
        };
        if let Some(s) = self.samples
            && !(1..=15).contains(&s)
        {
            return Err(Problem::validation(
                &f("samples"),
                "samples must be between 1 and 15",
            ));
        }
        Ok(GradeRequest {
            question,
            answer,
            judge: self.judge,
            samples: self.samples,
        })
    }
}

async fn run_grade(
    state: &AppState,
    headers: &HeaderMap,
    candidate: Option<String>,
    req: GradeRequest,
    prefix: &str,
) -> Result<Grade, Problem> {
    let timeout = Duration::from_millis(state.engine.settings().server.request_timeout_ms.max(1));
    match tokio::time::timeout(timeout, state.engine.grade(&req)).await {
        Ok(Ok(g)) => {
            super::grades::record_api_grade(state, headers, candidate, &req, &g);
            state
                .metrics
                .grades
                .get_or_create(&JudgeLabel {
                    judge: g.judge.kind.to_string(),
                })
                .inc();
            Ok(g)
        }
        Ok(Err(e)) => {
            state.metrics.grade_errors.inc();
            Err(Problem::from_grade_error(&e, prefix))
        }
        Err(_) => {
            state.metrics.grade_errors.inc();
            Err(Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "Grading timed out",
                format!(
                    "grading took longer than server.request_timeout_ms ({} ms)",
                    timeout.as_millis()
                ),
            ))
        }
    }
}

#[utoipa::path(post, path = "/v1/grade", request_body = GradeBody,
    responses((status = 200, description = "The grade", body = Grade),
              (status = 400, description = "Malformed JSON or invalid UTF-8", body = Problem),
              (status = 401, description = "Missing or wrong API key", body = Problem),
              (status = 413, description = "Body over limits.max_body_bytes", body = Problem),
              (status = 415, description = "Not JSON", body = Problem),
              (status = 422, description = "Invalid request, unknown or unmatched question, over a limit (`limits.*`)", body = Problem),
              (status = 503, description = "At capacity (limits.max_queued_grades) or the vector store is down; see Retry-After", body = Problem)))]
pub async fn grade(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<GradeBody>,
) -> Result<Json<Grade>, Problem> {
    let candidate = body.candidate.clone();
    let req = body.validate("")?;
    let admitted = state.engine.admit(1).map_err(|o| Problem::overloaded(&o))?;
    admitted
        .run(run_grade(&state, &headers, candidate, req, ""))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub items: Vec<serde_json::Value>,
}

/// One item's outcome, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grade: Option<Grade>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub results: Vec<BatchItem>,
    pub succeeded: usize,
    pub failed: usize,
}

#[utoipa::path(post, path = "/v1/grade/batch", request_body = BatchBody,
    responses((status = 200, description = "Per-item grade or problem, in order", body = BatchResponse),
              (status = 422, description = "Not a batch, or more than limits.max_batch items", body = Problem),
              (status = 503, description = "At capacity (limits.max_queued_grades); see Retry-After", body = Problem)))]
pub async fn grade_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Json<BatchResponse>, Problem> {
    let max = state.engine.settings().limits.max_batch;
    if body.items.is_empty() {
        return Err(Problem::validation(
            "items",
            "items is empty: send at least one item",
        ));
    }
    if body.items.len() > max {
        return Err(Problem::over_limit(
            &LimitError {
                field: "items".into(),
                limit: "limits.max_batch",
                value: body.items.len(),
                max,
                unit: "items",
                fix: "split the batch",
            },
            "",
        ));
    }
    let admitted = state
        .engine
        .admit(body.items.len())
        .map_err(|o| Problem::overloaded(&o))?;
    let concurrency = state.engine.settings().limits.concurrency;
    let work = futures::stream::iter(body.items.into_iter().enumerate().map(|(index, raw)| {
        let state = state.clone();
        let headers = &headers;
        async move {
            let prefix = format!("items[{index}].");
            // Each item is parsed on its own: one malformed item fails alone.
            let outcome = match serde_path_to_error::deserialize::<_, GradeBody>(raw) {
                Err(e) => Err(Problem::validation(
                    format!("{prefix}{}", e.path())
                        .replace(".. ", ".")
                        .trim_end_matches('.'),
                    format!("{prefix}{}", e.into_inner()),
                )),
                Ok(b) => {
                    let candidate = b.candidate.clone();
                    match b.validate(&prefix) {
                        Err(p) => Err(p),
                        Ok(req) => run_grade(&state, headers, candidate, req, &prefix).await,
                    }
                }
            };
            match outcome {
                Ok(g) => BatchItem {
                    index,
                    grade: Some(g),
                    error: None,
                },
                Err(p) => BatchItem {
                    index,
                    grade: None,
                    error: Some(p),
                },
            }
        }
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<BatchItem>>();
    let mut results = admitted.run(work).await;
    results.sort_by_key(|r| r.index);
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(Json(BatchResponse {
        succeeded: results.len() - failed,
        failed,
        results,
    }))
}
