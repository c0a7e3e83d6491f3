//! The grading pipeline: resolve the rubric → judge → verify evidence → aggregate → `Grade`.
//!
//! [`Engine`] owns what every interface shares (catalog, embedder, store, the judges' vectors,
//! calibration) and is cheap to share behind an `Arc`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{EmbeddingKind, JudgeKind, OverLimit, Settings, StoreKind};
use crate::embed::{EmbedError, Embedder, LocalEmbedder};
use crate::grade::{
    Flag, Grade, Judgement, compute_score, feedback_from_verdicts, gaps_from_verdicts,
    verify_evidence,
};
use crate::guard::guard;
use crate::index::{
    Collections, IndexError, IndexReport, Knowledge, Phrase, RubricVectors, index_catalog,
};
use crate::judge::{Calibration, CoverageFeatures, CoverageJudge};
use crate::llm::judge::{ExemplarRef, Hint, JudgeInput};
use crate::llm::{LlmError, LlmJudge};
use crate::matching::{Candidate, MatchResult, match_question};
use crate::rubric::{
    Catalog, Criterion, ModelAnswer, Rubric, RubricErrors, RubricKind, content_hash,
};
use crate::store::{EmbeddedStore, Filter, QdrantOptions, QdrantStore, StoreError, VectorStore};
use crate::text::segments;

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
    #[error("LLM judge: {0}")]
    Llm(String),
}

/// A grading request (the same for CLI, HTTP, batch and Slack).
#[derive(Debug, Clone)]
pub struct GradeRequest {
    pub question: QuestionRef,
    pub answer: String,
    pub judge: Option<JudgeKind>,
    pub samples: Option<u32>,
}

/// Ad hoc rubrics are built from reference answers at grade time; keep recent ones.
const ADHOC_CACHE: usize = 256;
/// Distinctive terms taken from each statement of an ad hoc reference as its keywords.
const ADHOC_KEYWORDS: usize = 3;

pub struct Engine {
    pub settings: Settings,
    pub catalog: Catalog,
    pub embedder: Arc<dyn Embedder>,
    pub store: Arc<dyn VectorStore>,
    pub collections: Collections,
    pub knowledge: Knowledge,
    /// Question vectors by rubric id (restatement check).
    pub questions: HashMap<String, Vec<f32>>,
    pub calibration: Calibration,
    pub index_report: IndexReport,
    /// The LLM judge, when an endpoint is configured.
    pub llm: Option<Arc<LlmJudge>>,
    adhoc: Mutex<HashMap<String, Arc<AdHocRubric>>>,
}

impl Engine {
    /// Open everything from settings: rubrics, embedder, store (indexed if anything changed),
    /// the judges' vectors and the calibration. `base` resolves relative paths.
    pub async fn open(settings: Settings, base: &Path) -> Result<Engine, OpenError> {
        let catalog = Catalog::load_dir(&Settings::resolve(base, &settings.rubrics_dir))
            .map_err(OpenError::Rubrics)?;
        let embedder: Arc<dyn Embedder> = match settings.embedding.kind {
            EmbeddingKind::Local => Arc::new(LocalEmbedder::load(
                &Settings::resolve(base, &settings.embedding.model_dir),
                settings.embedding.max_tokens,
                settings.embedding.batch_size,
            )?),
            EmbeddingKind::Openai => Arc::new(crate::llm::OpenAiEmbedder::new(
                &settings.llm,
                &settings.embedding,
            )?),
        };
        let store: Arc<dyn VectorStore> = match settings.store.kind {
            StoreKind::Embedded => Arc::new(EmbeddedStore::open(
                &Settings::resolve(base, &settings.data_dir).join("store"),
            )?),
            StoreKind::Qdrant => Arc::new(QdrantStore::connect(QdrantOptions {
                url: settings.store.url.clone(),
                api_key: settings.store.api_key.clone(),
                shard_number: settings.store.shard_number,
                replication_factor: settings.store.replication_factor,
            })?),
        };
        let calibration = Calibration::load(&Settings::resolve(base, &settings.judge.calibration))?;
        Self::with_parts(settings, catalog, embedder, store, calibration).await
    }

    /// Assemble from ready parts (tests use an in-memory store). Indexes what changed.
    pub async fn with_parts(
        settings: Settings,
        catalog: Catalog,
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn VectorStore>,
        calibration: Calibration,
    ) -> Result<Engine, OpenError> {
        let collections = Collections::new(&settings.store.collection_prefix);
        let index_report =
            index_catalog(&catalog, store.as_ref(), embedder.as_ref(), &collections).await?;
        let knowledge = Knowledge::load(&catalog, store.as_ref(), &collections).await?;
        let questions = store
            .scroll(
                &collections.questions,
                &Filter::default().kinds(&["question"]),
            )
            .await?
            .into_iter()
            .map(|p| (p.payload.rubric_id, p.vector))
            .collect();
        let llm = if settings.llm.is_configured() {
            Some(Arc::new(
                LlmJudge::new(&settings.llm).map_err(|e| OpenError::Llm(e.to_string()))?,
            ))
        } else {
            None
        };
        Ok(Engine {
            llm,
            settings,
            catalog,
            embedder,
            store,
            collections,
            knowledge,
            questions,
            calibration,
            index_report,
            adhoc: Mutex::new(HashMap::new()),
        })
    }

    /// Match a free-text question to a rubric.
    pub async fn match_question(&self, question: &str) -> Result<MatchResult, GradeError> {
        match_question(
            question,
            self.embedder.as_ref(),
            self.store.as_ref(),
            &self.collections,
            self.settings.matching.threshold,
            self.settings.matching.candidates,
        )
        .await
        .map_err(|e| match e {
            IndexError::Embed(e) => GradeError::Embed(e),
            IndexError::Store(e) => GradeError::Store(e),
        })
    }

    /// Which judge a request gets: the requested one, or `auto` resolved by configuration.
    pub fn effective_judge(&self, requested: Option<JudgeKind>) -> JudgeKind {
        match requested.unwrap_or(self.settings.judge.kind) {
            JudgeKind::Auto if self.settings.llm.is_configured() => JudgeKind::Llm,
            JudgeKind::Auto => JudgeKind::Coverage,
            k => k,
        }
    }

    /// Resolve the rubric a request names.
    pub async fn resolve(&self, q: &QuestionRef) -> Result<Resolved, GradeError> {
        match q {
            QuestionRef::Id(id) => match self.catalog.get_shared(id) {
                Some(r) => Ok(Resolved::Catalog(r)),
                None => Err(GradeError::UnknownQuestion {
                    id: id.clone(),
                    closest: self.closest_ids(id),
                }),
            },
            QuestionRef::Text(text) => {
                let m = self.match_question(text).await?;
                match m
                    .rubric_id
                    .as_deref()
                    .and_then(|id| self.catalog.get_shared(id))
                {
                    Some(r) => Ok(Resolved::Catalog(r)),
                    None => Err(GradeError::Unmatched {
                        similarity: m.similarity,
                        threshold: self.settings.matching.threshold,
                        candidates: m.candidates,
                    }),
                }
            }
            QuestionRef::AdHoc {
                question,
                reference_answer,
            } => Ok(Resolved::AdHoc(
                self.adhoc_rubric(question, reference_answer).await?,
            )),
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
    ) -> Result<Arc<AdHocRubric>, GradeError> {
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
        let entry = Arc::new(AdHocRubric {
            rubric,
            vectors: vecs,
            question: qv,
        });
        let mut cache = self.adhoc.lock().expect("adhoc cache");
        if cache.len() >= ADHOC_CACHE {
            cache.clear();
        }
        cache.insert(key, entry.clone());
        Ok(entry)
    }

    /// Coverage features of an answer against a resolved rubric (one embedding call).
    pub async fn coverage_features(
        &self,
        resolved: &Resolved,
        answer: &str,
    ) -> Result<CoverageFeatures, GradeError> {
        Ok(self.measure(resolved, answer, false).await?.0)
    }

    /// Coverage features and, when asked, the whole answer's vector, in one embedding call.
    async fn measure(
        &self,
        resolved: &Resolved,
        answer: &str,
        whole: bool,
    ) -> Result<(CoverageFeatures, Option<Vec<f32>>), GradeError> {
        let segs = segments(answer);
        let texts: Vec<String> = segs.iter().map(|s| s.text.clone()).collect();
        let vectors = if texts.is_empty() {
            Vec::new()
        } else {
            self.embedder.embed(&texts).await?
        };
        // The whole answer's vector (to retrieve exemplars) is the mean of its segments',
        // weighted by their length: no second pass over the answer.
        let answer_vector = whole.then(|| mean_vector(&texts, &vectors));
        let judge = self.coverage_judge(resolved);
        Ok((judge.features(segs, &vectors), answer_vector))
    }

    /// The rubric, its vectors and its question vector.
    pub fn parts<'a>(
        &'a self,
        resolved: &'a Resolved,
    ) -> (&'a Rubric, &'a RubricVectors, Option<&'a [f32]>) {
        static EMPTY: std::sync::OnceLock<RubricVectors> = std::sync::OnceLock::new();
        match resolved {
            Resolved::Catalog(r) => (
                r,
                self.knowledge
                    .rubrics
                    .get(&r.id)
                    .unwrap_or_else(|| EMPTY.get_or_init(RubricVectors::default)),
                self.questions.get(&r.id).map(Vec::as_slice),
            ),
            Resolved::AdHoc(a) => (&a.rubric, &a.vectors, Some(a.question.as_slice())),
        }
    }

    /// The coverage judge for a resolved rubric.
    pub fn coverage_judge<'a>(&'a self, resolved: &'a Resolved) -> CoverageJudge<'a> {
        let (rubric, vecs, q) = self.parts(resolved);
        CoverageJudge::new(rubric, vecs, q)
    }

    /// The coverage judge's verdicts under the shipped calibration.
    pub fn coverage_judgement(
        &self,
        resolved: &Resolved,
        features: &CoverageFeatures,
    ) -> Judgement {
        let thresholds = self
            .calibration
            .for_rubric(matches!(resolved, Resolved::AdHoc(_)));
        self.coverage_judge(resolved)
            .decide(features, thresholds, self.embedder.model_id())
    }

    /// The coverage judge's verdicts on an answer (one embedding pass).
    async fn coverage_grade(
        &self,
        resolved: &Resolved,
        answer: &str,
    ) -> Result<Judgement, GradeError> {
        let features = self.coverage_features(resolved, answer).await?;
        Ok(self.coverage_judgement(resolved, &features))
    }

    /// Grade one answer.
    pub async fn grade(&self, req: &GradeRequest) -> Result<Grade, GradeError> {
        let started = Instant::now();
        let judge = self.effective_judge(req.judge);
        let llm = match judge {
            JudgeKind::Llm | JudgeKind::Hybrid => Some(self.llm.clone().ok_or_else(|| {
                GradeError::JudgeUnavailable(
                    format!("{judge:?}").to_lowercase(),
                    "no LLM endpoint is configured: set llm.base_url (GRADER__LLM__BASE_URL) or OPENAI_API_KEY, or use the coverage judge".into(),
                )
            })?),
            _ => None,
        };
        let token_model = llm.as_ref().map_or("cl100k", |l| l.model());
        let answer = Answer::parse(
            &req.answer,
            self.settings.limits.max_answer_tokens,
            self.settings.limits.over_limit,
            token_model,
        )?;
        let resolved = self.resolve(&req.question).await?;
        let rubric = resolved.rubric();
        // Text addressed to the grader is removed before any judge sees the answer.
        let guarded = guard(answer.text());
        let mut flags = Vec::new();
        if guarded.suspected {
            tracing::warn!(rubric = %rubric.id, removed = guarded.removed.len(), "answer contains text aimed at the grader");
            flags.push(Flag::InjectionSuspected);
        }
        // The coverage features (one embedding pass) serve the coverage judge, the LLM judge's
        // hints and, through the answer's vector, exemplar retrieval; skip the pass when none
        // of them is wanted.
        let settings = &self.settings.judge;
        let retrieve = settings.exemplars_k > 0 && matches!(resolved, Resolved::Catalog(_));
        let embed = llm.is_none() || judge == JudgeKind::Hybrid || settings.llm_hints || retrieve;
        let (measured, answer_vector) = if embed {
            let (f, v) = self
                .measure(&resolved, &guarded.text, llm.is_some() && retrieve)
                .await?;
            let c = self.coverage_judgement(&resolved, &f);
            (Some((f, c)), v)
        } else {
            (None, None)
        };
        let mut judgement = match llm {
            None => match measured {
                Some((_, c)) => c,
                None => self.coverage_grade(&resolved, &guarded.text).await?,
            },
            Some(llm) => {
                let exemplars = match (&resolved, &answer_vector) {
                    (Resolved::Catalog(r), Some(v)) if !v.is_empty() => {
                        self.exemplars_for(r, v).await?
                    }
                    _ => Vec::new(),
                };
                let hints = match (&measured, settings.llm_hints) {
                    (Some((features, coverage)), true) => coverage
                        .criteria
                        .iter()
                        .zip(features.criterion_sims.iter())
                        .map(|(c, sims)| Hint {
                            id: c.id.clone(),
                            evidence: c.evidence.clone(),
                            similarity: format!(
                                "{:.2}",
                                sims.iter().copied().fold(0.0f32, f32::max)
                            ),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let input = JudgeInput {
                    rubric,
                    answer: &guarded.text,
                    exemplars,
                    hints,
                    samples: req
                        .samples
                        .unwrap_or(self.settings.llm.samples)
                        .clamp(1, 15),
                };
                match llm.judge(&input).await {
                    Ok(mut j) => {
                        if let (JudgeKind::Hybrid, Some((_, coverage))) = (judge, &measured) {
                            j.judge.kind = "hybrid".into();
                            if disagree(rubric, &j, coverage) {
                                j.flags.push(Flag::JudgesDisagree);
                            }
                        }
                        j
                    }
                    Err(e) if self.settings.llm.fallback == crate::config::Fallback::Coverage => {
                        tracing::warn!(error = %e, "LLM judge failed; falling back to the coverage judge");
                        let mut c = match measured {
                            Some((_, c)) => c,
                            None => self.coverage_grade(&resolved, &guarded.text).await?,
                        };
                        c.flags.push(Flag::FallbackToCoverage);
                        c
                    }
                    Err(e) => return Err(GradeError::Llm(e)),
                }
            }
        };
        judgement.flags.extend(flags);
        if verify_evidence(answer.text(), &mut judgement) {
            judgement.flags.push(Flag::EvidenceUnverified);
        }
        if answer.truncated() {
            judgement.flags.push(Flag::Truncated);
        }
        if matches!(resolved, Resolved::AdHoc(_)) {
            judgement.flags.push(Flag::AdHocRubric);
        }
        Ok(finish(rubric, judgement, started))
    }

    /// Up to `judge.exemplars_k` graded exemplars of the rubric, most similar to the answer first.
    async fn exemplars_for(
        &self,
        rubric: &Rubric,
        answer_vector: &[f32],
    ) -> Result<Vec<ExemplarRef>, GradeError> {
        let k = self.settings.judge.exemplars_k;
        if k == 0 {
            return Ok(Vec::new());
        }
        let filter = Filter::rubric(&rubric.id).kinds(&["exemplar"]);
        let hits = self
            .store
            .search(&self.collections.references, answer_vector, &filter, k)
            .await?;
        Ok(hits
            .into_iter()
            .filter_map(|h| rubric.exemplars.get(h.payload.index as usize))
            .map(|e| ExemplarRef {
                score: e.score,
                answer: e.answer.clone(),
                rationale: e.rationale.clone(),
            })
            .collect())
    }
}

/// Hybrid mode: the judges disagree strongly when their scores differ by 40% of the scale, or
/// when they are opposite (met vs missed) on a heavy criterion.
fn disagree(rubric: &Rubric, llm: &Judgement, coverage: &Judgement) -> bool {
    let a = compute_score(rubric.max_score, &llm.criteria, &llm.misconceptions);
    let b = compute_score(
        rubric.max_score,
        &coverage.criteria,
        &coverage.misconceptions,
    );
    let heavy = rubric
        .criteria
        .iter()
        .map(|c| c.weight)
        .fold(0.0f32, f32::max);
    let opposite = llm.criteria.iter().zip(&coverage.criteria).any(|(x, y)| {
        x.weight >= heavy
            && matches!(
                (x.verdict, y.verdict),
                (crate::grade::Verdict::Met, crate::grade::Verdict::Missed)
                    | (crate::grade::Verdict::Missed, crate::grade::Verdict::Met)
            )
    });
    (a - b).abs() >= 0.4 * rubric.max_score || opposite
}

/// Verified judgement → Grade: the score from verdicts, gaps and feedback where the judge gave none.
pub fn finish(rubric: &Rubric, mut j: Judgement, started: Instant) -> Grade {
    let score = compute_score(rubric.max_score, &j.criteria, &j.misconceptions);
    if j.gaps.is_empty() {
        j.gaps = gaps_from_verdicts(rubric, &j.criteria, &j.misconceptions);
    }
    if j.feedback.is_empty() {
        j.feedback = feedback_from_verdicts(rubric, &j.criteria, &j.misconceptions);
    }
    j.flags.sort();
    j.flags.dedup();
    Grade {
        rubric_id: rubric.id.clone(),
        question: rubric.question.clone(),
        score,
        max_score: rubric.max_score,
        criteria: j.criteria,
        misconceptions: j.misconceptions,
        gaps: j.gaps,
        feedback: j.feedback,
        judge: j.judge,
        flags: j.flags,
        usage: j.usage,
        latency_ms: started.elapsed().as_millis() as u64,
        rubric_version: rubric.version.clone(),
    }
}

/// A rubric derived from a reference answer, with its vectors.
#[derive(Debug)]
pub struct AdHocRubric {
    pub rubric: Rubric,
    pub vectors: RubricVectors,
    /// The question's vector (restatement check).
    pub question: Vec<f32>,
}

/// The rubric a request resolved to.
#[derive(Debug, Clone)]
pub enum Resolved {
    Catalog(Arc<Rubric>),
    AdHoc(Arc<AdHocRubric>),
}

impl Resolved {
    pub fn rubric(&self) -> &Rubric {
        match self {
            Resolved::Catalog(r) => r,
            Resolved::AdHoc(a) => &a.rubric,
        }
    }
}

/// The length-weighted mean of segment vectors, L2-normalised (empty input: an empty vector,
/// which retrieves nothing).
fn mean_vector(texts: &[String], vectors: &[Vec<f32>]) -> Vec<f32> {
    let Some(dim) = vectors.first().map(Vec::len) else {
        return Vec::new();
    };
    let mut mean = vec![0.0f32; dim];
    for (t, v) in texts.iter().zip(vectors) {
        let w = t.split_whitespace().count().max(1) as f32;
        for (m, x) in mean.iter_mut().zip(v) {
            *m += w * x;
        }
    }
    crate::embed::normalize(&mut mean);
    mean
}
