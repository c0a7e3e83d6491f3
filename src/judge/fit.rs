//! Fitting the coverage judge's thresholds to human scores (`grader calibrate`).
//!
//! Features are measured once per labelled answer; then a grid over the thresholds is scored
//! by the mean of Pearson r and quadratic weighted kappa against the human scores. Two-fold
//! cross-validation by question (fit on half the questions, score the other half) reports how
//! well the fit carries over to questions it has not seen.

use std::collections::BTreeSet;

use super::calibration::{FitInfo, Thresholds};
use super::coverage::{CoverageFeatures, CoverageJudge};
use crate::eval::Metrics;

/// One labelled answer, measured.
pub struct FitItem<'a> {
    pub group: String,
    /// Human score on a 0..10 scale.
    pub human: f64,
    pub judge: CoverageJudge<'a>,
    pub features: CoverageFeatures,
}

fn grid() -> Vec<Thresholds> {
    let mut out = Vec::new();
    let steps = |from: f32, to: f32, step: f32| {
        let n = ((to - from) / step).round() as usize;
        (0..=n).map(move |i| from + step * i as f32)
    };
    for keyword_weight in [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4] {
        for list_penalty in [0.0, 0.05, 0.1, 0.15, 0.2] {
            for (misconception, misconception_margin) in [
                (2.0, 0.0),
                (0.75, 0.03),
                (0.8, 0.03),
                (0.85, 0.03),
                (0.8, 0.0),
                (0.9, 0.0),
            ] {
                for met in steps(0.30, 1.05, 0.01) {
                    for partial in steps(met - 0.3, met - 0.02, 0.02) {
                        out.push(Thresholds {
                            met,
                            partial,
                            keyword_weight,
                            list_penalty,
                            misconception,
                            misconception_margin,
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

fn best(items: &[&FitItem<'_>], grid: &[Thresholds]) -> (Thresholds, Metrics) {
    let mut best: Option<(f64, Thresholds, Metrics)> = None;
    for t in grid {
        let m = metrics(items, t);
        let o = objective(&m);
        if best.as_ref().is_none_or(|(b, _, _)| o > *b) {
            best = Some((o, *t, m));
        }
    }
    let (_, t, m) = best.expect("non-empty grid");
    (t, m)
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
    };
    (t, info)
}
