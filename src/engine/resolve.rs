//! Resolving the rubric a request names: by id in the catalog, by matching free text, or ad
//! hoc from a reference answer (each key statement one equal-weight criterion, cached).

use std::sync::Arc;

use crate::index::{Phrase, RubricVectors};
use crate::judge::{ResolvedRubric, RubricSource};
use crate::matching::MatchResult;
use crate::rubric::{Criterion, ModelAnswer, Rubric, RubricKind, content_hash};
use crate::text::segments;

use super::{Engine, GradeError, QuestionRef};

/// Ad hoc rubrics are built from reference answers at grade time; keep recent ones.
const ADHOC_CACHE: usize = 256;
/// Distinctive terms taken from each statement of an ad hoc reference as its keywords.
const ADHOC_KEYWORDS: usize = 3;

impl Engine {
    /// Resolve the rubric a request names (once per answer: grade it with
    /// [`Engine::grade_resolved`]).
    pub async fn resolve(&self, q: &QuestionRef) -> Result<ResolvedRubric, GradeError> {
        match q {
            QuestionRef::Id(id) => self.resolve_id(id),
            QuestionRef::Text(text) => {
                let m = self.match_question(text).await?;
                self.resolve_match(&m)
            }
            QuestionRef::AdHoc {
                question,
                reference_answer,
            } => self.adhoc_rubric(question, reference_answer).await,
        }
    }

    /// A catalog rubric by id.
    pub fn resolve_id(&self, id: &str) -> Result<ResolvedRubric, GradeError> {
        self.resolved
            .get(id)
            .cloned()
            .ok_or_else(|| GradeError::UnknownQuestion {
                id: id.to_string(),
                closest: self.closest_ids(id),
            })
    }

    /// The rubric a match found, or why there is none.
    pub fn resolve_match(&self, m: &MatchResult) -> Result<ResolvedRubric, GradeError> {
        match m.rubric_id.as_deref().and_then(|id| self.resolved.get(id)) {
            Some(r) => Ok(r.clone()),
            None => Err(GradeError::Unmatched {
                similarity: m.similarity,
                threshold: self.settings.matching.threshold,
                candidates: m.candidates.clone(),
            }),
        }
    }

    fn closest_ids(&self, id: &str) -> Vec<String> {
        let slug = id.rsplit('.').next().unwrap_or(id);
        self.catalog
            .ids()
            .filter(|c| {
                c.contains(slug)
                    || slug.contains(c.rsplit('.').next().unwrap_or(c))
                    || c.split('.').next() == id.split('.').next()
            })
            .take(5)
            .map(str::to_string)
            .collect()
    }

    /// A rubric derived from a reference answer: each key statement one equal-weight criterion.
    async fn adhoc_rubric(
        &self,
        question: &str,
        reference: &str,
    ) -> Result<ResolvedRubric, GradeError> {
        let key = content_hash(&format!("{question}\u{1f}{reference}"));
        if let Some(hit) = self.adhoc.lock().expect("adhoc cache").get(&key) {
            return Ok(hit.clone());
        }
        let statements: Vec<String> = segments(reference)
            .into_iter()
            .map(|s| s.text)
            .filter(|s| s.split_whitespace().count() >= 3)
            .collect();
        if statements.is_empty() {
            return Err(GradeError::EmptyReference);
        }
        // Keyword evidence needs keywords: each statement's distinctive terms (not the
        // question's own words, which every on-topic answer repeats).
        let question_words: std::collections::HashSet<String> =
            crate::text::words(question).collect();
        let keywords = crate::text::key_terms(&statements, &question_words, ADHOC_KEYWORDS);
        let criteria: Vec<Criterion> = statements
            .iter()
            .zip(keywords)
            .enumerate()
            .map(|(i, (s, keywords))| Criterion {
                id: format!("statement-{}", i + 1),
                weight: 1.0,
                point: s.clone(),
                phrasings: Vec::new(),
                keywords,
            })
            .collect();
        let rubric = Rubric {
            id: format!("adhoc.{}", &key[..12]),
            topic: "adhoc".into(),
            kind: RubricKind::Concept,
            question: question.trim().to_string(),
            aliases: Vec::new(),
            level: "mid".into(),
            max_score: 10.0,
            criteria,
            misconceptions: Vec::new(),
            model_answers: vec![ModelAnswer {
                text: reference.trim().to_string(),
            }],
            exemplars: Vec::new(),
            version: key.clone(),
        };
        let mut texts = statements.clone();
        texts.push(rubric.question.clone());
        let mut vectors = self.embedder.embed(&texts).await?;
        let qv = vectors.pop().unwrap_or_default();
        let vecs = RubricVectors {
            criteria: statements
                .iter()
                .zip(vectors)
                .map(|(t, v)| {
                    vec![Phrase {
                        text: t.clone(),
                        vector: v,
                    }]
                })
                .collect(),
            misconceptions: Vec::new(),
            model_sentences: Vec::new(),
        };
        let entry = ResolvedRubric {
            rubric: Arc::new(rubric),
            vectors: Arc::new(vecs),
            question: Some(qv.into()),
            source: RubricSource::AdHoc,
        };
        let mut cache = self.adhoc.lock().expect("adhoc cache");
        if cache.len() >= ADHOC_CACHE {
            cache.clear();
        }
        cache.insert(key, entry.clone());
        Ok(entry)
    }
}
