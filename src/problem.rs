//! `application/problem+json` errors (RFC 9457) with a stable `type` per kind of failure, the
//! error body of every HTTP interface (the service and the Slack bot).
//!
//! Input errors say what to fix; internal errors are logged with their cause chain and
//! returned without internals. The server's middleware fills in `request_id`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::engine::admission::Overloaded;
use crate::engine::{GradeError, LimitError};
use crate::matching::Candidate;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Problem {
    /// A stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, for validation errors (e.g. `answer`, `items[3].answer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The closest rubrics, for an unmatched question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<Candidate>>,
    /// The limit a request went over (`limits.*`), with the value it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitExceeded>,
    /// The request id (also in the `x-request-id` header), to find the log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Sent as the `Retry-After` header (seconds), with a 503.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// Which limit, its maximum, and the request's value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LimitExceeded {
    pub name: String,
    pub max: u64,
    pub value: u64,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("https://grader.dev/problems/{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            candidates: None,
            limit: None,
            request_id: None,
            retry_after: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A request over one of `limits.*` (422 naming the limit and the value).
    pub fn over_limit(o: &LimitError, field_prefix: &str) -> Self {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "over-limit",
            "Over a limit",
            format!("{field_prefix}{o}"),
        )
        .field(format!("{field_prefix}{}", o.field));
        p.limit = Some(LimitExceeded {
            name: o.limit.to_string(),
            max: o.max as u64,
            value: o.value as u64,
        });
        p
    }

    /// The queue is full: 503 with `Retry-After`, at once.
    pub fn overloaded(o: &Overloaded) -> Self {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Service at capacity",
            o.to_string(),
        );
        p.retry_after = Some(o.retry_after_secs.max(1));
        p
    }

    /// The vector store cannot be reached: 503 with `Retry-After` (the cause is logged, not sent).
    pub fn store_unavailable(e: &dyn std::error::Error, retry_after_secs: u64) -> Self {
        tracing::error!(error = %error_chain(e), "the vector store cannot be reached");
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "Vector store unavailable",
            format!(
                "the vector store cannot be reached; retry in {retry_after_secs} s (grading by question_id still works)"
            ),
        );
        p.retry_after = Some(retry_after_secs.max(1));
        p
    }

    pub fn validation(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
            detail,
        )
        .field(field)
    }

    /// A query string that does not parse; `usage` says what the route takes.
    pub fn bad_query(e: &axum::extract::rejection::QueryRejection, usage: &str) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Invalid query string",
            format!("{}; use {usage}", e.body_text()),
        )
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A grading failure as a problem; internal failures are logged here with their causes.
    pub fn from_grade_error(e: &GradeError, field_prefix: &str) -> Self {
        let f = |name: &str| format!("{field_prefix}{name}");
        // A 422 about one field of the request, explained by the error itself.
        let unprocessable = |kind: &'static str, title: &'static str, field: &str| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, e.to_string())
                .field(f(field))
        };
        match e {
            GradeError::EmptyAnswer => Problem::validation(&f("answer"), e.to_string()),
            GradeError::AnswerTooLong { .. } => {
                unprocessable("answer-too-long", "Answer too long", "answer")
            }
            GradeError::UnknownQuestion { .. } => {
                unprocessable("unknown-question", "Unknown question id", "question_id")
            }
            GradeError::Unmatched { candidates, .. } => {
                let mut p = unprocessable(
                    "unmatched-question",
                    "No rubric matches the question",
                    "question",
                );
                p.candidates = Some(candidates.clone());
                p
            }
            GradeError::LimitExceeded(o) => Problem::over_limit(o, field_prefix),
            GradeError::Indexing { .. } => {
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "indexing",
                    "Indexing the rubric set",
                    e.to_string(),
                );
                p.retry_after = Some(INDEXING_RETRY_AFTER_SECS);
                p
            }
            GradeError::EmptyReference => {
                Problem::validation(&f("reference_answer"), e.to_string())
            }
            GradeError::LanguageUnsupported { .. } => unprocessable(
                "language-unsupported",
                "Answer language not supported",
                "answer",
            ),
            GradeError::JudgeUnavailable(..) => {
                unprocessable("judge-unavailable", "Judge not available", "judge")
            }
            GradeError::Llm(inner) => {
                tracing::error!(error = %inner, "LLM judge failed");
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "llm-failed",
                    "The LLM endpoint failed",
                    "the LLM judge could not grade this answer after retries; try again, or use the coverage judge",
                )
            }
            GradeError::Store(inner) if inner.is_unavailable() => {
                Problem::store_unavailable(e, STORE_RETRY_AFTER_SECS)
            }
            GradeError::Embed(_) | GradeError::Store(_) => {
                tracing::error!(error = %error_chain(e), "internal grading error");
                Problem::internal()
            }
        }
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the service failed to grade this request; it has been logged",
        )
    }
}

/// "error: cause: cause" for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How long a client should wait before retrying when the vector store is down: a store
/// restart takes seconds, and readiness names the store error meanwhile.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

/// How long a client should wait while the rubric set is indexed after start (a cold index of
/// the shipped set takes ~15 s on 2 cores; one changed rubric well under a second).
pub const INDEXING_RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
