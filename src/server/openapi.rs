//! The OpenAPI document (`GET /openapi.json`), generated from the handlers' and types'
//! annotations.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::{grade, grades, ops, questions, transcripts};
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
        grades::list,
        grades::one,
        grades::review,
        grades::counts,
        grades::agreement_of,
        grades::transcript,
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
        ops::Readiness,
        grades::ReviewResponse,
        crate::audit::Page,
        crate::audit::GradeSummary,
        crate::audit::StoredGrade,
        crate::audit::Source,
        crate::audit::Via,
        crate::audit::QueueReason,
        crate::audit::Review,
        crate::audit::ReviewInput,
        crate::audit::CriterionVerdict,
        crate::audit::Counts,
        crate::audit::Agreement,
        crate::audit::CriterionAgreement
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
