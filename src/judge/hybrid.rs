//! The hybrid judge: the LLM judge's verdicts, with a local judge run beside it whose verdicts
//! are the LLM's hints (when `judge.llm_hints`) and whose strong disagreement flags the grade
//! for human review (`judges_disagree`). The local judge is any [`Judge`] (the coverage judge
//! today), so it can be swapped by configuration.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::JudgeKind;
use crate::grade::{Flag, Judgement, Verdict, compute_score};
use crate::rubric::Rubric;

use super::{Judge, JudgeContext, JudgeError, LlmJudge};

/// The judges disagree strongly when their scores differ by this share of the rubric's
/// maximum (a design choice, not fitted: 4 points of 10 is a different grade band, which is
/// what a reviewer should look at; smaller gaps are the judges' ordinary noise).
const DISAGREE_SHARE: f32 = 0.4;

pub struct HybridJudge {
    llm: Arc<LlmJudge>,
    local: Arc<dyn Judge>,
    /// Show the local judge's verdicts to the LLM as hints.
    hints: bool,
}

impl HybridJudge {
    pub fn new(llm: Arc<LlmJudge>, local: Arc<dyn Judge>, hints: bool) -> Self {
        HybridJudge { llm, local, hints }
    }
}

impl Judge for HybridJudge {
    fn kind(&self) -> JudgeKind {
        JudgeKind::Hybrid
    }

    fn needs_vectors(&self) -> bool {
        self.local.needs_vectors() || self.llm.needs_vectors()
    }

    fn judge<'a>(
        &'a self,
        cx: &'a JudgeContext<'a>,
    ) -> BoxFuture<'a, Result<Judgement, JudgeError>> {
        Box::pin(async move {
            let local = self.local.judge(cx).await?;
            let mut j = self.llm.grade(cx, self.hints.then_some(&local)).await?;
            j.judge.kind = JudgeKind::Hybrid;
            if disagree(cx.rubric.rubric(), &j, &local) {
                j.flags.push(Flag::JudgesDisagree);
            }
            Ok(j)
        })
    }
}

/// Strong disagreement: scores [`DISAGREE_SHARE`] of the scale apart, opposite verdicts
/// (met vs missed) on a heaviest criterion, or the LLM crediting a criterion the local judge
/// found contradicted (a sentence saying its opposite).
fn disagree(rubric: &Rubric, llm: &Judgement, local: &Judgement) -> bool {
    let a = compute_score(rubric.max_score, &llm.criteria, &llm.misconceptions);
    let b = compute_score(rubric.max_score, &local.criteria, &local.misconceptions);
    let heavy = rubric
        .criteria
        .iter()
        .map(|c| c.weight)
        .fold(0.0f32, f32::max);
    let opposite = llm.criteria.iter().zip(&local.criteria).any(|(x, y)| {
        x.weight >= heavy
            && matches!(
                (x.verdict, y.verdict),
                (Verdict::Met, Verdict::Missed) | (Verdict::Missed, Verdict::Met)
            )
    });
    let credits_contradicted = local.misconceptions.iter().any(|m| {
        m.id.strip_prefix(super::coverage::CONTRADICTS)
            .is_some_and(|id| {
                llm.criteria
                    .iter()
                    .any(|c| c.id == id && c.verdict != Verdict::Missed)
            })
    });
    (a - b).abs() >= DISAGREE_SHARE * rubric.max_score || opposite || credits_contradicted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{CriterionResult, JudgeInfo, Usage};
    use crate::rubric::Criterion;

    fn rubric(weights: &[f32]) -> Rubric {
        Rubric {
            id: "t.t".into(),
            topic: "t".into(),
            kind: crate::rubric::RubricKind::Concept,
            question: "q".into(),
            aliases: vec![],
            level: "mid".into(),
            max_score: 10.0,
            criteria: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Criterion {
                    id: format!("c{i}"),
                    weight: *w,
                    point: String::new(),
                    phrasings: vec![],
                    keywords: vec![],
                })
                .collect(),
            misconceptions: vec![],
            model_answers: vec![],
            exemplars: vec![],
            version: String::new(),
        }
    }

    fn judgement(r: &Rubric, verdicts: &[Verdict]) -> Judgement {
        Judgement {
            criteria: r
                .criteria
                .iter()
                .zip(verdicts)
                .map(|(c, v)| CriterionResult {
                    id: c.id.clone(),
                    verdict: *v,
                    weight: c.weight,
                    evidence: String::new(),
                    evidence_verified: true,
                    reason: String::new(),
                    credit: None,
                })
                .collect(),
            misconceptions: vec![],
            gaps: vec![],
            feedback: String::new(),
            strength: vec![],
            judge: JudgeInfo {
                kind: JudgeKind::Llm,
                model: String::new(),
                samples: 1,
                agreement: 1.0,
            },
            flags: vec![],
            usage: Usage::default(),
        }
    }

    #[test]
    fn disagreement_is_a_grade_band_apart_or_opposite_on_a_heavy_criterion() {
        use Verdict::{Met, Missed, Partial};
        let r = rubric(&[3.0, 1.0, 1.0, 1.0, 1.0]);
        let check =
            |a: &[Verdict], b: &[Verdict]| disagree(&r, &judgement(&r, a), &judgement(&r, b));
        // Same verdicts: no flag.
        assert!(!check(
            &[Met, Met, Missed, Missed, Missed],
            &[Met, Met, Missed, Missed, Missed]
        ));
        // Opposite on the heaviest criterion, scores close otherwise: flagged.
        assert!(check(
            &[Met, Missed, Missed, Missed, Missed],
            &[Missed, Met, Met, Met, Missed]
        ));
        // Opposite only on light criteria, 2.9 points apart: not flagged.
        assert!(!check(
            &[Partial, Met, Met, Missed, Missed],
            &[Partial, Missed, Missed, Missed, Missed]
        ));
        // 5 points apart (7.1 vs 2.1), no opposite verdict on the heavy one: flagged.
        assert!(check(
            &[Met, Met, Met, Missed, Missed],
            &[Partial, Missed, Missed, Missed, Missed]
        ));
    }

    #[test]
    fn crediting_a_contradicted_criterion_is_disagreement() {
        use Verdict::{Met, Missed};
        let r = rubric(&[3.0, 1.0, 1.0, 1.0, 1.0]);
        let llm = judgement(&r, &[Met, Met, Missed, Missed, Missed]);
        let mut local = judgement(&r, &[Met, Missed, Missed, Missed, Missed]);
        assert!(
            !disagree(&r, &llm, &local),
            "close scores, no contradiction"
        );
        local
            .misconceptions
            .push(crate::grade::MisconceptionResult {
                id: format!("{}c1", crate::judge::coverage::CONTRADICTS),
                evidence: "it does not".into(),
                penalty: 0.1,
            });
        assert!(
            disagree(&r, &llm, &local),
            "the LLM credits c1, which the answer contradicts"
        );
    }
}
