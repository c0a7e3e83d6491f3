//! `GET /v1/questions` (list, filter by topic, rank by similarity to a question) and
//! `GET /v1/questions/{id}` (one question: its public view, or for admins the full rubric).
//!
//! A rubric's criterion points, keywords, model answers and exemplars are the answer key: with
//! them anyone can write a full-marks answer. Graders (and anyone, on an open server) see the
//! public view; the full rubric needs an admin key (`server.admin_keys`), or
//! `server.expose_rubrics = true` for local use.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::middleware::Role;
use crate::engine::{GradeError, LimitError};
use crate::problem::{Problem, STORE_RETRY_AFTER_SECS, error_chain};
use crate::rubric::{Rubric, RubricKind};

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
    let Query(query) =
        query.map_err(|e| Problem::bad_query(&e, "?topic=<topic> and/or ?q=<question text>"))?;
    let engine = &state.engine;
    let summary = |r: &Rubric, similarity: Option<f32>| QuestionSummary {
        id: r.id.clone(),
        topic: r.topic.clone(),
        kind: r.kind,
        question: r.question.clone(),
        criteria: r.criteria.len(),
        exemplars: r.exemplars.len(),
        similarity,
    };
    let topic = query.topic.as_deref();
    let topic_ok = |r: &Rubric| topic.is_none_or(|t| r.topic == t);
    match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => Ok(Json(
            engine.rubrics(topic).map(|r| summary(r, None)).collect(),
        )),
        Some(q) => {
            let max = engine.settings().limits.max_question_chars;
            let chars = q.chars().count();
            if chars > max {
                return Err(Problem::over_limit(
                    &LimitError {
                        field: "q".into(),
                        limit: "limits.max_question_chars",
                        value: chars,
                        max,
                        unit: "characters",
                        fix: "search with the question itself",
                    },
                    "",
                ));
            }
            let admitted = engine.admit(1).map_err(|o| Problem::overloaded(&o))?;
            // Every rubric ranked, then filtered by topic and cut to ten.
            let hits = admitted
                .run(engine.match_questions(&[q.to_string()], engine.catalog().len()))
                .await
                .map_err(|e| match e {
                    GradeError::Store(s) if s.is_unavailable() => {
                        Problem::store_unavailable(&s, STORE_RETRY_AFTER_SECS)
                    }
                    e => {
                        tracing::error!(error = %error_chain(&e), "question search failed");
                        Problem::internal()
                    }
                })?
                .remove(0);
            Ok(Json(
                hits.candidates
                    .iter()
                    .filter_map(|c| {
                        engine
                            .catalog()
                            .get(&c.rubric_id)
                            .map(|r| (r, c.similarity))
                    })
                    .filter(|(r, _)| topic_ok(r))
                    .take(10)
                    .map(|(r, s)| summary(r, Some(s)))
                    .collect(),
            ))
        }
    }
}

/// A question as anyone may see it: what is asked and what the answer is graded on, not the
/// answer key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicQuestion {
    pub id: String,
    pub topic: String,
    #[schema(value_type = String)]
    pub kind: RubricKind,
    pub question: String,
    pub max_score: f32,
    /// The criteria's titles (ids), in rubric order.
    pub criteria: Vec<String>,
    /// `public`: the full rubric needs an admin key.
    pub view: &'static str,
}

impl PublicQuestion {
    fn of(r: &Rubric) -> Self {
        PublicQuestion {
            id: r.id.clone(),
            topic: r.topic.clone(),
            kind: r.kind,
            question: r.question.clone(),
            max_score: r.max_score,
            criteria: r.criteria.iter().map(|c| c.id.clone()).collect(),
            view: "public",
        }
    }
}

#[utoipa::path(get, path = "/v1/questions/{id}", params(("id" = String, Path, description = "Rubric id, e.g. core.copy")),
    responses((status = 200, description = "The public view (`PublicQuestion`); with an admin key (server.admin_keys) or server.expose_rubrics, the full rubric (points, keywords, model answers, exemplars)", body = PublicQuestion),
              (status = 404, description = "No such rubric", body = Problem)))]
pub async fn question(
    State(state): State<AppState>,
    role: Option<Extension<Role>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let rubric = state.engine.catalog().get(&id).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-question",
            "Unknown question id",
            format!("no rubric `{id}`: list them with GET /v1/questions"),
        )
    })?;
    let admin = role.is_some_and(|Extension(r)| r == Role::Admin);
    if admin || state.engine.settings().server.expose_rubrics {
        Ok(Json(rubric.clone()).into_response())
    } else {
        Ok(Json(PublicQuestion::of(rubric)).into_response())
    }
}
