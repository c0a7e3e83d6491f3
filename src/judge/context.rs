//! What a judge reads: the resolved rubric (with its vectors and thresholds) and the answer as
//! judges see it, embedded once per grade and shared by every judge of that grade.

use std::sync::Arc;

use crate::index::RubricVectors;
use crate::rubric::Rubric;
use crate::text::Segment;

use super::calibration::Thresholds;

/// Where a resolved rubric came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RubricSource {
    /// A rubric of the catalog (indexed: has exemplars in the store).
    Catalog,
    /// Derived from a reference answer at grade time.
    AdHoc,
}

/// A rubric ready to judge against: the rubric, its phrase vectors and its question's vector.
/// Cheap to clone (shared parts); built once per rubric by the engine (catalog rubrics at start,
/// ad hoc ones on first use, then cached).
#[derive(Debug, Clone)]
pub struct ResolvedRubric {
    pub rubric: Arc<Rubric>,
    pub vectors: Arc<RubricVectors>,
    /// The question's vector (restatement checks, topic removal); `None` if it was never indexed.
    pub question: Option<Arc<[f32]>>,
    pub source: RubricSource,
}

impl ResolvedRubric {
    /// A catalog rubric with what indexing stored of it (nothing yet: empty vectors, no
    /// question vector).
    pub fn catalog(
        rubric: Arc<Rubric>,
        vectors: Option<RubricVectors>,
        question: Option<Vec<f32>>,
    ) -> Self {
        ResolvedRubric {
            rubric,
            vectors: Arc::new(vectors.unwrap_or_default()),
            question: question.map(Into::into),
            source: RubricSource::Catalog,
        }
    }

    pub fn rubric(&self) -> &Rubric {
        &self.rubric
    }

    pub fn is_adhoc(&self) -> bool {
        self.source == RubricSource::AdHoc
    }

    pub fn question_vector(&self) -> Option<&[f32]> {
        self.question.as_deref()
    }
}

/// The answer as every judge of one grade sees it. Text aimed at the grader is already removed
/// (`guard`); the segments are embedded in one pass, and only when some judge needs vectors.
#[derive(Debug, Clone, Default)]
pub struct AnswerView {
    /// The guarded answer text (what judges read and quote from).
    pub text: String,
    /// Sentences/clauses (code blocks whole), in order.
    pub segments: Vec<Segment>,
    /// One unit vector per segment; empty when no judge of this grade asked for vectors.
    pub vectors: Vec<Vec<f32>>,
    /// The whole answer's vector: the length-weighted mean of the segment vectors, unit
    /// length (no second pass over the answer); empty when there are no vectors.
    pub vector: Vec<f32>,
    /// The pair reader's levels (contradictory, incorrect, correct) for the answer against
    /// each of a short-reference rubric's references ([`crate::index::RubricVectors::references`]),
    /// in order, `None` for a reference it did not read (it reads the nearest few); empty for
    /// other rubrics or without a pair reader.
    pub pairs: Vec<Option<[f32; 3]>>,
}

impl AnswerView {
    /// A view with segments and their vectors (`vectors` in segment order, or empty).
    pub fn new(text: String, segments: Vec<Segment>, vectors: Vec<Vec<f32>>) -> Self {
        let vector = mean_vector(&segments, &vectors);
        AnswerView {
            text,
            segments,
            vectors,
            vector,
            pairs: Vec::new(),
        }
    }

    /// Whether every segment has its vector (trivially so for an answer without segments).
    pub fn is_embedded(&self) -> bool {
        self.vectors.len() == self.segments.len()
    }
}

/// Everything one judge call reads. The engine builds it once per grade and every judge of
/// that grade borrows the same one. Per-answer data that a new judge needs (token vectors,
/// say) is a new field here, computed in the engine's answer view, not a new parameter.
#[derive(Debug, Clone, Copy)]
pub struct JudgeContext<'a> {
    pub rubric: &'a ResolvedRubric,
    pub answer: &'a AnswerView,
    /// The calibrated thresholds for this rubric (catalog or ad hoc).
    pub thresholds: &'a Thresholds,
    /// LLM samples to vote over (already clamped to 1..=15).
    pub samples: u32,
    /// The correctness head (`config/entail-head.toml` or `judge.head`).
    pub head: &'a super::head::Head,
}

/// The length-weighted mean of segment vectors, L2-normalised (empty input: an empty vector,
/// which retrieves nothing).
fn mean_vector(segments: &[Segment], vectors: &[Vec<f32>]) -> Vec<f32> {
    let Some(dim) = vectors.first().map(Vec::len) else {
        return Vec::new();
    };
    let mut mean = vec![0.0f32; dim];
    for (s, v) in segments.iter().zip(vectors) {
        let w = s.text.split_whitespace().count().max(1) as f32;
        for (m, x) in mean.iter_mut().zip(v) {
            *m += w * x;
        }
    }
    crate::embed::normalize(&mut mean);
    mean
}
