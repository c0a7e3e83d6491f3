//! Resolving the rubric a request names: by id in the catalog, by matching free text, or ad
//! hoc from a reference answer (each key statement one equal-weight criterion, cached).

use std::sync::Arc;

use crate::index::{Phrase, RubricVectors};
use crate::judge::{ResolvedRubric, RubricSource};
use crate::matching::MatchResult;
use crate::rubric::{Criterion, ModelAnswer, Rubric, RubricKind, content_hash};
use crate::text::segments;

use super::{Engine, GradeError, QuestionRef};

/// Ad hoc rubrics are built from reference answers at grade time and kept, up to this many
/// vectors in all (about 25 MB of 384-dimension vectors); the oldest go first.
const ADHOC_CACHE_VECTORS: usize = 16_384;
/// Distinctive terms taken from each statement of an ad hoc reference as its keywords.
const ADHOC_KEYWORDS: usize = 3;
/// Alternative references kept per ad hoc rubric (more are ignored; limits.rs caps requests).
pub(super) const ADHOC_ALTERNATIVES: usize = 16;

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
                alternatives,
            } => {
                self.adhoc_rubric(question, reference_answer, alternatives)
                    .await
            }
        }
    }

    /// A catalog rubric by id.
    pub fn resolve_id(&self, id: &str) -> Result<ResolvedRubric, GradeError> {
        if let Some(r) = self.resolved.read().expect("resolved rubrics").get(id) {
            return Ok(r.clone());
        }
        if self.catalog.get(id).is_some() {
            // A rubric of the catalog not indexed yet (a first start, or it changed).
            self.require_index(&format!("question `{id}`"))?;
        }
        Err(GradeError::UnknownQuestion {
            id: id.to_string(),
            closest: self.closest_ids(id),
        })
    }

    /// The rubric a match found, or why there is none.
    pub fn resolve_match(&self, m: &MatchResult) -> Result<ResolvedRubric, GradeError> {
        let found = m.rubric_id.as_deref().and_then(|id| {
            self.resolved
                .read()
                .expect("resolved rubrics")
                .get(id)
                .cloned()
        });
        match found {
            Some(r) => Ok(r),
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

    /// A rubric derived from a reference answer: each key statement one equal-weight criterion
    /// (a reference of one short phrase, "Through iteration.", is one criterion); each
    /// alternative reference is another phrasing of the criterion it is closest to.
    async fn adhoc_rubric(
        &self,
        question: &str,
        reference: &str,
        alternatives: &[String],
    ) -> Result<ResolvedRubric, GradeError> {
        let key = content_hash(&format!(
            "{question}\u{1f}{reference}\u{1f}{}",
            alternatives.join("\u{1e}")
        ));
        // Single flight: concurrent requests with one reference wait for one build. A build
        // that fails leaves the cell empty, and the next request tries again.
        let cell = self.adhoc.cell(&key);
        let entry = cell
            .get_or_try_init(|| async {
                let entry = self
                    .build_adhoc(&key, question, reference, alternatives)
                    .await?;
                self.adhoc.built(&key, &entry);
                Ok::<_, GradeError>(entry)
            })
            .await?;
        Ok(entry.clone())
    }

    async fn build_adhoc(
        &self,
        key: &str,
        question: &str,
        reference: &str,
        alternatives: &[String],
    ) -> Result<ResolvedRubric, GradeError> {
        let mut statements: Vec<String> = segments(reference)
            .into_iter()
            .map(|s| s.text)
            .filter(|s| s.split_whitespace().count() >= 3)
            .collect();
        if statements.is_empty() && crate::text::words(reference).next().is_some() {
            // A reference of a few words is itself the one point to make.
            statements.push(reference.trim().to_string());
        }
        if statements.is_empty() {
            return Err(GradeError::EmptyReference);
        }
        let alternatives: Vec<String> = alternatives
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty() && a != reference.trim())
            .take(ADHOC_ALTERNATIVES)
            .collect();
        // Keyword evidence needs keywords: each statement's distinctive terms (not the
        // question's own words, which every on-topic answer repeats).
        let question_words: std::collections::HashSet<String> =
            crate::text::words(question).collect();
        let keywords = crate::text::key_terms(&statements, &question_words, ADHOC_KEYWORDS);
        let mut criteria: Vec<Criterion> = statements
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
            criteria: Vec::new(), // set below, with the alternatives
            misconceptions: Vec::new(),
            model_answers: vec![ModelAnswer {
                text: reference.trim().to_string(),
            }],
            exemplars: Vec::new(),
            version: key.to_string(),
        };
        // A short reference is also read whole (`RubricVectors::references`); a one-statement
        // reference is its statement.
        let short = statements.len() <= crate::judge::calibration::SHORT_REFERENCE;
        let whole = (short && statements.len() > 1).then(|| reference.trim().to_string());
        let mut texts = statements.clone();
        texts.extend(alternatives.iter().cloned());
        texts.extend(whole.clone());
        texts.push(rubric.question.clone());
        let mut vectors = self.embedder.embed(&texts).await?;
        let qv = vectors.pop().unwrap_or_default();
        let whole = whole.and_then(|text| vectors.pop().map(|vector| Phrase { text, vector }));
        let alt_vectors = vectors.split_off(statements.len());
        let mut phrases: Vec<Vec<Phrase>> = statements
            .iter()
            .zip(vectors)
            .map(|(t, v)| {
                vec![Phrase {
                    text: t.clone(),
                    vector: v,
                }]
            })
            .collect();
        for (text, vector) in alternatives.into_iter().zip(alt_vectors) {
            let closest = (0..phrases.len())
                .max_by(|&a, &b| {
                    let sim = |i: usize| crate::embed::dot(&phrases[i][0].vector, &vector);
                    sim(a).total_cmp(&sim(b))
                })
                .unwrap_or(0);
            criteria[closest].phrasings.push(text.clone());
            phrases[closest].push(Phrase { text, vector });
        }
        let references: Vec<Phrase> = if short {
            // The statement of a one-statement reference, or the whole reference; then each
            // alternative, as written.
            whole
                .or_else(|| phrases.first().and_then(|p| p.first()).cloned())
                .into_iter()
                .chain(phrases.iter().flat_map(|p| p.iter().skip(1)).cloned())
                .collect()
        } else {
            Vec::new()
        };
        let rubric = Rubric { criteria, ..rubric };
        let vecs = RubricVectors {
            criteria: phrases,
            misconceptions: Vec::new(),
            model_sentences: Vec::new(),
            references,
        };
        let entry = ResolvedRubric {
            rubric: Arc::new(rubric),
            vectors: Arc::new(vecs),
            question: Some(qv.into()),
            source: RubricSource::AdHoc,
        };
        Ok(entry)
    }
}

type Cell = Arc<tokio::sync::OnceCell<ResolvedRubric>>;

/// The ad hoc rubrics built so far, by content hash of (question, reference, alternatives):
/// each key has one cell, which the first request fills and the others wait on. Bounded by
/// the vectors held ([`ADHOC_CACHE_VECTORS`]), oldest out first.
#[derive(Default)]
pub(super) struct AdHocCache {
    inner: std::sync::Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    cells: std::collections::HashMap<String, Cell>,
    /// Built entries, oldest first, with their vector counts.
    order: std::collections::VecDeque<(String, usize)>,
    vectors: usize,
}

impl AdHocCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cell for `key`, made empty if there is none. Cells left empty by builds that failed
    /// or were abandoned, and that nobody waits on, are swept here.
    fn cell(&self, key: &str) -> Cell {
        let mut st = self.lock();
        if st.cells.len() > st.order.len() + 64 {
            st.cells
                .retain(|_, c| c.initialized() || Arc::strong_count(c) > 1);
        }
        st.cells.entry(key.to_string()).or_default().clone()
    }

    /// Count an entry its cell's one build made (a cell is built once, so each build is
    /// counted once), then drop the oldest until the cache is within its bound.
    fn built(&self, key: &str, entry: &ResolvedRubric) {
        let mut st = self.lock();
        let n = entry.vectors.criteria.iter().map(Vec::len).sum::<usize>() + 1;
        st.order.push_back((key.to_string(), n));
        st.vectors += n;
        while st.vectors > ADHOC_CACHE_VECTORS && st.order.len() > 1 {
            let (old, n) = st.order.pop_front().expect("len > 1");
            st.vectors -= n;
            st.cells.remove(&old);
        }
    }
}
