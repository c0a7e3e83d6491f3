//! The `limits.*` checks on what a request asks of the engine, made before any work starts:
//! a request over a limit costs a string scan, never an embedding pass.

use crate::config::Limits;
use crate::text::segments;

use super::{LimitError, QuestionRef};

fn over(
    field: &str,
    limit: &'static str,
    value: usize,
    max: usize,
    unit: &'static str,
    fix: &'static str,
) -> Result<(), LimitError> {
    if value <= max {
        return Ok(());
    }
    Err(LimitError {
        field: field.to_string(),
        limit,
        value,
        max,
        unit,
        fix,
    })
}

/// The question text and the reference answer of a request.
pub(super) fn check_question(limits: &Limits, q: &QuestionRef) -> Result<(), LimitError> {
    let question = |text: &str| {
        over(
            "question",
            "limits.max_question_chars",
            text.chars().count(),
            limits.max_question_chars,
            "characters",
            "send the question itself, or its rubric id as question_id",
        )
    };
    match q {
        QuestionRef::Id(_) => Ok(()),
        QuestionRef::Text(text) => question(text),
        QuestionRef::AdHoc {
            question: text,
            reference_answer,
            alternatives,
        } => {
            question(text)?;
            over(
                "reference_answers",
                "the alternative references' count",
                alternatives.len(),
                super::resolve::ADHOC_ALTERNATIVES,
                "alternatives",
                "send the alternatives that differ most from the reference answer",
            )?;
            for a in alternatives {
                over(
                    "reference_answers",
                    "limits.max_reference_chars",
                    a.chars().count(),
                    limits.max_reference_chars,
                    "characters",
                    "send shorter alternative references: their key statements",
                )?;
            }
            over(
                "reference_answer",
                "limits.max_reference_chars",
                reference_answer.chars().count(),
                limits.max_reference_chars,
                "characters",
                "send a shorter reference answer: its key statements",
            )?;
            // Statements are the reference's sentences and clauses, as segmented for grading;
            // each long enough becomes a criterion, embedded and judged against every answer.
            over(
                "reference_answer",
                "limits.max_reference_statements",
                segments(reference_answer).len(),
                limits.max_reference_statements,
                "statements",
                "keep the statements that matter, or write a rubric for the question",
            )
        }
    }
}

/// The answer's segments: each is embedded and compared with every criterion.
pub(super) fn check_answer(limits: &Limits, answer: &str) -> Result<(), LimitError> {
    over(
        "answer",
        "limits.max_answer_segments",
        segments(answer).len(),
        limits.max_answer_segments,
        "sentences",
        "shorten the answer (every sentence of it is embedded and judged)",
    )
}
