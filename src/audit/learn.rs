//! What the grader learns from reviews: labelled items (for `calibrate --from-reviews` and
//! `export-reviews`) and exemplars (reviewed answers the LLM judge sees as few-shot examples).
//!
//! Calibration goes through one narrow door: reviews become the same labelled items a JSONL
//! file gives (`reviews_to_items`), and the existing fit (`calibrate::fit_thresholds`) does the
//! rest, so whatever that fit learns to fit, reviews feed it too. Before and after are measured
//! by grading the held-out reviews through the engine (`eval::run`), not by the fit's own
//! arithmetic, so the numbers are what a grade would show.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::types::ReviewedAnswer;
use crate::calibrate::{CalibrateError, fit_thresholds};
use crate::config::JudgeKind;
use crate::embed::EmbedError;
use crate::engine::Engine;
use crate::eval::{self, EvalItem, Metrics};
use crate::judge::Calibration;
use crate::judge::calibration::RubricCalibration;
use crate::store::{Filter, Payload, Point, StoreError, point_id};

/// Reviews → labelled items (line numbers are positions in `answers`, 1-based), with the
/// human score on the rubric's scale. Ad hoc grades carry no rubric to refit and are left out,
/// as are rubrics no longer in the catalog.
pub fn reviews_to_items(engine: &Engine, answers: &[ReviewedAnswer]) -> Vec<(usize, EvalItem)> {
    answers
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.adhoc && engine.catalog().get(&a.rubric_id).is_some())
        .map(|(i, a)| (i + 1, item_of(a)))
        .collect()
}

fn item_of(a: &ReviewedAnswer) -> EvalItem {
    EvalItem {
        question_id: Some(a.rubric_id.clone()),
        question: Some(a.question.clone()),
        reference_answer: None,
        reference_answers: Vec::new(),
        answer: a.answer.clone(),
        score: a.human_score as f64,
        scale_max: a.max_score as f64,
        reason: Some(a.note.clone()).filter(|n| !n.is_empty()),
    }
}

/// The eval JSONL (`grader eval` reads it): one line per reviewed answer, the human score as
/// the label; ad hoc grades with their question and reference answer.
pub fn export_jsonl(answers: &[ReviewedAnswer]) -> String {
    let mut out = String::new();
    for a in answers {
        let mut item = item_of(a);
        if a.adhoc {
            item.question_id = None;
            item.reference_answer = a.reference_answer.clone();
        }
        out.push_str(&serde_json::to_string(&item).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Options for [`calibrate_from_reviews`].
#[derive(Debug, Clone)]
pub struct FromReviews {
    /// Share of each rubric's reviews held out to measure before/after (0 < h < 1).
    pub holdout: f64,
    /// Reviews a rubric needs (in the fitting part) to get thresholds of its own.
    pub min_per_rubric: usize,
    /// The judge graded with to measure agreement (default: the engine's default).
    pub judge: Option<JudgeKind>,
    /// Recorded in the calibration file.
    pub command: String,
}

/// What a refit from reviews found.
#[derive(Debug, Clone, Serialize)]
pub struct FromReviewsReport {
    pub reviews: usize,
    /// Reviews usable for calibration (catalog rubric, answer kept).
    pub usable: usize,
    pub fitted_on: usize,
    pub held_out: usize,
    /// Rubrics that got their own thresholds, with their review counts.
    pub per_rubric: Vec<(String, usize)>,
    /// Agreement with the held-out reviews, graded with the current thresholds...
    pub before: Metrics,
    /// ...and with the refitted ones.
    pub after: Metrics,
    #[serde(skip)]
    pub calibration: Calibration,
}

impl FromReviewsReport {
    /// Whether the refit agrees better with the held-out reviews (mean of Pearson r and QWK,
    /// the fit's own objective).
    pub fn improved(&self) -> bool {
        let o = |m: &Metrics| (m.pearson + m.qwk) / 2.0;
        o(&self.after) > o(&self.before)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(
        "{usable} usable reviews (of {total}): calibrating needs at least {need}, each with its answer kept, on catalog rubrics; review more grades first"
    )]
    TooFew {
        usable: usize,
        total: usize,
        need: usize,
    },
    #[error("review {line}: {source}")]
    Fit {
        line: usize,
        #[source]
        source: crate::engine::GradeError,
    },
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CalibrateError> for LearnError {
    fn from(e: CalibrateError) -> Self {
        LearnError::Fit {
            line: e.line,
            source: e.source,
        }
    }
}

/// Fewest usable reviews worth a refit: two per half is the least a correlation means anything on.
const MIN_REVIEWS: usize = 8;

/// Labelled items with their line (review) numbers.
pub type Labelled = Vec<(usize, EvalItem)>;

/// Split each rubric's items (in review order) so `holdout` of them are held out, spread evenly
/// through time: item i is held out when ⌊(i+1)·h⌋ > ⌊i·h⌋.
pub fn split(items: &[(usize, EvalItem)], holdout: f64) -> (Labelled, Labelled) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let (mut fit, mut held) = (Vec::new(), Vec::new());
    for it in items {
        let i = seen.entry(it.1.group()).or_default();
        let h = holdout.clamp(0.0, 1.0);
        if ((*i + 1) as f64 * h).floor() > (*i as f64 * h).floor() {
            held.push(it.clone());
        } else {
            fit.push(it.clone());
        }
        *i += 1;
    }
    (fit, held)
}

/// Refit the thresholds from reviews: global on the fitting part, per rubric where it has
/// `min_per_rubric` reviews there; then grade the held-out part with the old and the new
/// calibration. Returns the engine (with its old calibration) and the report; writing the
/// file is the caller's choice.
pub async fn calibrate_from_reviews(
    engine: Engine,
    answers: &[ReviewedAnswer],
    opts: &FromReviews,
) -> Result<(Engine, FromReviewsReport), LearnError> {
    let items = reviews_to_items(&engine, answers);
    if items.len() < MIN_REVIEWS {
        return Err(LearnError::TooFew {
            usable: items.len(),
            total: answers.len(),
            need: MIN_REVIEWS,
        });
    }
    let (fit_items, held) = split(&items, opts.holdout);
    let data = format!("{} reviews in the audit store", fit_items.len());
    let fitted = fit_thresholds(&engine, &fit_items, &opts.command, &data).await?;
    let mut calibration = fitted.calibration;
    let mut by_rubric: BTreeMap<String, Vec<(usize, EvalItem)>> = BTreeMap::new();
    for it in &fit_items {
        by_rubric.entry(it.1.group()).or_default().push(it.clone());
    }
    let mut per_rubric = Vec::new();
    for (rubric, its) in by_rubric {
        if its.len() < opts.min_per_rubric.max(2) {
            continue;
        }
        let data = format!("{} reviews of {rubric}", its.len());
        let f = fit_thresholds(&engine, &its, &opts.command, &data).await?;
        calibration.rubrics.insert(
            rubric.clone(),
            RubricCalibration {
                thresholds: f.calibration.thresholds,
                fit: f.calibration.fit,
            },
        );
        per_rubric.push((rubric, its.len()));
    }
    let old = engine.calibration().clone();
    let measure = |engine: Engine| {
        let held = held.clone();
        async move {
            let engine = Arc::new(engine);
            let run = eval::RunOptions {
                judge: opts.judge,
                concurrency: engine.settings().limits.concurrency,
            };
            let r = eval::run(engine.clone(), held, Vec::new(), run, &|| {}, &|_| {})
                .await
                .report;
            let engine = Arc::into_inner(engine).expect("eval::run keeps no engine");
            (engine, r)
        }
    };
    let (engine, before) = measure(engine).await;
    let (engine, after) = measure(engine.with_calibration(calibration.clone())).await;
    let engine = engine.with_calibration(old);
    let metrics = |r: &eval::EvalReport| Metrics {
        n: r.n,
        pearson: r.pearson,
        spearman: r.spearman,
        qwk: r.qwk,
        rmse: r.rmse,
        mae: r.mae,
    };
    Ok((
        engine,
        FromReviewsReport {
            reviews: answers.len(),
            usable: items.len(),
            fitted_on: fit_items.len(),
            held_out: held.len(),
            per_rubric,
            before: metrics(&before),
            after: metrics(&after),
            calibration,
        },
    ))
}

/// Whole answers are embedded from their first words, as the catalog's exemplars are.
const EXEMPLAR_EMBED_WORDS: usize = 90;

/// Put reviewed answers into the exemplars collection (the LLM judge's few-shot examples), each
/// with its human score and the reviewer's note. A re-review replaces the point (its id is the
/// grade's). Ad hoc grades and rubrics not in the catalog are skipped. Returns how many.
pub async fn add_exemplars(
    engine: &Engine,
    answers: &[ReviewedAnswer],
) -> Result<usize, LearnError> {
    let answers: Vec<&ReviewedAnswer> = answers
        .iter()
        .filter(|a| !a.adhoc && engine.catalog().get(&a.rubric_id).is_some())
        .collect();
    if answers.is_empty() {
        return Ok(0);
    }
    let texts: Vec<String> = answers
        .iter()
        .map(|a| {
            a.answer
                .split_whitespace()
                .take(EXEMPLAR_EMBED_WORDS)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let vectors = engine.embedder().embed(&texts).await?;
    let points = answers
        .iter()
        .zip(vectors)
        .map(|(a, vector)| Point {
            id: point_id(&a.grade_id, "reviewed", 0),
            vector,
            payload: Payload {
                rubric_id: a.rubric_id.clone(),
                kind: "reviewed".into(),
                index: 0,
                text: a.answer.clone(),
                score: Some(a.human_score),
                item_id: Some(a.grade_id.clone()),
                hash: a.rubric_version.clone(),
                rationale: Some(a.note.clone()).filter(|n| !n.trim().is_empty()),
            },
        })
        .collect();
    let c = &engine.collections().exemplars;
    engine.store().upsert(c, points).await?;
    engine.store().flush().await?;
    Ok(answers.len())
}

/// Reviewed answers not yet in the exemplars collection (a replica that did not take the
/// review, an index rebuilt), added. Returns how many.
pub async fn sync_exemplars(
    engine: &Engine,
    answers: &[ReviewedAnswer],
) -> Result<usize, LearnError> {
    let have: std::collections::HashSet<String> = engine
        .store()
        .scroll(
            &engine.collections().exemplars,
            &Filter::default().kinds(&["reviewed"]),
        )
        .await?
        .into_iter()
        .filter_map(|p| p.payload.item_id)
        .collect();
    let missing: Vec<ReviewedAnswer> = answers
        .iter()
        .filter(|a| !have.contains(&a.grade_id))
        .cloned()
        .collect();
    add_exemplars(engine, &missing).await
}

/// Remove purged grades' exemplars.
pub async fn remove_exemplars(engine: &Engine, grade_ids: &[String]) -> Result<(), LearnError> {
    let c = &engine.collections().exemplars;
    for id in grade_ids {
        engine
            .store()
            .delete(c, &Filter::default().kinds(&["reviewed"]).item(id))
            .await?;
    }
    engine.store().flush().await?;
    Ok(())
}

/// At start-up, in the background: reviewed answers missing from the exemplars collection are
/// added (embedding them takes a while; grading does not wait for it).
pub fn spawn_exemplar_sync(engine: Arc<Engine>) {
    let Some(audit) = engine.audit().cloned() else {
        return;
    };
    tokio::spawn(async move {
        let answers = match audit.store().reviewed_answers().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "reading reviewed answers for exemplars failed");
                return;
            }
        };
        match sync_exemplars(&engine, &answers).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(added = n, "reviewed answers added as exemplars"),
            Err(e) => tracing::warn!(error = %e, "adding reviewed answers as exemplars failed"),
        }
    });
}
