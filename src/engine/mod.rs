//! The grading pipeline: resolve the rubric → guard and embed the answer once → judge →
//! verify evidence → score from verdicts → `Grade`.
//!
//! [`Engine`] owns what every interface shares (catalog, embedder, store, the resolved catalog
//! rubrics with their vectors, calibration, the judges) and is cheap to share behind an `Arc`.
//! It is long because opening (`Parts`: load and check, then index) and the grading paths share
//! its private state; splitting them would expose that state to the rest of the crate.
//! Its fields are private: callers match questions, list and resolve rubrics, and grade
//! through its methods, so an answer is resolved once and graded against that resolution.
//!
//! # Layout
//! - `request.rs`: `QuestionRef`, `Answer`, `GradeRequest`, `GradeOptions`, the errors.
//! - `limits.rs`: the `limits.*` checks made before any work starts.
//! - `admission.rs`: the bounded queue of grades, and the fair embedding scheduler.
//! - `resolve.rs`: id / matched text / ad hoc reference → `ResolvedRubric`.
//! - `indexing.rs`: indexing after start, each rubric gradable as soon as its points are in.

pub mod admission;
mod indexing;
mod limits;
mod request;
mod resolve;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::assets;
use crate::config::{EmbeddingKind, Fallback, JudgeKind, Settings, StoreKind};
use crate::embed::{Embedder, LocalEmbedder, LocalOptions};
use crate::grade::{
    Flag, Grade, Judgement, compute_score, feedback_from_verdicts, gaps_from_verdicts,
    verify_evidence,
};
use crate::guard::guard;
use crate::index::{Collections, IndexReport, Knowledge, Progress, plan_index};
use crate::judge::llm::ExemplarSource;
use crate::judge::{
    AnswerView, Calibration, CoverageJudge, Head, HybridJudge, Judge, JudgeContext, JudgeError,
    LlmJudge, ResolvedRubric,
};
use crate::llm::LlmStats;
use crate::matching::{MatchResult, match_question, match_vector};
use crate::rubric::{Catalog, Rubric};
use crate::store::{EmbeddedStore, Filter, QdrantOptions, QdrantStore, StoreError, VectorStore};
use crate::text::segments;

pub use indexing::IndexProgress;
pub use request::{
    Answer, GradeError, GradeOptions, GradeRequest, LimitError, OpenError, QuestionRef,
};

/// The tiktoken encoding answers are counted in when no LLM judges them (the coverage judge,
/// or an LLM judge without a model name).
const COVERAGE_TOKENS: &str = "cl100k";
/// How many of a short-reference rubric's references the pair reader reads an answer against:
/// the nearest ones by the answer's vector. Each is a forward pass over reference and answer
/// together; SemEval's Beetle questions have up to five references, and past the nearest two
/// the best reading rarely changes (README, "The pair reader").
pub const PAIR_READS: usize = 2;

/// The judges one engine can run, built once at start.
struct Judges {
    coverage: Arc<CoverageJudge>,
    /// With the hybrid judge, when an LLM endpoint is configured.
    llm: Option<(Arc<LlmJudge>, Arc<HybridJudge>)>,
}

pub struct Engine {
    settings: Settings,
    catalog: Catalog,
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    collections: Collections,
    /// Every catalog rubric indexed so far with its vectors, by id (all of them once
    /// [`Engine::index`] has run).
    resolved: std::sync::RwLock<HashMap<String, ResolvedRubric>>,
    calibration: Calibration,
    /// The coverage judge's correctness head.
    head: Arc<Head>,
    /// Indexing left to do after start, and how far it has got.
    index: indexing::IndexState,
    judges: Judges,
    /// Ad hoc rubrics by the hash of (question, reference).
    adhoc: resolve::AdHocCache,
    /// The bounded queue of grades (`limits.max_queued_grades`).
    admission: admission::Admission,
    /// Where the interfaces store their grades (`serve`, `batch`, `grade --save`); `None`
    /// for commands that only measure (eval, calibrate).
    audit: Option<Arc<crate::audit::Audit>>,
}

/// What an engine is made of, loaded and checked. Everything that can fail fast (rubrics,
/// model, calibration, store) fails here, before anything is indexed or written and before a
/// server binds its port; [`Parts::open`] then does the slow part.
pub struct Parts {
    pub settings: Settings,
    pub catalog: Catalog,
    pub embedder: Arc<dyn Embedder>,
    pub store: Arc<dyn VectorStore>,
    pub calibration: Calibration,
    pub head: Head,
}

impl Parts {
    /// Load from settings: the rubric set, the embedder, the calibration, then the store
    /// (which creates nothing on disk until it writes). `base` resolves relative paths.
    pub fn load(settings: Settings, base: &Path) -> Result<Parts, OpenError> {
        let catalog = Catalog::open(&settings.rubrics_dir, base).map_err(OpenError::Rubrics)?;
        let embedder: Arc<dyn Embedder> = match settings.embedding.kind {
            EmbeddingKind::Local => Arc::new(LocalEmbedder::load(
                &assets::model_dir(&settings, base)?,
                settings.embedding.local_options(),
            )?),
            EmbeddingKind::Openai => Arc::new(crate::llm::OpenAiEmbedder::new(
                &settings.llm,
                &settings.embedding,
            )?),
        };
        let cal =
            assets::CALIBRATION.read("judge.calibration", &settings.judge.calibration, base)?;
        let calibration = Calibration::parse(&cal.text, &cal.origin)?;
        let head = assets::ENTAIL_HEAD.read("judge.head", &settings.judge.head, base)?;
        let head = Head::parse(&head.text, &head.origin)?;
        let store: Arc<dyn VectorStore> = match settings.store.kind {
            StoreKind::Embedded => Arc::new(EmbeddedStore::open(
                &assets::data_dir(&settings, base)?.join("store"),
            )?),
            StoreKind::Qdrant => Arc::new(QdrantStore::connect(QdrantOptions {
                url: settings.store.url.clone(),
                api_key: settings.store.api_key.clone(),
                shard_number: settings.store.shard_number,
                replication_factor: settings.store.replication_factor,
            })?),
        };
        Ok(Parts {
            settings,
            catalog,
            embedder,
            store,
            calibration,
            head,
        })
    }

    /// Index what changed (calling `progress` with points done and to do) and build the engine.
    pub async fn open(self, progress: Progress<'_>) -> Result<Engine, OpenError> {
        let engine = self.start().await?;
        engine.index(progress).await?;
        Ok(engine)
    }

    /// Build the engine without embedding anything: the rubrics already indexed can be graded
    /// at once, the others once [`Engine::index`] has written them (a server indexes while it
    /// serves).
    pub async fn start(self) -> Result<Engine, OpenError> {
        Engine::start(
            self.settings,
            self.catalog,
            self.embedder,
            self.store,
            self.calibration,
        )
        .await
        .map(|e| e.with_head(self.head))
    }
}

impl Engine {
    /// Open everything from settings (see [`Parts::load`]), indexing quietly. `base` resolves
    /// relative paths.
    pub async fn open(settings: Settings, base: &Path) -> Result<Engine, OpenError> {
        Parts::load(settings, base)?.open(&|_, _| {}).await
    }

    /// Drop and recreate the index's collections for the configured embedding model
    /// (`grader index --recreate`, after a model change); the next open re-embeds every rubric.
    pub async fn recreate_index(settings: &Settings, base: &Path) -> Result<(), OpenError> {
        let dim = match settings.embedding.kind {
            EmbeddingKind::Local => LocalEmbedder::load(
                &assets::model_dir(settings, base)?,
                LocalOptions {
                    batch_size: 1,
                    workers: 1,
                    ..settings.embedding.local_options()
                },
            )?
            .dim(),
            EmbeddingKind::Openai => settings.embedding.openai_dimensions as usize,
        };
        let store: Box<dyn VectorStore> = match settings.store.kind {
            StoreKind::Embedded => Box::new(EmbeddedStore::open(
                &assets::data_dir(settings, base)?.join("store"),
            )?),
            StoreKind::Qdrant => Box::new(QdrantStore::connect(QdrantOptions {
                url: settings.store.url.clone(),
                api_key: settings.store.api_key.clone(),
                shard_number: settings.store.shard_number,
                replication_factor: settings.store.replication_factor,
            })?),
        };
        let c = Collections::new(&settings.store.collection_prefix);
        for name in [&c.questions, &c.references, &c.criteria] {
            store.recreate_collection(name, dim).await?;
        }
        store.flush().await?;
        Ok(())
    }

    /// Assemble from ready parts (tests use an in-memory store). Indexes what changed, calling
    /// `progress` with points done and to do.
    pub async fn with_parts(
        settings: Settings,
        catalog: Catalog,
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn VectorStore>,
        calibration: Calibration,
        progress: Progress<'_>,
    ) -> Result<Engine, OpenError> {
        let engine = Engine::start(settings, catalog, embedder, store, calibration).await?;
        engine.index(progress).await?;
        Ok(engine)
    }

    /// Assemble without embedding: delete stale points, load the vectors of the rubrics already
    /// indexed, and leave the rest to [`Engine::index`].
    async fn start(
        settings: Settings,
        catalog: Catalog,
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn VectorStore>,
        calibration: Calibration,
    ) -> Result<Engine, OpenError> {
        let collections = Collections::new(&settings.store.collection_prefix);
        let plan = plan_index(&catalog, store.as_ref(), embedder.as_ref(), &collections).await?;
        // Reviewed answers live beside the catalog's index (`audit::learn` fills it).
        store
            .ensure_collection(&collections.exemplars, embedder.dim())
            .await?;
        let mut knowledge = Knowledge::load(&catalog, store.as_ref(), &collections).await?;
        let mut questions: HashMap<String, Vec<f32>> = store
            .scroll(
                &collections.questions,
                &Filter::default().kinds(&["question"]),
            )
            .await?
            .into_iter()
            .map(|p| (p.payload.rubric_id, p.vector))
            .collect();
        let pending: std::collections::HashSet<&str> = plan.pending().collect();
        let resolved = catalog
            .ids()
            .filter(|id| !pending.contains(id))
            .filter_map(|id| catalog.get_shared(id))
            .map(|rubric| {
                let (vectors, question) = (
                    knowledge.rubrics.remove(&rubric.id),
                    questions.remove(&rubric.id),
                );
                (
                    rubric.id.clone(),
                    ResolvedRubric::catalog(rubric, vectors, question),
                )
            })
            .collect();
        let index = indexing::IndexState::new(plan);
        let admission = admission::Admission::new(
            settings.limits.max_queued_grades,
            settings.limits.retry_after_secs,
            std::time::Duration::from_millis(settings.limits.max_queue_delay_ms),
        );
        // Grading embeds through the fair scheduler (indexing above did not need it).
        let embedder: Arc<dyn Embedder> = Arc::new(admission.fair(embedder));
        let coverage = Arc::new(CoverageJudge::new(embedder.model_id()));
        let llm = if settings.llm.is_configured() {
            let exemplars = ExemplarSource {
                store: store.clone(),
                collection: collections.references.clone(),
                reviewed: Some(collections.exemplars.clone()),
                k: settings.judge.exemplars_k,
            };
            let hints = settings
                .judge
                .llm_hints
                .then(|| coverage.clone() as Arc<dyn Judge>);
            let llm = Arc::new(
                LlmJudge::new(&settings.llm, Some(exemplars), hints)
                    .map_err(|e| OpenError::Llm(e.to_string()))?,
            );
            let hybrid = Arc::new(HybridJudge::new(
                llm.clone(),
                coverage.clone(),
                settings.judge.llm_hints,
            ));
            Some((llm, hybrid))
        } else {
            None
        };
        Ok(Engine {
            admission,
            judges: Judges { coverage, llm },
            settings,
            catalog,
            embedder,
            store,
            collections,
            resolved: std::sync::RwLock::new(resolved),
            calibration,
            head: Arc::new(Head::builtin()),
            index,
            adhoc: resolve::AdHocCache::default(),
            audit: None,
        })
    }

    /// Store every grade the interfaces make in `audit`.
    pub fn with_audit(mut self, audit: Arc<crate::audit::Audit>) -> Engine {
        self.audit = Some(audit);
        self
    }

    /// The audit store, when grades are stored.
    pub fn audit(&self) -> Option<&Arc<crate::audit::Audit>> {
        self.audit.as_ref()
    }

    /// The same engine grading with other thresholds (`calibrate --from-reviews` measures a
    /// refit before it writes it).
    pub fn with_calibration(mut self, calibration: Calibration) -> Engine {
        self.calibration = calibration;
        self
    }

    /// The same engine with another correctness head (`Parts` loads `judge.head`; an engine
    /// built from parts by hand has the built-in head).
    pub fn with_head(mut self, head: Head) -> Engine {
        self.head = Arc::new(head);
        self
    }

    /// The coverage judge's correctness head.
    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every rubric, by id.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog's rubrics, optionally only one topic's, in id order.
    pub fn rubrics<'a>(&'a self, topic: Option<&'a str>) -> impl Iterator<Item = &'a Rubric> {
        self.catalog
            .iter()
            .filter(move |r| topic.is_none_or(|t| r.topic == t))
    }

    /// What opening the engine indexed (empty until [`Engine::index`] has run).
    pub fn index_report(&self) -> IndexReport {
        self.index.report()
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The embedder (read-only: operations and tests).
    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    /// The vector store (read-only: operations and tests).
    pub fn store(&self) -> &dyn VectorStore {
        self.store.as_ref()
    }

    pub fn collections(&self) -> &Collections {
        &self.collections
    }

    /// Points in the questions collection (readiness), or why the store cannot say.
    pub async fn indexed_questions(&self) -> Result<usize, StoreError> {
        self.store.count(&self.collections.questions).await
    }

    /// Admit a request of `grades` grades into the bounded queue, or say it is full; run the
    /// request's work in [`admission::Admitted::run`].
    pub fn admit(&self, grades: usize) -> Result<admission::Admitted, admission::Overloaded> {
        self.admission.try_admit(grades)
    }

    /// How full the queue is.
    pub fn load(&self) -> admission::Load {
        self.admission.load()
    }

    /// The LLM judge's model, when an endpoint is configured.
    pub fn llm_model(&self) -> Option<&str> {
        self.judges.llm.as_ref().map(|(l, _)| l.model())
    }

    /// Build the token encodings answers are counted in (cl100k, and the LLM's own). tiktoken
    /// builds one on first use — ~22 MB of tables — which would otherwise land on the first
    /// answer too long for the byte shortcut of [`Answer::parse`], and show as growth of a
    /// serving process that is only a table loaded late. Blocking: call it off the runtime.
    pub fn load_token_encodings(&self) {
        let _ = crate::tokens::bpe_for_model(COVERAGE_TOKENS);
        if let Some(model) = self.llm_model() {
            let _ = crate::tokens::bpe_for_model(model);
        }
    }

    /// The LLM transport's counters, when an endpoint is configured.
    pub fn llm_stats(&self) -> Option<&LlmStats> {
        self.judges.llm.as_ref().map(|(l, _)| l.stats())
    }

    /// Match a free-text question to a rubric.
    pub async fn match_question(&self, question: &str) -> Result<MatchResult, GradeError> {
        self.require_index("matching a question by its text")?;
        Ok(match_question(
            question,
            self.embedder.as_ref(),
            self.store.as_ref(),
            &self.collections,
            self.settings.matching.threshold,
            self.settings.matching.candidates,
        )
        .await?)
    }

    /// Match several questions with one embedding call, each with up to `candidates`.
    pub async fn match_questions(
        &self,
        questions: &[String],
        candidates: usize,
    ) -> Result<Vec<MatchResult>, GradeError> {
        self.require_index("matching questions by their text")?;
        let vectors = self.embedder.embed(questions).await?;
        let mut out = Vec::with_capacity(vectors.len());
        for v in &vectors {
            out.push(
                match_vector(
                    v,
                    self.store.as_ref(),
                    &self.collections,
                    self.settings.matching.threshold,
                    candidates,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Which judge a request gets: the requested one, or `auto` resolved by configuration.
    pub fn effective_judge(&self, requested: Option<JudgeKind>) -> JudgeKind {
        match requested.unwrap_or(self.settings.judge.kind) {
            JudgeKind::Auto if self.settings.llm.is_configured() => JudgeKind::Llm,
            JudgeKind::Auto => JudgeKind::Coverage,
            k => k,
        }
    }

    /// The judge for a (resolved) kind, or why it is not available.
    fn judge_for(&self, kind: JudgeKind) -> Result<Arc<dyn Judge>, GradeError> {
        match (kind, &self.judges.llm) {
            (JudgeKind::Auto | JudgeKind::Coverage, _) => Ok(self.judges.coverage.clone()),
            (JudgeKind::Llm, Some((llm, _))) => Ok(llm.clone()),
            (JudgeKind::Hybrid, Some((_, hybrid))) => Ok(hybrid.clone()),
            (JudgeKind::Llm | JudgeKind::Hybrid, None) => Err(GradeError::JudgeUnavailable(
                kind.to_string(),
                "no LLM endpoint is configured: set llm.base_url (GRADER__LLM__BASE_URL) or OPENAI_API_KEY, or use the coverage judge".into(),
            )),
        }
    }

    /// The answer as judges see it: segmented, and embedded in one pass when `embed`.
    async fn view(&self, text: String, embed: bool) -> Result<AnswerView, GradeError> {
        let segs = segments(&text);
        let vectors = if embed && !segs.is_empty() {
            let texts: Vec<String> = segs.iter().map(|s| s.text.clone()).collect();
            self.embedder.embed(&texts).await?
        } else {
            Vec::new()
        };
        Ok(AnswerView::new(text, segs, vectors))
    }

    /// An answer's view with its vectors, as-is (no guard): calibration measures raw answers.
    pub async fn answer_view(&self, text: &str) -> Result<AnswerView, GradeError> {
        self.view(text.to_string(), true).await
    }

    /// The pair reader's levels for the embedded answer against a short-reference rubric's
    /// references (what `AnswerView::pairs` holds, one per reference, in order): only the
    /// [`PAIR_READS`] references nearest the answer are read, the others are `None`. Empty for
    /// other rubrics, an answer without vectors, or without a pair reader.
    pub async fn read_pairs(
        &self,
        answer: &AnswerView,
        resolved: &ResolvedRubric,
    ) -> Result<Vec<Option<[f32; 3]>>, GradeError> {
        let references = &resolved.vectors.references;
        if !self.settings.embedding.pair_reader
            || references.is_empty()
            || answer.vector.is_empty()
            || answer.text.trim().is_empty()
        {
            return Ok(Vec::new());
        }
        let mut nearest: Vec<usize> = (0..references.len()).collect();
        nearest.sort_by(|&a, &b| {
            let sim = |i: usize| crate::embed::dot(&references[i].vector, &answer.vector);
            sim(b).total_cmp(&sim(a))
        });
        nearest.truncate(PAIR_READS);
        let pairs: Vec<(String, String)> = nearest
            .iter()
            .map(|&i| (references[i].text.clone(), answer.text.clone()))
            .collect();
        let Some(levels) = self.embedder.read_pairs(&pairs).await? else {
            return Ok(Vec::new());
        };
        let mut out = vec![None; references.len()];
        for (&i, l) in nearest.iter().zip(levels) {
            out[i] = Some(l);
        }
        Ok(out)
    }

    /// Grade one answer: resolve its rubric, then [`Engine::grade_resolved`].
    pub async fn grade(&self, req: &GradeRequest) -> Result<Grade, GradeError> {
        let started = Instant::now();
        limits::check_question(&self.settings.limits, &req.question)?;
        let (kind, judge) = self.pick(req.judge)?;
        let answer = self.parse_answer(&req.answer, kind)?;
        let resolved = self.resolve(&req.question).await?;
        self.run(&resolved, answer, judge, req.samples, started)
            .await
    }

    /// Grade one answer against a rubric already resolved (transcripts match their questions
    /// first and grade each answer against that match).
    pub async fn grade_resolved(
        &self,
        resolved: &ResolvedRubric,
        answer: &str,
        opts: GradeOptions,
    ) -> Result<Grade, GradeError> {
        let started = Instant::now();
        let (kind, judge) = self.pick(opts.judge)?;
        let answer = self.parse_answer(answer, kind)?;
        self.run(resolved, answer, judge, opts.samples, started)
            .await
    }

    fn pick(
        &self,
        requested: Option<JudgeKind>,
    ) -> Result<(JudgeKind, Arc<dyn Judge>), GradeError> {
        let kind = self.effective_judge(requested);
        Ok((kind, self.judge_for(kind)?))
    }

    /// Check the answer; the token limit counts in the LLM's encoding when an LLM judges
    /// (cl100k for the coverage judge).
    fn parse_answer(&self, text: &str, kind: JudgeKind) -> Result<Answer, GradeError> {
        let model = match kind {
            JudgeKind::Llm | JudgeKind::Hybrid => self.llm_model().unwrap_or(COVERAGE_TOKENS),
            _ => COVERAGE_TOKENS,
        };
        let answer = Answer::parse(
            text,
            self.settings.limits.max_answer_tokens,
            self.settings.limits.over_limit,
            model,
        )?;
        limits::check_answer(&self.settings.limits, answer.text())?;
        Ok(answer)
    }

    /// The pipeline after resolution: guard, view, judge (with the configured fallback),
    /// verify, score.
    async fn run(
        &self,
        resolved: &ResolvedRubric,
        answer: Answer,
        judge: Arc<dyn Judge>,
        samples: Option<u32>,
        started: Instant,
    ) -> Result<Grade, GradeError> {
        let rubric = resolved.rubric();
        // Text addressed to the grader is removed before any judge sees the answer.
        let guarded = guard(answer.text());
        // The local model reads English: an answer in another language gets no score rather
        // than an accidental one (an LLM judge reads it as it is).
        if !matches!(judge.kind(), JudgeKind::Llm | JudgeKind::Hybrid)
            && let Some(language) = crate::text::foreign_language(&guarded.text)
        {
            return Err(GradeError::LanguageUnsupported {
                language,
                judge: judge.kind().to_string(),
            });
        }
        let mut flags = Vec::new();
        if guarded.suspected {
            tracing::warn!(rubric = %rubric.id, removed = guarded.removed.len(), "answer contains text aimed at the grader");
            flags.push(Flag::InjectionSuspected);
        }
        // One embedding pass serves every judge of this grade (and the LLM judge's hints and
        // exemplar retrieval); skipped when the judge reads no vectors.
        let mut view = self.view(guarded.text, judge.needs_vectors()).await?;
        if judge.needs_vectors() {
            view.pairs = self.read_pairs(&view, resolved).await?;
        }
        let thresholds = self.calibration.for_resolved(resolved);
        let cx = JudgeContext {
            rubric: resolved,
            answer: &view,
            thresholds,
            samples: samples.unwrap_or(self.settings.llm.samples).clamp(1, 15),
            head: &self.head,
        };
        let mut judgement = match judge.judge(&cx).await {
            Ok(j) => j,
            Err(JudgeError::Llm(e)) if self.settings.llm.fallback == Fallback::Coverage => {
                tracing::warn!(error = %e, "LLM judge failed; falling back to the coverage judge");
                let mut j = self.fallback(&cx).await?;
                j.flags.push(Flag::FallbackToCoverage);
                j
            }
            Err(e) => return Err(e.into()),
        };
        judgement.flags.extend(flags);
        if verify_evidence(answer.text(), &mut judgement) {
            judgement.flags.push(Flag::EvidenceUnverified);
        }
        if answer.truncated() {
            judgement.flags.push(Flag::Truncated);
        }
        if resolved.is_adhoc() {
            judgement.flags.push(Flag::AdHocRubric);
        }
        Ok(finish(rubric, judgement, started))
    }

    /// The coverage judge on the same context, embedding the answer first if the failed judge
    /// had not needed it.
    async fn fallback(&self, cx: &JudgeContext<'_>) -> Result<Judgement, GradeError> {
        if cx.answer.is_embedded() {
            return Ok(self.judges.coverage.judge(cx).await?);
        }
        let mut view = self.view(cx.answer.text.clone(), true).await?;
        view.pairs = self.read_pairs(&view, cx.rubric).await?;
        let cx = JudgeContext {
            answer: &view,
            ..*cx
        };
        Ok(self.judges.coverage.judge(&cx).await?)
    }
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
        id: uuid::Uuid::now_v7(),
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
