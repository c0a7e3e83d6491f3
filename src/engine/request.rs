//! The request types every interface shares: how a question is named, the checked answer,
//! the grading request, and why grading (or opening the engine) failed.

use serde::{Deserialize, Serialize};

use crate::config::{JudgeKind, OverLimit};
use crate::embed::EmbedError;
use crate::index::IndexError;
use crate::judge::JudgeError;
use crate::llm::LlmError;
use crate::matching::Candidate;
use crate::rubric::RubricErrors;
use crate::store::StoreError;

/// How the question is named in a grading request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QuestionRef {
    /// A rubric id from the catalog.
    Id(String),
    /// Free text, matched to a rubric.
    Text(String),
    /// A question with a reference answer: graded against a rubric derived from the reference.
    AdHoc {
        question: String,
        reference_answer: String,
        /// Other acceptable phrasings of the reference (e.g. SemEval's several reference
        /// answers): each is another phrasing of the criterion it is closest to.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        alternatives: Vec<String>,
    },
}

/// A candidate's answer, checked once: not empty, within the token limit (or truncated).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    text: String,
    truncated: bool,
}

impl Answer {
    /// `model` picks the tiktoken encoding (the LLM's, or cl100k for the coverage judge).
    pub fn parse(
        text: &str,
        max_tokens: usize,
        over: OverLimit,
        model: &str,
    ) -> Result<Answer, GradeError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(GradeError::EmptyAnswer);
        }
        // Cheap upper bound first: a token is at least one byte.
        if trimmed.len() <= max_tokens {
            return Ok(Answer {
                text: trimmed.to_string(),
                truncated: false,
            });
        }
        let bpe = crate::tokens::bpe_for_model(model);
        let tokens = bpe.encode_ordinary(trimmed);
        if tokens.len() <= max_tokens {
            return Ok(Answer {
                text: trimmed.to_string(),
                truncated: false,
            });
        }
        match over {
            OverLimit::Reject => Err(GradeError::AnswerTooLong {
                tokens: tokens.len(),
                max: max_tokens,
            }),
            OverLimit::Truncate => {
                let cut = bpe
                    .decode(&tokens[..max_tokens])
                    .unwrap_or_else(|_| trimmed.chars().take(max_tokens).collect());
                Ok(Answer {
                    text: cut,
                    truncated: true,
                })
            }
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// An input over one of `limits.*`: names the field, the limit and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} has {value} {unit}, more than {limit} ({max}); {fix}")]
pub struct LimitError {
    /// The request field (`answer`, `reference_answer`, `question`, `items`, …).
    pub field: String,
    /// The setting, e.g. `limits.max_reference_statements`.
    pub limit: &'static str,
    pub value: usize,
    pub max: usize,
    /// What is counted: `characters`, `statements`, …
    pub unit: &'static str,
    pub fix: &'static str,
}

/// Why grading failed. Input errors name the input and the fix.
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    #[error("answer is empty: send the candidate's answer text")]
    EmptyAnswer,
    #[error(
        "answer is too long: {tokens} tokens, the limit is {max} (limits.max_answer_tokens); shorten it or set limits.over_limit = \"truncate\""
    )]
    AnswerTooLong { tokens: usize, max: usize },
    #[error("unknown question id `{id}`: see `grader rubrics list` or GET /v1/questions{}", suggest(.closest))]
    UnknownQuestion { id: String, closest: Vec<String> },
    #[error("no rubric matches the question (best similarity {similarity:.2} is below the threshold {threshold:.2}); name a question id, or send a reference_answer to grade against{}", suggest_candidates(.candidates))]
    Unmatched {
        similarity: f32,
        threshold: f32,
        candidates: Vec<Candidate>,
    },
    #[error(
        "reference answer has no statements to grade against: give a reference answer of at least one full sentence"
    )]
    EmptyReference,
    #[error(
        "the answer is in {language}, and the {judge} judge grades English only: send an English answer, or grade it with judge = \"llm\""
    )]
    LanguageUnsupported { language: String, judge: String },
    #[error(
        "{what} waits for the rubric set to be indexed ({progress}, after start); retry shortly, or watch GET /readyz"
    )]
    Indexing {
        what: String,
        progress: super::indexing::IndexProgress,
    },
    #[error(transparent)]
    LimitExceeded(#[from] LimitError),
    #[error("judge `{0}` is not available: {1}")]
    JudgeUnavailable(String, String),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("LLM judge failed: {0}")]
    Llm(#[from] LlmError),
}

fn suggest(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", closest.join(", "))
    }
}

fn suggest_candidates(c: &[Candidate]) -> String {
    if c.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = c
            .iter()
            .take(3)
            .map(|c| format!("{} ({:.2})", c.rubric_id, c.similarity))
            .collect();
        format!("; closest: {}", list.join(", "))
    }
}

impl GradeError {
    /// Whether the caller's input is at fault (4xx) rather than the service (5xx).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            GradeError::EmptyAnswer
                | GradeError::AnswerTooLong { .. }
                | GradeError::UnknownQuestion { .. }
                | GradeError::Unmatched { .. }
                | GradeError::EmptyReference
                | GradeError::LanguageUnsupported { .. }
                | GradeError::LimitExceeded(..)
                | GradeError::JudgeUnavailable(..)
        )
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Rubrics(RubricErrors),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Calibration(#[from] crate::judge::calibration::CalibrationError),
    #[error(transparent)]
    Head(#[from] crate::judge::head::HeadError),
    #[error("LLM judge: {0}")]
    Llm(String),
    #[error(transparent)]
    Asset(#[from] crate::assets::AssetError),
}

/// A grading request (the same for CLI, HTTP, batch and Slack).
#[derive(Debug, Clone)]
pub struct GradeRequest {
    pub question: QuestionRef,
    pub answer: String,
    pub judge: Option<JudgeKind>,
    pub samples: Option<u32>,
}

/// How to grade beyond the question and the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct GradeOptions {
    /// The judge (default: `judge.kind`, `auto` resolved by configuration).
    pub judge: Option<JudgeKind>,
    /// LLM samples to vote over (default: `llm.samples`), clamped to 1..=15.
    pub samples: Option<u32>,
}

impl GradeRequest {
    pub fn options(&self) -> GradeOptions {
        GradeOptions {
            judge: self.judge,
            samples: self.samples,
        }
    }
}

impl From<JudgeError> for GradeError {
    fn from(e: JudgeError) -> Self {
        match e {
            JudgeError::Embed(e) => GradeError::Embed(e),
            JudgeError::Store(e) => GradeError::Store(e),
            JudgeError::Llm(e) => GradeError::Llm(e),
        }
    }
}

impl From<IndexError> for GradeError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Embed(e) => GradeError::Embed(e),
            IndexError::Store(e) => GradeError::Store(e),
        }
    }
}
