//! Calibration procedures (`grader calibrate`, `grader calibrate-matching`): fit the coverage
//! judge's thresholds and the matching threshold to labelled data.
//!
//! Thresholds: features are measured once per labelled answer; then a grid over the thresholds
//! is scored by the mean of Pearson r and quadratic weighted kappa between human scores and the
//! scores the grader would give (the same [`crate::grade::score`] formula, rounding included).
//! Two-fold cross-validation by question (fit on half the questions, score the other half)
//! reports how well the fit carries over to questions it has not seen. Catalog rubrics and ad
//! hoc rubrics (the same answers graded against each rubric's model answer) get separate
//! thresholds.
//!
//! The file is long because the catalog's, the ad hoc and the short-reference fits share one
//! measuring pass (the pair reader's readings included) and one grid search.
//!
//! Matching: the threshold on a grid that best separates paraphrases of rubric questions from
//! off-topic questions, taken from the middle of the best plateau.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, GradeError, QuestionRef};
use crate::eval::{EvalItem, Metrics};
use crate::judge::ResolvedRubric;
use crate::judge::calibration::{Calibration, FitInfo, MISCONCEPTION_RULES};
use crate::judge::calibration::{SHORT_REFERENCE, Thresholds};
use crate::judge::coverage::{CoverageFeatures, Prepared};

/// Short-reference items needed for thresholds of their own.
const MIN_SHORT: usize = 100;

/// One labelled answer, measured.
pub struct FitItem<'a> {
    pub group: String,
    /// Human score on a 0..10 scale.
    pub human: f64,
    pub judge: Prepared<'a>,
    pub features: CoverageFeatures,
    /// Which kind of data it is (for ad hoc fits: 0 = a catalog answer graded against its
    /// model answer, 1 = an item that is ad hoc itself). Each kind counts equally in the fit.
    pub source: u8,
}

/// The coverage judge's features of an embedded answer against a rubric, with the pair
/// reader's levels when the rubric has short references (as a grade measures them).
async fn measure(
    engine: &Engine,
    view: &crate::judge::AnswerView,
    rubric: &ResolvedRubric,
) -> Result<CoverageFeatures, GradeError> {
    let pairs = engine.read_pairs(view, rubric).await?;
    Ok(Prepared::of(rubric).features(&view.segments, &view.vectors, &pairs, engine.head()))
}

fn grid() -> Vec<Thresholds> {
    let mut out = Vec::new();
    let steps = |from: f32, to: f32, step: f32| {
        let n = ((to - from) / step).round() as usize;
        (0..=n).map(move |i| from + step * i as f32)
    };
    for (keyword_weight, entail_weight) in [0.0, 0.1, 0.2, 0.3, 0.4]
        .into_iter()
        .flat_map(|k| [0.0, 0.25, 0.5, 0.75].map(|e| (k, e)))
    {
        for (list_penalty, contradiction) in [0.0, 0.1]
            .into_iter()
            // A contradiction always costs (issue 12): the fit only sets how close to its
            // criterion a false statement must be.
            .flat_map(|l| [0.0, 0.3, 0.45].map(|c| (l, c)))
        {
            for &(misconception, misconception_margin) in MISCONCEPTION_RULES {
                for met in steps(0.30, 1.05, 0.02) {
                    for partial in steps(met - 0.3, met - 0.02, 0.04) {
                        out.push(Thresholds {
                            met,
                            partial,
                            keyword_weight,
                            list_penalty,
                            misconception,
                            misconception_margin,
                            contradiction,
                            entail_weight,
                        });
                    }
                }
            }
        }
    }
    out
}

fn metrics(items: &[&FitItem<'_>], t: &Thresholds) -> Metrics {
    let pairs: Vec<(f64, f64)> = items
        .iter()
        .map(|it| {
            let d = it.judge.core(&it.features, t);
            let s = it.judge.score(&d) as f64 / it.judge_max() * 10.0;
            (s, it.human)
        })
        .collect();
    Metrics::compute(&pairs, 10.0)
}

fn objective(m: &Metrics) -> f64 {
    (m.pearson + m.qwk) / 2.0
}

impl FitItem<'_> {
    fn judge_max(&self) -> f64 {
        self.judge.max_score() as f64
    }
}

/// The objective over items of several sources: the mean of each source's objective, so a
/// large data set does not drown a small one.
fn balanced(items: &[&FitItem<'_>], t: &Thresholds) -> f64 {
    let sources: BTreeSet<u8> = items.iter().map(|i| i.source).collect();
    if sources.len() <= 1 {
        return objective(&metrics(items, t));
    }
    let total: f64 = sources
        .iter()
        .map(|s| {
            let part: Vec<&FitItem> = items.iter().copied().filter(|i| i.source == *s).collect();
            objective(&metrics(&part, t))
        })
        .sum();
    total / sources.len() as f64
}

/// Thresholds whose objective is within this of the best are a tie: the fit cannot tell them
/// apart on data of this size (a 0.01 difference in r or QWK).
const TIE: f64 = 0.005;

fn best(items: &[&FitItem<'_>], grid: &[Thresholds]) -> (Thresholds, Metrics) {
    // The grid is searched on every core (each thread takes a stride of it).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scored: Vec<(usize, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || {
                    grid.iter()
                        .enumerate()
                        .skip(k)
                        .step_by(threads)
                        .map(|(i, t)| (i, balanced(items, t)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("fit thread"))
            .collect()
    });
    let t = grid[pick(&scored, grid)];
    (t, metrics(items, &t))
}

/// The grid index to keep from `(index, objective)` pairs: among those within [`TIE`] of the
/// best, the strictest — highest partial, then highest met, then first in grid order (agreement
/// cannot choose between ties; being hard to fool can). Independent of the order of `scored`.
fn pick(scored: &[(usize, f64)], grid: &[Thresholds]) -> usize {
    let top = scored
        .iter()
        .map(|&(_, o)| o)
        .fold(f64::NEG_INFINITY, f64::max);
    scored
        .iter()
        .filter(|&&(_, o)| o >= top - TIE)
        .map(|&(i, _)| i)
        .min_by(|&a, &b| {
            let (ta, tb) = (&grid[a], &grid[b]);
            tb.partial
                .total_cmp(&ta.partial)
                .then(tb.met.total_cmp(&ta.met))
                .then(a.cmp(&b))
        })
        .expect("non-empty grid")
}

/// Fit thresholds on all items; cross-validate by question.
pub fn fit(items: &[FitItem<'_>], command: &str, data: &str) -> (Thresholds, FitInfo) {
    let grid = grid();
    let all: Vec<&FitItem> = items.iter().collect();
    let (t, m) = best(&all, &grid);
    // Two folds by question: alternate over the sorted question ids.
    let groups: Vec<String> = items
        .iter()
        .map(|i| i.group.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fold_of = |g: &str| groups.iter().position(|x| x == g).unwrap_or(0) % 2;
    let mut cv_pairs_p = Vec::new();
    for fold in 0..2 {
        let train: Vec<&FitItem> = items.iter().filter(|i| fold_of(&i.group) != fold).collect();
        let test: Vec<&FitItem> = items.iter().filter(|i| fold_of(&i.group) == fold).collect();
        if train.is_empty() || test.is_empty() {
            continue;
        }
        let (tt, _) = best(&train, &grid);
        for it in test {
            let d = it.judge.core(&it.features, &tt);
            cv_pairs_p.push((it.judge.score(&d) as f64 / it.judge_max() * 10.0, it.human));
        }
    }
    let cv = Metrics::compute(&cv_pairs_p, 10.0);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let info = FitInfo {
        command: command.to_string(),
        data: data.to_string(),
        n: m.n,
        pearson: round(m.pearson),
        spearman: round(m.spearman),
        qwk: round(m.qwk),
        rmse: round(m.rmse),
        cv_pearson: round(cv.pearson),
        cv_qwk: round(cv.qwk),
    };
    // Two decimals, exact in the file (f32 → f64 would print 0.800000011920929).
    let r2 = |x: f32| ((x as f64 * 100.0).round() / 100.0) as f32;
    let t = Thresholds {
        met: r2(t.met),
        partial: r2(t.partial),
        keyword_weight: r2(t.keyword_weight),
        list_penalty: r2(t.list_penalty),
        misconception: r2(t.misconception),
        misconception_margin: r2(t.misconception_margin),
        contradiction: r2(t.contradiction),
        entail_weight: r2(t.entail_weight),
    };
    (t, info)
}

/// A labelled item that could not be measured.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct CalibrateError {
    pub line: usize,
    #[source]
    pub source: GradeError,
}

/// A fitted calibration and what it was fitted on.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub calibration: Calibration,
    /// Answers measured against catalog rubrics.
    pub answers: usize,
    pub seconds: f64,
}

/// One measured answer: its group (question), human score on 0..10, rubric and features.
struct Measured {
    group: String,
    human: f64,
    rubric: ResolvedRubric,
    features: CoverageFeatures,
    source: u8,
}

/// Fit the coverage judge's thresholds to labelled items (`(line, item)` as parsed by
/// [`crate::eval::parse_items`]). `command` and `data` are recorded in the file.
pub async fn fit_thresholds(
    engine: &Engine,
    items: &[(usize, EvalItem)],
    command: &str,
    data: &str,
) -> Result<Fitted, CalibrateError> {
    let started = std::time::Instant::now();
    // Catalog rubrics: each item graded against its rubric.
    let mut measured = Vec::new();
    // Ad hoc rubrics: the same items graded against the rubric's model answer as a reference.
    let mut measured_adhoc = Vec::new();
    for (line, item) in items {
        let at = |source: GradeError| CalibrateError {
            line: *line,
            source,
        };
        let rubric = engine.resolve(&item.question_ref()).await.map_err(at)?;
        let view = engine.answer_view(&item.answer).await.map_err(at)?;
        let human = item.score / item.scale_max * 10.0;
        if !rubric.is_adhoc()
            && let Some(model) = rubric.rubric.model_answers.first()
        {
            let adhoc = QuestionRef::AdHoc {
                question: rubric.rubric.question.clone(),
                reference_answer: model.text.clone(),
                alternatives: Vec::new(),
            };
            let ra = engine.resolve(&adhoc).await.map_err(at)?;
            let features = measure(engine, &view, &ra).await.map_err(at)?;
            measured_adhoc.push(Measured {
                group: item.group(),
                human,
                rubric: ra,
                features,
                source: 0,
            });
        }
        let features = measure(engine, &view, &rubric).await.map_err(at)?;
        let m = Measured {
            group: item.group(),
            human,
            features,
            source: u8::from(rubric.is_adhoc()),
            rubric,
        };
        // Ad hoc items (a question and a reference) fit the ad hoc thresholds; catalog items
        // fit the catalog's (and, against their model answer, the ad hoc ones too).
        if m.source == 1 {
            measured_adhoc.push(m);
        } else {
            measured.push(m);
        }
    }
    // The catalog's own graded exemplars (each rubric's answers with their authors' scores)
    // are a second source for its thresholds, weighing as much as the labelled file: they
    // include honest but wrong answers on the topic, which a threshold fitted to the file
    // alone let earn partial credit on every criterion.
    if !measured.is_empty() {
        for rubric in engine.rubrics(None) {
            if rubric.exemplars.is_empty() {
                continue;
            }
            let at = |source: GradeError| CalibrateError { line: 0, source };
            let resolved = engine
                .resolve(&QuestionRef::Id(rubric.id.clone()))
                .await
                .map_err(at)?;
            for e in &rubric.exemplars {
                let view = engine.answer_view(&e.answer).await.map_err(at)?;
                let features = measure(engine, &view, &resolved).await.map_err(at)?;
                measured.push(Measured {
                    group: rubric.id.clone(),
                    human: f64::from(e.score / rubric.max_score * 10.0),
                    rubric: resolved.clone(),
                    features,
                    source: 2,
                });
            }
        }
    }
    let fit_on = |set: &[Measured]| {
        let items: Vec<FitItem> = set
            .iter()
            .map(|m| FitItem {
                group: m.group.clone(),
                human: m.human,
                judge: Prepared::of(&m.rubric),
                features: m.features.clone(),
                source: m.source,
            })
            .collect();
        fit(&items, command, data)
    };
    let (thresholds, info) = if measured.is_empty() {
        // Only ad hoc items: they fit both (the catalog's thresholds unchanged would be the
        // other choice; these at least saw data).
        fit_on(&measured_adhoc)
    } else {
        fit_on(&measured)
    };
    // Short references (one or two criteria) get thresholds of their own when there are
    // enough of them to fit; the rest fit the ad hoc thresholds.
    let (short, long): (Vec<Measured>, Vec<Measured>) = measured_adhoc
        .into_iter()
        .partition(|m| m.rubric.rubric.criteria.len() <= SHORT_REFERENCE);
    let (short, long) = if short.len() >= MIN_SHORT && !long.is_empty() {
        (short, long)
    } else {
        (Vec::new(), short.into_iter().chain(long).collect())
    };
    let adhoc = (!long.is_empty()).then(|| fit_on(&long));
    let adhoc_short = (!short.is_empty()).then(|| fit_on(&short));
    Ok(Fitted {
        calibration: Calibration {
            thresholds,
            fit: info,
            adhoc_thresholds: adhoc.as_ref().map(|a| a.0),
            adhoc_fit: adhoc.map(|a| a.1),
            adhoc_short_thresholds: adhoc_short.as_ref().map(|a| a.0),
            adhoc_short_fit: adhoc_short.map(|a| a.1),
            rubrics: Default::default(),
        },
        answers: measured.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Fitted {
    /// The calibration file's text: a header saying how to refit, then the TOML.
    pub fn file_text(&self, command: &str) -> Result<String, toml::ser::Error> {
        let body = toml::to_string_pretty(&self.calibration)?;
        let header = format!(
            "# Coverage judge thresholds. Do not edit by hand: refit with\n#   {command}\n# (fit in {:.1} s over {} answers, the rubrics' graded exemplars among them, weighing as much as\n# the file's; cv_* = two-fold cross-validation by question;\n# adhoc_* = ad hoc items with longer references, and catalog answers graded against their rubric's\n# model answer as the reference, each kind weighing equally; adhoc_short_* = ad hoc items whose\n# reference is one or two statements)\n",
            self.seconds, self.answers
        );
        Ok(format!("{header}{body}"))
    }
}

/// A paraphrase of a rubric's question (one line of `tests/data/paraphrases.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paraphrase {
    pub question_id: String,
    pub question: String,
}

/// The fitted matching threshold and how well it separates.
#[derive(Debug, Clone)]
pub struct MatchingFit {
    pub threshold: f32,
    /// The range of equally good thresholds the value is the middle of.
    pub plateau: (f32, f32),
    pub max_offtopic_similarity: f32,
    /// Share of paraphrases whose best candidate is their rubric.
    pub paraphrase_top1: f64,
    /// Share matched to their rubric at or above the threshold.
    pub paraphrase_matched: f64,
    pub offtopic_rejected: f64,
    /// Paraphrases not matched to their rubric: (similarity, paraphrase).
    pub misses: Vec<(f32, Paraphrase)>,
    /// Off-topic questions that would match: (similarity, question).
    pub offtopic_matched: Vec<(f32, String)>,
    pub paraphrases: usize,
    pub offtopic: usize,
}

/// Find the matching threshold that best separates paraphrases from off-topic questions.
pub async fn fit_matching(
    engine: &Engine,
    paraphrases: &[Paraphrase],
    offtopic: &[String],
) -> Result<MatchingFit, GradeError> {
    // (top-1 similarity, top-1 correct) for paraphrases; top similarity for off-topic ones.
    let mut on = Vec::new();
    for p in paraphrases {
        let m = engine.match_question(&p.question).await?;
        let top = m.candidates.first();
        on.push((
            m.similarity,
            top.is_some_and(|c| c.rubric_id == p.question_id),
            p,
        ));
    }
    let mut offs = Vec::new();
    for q in offtopic {
        offs.push((engine.match_question(q).await?.similarity, q));
    }
    // Every threshold on the grid that separates best; take the middle of that plateau so
    // the chosen value keeps a margin on both sides instead of sitting on the worst off-topic.
    let scored: Vec<(usize, f32)> = (30..=90)
        .map(|step| {
            let t = step as f32 / 100.0;
            let good = on.iter().filter(|(s, ok, _)| *ok && *s >= t).count()
                + offs.iter().filter(|(s, _)| *s < t).count();
            (good, t)
        })
        .collect();
    let top = scored.iter().map(|(g, _)| *g).max().unwrap_or(0);
    let plateau: Vec<f32> = scored
        .iter()
        .filter(|(g, _)| *g == top)
        .map(|(_, t)| *t)
        .collect();
    let t = plateau[plateau.len() / 2];
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    Ok(MatchingFit {
        threshold: t,
        plateau: (plateau[0], plateau[plateau.len() - 1]),
        max_offtopic_similarity: offs.iter().map(|(s, _)| *s).fold(0.0f32, f32::max),
        paraphrase_top1: share(on.iter().filter(|(_, ok, _)| *ok).count(), on.len()),
        paraphrase_matched: share(
            on.iter().filter(|(s, ok, _)| *ok && *s >= t).count(),
            on.len(),
        ),
        offtopic_rejected: share(offs.iter().filter(|(s, _)| *s < t).count(), offs.len()),
        misses: on
            .iter()
            .filter(|(s, ok, _)| !*ok || *s < t)
            .map(|(s, _, p)| (*s, (*p).clone()))
            .collect(),
        offtopic_matched: offs
            .iter()
            .filter(|(s, _)| *s >= t)
            .map(|(s, q)| (*s, (*q).clone()))
            .collect(),
        paraphrases: on.len(),
        offtopic: offs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(met: f32, partial: f32) -> Thresholds {
        Thresholds {
            met,
            partial,
            ..Thresholds::default()
        }
    }

    #[test]
    fn a_clear_best_wins_and_ties_go_to_the_strictest_thresholds() {
        let grid = [at(0.6, 0.3), at(0.7, 0.4), at(0.7, 0.5), at(0.8, 0.5)];
        // A clear best is kept, however lenient.
        assert_eq!(
            pick(&[(0, 0.60), (1, 0.50), (2, 0.50), (3, 0.50)], &grid),
            0
        );
        // Within TIE of the best: the highest partial, then the highest met.
        assert_eq!(
            pick(&[(0, 0.600), (1, 0.599), (2, 0.597), (3, 0.596)], &grid),
            3
        );
        // Beyond TIE is not a tie.
        assert_eq!(
            pick(&[(0, 0.600), (1, 0.599), (2, 0.590), (3, 0.590)], &grid),
            1
        );
        // The order the threads return does not matter; equal thresholds go by grid order.
        let same = [at(0.7, 0.4), at(0.7, 0.4)];
        assert_eq!(pick(&[(1, 0.5), (0, 0.5)], &same), 0);
        assert_eq!(
            pick(&[(3, 0.596), (2, 0.597), (1, 0.599), (0, 0.6)], &grid),
            3
        );
    }
}
