//! Judges: turn an answer and a resolved rubric into per-criterion verdicts with evidence.
//!
//! Every judge implements [`Judge`]: it reads one [`JudgeContext`] (the resolved rubric with its
//! vectors and thresholds, and the answer as judges see it, embedded once per grade) and returns
//! a [`Judgement`]. The engine then verifies the evidence and computes the score from the
//! verdicts, so no judge sets the number. A new judge is one file here implementing the trait,
//! plus its [`JudgeKind`] and two lines in the engine: where the judges are built
//! (`Engine::with_parts`) and where a kind picks one (`Engine::judge_for`).
//!
//! # Layout
//! - [`context`]: `JudgeContext`, `ResolvedRubric`, `AnswerView`: what every judge reads.
//! - [`coverage`]: the embedded default (similarity and keywords under calibrated thresholds).
//! - [`llm`]: the LLM judge's grading logic (prompt, output schema, parsing, voting) over the
//!   OpenAI-compatible transport in `crate::llm`.
//! - [`cues`]: the lexical cues beside similarity (polarity, hedges, retractions, code).
//! - [`head`]: the learned correctness head over sentence-pair features (`grader train`).
//! - [`hybrid`]: the LLM judge's verdicts plus a local judge's disagreement flag.
//! - [`calibration`]: the coverage judge's thresholds file (fitted by `crate::calibrate`).

pub mod calibration;
pub mod context;
pub mod coverage;
pub mod cues;
pub mod head;
pub mod hybrid;
pub mod llm;

use futures::future::BoxFuture;

pub use crate::config::JudgeKind;
use crate::embed::EmbedError;
use crate::grade::Judgement;
use crate::llm::LlmError;
use crate::store::StoreError;

pub use calibration::{Calibration, Thresholds};
pub use context::{AnswerView, JudgeContext, ResolvedRubric, RubricSource};
pub use coverage::{CoverageFeatures, CoverageJudge};
pub use head::Head;
pub use hybrid::HybridJudge;
pub use llm::LlmJudge;

/// A judge: verdicts per criterion (with evidence quotes) for one answer against one rubric.
///
/// Object-safe (`Arc<dyn Judge>`): the future is boxed and borrows the judge and the context.
pub trait Judge: Send + Sync {
    /// The kind reported in the grade (`JudgeInfo::kind`).
    fn kind(&self) -> JudgeKind;

    /// Whether this judge reads `AnswerView::vectors` / `vector`. The engine embeds the
    /// answer only when the judge it runs needs it.
    fn needs_vectors(&self) -> bool {
        true
    }

    /// Judge one answer. Evidence is quoted from `cx.answer.text`; the engine verifies it.
    fn judge<'a>(
        &'a self,
        cx: &'a JudgeContext<'a>,
    ) -> BoxFuture<'a, Result<Judgement, JudgeError>>;
}

/// Why a judge could not decide.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("LLM judge failed: {0}")]
    Llm(#[from] LlmError),
}
