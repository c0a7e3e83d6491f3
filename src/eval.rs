//! Evaluation: agreement between the judges and human scores (`grader eval`).
//!
//! Reads JSONL items `{question_id?, question?, reference_answer?, answer, score, scale_max}`,
//! grades each (by rubric id, or ad hoc from question + reference answer) with [`run`], scales
//! the prediction to the item's scale and reports Pearson r, Spearman ρ, quadratic weighted
//! kappa (on rounded scores), RMSE and MAE, overall and per question, on the items' own scale
//! when they share one (else on 0–10); accuracy and macro-F1 when that scale has at most three
//! levels (0–2, like SemEval's 3-way labels); and the worst-graded items.
//!
//! Long because the runner, every metric and the metrics' hand-computed unit tests are read
//! together: a metric is checked against numbers worked out by hand beside its code.

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

/// An evaluation run: the report, and each graded item's grade beside the human score (in
/// file order), for `grader eval --predictions`.
pub struct Graded {
    pub report: EvalReport,
    pub predictions: Vec<Prediction>,
}

/// One graded item as `grader eval --predictions` writes it: a JSON line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prediction {
    /// The item's line in the file (1-based).
    pub line: usize,
    /// The human score, on the item's scale.
    pub human: f64,
    /// The judge's score, on the item's scale.
    pub predicted: f64,
    pub scale_max: f64,
    /// The grade itself (its score is on the rubric's own scale, `max_score`).
    pub grade: crate::grade::Grade,
}

/// Grade every item (`concurrency` at a time) and report agreement, keeping each item's grade.
/// `skipped` are the lines [`parse_items`] could not use; an item that fails to grade is
/// reported in `failed` and through `on_failed`. `on_graded` hears each finished item (progress).
pub async fn run(
    engine: Arc<Engine>,
    items: Vec<(usize, EvalItem)>,
    skipped: Vec<BadLine>,
    opts: RunOptions,
    on_graded: &(dyn Fn() + Send + Sync),
    on_failed: &(dyn Fn(&BadLine) + Send + Sync),
) -> Graded {
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
    let mut predictions = Vec::new();
    let mut failed = Vec::new();
    for (line, item, r) in results {
        match r {
            Ok(g) => {
                let predicted = g.score as f64 / g.max_score as f64 * item.scale_max;
                predictions.push(Prediction {
                    line,
                    human: item.score,
                    predicted,
                    scale_max: item.scale_max,
                    grade: g,
                });
                scored.push(Scored {
                    line,
                    group: item.group(),
                    predicted,
                    human: item.score,
                    scale_max: item.scale_max,
                    answer: item.answer,
                });
            }
            Err(e) => {
                let bad = BadLine { line, error: e };
                on_failed(&bad);
                failed.push(bad);
            }
        }
    }
    Graded {
        report: report(&scored, elapsed, judge, skipped, failed),
        predictions,
    }
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
///
/// `rmse`, `mae` and `qwk` are on the scale every item shares (`scale_max`; QWK over its
/// integer levels when it is a whole number), or on 0–10 when the items mix scales
/// (`scale_max` is `None`). Per-question metrics are on their own items' scale
/// (`per_question_scale_max`) by the same rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub qwk: f64,
    pub rmse: f64,
    pub mae: f64,
    /// The scale the items share (their `scale_max`), which `rmse`, `mae` and `qwk` are on;
    /// `None` when they mix scales (then those are on 0–10).
    #[serde(default)]
    pub scale_max: Option<f64>,
    /// Accuracy and macro-F1 of the predicted level (rounded, clamped) against the human one,
    /// when the shared scale has at most three levels (integer scores on 0–1 or 0–2).
    #[serde(default)]
    pub classification: Option<Classification>,
    /// The items with the largest absolute error (at most [`WORST`]), largest first.
    #[serde(default)]
    pub worst: Vec<WorstItem>,
    pub answers_per_second: f64,
    pub judge: JudgeKind,
    pub skipped_lines: Vec<BadLineOwned>,
    pub failed: Vec<BadLineOwned>,
    pub per_question: BTreeMap<String, Metrics>,
    /// The scale each question's metrics are on; `None` when its items mix scales (0–10).
    #[serde(default)]
    pub per_question_scale_max: BTreeMap<String, Option<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BadLineOwned {
    pub line: usize,
    pub error: String,
}

/// One graded item, as [`report`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The item's line in the file (1-based).
    pub line: usize,
    /// The per-question key ([`EvalItem::group`]).
    pub group: String,
    pub answer: String,
    /// The judge's score, on the item's scale.
    pub predicted: f64,
    /// The human score, on the item's scale.
    pub human: f64,
    pub scale_max: f64,
}

/// How many worst-graded items a report lists.
pub const WORST: usize = 10;
/// The longest answer excerpt in [`WorstItem::answer`], in characters.
pub const EXCERPT_CHARS: usize = 120;

/// A badly graded item: both scores on the item's scale.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorstItem {
    pub line: usize,
    pub question: String,
    /// The answer's start, whitespace collapsed, at most [`EXCERPT_CHARS`] characters.
    pub answer: String,
    pub human: f64,
    pub predicted: f64,
    pub scale_max: f64,
}

/// Agreement on the level, for scales of at most three levels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Classification {
    /// The levels are 0..levels (0, 1, 2 on a 0–2 scale).
    pub levels: usize,
    pub accuracy: f64,
    /// The mean of `f1_per_level` over the levels that occur (in the human or the predicted
    /// levels).
    pub macro_f1: f64,
    /// Each level's F1 (index = level); `None` for a level neither side used. A level used
    /// but never predicted correctly has F1 0.
    pub f1_per_level: Vec<Option<f64>>,
    /// `confusion[human][predicted]`: item counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Classification {
    /// `pairs` = (predicted, human) on a scale of `levels` integer levels 0..levels; the
    /// prediction is rounded to the nearest level (halves up) and clamped.
    pub fn compute(pairs: &[(f64, f64)], levels: usize) -> Classification {
        let top = levels.max(1) - 1;
        let level = |v: f64| (v.round().max(0.0) as usize).min(top);
        let mut confusion = vec![vec![0usize; top + 1]; top + 1];
        for (p, h) in pairs {
            confusion[level(*h)][level(*p)] += 1;
        }
        let n = pairs.len();
        let correct: usize = (0..=top).map(|l| confusion[l][l]).sum();
        let f1_per_level: Vec<Option<f64>> = (0..=top)
            .map(|l| {
                let tp = confusion[l][l] as f64;
                let human: usize = confusion[l].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[l]).sum();
                if human + predicted == 0 {
                    None
                } else {
                    // F1 = 2·tp / (2·tp + fp + fn) = 2·tp / (human + predicted).
                    Some(2.0 * tp / (human + predicted) as f64)
                }
            })
            .collect();
        let used: Vec<f64> = f1_per_level.iter().flatten().copied().collect();
        Classification {
            levels: top + 1,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            macro_f1: if used.is_empty() {
                0.0
            } else {
                used.iter().sum::<f64>() / used.len() as f64
            },
            f1_per_level,
            confusion,
        }
    }
}

/// The scale every one of `items` shares, if they share one.
fn shared_scale<'a>(items: impl IntoIterator<Item = &'a Scored>) -> Option<f64> {
    let mut it = items.into_iter();
    let first = it.next()?.scale_max;
    it.all(|s| s.scale_max == first).then_some(first)
}

/// Metrics on the items' shared scale (QWK over its levels when it is a whole number, else on
/// 0–10), or on 0–10 when they mix scales; and the scale used (`None` = 0–10).
fn metrics_on_scale(items: &[&Scored]) -> (Metrics, Option<f64>) {
    let ten = |s: &Scored| {
        (
            s.predicted / s.scale_max * 10.0,
            s.human / s.scale_max * 10.0,
        )
    };
    match shared_scale(items.iter().copied()) {
        Some(scale) => {
            let pairs: Vec<(f64, f64)> = items.iter().map(|s| (s.predicted, s.human)).collect();
            let mut m = Metrics::compute(&pairs, scale);
            if scale.fract() != 0.0 || scale < 1.0 {
                let (p, h): (Vec<f64>, Vec<f64>) = items.iter().map(|s| ten(s)).unzip();
                m.qwk = qwk(&p, &h, 10.0);
            }
            (m, Some(scale))
        }
        None => {
            let pairs: Vec<(f64, f64)> = items.iter().map(|s| ten(s)).collect();
            (Metrics::compute(&pairs, 10.0), None)
        }
    }
}

/// The number of levels when `scale` has at most three and every human score is one of them.
fn few_levels(scale: Option<f64>, items: &[Scored]) -> Option<usize> {
    let s = scale?;
    let whole = |v: f64| v.fract() == 0.0;
    (whole(s) && (1.0..=2.0).contains(&s) && items.iter().all(|i| whole(i.human)))
        .then_some(s as usize + 1)
}

/// The start of `text`, whitespace collapsed, at most `max` characters (`…` marks a cut).
pub fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// The [`WORST`] items with the largest absolute error (relative to their scale, so items on
/// different scales compare), largest first; ties in file order.
fn worst(results: &[Scored]) -> Vec<WorstItem> {
    let err = |s: &Scored| (s.predicted - s.human).abs() / s.scale_max;
    let mut order: Vec<&Scored> = results.iter().collect();
    order.sort_by(|a, b| err(b).total_cmp(&err(a)).then(a.line.cmp(&b.line)));
    order
        .into_iter()
        .take(WORST)
        .map(|s| WorstItem {
            line: s.line,
            question: s.group.clone(),
            answer: excerpt(&s.answer, EXCERPT_CHARS),
            human: s.human,
            predicted: s.predicted,
            scale_max: s.scale_max,
        })
        .collect()
}

/// Build a report from the graded items (in file order, so sums add up the same every run).
pub fn report(
    results: &[Scored],
    elapsed_secs: f64,
    judge: JudgeKind,
    skipped: Vec<BadLine>,
    failed: Vec<BadLine>,
) -> EvalReport {
    let all: Vec<&Scored> = results.iter().collect();
    let (m, scale_max) = metrics_on_scale(&all);
    let classification = few_levels(scale_max, results).map(|levels| {
        let pairs: Vec<(f64, f64)> = results.iter().map(|s| (s.predicted, s.human)).collect();
        Classification::compute(&pairs, levels)
    });
    let mut groups: BTreeMap<String, Vec<&Scored>> = BTreeMap::new();
    for s in results {
        groups.entry(s.group.clone()).or_default().push(s);
    }
    let mut per_question = BTreeMap::new();
    let mut per_question_scale_max = BTreeMap::new();
    for (g, items) in groups {
        let (m, scale) = metrics_on_scale(&items);
        per_question.insert(g.clone(), m);
        per_question_scale_max.insert(g, scale);
    }
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
        scale_max,
        classification,
        worst: worst(results),
        answers_per_second: if elapsed_secs > 0.0 {
            results.len() as f64 / elapsed_secs
        } else {
            0.0
        },
        judge,
        skipped_lines: conv(skipped),
        failed: conv(failed),
        per_question,
        per_question_scale_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn item(line: usize, group: &str, predicted: f64, human: f64, scale_max: f64) -> Scored {
        Scored {
            line,
            group: group.into(),
            answer: format!("answer {line}"),
            predicted,
            human,
            scale_max,
        }
    }

    fn run(items: &[Scored]) -> EvalReport {
        report(items, 1.0, JudgeKind::Coverage, Vec::new(), Vec::new())
    }

    #[test]
    fn macro_f1_by_hand() {
        // (predicted, human) on 0–2; predictions round to 0, 1, 1, 2, 2, 1 (0.4 → 0, 1.5 → 2).
        let pairs = [
            (0.4, 0.0),
            (1.0, 0.0),
            (0.6, 1.0),
            (1.5, 1.0),
            (2.0, 2.0),
            (1.2, 2.0),
        ];
        let c = Classification::compute(&pairs, 3);
        // confusion[human][predicted]
        assert_eq!(
            c.confusion,
            vec![vec![1, 1, 0], vec![0, 1, 1], vec![0, 1, 1]]
        );
        assert!(close(c.accuracy, 3.0 / 6.0));
        // level 0: tp 1, human 2, predicted 1 → 2/3; level 1: tp 1, human 2, predicted 3 →
        // 2/5; level 2: tp 1, human 2, predicted 2 → 1/2.
        let f1: Vec<f64> = c.f1_per_level.iter().map(|f| f.unwrap()).collect();
        assert!(close(f1[0], 2.0 / 3.0) && close(f1[1], 0.4) && close(f1[2], 0.5));
        assert!(close(c.macro_f1, (2.0 / 3.0 + 0.4 + 0.5) / 3.0));
    }

    #[test]
    fn unused_levels_are_left_out_of_macro_f1_and_predictions_are_clamped() {
        // Nobody scored 0 and nothing rounds to 0; 2.7 clamps to 2.
        let c = Classification::compute(&[(1.0, 1.0), (2.7, 2.0), (2.0, 1.0)], 3);
        assert_eq!(c.f1_per_level[0], None);
        // level 1: tp 1, human 2, predicted 1 → 2/3; level 2: tp 1, human 1, predicted 2 → 2/3.
        assert!(close(c.macro_f1, 2.0 / 3.0));
        assert!(close(c.accuracy, 2.0 / 3.0));
    }

    #[test]
    fn rmse_and_mae_are_on_the_items_scale() {
        // 0–2 items: errors 0.5, 0, 1 → MAE 0.5, RMSE √(1.25/3). On 0–10 they would be 5× that.
        let r = run(&[
            item(1, "q1", 1.5, 2.0, 2.0),
            item(2, "q1", 1.0, 1.0, 2.0),
            item(3, "q2", 1.0, 0.0, 2.0),
        ]);
        assert_eq!(r.scale_max, Some(2.0));
        assert!(close(r.mae, 0.5), "{}", r.mae);
        assert!(close(r.rmse, (1.25f64 / 3.0).sqrt()), "{}", r.rmse);
        assert_eq!(r.per_question_scale_max["q1"], Some(2.0));
        assert!(close(r.per_question["q1"].mae, 0.25));
        // QWK over the levels 0, 1, 2: predictions round to 2, 1, 1.
        assert!(close(r.qwk, qwk(&[2.0, 1.0, 1.0], &[2.0, 1.0, 0.0], 2.0)));
        let c = r.classification.expect("0–2 has three levels");
        assert_eq!(c.levels, 3);
        assert!(close(c.accuracy, 2.0 / 3.0));
    }

    #[test]
    fn mixed_scales_are_reported_on_ten() {
        // 1.5/2 vs 2/2 → 7.5 vs 10; 3/5 vs 4/5 → 6 vs 8: MAE (2.5 + 2) / 2 on 0–10.
        let r = run(&[item(1, "a", 1.5, 2.0, 2.0), item(2, "b", 3.0, 4.0, 5.0)]);
        assert_eq!(r.scale_max, None);
        assert!(r.classification.is_none());
        assert!(close(r.mae, 2.25), "{}", r.mae);
        // Each question on its own scale.
        assert_eq!(r.per_question_scale_max["b"], Some(5.0));
        assert!(close(r.per_question["b"].mae, 1.0));
    }

    #[test]
    fn no_classification_for_many_levels_or_fractional_scores() {
        let ten = run(&[item(1, "a", 7.0, 8.0, 10.0), item(2, "a", 3.0, 2.0, 10.0)]);
        assert_eq!(ten.scale_max, Some(10.0));
        assert!(ten.classification.is_none());
        let halves = run(&[item(1, "a", 1.0, 1.5, 2.0), item(2, "a", 0.0, 0.0, 2.0)]);
        assert!(halves.classification.is_none());
    }

    #[test]
    fn worst_lists_the_largest_errors_first_with_excerpts() {
        let mut items: Vec<Scored> = (1..=12)
            .map(|i| item(i, "q", 1.0, 1.0, 2.0)) // no error
            .collect();
        items[4].predicted = 2.0; // line 5: error 1
        items[7].predicted = 0.0; // line 8: error 1 (tie: file order)
        items[10].human = 0.0; // line 11: error 1
        items[2] = item(3, "q", 0.0, 2.0, 2.0); // line 3: error 2
        items[2].answer = format!("a  long\nanswer {}", "x".repeat(200));
        let r = run(&items);
        assert_eq!(r.worst.len(), WORST);
        let lines: Vec<usize> = r.worst.iter().map(|w| w.line).collect();
        assert_eq!(&lines[..4], &[3, 5, 8, 11]);
        let w = &r.worst[0];
        assert_eq!((w.human, w.predicted, w.scale_max), (2.0, 0.0, 2.0));
        assert_eq!(w.answer.chars().count(), EXCERPT_CHARS);
        assert!(w.answer.starts_with("a long answer x") && w.answer.ends_with('…'));
    }

    #[test]
    fn excerpt_keeps_short_text_whole() {
        assert_eq!(excerpt(" one\n two ", 120), "one two");
        assert_eq!(excerpt("abcdef", 4), "abc…");
    }
}
