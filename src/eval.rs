//! Evaluation: agreement between the judges and human scores (`grader eval`).
//!
//! Reads JSONL items `{question_id?, question?, reference_answer?, answer, score, scale_max}`,
//! grades each (by rubric id, or ad hoc from question + reference answer) with [`run`], scales
//! the prediction to the item's scale and reports Pearson r, Spearman ρ, quadratic weighted
//! kappa (on rounded scores), RMSE and MAE, overall and per question.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::JudgeKind;
use crate::engine::{Engine, GradeRequest, QuestionRef};

/// One labelled answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalItem {
    #[serde(default)]
    pub question_id: Option<String>,
    #[serde(default)]
    pub question: Option<String>,
    #[serde(default)]
    pub reference_answer: Option<String>,
    /// Other acceptable references (ad hoc items; e.g. SemEval's several reference answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_answers: Vec<String>,
    pub answer: String,
    pub score: f64,
    pub scale_max: f64,
    #[serde(default)]
    pub reason: Option<String>,
}

impl EvalItem {
    /// The key items are grouped by in the per-question report.
    pub fn group(&self) -> String {
        self.question_id
            .clone()
            .or_else(|| self.question.clone())
            .unwrap_or_else(|| "(unnamed)".into())
    }

    /// How the item names its question: by id, or ad hoc from question + reference answer,
    /// or as text to match.
    pub fn question_ref(&self) -> QuestionRef {
        match (&self.question_id, &self.question, &self.reference_answer) {
            (Some(id), _, _) => QuestionRef::Id(id.clone()),
            (None, Some(q), Some(r)) => QuestionRef::AdHoc {
                question: q.clone(),
                reference_answer: r.clone(),
                alternatives: self.reference_answers.clone(),
            },
            (None, Some(q), None) => QuestionRef::Text(q.clone()),
            _ => QuestionRef::Text(String::new()),
        }
    }

    /// The grading request for this item.
    pub fn request(&self, judge: Option<JudgeKind>) -> GradeRequest {
        GradeRequest {
            question: self.question_ref(),
            answer: self.answer.clone(),
            judge,
            samples: None,
        }
    }
}

/// Grade every item (`concurrency` at a time) and report agreement. `skipped` are the lines
/// [`parse_items`] could not use; an item that fails to grade is reported in `failed` and
/// through `on_failed`. `on_graded` hears each finished item (progress).
pub async fn run(
    engine: Arc<Engine>,
    items: Vec<(usize, EvalItem)>,
    skipped: Vec<BadLine>,
    opts: RunOptions,
    on_graded: &(dyn Fn() + Send + Sync),
    on_failed: &(dyn Fn(&BadLine) + Send + Sync),
) -> EvalReport {
    let judge = engine.effective_judge(opts.judge);
    let started = Instant::now();
    let mut results: Vec<(usize, EvalItem, Result<crate::grade::Grade, String>)> =
        futures::stream::iter(items.into_iter().map(|(line, item)| {
            let engine = engine.clone();
            async move {
                let r = engine
                    .grade(&item.request(opts.judge))
                    .await
                    .map_err(|e| e.to_string());
                on_graded();
                (line, item, r)
            }
        }))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    // In file order, whatever order the grades finished in: the metrics' sums then add up in
    // the same order on every run, so the report is reproducible to the last digit.
    results.sort_by_key(|(line, _, _)| *line);
    let mut scored = Vec::new();
    let mut failed = Vec::new();
    for (line, item, r) in results {
        match r {
            Ok(g) => scored.push((
                item.group(),
                g.score as f64 / g.max_score as f64 * item.scale_max,
                item.score,
                item.scale_max,
            )),
            Err(e) => {
                let bad = BadLine { line, error: e };
                on_failed(&bad);
                failed.push(bad);
            }
        }
    }
    report(&scored, elapsed, judge, skipped, failed)
}

/// How [`run`] grades.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub judge: Option<JudgeKind>,
    /// Items graded at once.
    pub concurrency: usize,
}

/// A line that could not be used, with its number (1-based).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadLine {
    pub line: usize,
    pub error: String,
}

/// Parse JSONL; bad lines are reported, never fatal. Blank lines are skipped.
pub fn parse_items(text: &str) -> (Vec<(usize, EvalItem)>, Vec<BadLine>) {
    let mut items = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<EvalItem>(line) {
            Ok(item) => {
                if item.scale_max <= 0.0 || !item.scale_max.is_finite() {
                    bad.push(BadLine {
                        line: n,
                        error: "scale_max must be > 0".into(),
                    });
                } else if !(0.0..=item.scale_max).contains(&item.score) {
                    bad.push(BadLine {
                        line: n,
                        error: format!("score {} is outside 0..={}", item.score, item.scale_max),
                    });
                } else if item.question_id.is_none()
                    && (item.question.is_none() || item.reference_answer.is_none())
                {
                    bad.push(BadLine {
                        line: n,
                        error: "needs question_id, or question and reference_answer".into(),
                    });
                } else {
                    items.push((n, item));
                }
            }
            Err(e) => bad.push(BadLine {
                line: n,
                error: format!("not a valid item: {e}"),
            }),
        }
    }
    (items, bad)
}

/// Agreement metrics for paired (predicted, human) scores on one scale.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub qwk: f64,
    pub rmse: f64,
    pub mae: f64,
}

impl Metrics {
    /// `pairs` = (predicted, human), `scale_max` = the top of the integer scale used for QWK.
    pub fn compute(pairs: &[(f64, f64)], scale_max: f64) -> Metrics {
        let n = pairs.len();
        let pred: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let human: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let mse = pairs.iter().map(|(p, h)| (p - h).powi(2)).sum::<f64>() / n.max(1) as f64;
        let mae = pairs.iter().map(|(p, h)| (p - h).abs()).sum::<f64>() / n.max(1) as f64;
        Metrics {
            n,
            pearson: pearson(&pred, &human),
            spearman: pearson(&ranks(&pred), &ranks(&human)),
            qwk: qwk(&pred, &human, scale_max),
            rmse: mse.sqrt(),
            mae,
        }
    }
}

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 {
        return 0.0;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks (1-based) with ties given their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Quadratic weighted kappa over integer categories 0..=scale_max (scores rounded).
pub fn qwk(pred: &[f64], human: &[f64], scale_max: f64) -> f64 {
    let k = scale_max.round().max(1.0) as usize + 1;
    let cat = |v: f64| (v.round().max(0.0) as usize).min(k - 1);
    let mut observed = vec![vec![0.0; k]; k];
    let mut hist_p = vec![0.0; k];
    let mut hist_h = vec![0.0; k];
    for (p, h) in pred.iter().zip(human) {
        let (a, b) = (cat(*p), cat(*h));
        observed[a][b] += 1.0;
        hist_p[a] += 1.0;
        hist_h[b] += 1.0;
    }
    let n = pred.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..k {
        for j in 0..k {
            let w = ((i as f64 - j as f64).powi(2)) / ((k - 1) as f64).powi(2);
            let expected = hist_p[i] * hist_h[j] / n;
            num += w * observed[i][j];
            den += w * expected;
        }
    }
    if den == 0.0 {
        if num == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - num / den
    }
}

/// The result of an evaluation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub qwk: f64,
    pub rmse: f64,
    pub mae: f64,
    pub answers_per_second: f64,
    pub judge: JudgeKind,
    pub skipped_lines: Vec<BadLineOwned>,
    pub failed: Vec<BadLineOwned>,
    pub per_question: BTreeMap<String, Metrics>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BadLineOwned {
    pub line: usize,
    pub error: String,
}

/// Build a report from per-item results: (group, predicted on the item's scale, human, scale).
pub fn report(
    results: &[(String, f64, f64, f64)],
    elapsed_secs: f64,
    judge: JudgeKind,
    skipped: Vec<BadLine>,
    failed: Vec<BadLine>,
) -> EvalReport {
    // Overall metrics on a common 0..10 scale, so items on different scales mix.
    let overall: Vec<(f64, f64)> = results
        .iter()
        .map(|(_, p, h, s)| (p / s * 10.0, h / s * 10.0))
        .collect();
    let m = Metrics::compute(&overall, 10.0);
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (g, p, h, s) in results {
        groups
            .entry(g.clone())
            .or_default()
            .push((p / s * 10.0, h / s * 10.0));
    }
    let per_question = groups
        .into_iter()
        .map(|(g, pairs)| (g, Metrics::compute(&pairs, 10.0)))
        .collect();
    let conv = |v: Vec<BadLine>| {
        v.into_iter()
            .map(|b| BadLineOwned {
                line: b.line,
                error: b.error,
            })
            .collect()
    };
    EvalReport {
        n: m.n,
        pearson: m.pearson,
        spearman: m.spearman,
        qwk: m.qwk,
        rmse: m.rmse,
        mae: m.mae,
        answers_per_second: if elapsed_secs > 0.0 {
            results.len() as f64 / elapsed_secs
        } else {
            0.0
        },
        judge,
        skipped_lines: conv(skipped),
        failed: conv(failed),
        per_question,
    }
}
