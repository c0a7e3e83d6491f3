//! The OpenAPI document (`GET /openapi.json`), generated from the handlers' and types'
//! annotations.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::{grade, ops, questions, transcripts};
use crate::grade::{CriterionResult, Flag, Grade, JudgeInfo, MisconceptionResult, Usage, Verdict};
use crate::matching::Candidate;
use crate::problem::{LimitExceeded, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "grader",
        description = "Grade interview answers against rubrics, criterion by criterion, with quoted evidence."
    ),
    paths(
        grade::grade,
        grade::grade_batch,
        questions::questions,
        questions::question,
        transcripts::transcripts,
        ops::healthz,
        ops::readyz
    ),
    components(schemas(
        grade::GradeBody,
        Grade,
        CriterionResult,
        MisconceptionResult,
        JudgeInfo,
        Usage,
        Flag,
        Verdict,
        Problem,
        Candidate,
        grade::BatchBody,
        grade::BatchItem,
        grade::BatchResponse,
        questions::QuestionSummary,
        questions::PublicQuestion,
        LimitExceeded,
        ops::Readiness
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
