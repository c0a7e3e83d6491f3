//! Route handlers and the OpenAPI document generated from their types.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::body::JsonBody;
use super::metrics::JudgeLabel;
use super::problem::{Problem, error_chain};
use crate::config::JudgeKind;
use crate::engine::{GradeRequest, QuestionRef};
use crate::grade::{CriterionResult, Flag, Grade, JudgeInfo, MisconceptionResult, Usage, Verdict};
use crate::matching::Candidate;
use crate::rubric::RubricKind;

/// `POST /v1/grade` body. Name the question one way: `question_id`, or `question` (matched to a
/// rubric), or `question` + `reference_answer` (graded against the reference).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GradeBody {
    pub question_id: Option<String>,
    pub question: Option<String>,
    pub reference_answer: Option<String>,
    pub answer: Option<String>,
    /// `auto` (default), `coverage`, `llm` or `hybrid`.
    #[schema(value_type = Option<String>)]
    pub judge: Option<JudgeKind>,
    /// LLM samples to vote over (1..=15).
    pub samples: Option<u32>,
}

impl GradeBody {
    /// Check the body into a grading request; `prefix` names batch items (`items[3].`).
    pub fn validate(self, prefix: &str) -> Result<GradeRequest, Problem> {
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

async fn run_grade(state: &AppState, req: GradeRequest, prefix: &str) -> Result<Grade, Problem> {
    let timeout = Duration::from_millis(state.engine.settings.server.request_timeout_ms.max(1));
    match tokio::time::timeout(timeout, state.engine.grade(&req)).await {
        Ok(Ok(g)) => {
            state
                .metrics
                .grades
                .get_or_create(&JudgeLabel {
                    judge: g.judge.kind.clone(),
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
              (status = 422, description = "Invalid request, unknown or unmatched question, answer too long", body = Problem)))]
pub async fn grade(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<GradeBody>,
) -> Result<Json<Grade>, Problem> {
    let req = body.validate("")?;
    run_grade(&state, req, "").await.map(Json)
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
              (status = 422, description = "Not a batch, or more than limits.max_batch items", body = Problem)))]
pub async fn grade_batch(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Json<BatchResponse>, Problem> {
    let max = state.engine.settings.limits.max_batch;
    if body.items.is_empty() {
        return Err(Problem::validation(
            "items",
            "items is empty: send at least one item",
        ));
    }
    if body.items.len() > max {
        return Err(Problem::validation(
            "items",
            format!(
                "{} items is more than limits.max_batch ({max}); split the batch",
                body.items.len()
            ),
        ));
    }
    let concurrency = state.engine.settings.limits.concurrency;
    let mut results: Vec<BatchItem> =
        futures::stream::iter(body.items.into_iter().enumerate().map(|(index, raw)| {
            let state = state.clone();
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
                    Ok(b) => match b.validate(&prefix) {
                        Err(p) => Err(p),
                        Ok(req) => run_grade(&state, req, &prefix).await,
                    },
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
        .collect()
        .await;
    results.sort_by_key(|r| r.index);
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    Ok(Json(BatchResponse {
        succeeded: results.len() - failed,
        failed,
        results,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QuestionsQuery {
    /// Only this topic (e.g. `core`, `concurrency`).
    pub topic: Option<String>,
    /// Rank by similarity to this question text.
    pub q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionSummary {
    pub id: String,
    pub topic: String,
    #[schema(value_type = String)]
    pub kind: RubricKind,
    pub question: String,
    pub criteria: usize,
    pub exemplars: usize,
    /// Similarity to `q`, when searching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

#[utoipa::path(get, path = "/v1/questions", params(QuestionsQuery),
    responses((status = 200, description = "Question summaries", body = [QuestionSummary])))]
pub async fn questions(
    State(state): State<AppState>,
    query: Result<Query<QuestionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<QuestionSummary>>, Problem> {
    let Query(query) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Invalid query string",
            format!(
                "{}; use ?topic=<topic> and/or ?q=<question text>",
                e.body_text()
            ),
        )
    })?;
    let engine = &state.engine;
    let summary = |r: &crate::rubric::Rubric, similarity: Option<f32>| QuestionSummary {
        id: r.id.clone(),
        topic: r.topic.clone(),
        kind: r.kind,
        question: r.question.clone(),
        criteria: r.criteria.len(),
        exemplars: r.exemplars.len(),
        similarity,
    };
    let topic_ok = |r: &crate::rubric::Rubric| query.topic.as_ref().is_none_or(|t| r.topic == *t);
    match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => Ok(Json(
            engine
                .catalog
                .iter()
                .filter(|r| topic_ok(r))
                .map(|r| summary(r, None))
                .collect(),
        )),
        Some(q) => {
            let hits = crate::matching::match_vector(
                &engine.embedder.embed(&[q.to_string()]).await.map_err(|e| {
                    tracing::error!(error = %error_chain(&e), "embedding failed");
                    Problem::internal()
                })?[0],
                engine.store.as_ref(),
                &engine.collections,
                engine.settings.matching.threshold,
                engine.catalog.len(),
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %error_chain(&e), "search failed");
                Problem::internal()
            })?;
            Ok(Json(
                hits.candidates
                    .iter()
                    .filter_map(|c| engine.catalog.get(&c.rubric_id).map(|r| (r, c.similarity)))
                    .filter(|(r, _)| topic_ok(r))
                    .take(10)
                    .map(|(r, s)| summary(r, Some(s)))
                    .collect(),
            ))
        }
    }
}

#[utoipa::path(get, path = "/v1/questions/{id}", params(("id" = String, Path, description = "Rubric id, e.g. core.copy")),
    responses((status = 200, description = "The rubric, exemplars included", body = serde_json::Value),
              (status = 404, description = "No such rubric", body = Problem)))]
pub async fn question(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::rubric::Rubric>, Problem> {
    state
        .engine
        .catalog
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-question",
                "Unknown question id",
                format!("no rubric `{id}`: list them with GET /v1/questions"),
            )
        })
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub rubrics: usize,
    pub embedding_model: String,
    pub store: String,
    pub indexed_points: usize,
    /// Whether an LLM endpoint is configured (then `judge.kind = auto` uses it).
    pub llm_configured: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_model: Option<String>,
    pub default_judge: String,
    pub slack_configured: bool,
    pub uptime_seconds: u64,
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let e = &state.engine;
    let points = e.store.count(&e.collections.questions).await.unwrap_or(0);
    let ready = points > 0 && !e.catalog.is_empty();
    let r = Readiness {
        ready,
        rubrics: e.catalog.len(),
        embedding_model: e.embedder.model_id().to_string(),
        store: e.store.describe(),
        indexed_points: points,
        llm_configured: e.llm.is_some(),
        llm_model: e.llm.as_ref().map(|l| l.model().to_string()),
        default_judge: format!("{:?}", e.effective_judge(None)).to_lowercase(),
        slack_configured: e.settings.slack.is_configured(),
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
    let body = state
        .metrics
        .render(state.engine.llm.as_ref().map(|l| l.stats.as_ref()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "grader",
        description = "Grade interview answers against rubrics, criterion by criterion, with quoted evidence."
    ),
    paths(grade, grade_batch, questions, question, transcripts, healthz, readyz),
    components(schemas(
        GradeBody,
        Grade,
        CriterionResult,
        MisconceptionResult,
        JudgeInfo,
        Usage,
        Flag,
        Verdict,
        Problem,
        Candidate,
        BatchBody,
        BatchItem,
        BatchResponse,
        QuestionSummary,
        Readiness
    ))
)]
pub struct ApiDoc;

pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_json().unwrap_or_default(),
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

/// When `server.api_keys` is set, /v1 routes need `Authorization: Bearer <key>` or `x-api-key`.
/// Keys are compared in constant time and never logged.
pub async fn require_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let keys = &state.engine.settings.server.api_keys;
    if keys.is_empty() {
        return next.run(req).await;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let ok = presented.is_some_and(|p| {
        // Check every key (no early exit) so timing does not reveal which one nearly matched.
        keys.iter().fold(false, |acc, k| {
            acc | bool::from(k.expose_secret().as_bytes().ct_eq(p.as_bytes()))
        })
    });
    if ok {
        next.run(req).await
    } else {
        let detail = if presented.is_some() {
            "the API key is not valid"
        } else {
            "this server needs an API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`"
        };
        let mut resp = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        resp
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    /// text, vtt, srt or json (default: detected from the content).
    pub format: Option<String>,
    /// A name for the report (default `transcript`).
    pub name: Option<String>,
}

/// `POST /v1/transcripts`: a transcript as text (`text/plain`, `text/vtt`, `application/x-subrip`)
/// or JSON turns (`application/json`). Returns the report, or with
/// `Accept: application/x-ndjson` streams one graded pair per line as it finishes, then a
/// summary line.
#[utoipa::path(post, path = "/v1/transcripts", params(TranscriptQuery),
    request_body(content = String, description = "The transcript", content_type = "text/plain"),
    responses((status = 200, description = "The report (JSON), or NDJSON lines `{\"type\":\"pair\",...}` then `{\"type\":\"summary\",...}`", body = serde_json::Value),
              (status = 415, description = "Unsupported content type", body = Problem),
              (status = 422, description = "The transcript cannot be read (line and fix in `detail`)", body = Problem)))]
pub async fn transcripts(
    State(state): State<AppState>,
    query: Result<Query<TranscriptQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                "the transcript is larger than limits.max_body_bytes; split it or raise the limit",
            )
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "Unreadable request body",
                e.to_string(),
            )
        }
    })?;
    use crate::transcript::{Format, PairEvent, TranscriptOptions, grade_transcript, pairs_of};
    let Query(query) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Invalid query string",
            format!(
                "{}; use ?format=text|vtt|srt|json and ?name=",
                e.body_text()
            ),
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut format: Option<Format> = match query.format.as_deref() {
        Some(f) => Some(
            f.parse()
                .map_err(|e: String| Problem::validation("format", e))?,
        ),
        None => None,
    };
    match content_type.as_str() {
        "application/json" => format = Some(Format::Json),
        "text/plain" | "text/vtt" | "application/x-subrip" | "text/srt" | "text/markdown" => {}
        "" => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "no Content-Type: send text/plain (or text/vtt, application/x-subrip) or application/json turns",
            ));
        }
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!(
                    "Content-Type `{other}`: send text/plain (or text/vtt, application/x-subrip) or application/json turns"
                ),
            ));
        }
    }
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-utf8",
            "Body is not UTF-8",
            format!(
                "the transcript is not valid UTF-8 (first bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let name = query.name.unwrap_or_else(|| "transcript".into());
    let engine = state.engine.clone();
    let problem = |e: crate::transcript::TranscriptError| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-transcript",
            "The transcript cannot be read",
            e.to_string(),
        )
        .field("body")
    };
    // Check it reads before answering 200 (a stream cannot turn into a 422 later).
    pairs_of(&name, &text, format, &crate::transcript::Roles::default()).map_err(problem)?;
    let mut opts = TranscriptOptions::new(engine.settings.limits.concurrency);
    opts.format = format;
    let wants_ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"));
    if !wants_ndjson {
        let report = grade_transcript(&engine, &name, &text, &opts, &|_| {})
            .await
            .map_err(problem)?;
        return Ok(Json(report).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let pair_tx = tx.clone();
        let on_event = move |e: PairEvent<'_>| {
            if let PairEvent::Done(p) = e {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                v["type"] = "pair".into();
                let _ = pair_tx.send(format!("{v}\n"));
            }
        };
        let line = match grade_transcript(&engine, &name, &text, &opts, &on_event).await {
            Ok(mut r) => {
                r.pairs.clear();
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["type"] = "summary".into();
                v.as_object_mut().map(|o| o.remove("pairs"));
                v
            }
            Err(e) => serde_json::json!({"type": "error", "detail": e.to_string()}),
        };
        let _ = tx.send(format!("{line}\n"));
    });
    let stream = tokio_stream_from(rx);
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}
