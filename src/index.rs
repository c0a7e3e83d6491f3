//! Indexing the rubric set into the vector store, and the in-memory vectors the judges use.
//!
//! Three collections (names prefixed by `store.collection_prefix`):
//! - `questions`: each rubric's question and aliases → rubric id (matching);
//! - `references`: model answers and graded exemplars (retrieval for the LLM judge);
//! - `criteria`: criterion points and phrasings, misconception claims, and model-answer
//!   sentences (the coverage judge's phrasings);
//! - `exemplars`: answers people reviewed, with their human score and note (`audit::learn`
//!   writes them; indexing the catalog never touches them).
//!
//! Point ids are deterministic and every point carries the hash of its rubric's content plus the
//! embedding model, so indexing is idempotent and re-embeds only the rubrics that changed.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;

use crate::embed::{EmbedError, Embedder};
use crate::rubric::{Catalog, Rubric, content_hash};
use crate::store::{Filter, Payload, Point, StoreError, VectorStore, point_id};
use crate::text::segments;

/// Bump when what is indexed per rubric changes (including how model answers are cut into
/// sentences, `text::segments`), so old indexes are rebuilt.
const SCHEMA: &str = "grader-index-v4";

#[derive(Debug, Clone)]
pub struct Collections {
    pub questions: String,
    pub references: String,
    pub criteria: String,
    /// Reviewed answers (kind `reviewed`): not part of the catalog index, so re-indexing a
    /// rubric keeps them.
    pub exemplars: String,
}

impl Collections {
    pub fn new(prefix: &str) -> Self {
        Collections {
            questions: format!("{prefix}_questions"),
            references: format!("{prefix}_references"),
            criteria: format!("{prefix}_criteria"),
            exemplars: format!("{prefix}_exemplars"),
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.questions, &self.references, &self.criteria]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `grader index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    pub points_written: usize,
    pub elapsed_ms: u64,
}

impl IndexReport {
    pub fn changed(&self) -> bool {
        !(self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

/// The hash a rubric's points carry: rubric content + embedding model + index schema.
pub fn rubric_hash(rubric: &Rubric, model_id: &str) -> String {
    content_hash(&format!("{SCHEMA}|{model_id}|{}", rubric.version))
}

/// One text to embed and where its vector goes.
struct Pending {
    collection: usize,
    payload: Payload,
}

/// Whole answers (model answers, exemplars) are embedded from their first words only: that is
/// enough to rank them by similarity to a candidate's answer, and attention over 256 tokens
/// makes full-length answers the bulk of indexing time.
const REFERENCE_EMBED_WORDS: usize = 90;

impl Pending {
    fn embed_text(&self) -> String {
        match self.payload.kind.as_str() {
            "model_answer" | "exemplar" => self
                .payload
                .text
                .split_whitespace()
                .take(REFERENCE_EMBED_WORDS)
                .collect::<Vec<_>>()
                .join(" "),
            _ => self.payload.text.clone(),
        }
    }
}

fn points_for(rubric: &Rubric, hash: &str) -> Vec<Pending> {
    let mut out = Vec::new();
    let mut push = |collection: usize,
                    kind: &str,
                    index: u32,
                    text: &str,
                    score: Option<f32>,
                    item: Option<&str>| {
        out.push(Pending {
            collection,
            payload: Payload {
                rubric_id: rubric.id.clone(),
                kind: kind.to_string(),
                index,
                text: text.to_string(),
                score,
                item_id: item.map(str::to_string),
                hash: hash.to_string(),
                rationale: None,
            },
        })
    };
    push(0, "question", 0, &rubric.question, None, None);
    for (i, a) in rubric.aliases.iter().enumerate() {
        push(0, "alias", i as u32, a, None, None);
    }
    for (i, m) in rubric.model_answers.iter().enumerate() {
        push(1, "model_answer", i as u32, &m.text, None, None);
    }
    for (i, e) in rubric.exemplars.iter().enumerate() {
        push(1, "exemplar", i as u32, &e.answer, Some(e.score), None);
    }
    for (ci, c) in rubric.criteria.iter().enumerate() {
        for (pi, text) in std::iter::once(&c.point).chain(&c.phrasings).enumerate() {
            push(
                2,
                "criterion",
                (ci * 100 + pi) as u32,
                text,
                None,
                Some(&c.id),
            );
        }
    }
    for (mi, m) in rubric.misconceptions.iter().enumerate() {
        for (pi, text) in std::iter::once(&m.claim).chain(&m.phrasings).enumerate() {
            push(
                2,
                "misconception",
                (mi * 100 + pi) as u32,
                text,
                None,
                Some(&m.id),
            );
        }
    }
    for (ai, m) in rubric.model_answers.iter().enumerate() {
        for (si, s) in segments(&m.text).iter().enumerate() {
            push(
                2,
                "model_sentence",
                (ai * 1000 + si) as u32,
                &s.text,
                None,
                None,
            );
        }
    }
    out
}

/// Told how far indexing has got: `(points embedded, points to embed)`. Called with `(0, n)`
/// before the first batch and `(n, n)` after the last; not called when nothing changed.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// A [`Progress`] that logs: the start, each tenth, and the end (for logs and terminals
/// without a progress bar).
pub fn log_progress() -> impl Fn(usize, usize) + Send + Sync {
    let last_tenth = std::sync::atomic::AtomicUsize::new(usize::MAX);
    let started = Instant::now();
    move |done, total| {
        let tenth = (done * 10).checked_div(total).unwrap_or(10);
        if last_tenth.swap(tenth, std::sync::atomic::Ordering::Relaxed) == tenth {
            return;
        }
        if done == 0 {
            tracing::info!(
                total,
                "indexing the rubric set: {total} texts to embed (once; later starts reuse the index)"
            );
        } else if done >= total {
            tracing::info!(
                total,
                secs = started.elapsed().as_secs(),
                "indexed the rubric set: {total} texts"
            );
        } else {
            tracing::info!(done, total, "indexing the rubric set: {done}/{total}");
        }
    }
}

/// Bring the store in line with the catalog: embed and write what changed, delete what is gone.
pub async fn index_catalog(
    catalog: &Catalog,
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    names: &Collections,
    progress: Progress<'_>,
) -> Result<IndexReport, IndexError> {
    let plan = plan_index(catalog, store, embedder, names).await?;
    run_index(plan, catalog, store, embedder, names, progress, &|_| {}).await
}

/// What indexing has left to do: the rubrics to embed, found by [`plan_index`], which has
/// already deleted every stale point (so the rubrics not in the plan are indexed and final).
#[derive(Debug)]
pub struct IndexPlan {
    /// Rubric id and the hash its points will carry.
    todo: Vec<(String, String)>,
    report: IndexReport,
    /// Texts to embed.
    total: usize,
    started: Instant,
}

impl IndexPlan {
    /// Texts to embed.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The rubrics to embed, by id.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.todo.iter().map(|(id, _)| id.as_str())
    }
}

/// One rubric's points, once all of them are in the store: what the judges and matching need of
/// it (its criteria-collection points and its question point).
pub struct Indexed<'a> {
    pub rubric_id: &'a str,
    pub criteria: Vec<Point>,
    pub question: Option<Vec<f32>>,
}

/// Compare the store with the catalog: create the collections, delete the points of rubrics
/// changed, removed or half-written, and say what is left to embed. Embeds nothing.
pub async fn plan_index(
    catalog: &Catalog,
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    names: &Collections,
) -> Result<IndexPlan, IndexError> {
    let started = Instant::now();
    let dim = embedder.dim();
    for c in names.all() {
        store.ensure_collection(c, dim).await?;
    }
    // What is indexed now: the hash on each rubric's question point.
    let existing: BTreeMap<String, String> = store
        .scroll(&names.questions, &Filter::default().kinds(&["question"]))
        .await?
        .into_iter()
        .map(|p| (p.payload.rubric_id, p.payload.hash))
        .collect();
    let mut report = IndexReport::default();
    let mut todo: Vec<(String, String)> = Vec::new();
    for rubric in catalog.iter() {
        let hash = rubric_hash(rubric, embedder.model_id());
        match existing.get(&rubric.id) {
            Some(h) if *h == hash => report.unchanged += 1,
            Some(_) => {
                report.updated.push(rubric.id.clone());
                todo.push((rubric.id.clone(), hash));
            }
            None => {
                report.added.push(rubric.id.clone());
                todo.push((rubric.id.clone(), hash));
            }
        }
    }
    for id in existing.keys().filter(|id| catalog.get(id).is_none()) {
        report.removed.push(id.clone());
    }
    for id in report.updated.iter().chain(&report.removed) {
        // Questions last on write, first on delete: a rubric counts as indexed only once all
        // its points are in.
        for c in names.all() {
            store.delete(c, &Filter::rubric(id)).await?;
        }
    }
    // Rubrics whose question point is missing may have partial points from an interrupted run.
    for id in &report.added {
        for c in names.all() {
            store.delete(c, &Filter::rubric(id)).await?;
        }
    }
    let total = todo
        .iter()
        .filter_map(|(id, h)| catalog.get(id).map(|r| points_for(r, h).len()))
        .sum();
    Ok(IndexPlan {
        todo,
        report,
        total,
        started,
    })
}

/// Embed and write what `plan` found, calling `progress` with texts done and to do, and
/// `indexed` for each rubric once all its points are in (so it can be graded at once).
pub async fn run_index(
    plan: IndexPlan,
    catalog: &Catalog,
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    names: &Collections,
    progress: Progress<'_>,
    indexed: &(dyn Fn(Indexed<'_>) + Send + Sync),
) -> Result<IndexReport, IndexError> {
    let IndexPlan {
        todo,
        mut report,
        total,
        started,
    } = plan;
    let todo: Vec<(&Rubric, &str)> = todo
        .iter()
        .filter_map(|(id, h)| catalog.get(id).map(|r| (r, h.as_str())))
        .collect();
    // Embed a few rubrics per call: big batches keep the model busy, bounded memory, and
    // progress moves every few seconds. Two calls in flight, so the workers never wait for the
    // store or for the last piece of a call.
    let mut done = 0;
    if total > 0 {
        progress(0, total);
    }
    // (Futures collected first: a closure in the stream's type would not be `Send` for every
    // lifetime, which a spawned server task needs.)
    let calls: Vec<_> = todo
        .chunks(4)
        .map(|chunk| embed_chunk(chunk, embedder))
        .collect();
    let mut embedded = futures::stream::iter(calls).buffered(2);
    while let Some(next) = embedded.next().await {
        let (chunk, pending, vectors) = next?;
        let count = pending.len();
        let mut per: [Vec<Point>; 3] = Default::default();
        for (p, v) in pending.into_iter().zip(vectors) {
            let id = point_id(&p.payload.rubric_id, &p.payload.kind, p.payload.index);
            per[p.collection].push(Point {
                id,
                vector: v,
                payload: p.payload,
            });
        }
        report.points_written += per.iter().map(Vec::len).sum::<usize>();
        let [q, r, c] = per;
        let of = |points: &[Point], id: &str| -> Vec<Point> {
            points
                .iter()
                .filter(|p| p.payload.rubric_id == id)
                .cloned()
                .collect()
        };
        let written: Vec<Indexed<'_>> = chunk
            .iter()
            .map(|(rubric, _)| Indexed {
                rubric_id: &rubric.id,
                criteria: of(&c, &rubric.id),
                question: q
                    .iter()
                    .find(|p| p.payload.rubric_id == rubric.id && p.payload.kind == "question")
                    .map(|p| p.vector.clone()),
            })
            .collect();
        store.upsert(&names.criteria, c).await?;
        store.upsert(&names.references, r).await?;
        store.upsert(&names.questions, q).await?;
        for w in written {
            indexed(w);
        }
        done += count;
        progress(done, total);
    }
    store.flush().await?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Embed a few rubrics' points.
async fn embed_chunk<'a>(
    chunk: &'a [(&'a Rubric, &'a str)],
    embedder: &dyn Embedder,
) -> Result<(&'a [(&'a Rubric, &'a str)], Vec<Pending>, Vec<Vec<f32>>), IndexError> {
    let pending: Vec<Pending> = chunk.iter().flat_map(|(r, h)| points_for(r, h)).collect();
    let texts: Vec<String> = pending.iter().map(Pending::embed_text).collect();
    let vectors = embedder.embed(&texts).await?;
    Ok((chunk, pending, vectors))
}

/// A phrasing with its vector.
#[derive(Debug, Clone)]
pub struct Phrase {
    pub text: String,
    pub vector: Vec<f32>,
}

/// The vectors of one rubric that the coverage judge needs, loaded once.
#[derive(Debug, Clone, Default)]
pub struct RubricVectors {
    /// Per criterion (rubric order): its point and phrasings.
    pub criteria: Vec<Vec<Phrase>>,
    /// Per misconception (rubric order): its claim and phrasings.
    pub misconceptions: Vec<Vec<Phrase>>,
    /// Sentences of the model answers.
    pub model_sentences: Vec<Phrase>,
    /// A short ad hoc rubric's reference answers whole (the reference and its alternatives):
    /// the coverage judge also reads the answer whole against them, as its correctness head was
    /// trained. Empty for catalog rubrics and longer references.
    pub references: Vec<Phrase>,
}

/// The judges' cache: rubric id → vectors.
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    pub rubrics: HashMap<String, RubricVectors>,
}

impl Knowledge {
    /// Read every rubric's criterion/misconception/model-sentence vectors from the store.
    pub async fn load(
        catalog: &Catalog,
        store: &dyn VectorStore,
        names: &Collections,
    ) -> Result<Self, StoreError> {
        let points = store.scroll(&names.criteria, &Filter::default()).await?;
        Ok(Self::from_points(catalog, points))
    }

    /// The vectors of the rubrics these criteria-collection points belong to.
    pub fn from_points(catalog: &Catalog, mut points: Vec<Point>) -> Self {
        let mut rubrics: HashMap<String, RubricVectors> = HashMap::new();
        points.sort_by(|a, b| {
            (&a.payload.rubric_id, &a.payload.kind, a.payload.index).cmp(&(
                &b.payload.rubric_id,
                &b.payload.kind,
                b.payload.index,
            ))
        });
        for p in points {
            let Some(rubric) = catalog.get(&p.payload.rubric_id) else {
                continue;
            };
            let entry = rubrics
                .entry(rubric.id.clone())
                .or_insert_with(|| RubricVectors {
                    criteria: vec![Vec::new(); rubric.criteria.len()],
                    misconceptions: vec![Vec::new(); rubric.misconceptions.len()],
                    model_sentences: Vec::new(),
                    references: Vec::new(),
                });
            let phrase = Phrase {
                text: p.payload.text,
                vector: p.vector,
            };
            match p.payload.kind.as_str() {
                "criterion" => {
                    let ci = (p.payload.index / 100) as usize;
                    if let Some(v) = entry.criteria.get_mut(ci) {
                        v.push(phrase);
                    }
                }
                "misconception" => {
                    let mi = (p.payload.index / 100) as usize;
                    if let Some(v) = entry.misconceptions.get_mut(mi) {
                        v.push(phrase);
                    }
                }
                "model_sentence" => entry.model_sentences.push(phrase),
                _ => {}
            }
        }
        Knowledge { rubrics }
    }
}
