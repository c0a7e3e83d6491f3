//! Question matching: free-text question → the rubric it asks about, or none.
//!
//! The question is embedded and searched against every rubric's question and aliases; each
//! rubric scores its best point. Below the threshold nothing is matched: an off-topic question
//! must not be forced onto a rubric.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::embed::Embedder;
use crate::index::{Collections, IndexError};
use crate::store::{Filter, VectorStore};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Candidate {
    pub rubric_id: String,
    pub similarity: f32,
}

/// The result of `grader match`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MatchResult {
    /// The matched rubric, or `None` when even the best is below the threshold.
    pub rubric_id: Option<String>,
    /// Similarity of the best candidate (matched or not).
    pub similarity: f32,
    /// The best rubrics, best first.
    pub candidates: Vec<Candidate>,
}

/// Rank rubrics for `question`.
pub async fn match_question(
    question: &str,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    names: &Collections,
    threshold: f32,
    candidates: usize,
) -> Result<MatchResult, IndexError> {
    let vector = embedder.embed(&[question.to_string()]).await?.remove(0);
    match_vector(&vector, store, names, threshold, candidates).await
}

/// Rank rubrics for an already embedded question.
pub async fn match_vector(
    vector: &[f32],
    store: &dyn VectorStore,
    names: &Collections,
    threshold: f32,
    candidates: usize,
) -> Result<MatchResult, IndexError> {
    let n = candidates.max(1);
    // Each rubric has a question and a handful of aliases; fetch enough points to see n rubrics.
    let hits = store
        .search(&names.questions, vector, &Filter::default(), n * 8)
        .await?;
    let mut best: HashMap<String, f32> = HashMap::new();
    for h in hits {
        let e = best.entry(h.payload.rubric_id).or_insert(f32::MIN);
        *e = e.max(h.score);
    }
    let mut ranked: Vec<Candidate> = best
        .into_iter()
        .map(|(rubric_id, similarity)| Candidate {
            rubric_id,
            // A dot product of unit vectors can land a rounding error above 1.
            similarity: similarity.clamp(-1.0, 1.0),
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then_with(|| a.rubric_id.cmp(&b.rubric_id))
    });
    ranked.truncate(n);
    let top = ranked.first().map_or(0.0, |c| c.similarity);
    let rubric_id = ranked
        .first()
        .filter(|c| c.similarity >= threshold)
        .map(|c| c.rubric_id.clone());
    Ok(MatchResult {
        rubric_id,
        similarity: top,
        candidates: ranked,
    })
}
