//! The audit store over HTTP (admin keys only): `GET /v1/grades` (filters, keyset pages, the
//! review queue), `GET /v1/grades/{id}` (the machine's grade with every review beside it),
//! `POST /v1/grades/{id}/review`, `GET /v1/reviews/counts`, `GET /v1/reviews/agreement`,
//! `GET /v1/transcripts/{id}`; and the one place the HTTP handlers hand grades to the store.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonBody;
use crate::audit::time::parse_time;
use crate::audit::{
    AddReviewError, Agreement, Audit, Counts, Cursor, ListQuery, Order, Origin, Page, Review,
    ReviewInput, Source, StoredGrade, Via, agreement, learn,
};
use crate::engine::GradeRequest;
use crate::grade::{Flag, Grade};
use crate::problem::{Problem, error_chain};

/// The `x-request-id` the request-id layer set (or the caller sent).
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Hand an API grade to the audit store (queued; never fails the request).
pub fn record_api_grade(
    state: &AppState,
    headers: &HeaderMap,
    candidate: Option<String>,
    req: &GradeRequest,
    grade: &Grade,
) {
    if let Some(audit) = state.engine.audit() {
        let origin = Origin::new(Source::new(Via::Api))
            .request_id(request_id(headers))
            .candidate(candidate);
        audit.record_grade(origin, &req.question, &req.answer, grade);
    }
}

fn audit(state: &AppState) -> Result<&Arc<Audit>, Problem> {
    state.engine.audit().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "audit-off",
            "Grades are not stored",
            "this server does not store grades (store.audit = false)",
        )
    })
}

/// The database failed: the client learns it is unavailable, the log gets the cause.
fn unavailable(e: &dyn std::error::Error) -> Problem {
    tracing::error!(error = %error_chain(e), "audit store query failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit-unavailable",
        "The audit store is unavailable",
        "the grade database did not answer; try again shortly",
    )
}

fn not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown-grade",
        "Unknown grade id",
        format!("no stored grade `{id}`: list them with GET /v1/grades"),
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GradesQuery {
    pub rubric_id: Option<String>,
    /// A flag the grade carries, e.g. `judges_disagree`.
    pub flag: Option<String>,
    /// `true`: reviewed grades only; `false`: not yet reviewed.
    pub reviewed: Option<bool>,
    /// Created at or after: `2026-01-31` or an RFC 3339 time.
    pub since: Option<String>,
    /// Created before.
    pub until: Option<String>,
    /// `api`, `cli`, `batch` or `slack`.
    pub source: Option<String>,
    pub candidate: Option<String>,
    pub transcript_id: Option<String>,
    /// `recent` (newest first, the default) or `queue` (review priority first).
    pub order: Option<String>,
    /// 1..=200 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl GradesQuery {
    fn check(self) -> Result<ListQuery, Problem> {
        let flag = match self.flag.as_deref() {
            None | Some("") => None,
            Some(f) => Some(
                serde_json::from_value::<Flag>(serde_json::Value::String(f.into())).map_err(
                    |_| {
                        Problem::validation(
                            "flag",
                            format!("unknown flag `{f}`: use evidence_unverified, injection_suspected, truncated, ad_hoc_rubric, fallback_to_coverage, judges_disagree or no_content"),
                        )
                    },
                )?,
            ),
        };
        let time = |field: &str, v: Option<String>| {
            v.filter(|s| !s.is_empty())
                .map(|s| parse_time(&s).map_err(|e| Problem::validation(field, e)))
                .transpose()
        };
        let via = match self.source.as_deref() {
            None | Some("") => None,
            Some(s) => Some(Via::parse(s).ok_or_else(|| {
                Problem::validation(
                    "source",
                    format!("unknown source `{s}`: use api, cli, batch or slack"),
                )
            })?),
        };
        let order = match self.order.as_deref() {
            None | Some("") | Some("recent") => Order::Recent,
            Some("queue") => Order::Queue,
            Some(o) => {
                return Err(Problem::validation(
                    "order",
                    format!("unknown order `{o}`: use recent or queue"),
                ));
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=crate::audit::MAX_PAGE).contains(&limit) {
            return Err(Problem::validation(
                "limit",
                format!("limit must be between 1 and {}", crate::audit::MAX_PAGE),
            ));
        }
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                Problem::validation(
                    "cursor",
                    "cursor is not one this server gave: pass next_cursor from the previous page unchanged",
                )
            })?),
        };
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(ListQuery {
            rubric_id: nonempty(self.rubric_id),
            flag,
            reviewed: self.reviewed,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            via,
            candidate: nonempty(self.candidate),
            transcript_id: nonempty(self.transcript_id),
            order,
            limit,
            cursor,
        })
    }
}

#[utoipa::path(get, path = "/v1/grades", params(GradesQuery),
    responses((status = 200, description = "A page of stored grades", body = Page),
              (status = 401, description = "No admin key", body = Problem),
              (status = 403, description = "Not an admin key", body = Problem),
              (status = 422, description = "A filter that does not parse", body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<GradesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, Problem> {
    let Query(query) = query.map_err(|e| {
        Problem::bad_query(
            &e,
            "?rubric_id=&flag=&reviewed=true|false&since=&until=&source=&candidate=&order=recent|queue&limit=&cursor=",
        )
    })?;
    let q = query.check()?;
    let audit = audit(&state)?;
    audit
        .store()
        .list(&q)
        .await
        .map(Json)
        .map_err(|e| unavailable(&e))
}

#[utoipa::path(get, path = "/v1/grades/{id}", params(("id" = String, Path, description = "The grade's id")),
    responses((status = 200, description = "The grade with its reviews", body = StoredGrade),
              (status = 404, description = "No such grade", body = Problem)))]
pub async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StoredGrade>, Problem> {
    let audit = audit(&state)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found(&id));
    }
    match audit.get(&id).await {
        Ok(Some(g)) => Ok(Json(g)),
        Ok(None) => Err(not_found(&id)),
        Err(e) => Err(unavailable(&e)),
    }
}

/// What `POST /v1/grades/{id}/review` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewResponse {
    pub review: Review,
    /// Whether the answer became an exemplar of its rubric (the LLM judge's few-shot examples).
    pub exemplar: bool,
}

#[utoipa::path(post, path = "/v1/grades/{id}/review", request_body = ReviewInput,
    params(("id" = String, Path, description = "The grade's id")),
    responses((status = 201, description = "The review, stored beside the machine's grade", body = ReviewResponse),
              (status = 401, description = "No admin key", body = Problem),
              (status = 403, description = "Not an admin key, or none configured", body = Problem),
              (status = 404, description = "No such grade", body = Problem),
              (status = 409, description = "The grade is still being stored; retry", body = Problem),
              (status = 422, description = "A verdict for a criterion the grade does not have, a bad score", body = Problem)))]
pub async fn review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ReviewInput>,
) -> Result<Response, Problem> {
    let audit = audit(&state)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found(&id));
    }
    let review = match audit.store().add_review(&id, &input).await {
        Ok(r) => r,
        Err(AddReviewError::NotFound(_)) if audit.is_pending(&id) => {
            let mut resp = Problem::new(
                StatusCode::CONFLICT,
                "grade-not-stored-yet",
                "The grade is still being stored",
                "the grade is waiting in the write queue (the database may be down); retry shortly",
            )
            .into_response();
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            return Ok(resp);
        }
        Err(AddReviewError::NotFound(_)) => return Err(not_found(&id)),
        Err(AddReviewError::Invalid(e)) => {
            return Err(Problem::validation(&e.field, e.to_string()));
        }
        Err(AddReviewError::Db(e)) => return Err(unavailable(&e)),
    };
    tracing::info!(grade = %id, reviewer = %review.reviewer, human_score = review.human_score, "grade reviewed");
    // The reviewed answer becomes an exemplar of its rubric; a failure here is logged, the
    // review stands (the next `serve` start adds missing exemplars).
    let exemplar = match audit.store().reviewed_answers_of(&id).await {
        Ok(Some(a)) => match learn::add_exemplars(&state.engine, &[a]).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "adding the reviewed answer as an exemplar failed");
                false
            }
        },
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "reading the reviewed answer failed");
            false
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(ReviewResponse { review, exemplar }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RubricQuery {
    /// Only this rubric.
    pub rubric_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/reviews/counts", params(RubricQuery),
    responses((status = 200, description = "Stored, reviewed and queued grades", body = Counts)))]
pub async fn counts(
    State(state): State<AppState>,
    query: Result<Query<RubricQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Counts>, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_query(&e, "?rubric_id="))?;
    audit(&state)?
        .store()
        .counts(q.rubric_id.as_deref().filter(|s| !s.is_empty()))
        .await
        .map(Json)
        .map_err(|e| unavailable(&e))
}

#[utoipa::path(get, path = "/v1/reviews/agreement", params(RubricQuery),
    responses((status = 200, description = "How machine grades agree with reviewers, per rubric", body = [Agreement])))]
pub async fn agreement_of(
    State(state): State<AppState>,
    query: Result<Query<RubricQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Agreement>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_query(&e, "?rubric_id="))?;
    let pairs = audit(&state)?
        .store()
        .reviewed(q.rubric_id.as_deref().filter(|s| !s.is_empty()))
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Json(agreement(&pairs)))
}

#[utoipa::path(get, path = "/v1/transcripts/{id}", params(("id" = String, Path, description = "A stored transcript's id (a pair's `source.transcript_id`)")),
    responses((status = 200, description = "The stored report", body = serde_json::Value),
              (status = 404, description = "No such transcript", body = Problem)))]
pub async fn transcript(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let audit = audit(&state)?;
    match audit.store().transcript(&id).await {
        Ok(Some(r)) => Ok(Json(r)),
        Ok(None) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-transcript",
            "Unknown transcript id",
            format!("no stored transcript `{id}`"),
        )),
        Err(e) => Err(unavailable(&e)),
    }
}
