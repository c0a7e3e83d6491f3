//! `GET /v1/questions` (list, filter by topic, rank by similarity to a question) and
//! `GET /v1/questions/{id}` (one rubric).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::problem::{Problem, error_chain};
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
            // Every rubric ranked, then filtered by topic and cut to ten.
            let hits = engine
                .match_questions(&[q.to_string()], engine.catalog().len())
                .await
                .map_err(|e| {
                    tracing::error!(error = %error_chain(&e), "question search failed");
                    Problem::internal()
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

#[utoipa::path(get, path = "/v1/questions/{id}", params(("id" = String, Path, description = "Rubric id, e.g. core.copy")),
    responses((status = 200, description = "The rubric, exemplars included", body = serde_json::Value),
              (status = 404, description = "No such rubric", body = Problem)))]
pub async fn question(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Rubric>, Problem> {
    state
        .engine
        .catalog()
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
