//! The `Grade` (the same JSON everywhere), verdicts, evidence verification and the score.
//!
//! The score is always computed here, from verdicts: max_score × Σ wᵢ·vᵢ / Σ wᵢ − penalties,
//! clamped to [0, max_score], with vᵢ = 1 (met), 0 (missed), and for partial the criterion's
//! credit, 0.25–0.75 by how close its evidence came to met (0.5 when the judge gives none). No
//! judge sets the number itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::JudgeKind;
use crate::rubric::Rubric;
use crate::text::{normalize_for_match, quote_occurs};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Missed,
    Partial,
    Met,
}

impl Verdict {
    /// The share of a criterion's weight this verdict earns; `position` (0 = barely partial,
    /// 1 = nearly met) places a partial verdict within [`PARTIAL_CREDIT`], `None` takes the
    /// middle (0.5).
    pub fn credit(self, position: Option<f32>) -> f32 {
        match (self, position) {
            (Verdict::Partial, Some(p)) if p.is_finite() => {
                let (lo, hi) = PARTIAL_CREDIT;
                // Two decimals: the credit is shown with the grade and the score follows it.
                ((lo + (hi - lo) * p.clamp(0.0, 1.0)) * 100.0).round() / 100.0
            }
            _ => self.value(),
        }
    }

    pub fn value(self) -> f32 {
        match self {
            Verdict::Met => 1.0,
            Verdict::Partial => 0.5,
            Verdict::Missed => 0.0,
        }
    }

    /// One level down (used when evidence does not check out).
    pub fn downgrade(self) -> Verdict {
        match self {
            Verdict::Met => Verdict::Partial,
            _ => Verdict::Missed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CriterionResult {
    pub id: String,
    pub verdict: Verdict,
    pub weight: f32,
    /// A verbatim quote from the answer supporting the verdict ("" when nothing does).
    pub evidence: String,
    /// Whether `evidence` occurs in the answer (after normalising case, whitespace, quotes).
    pub evidence_verified: bool,
    /// Why the judge decided so.
    pub reason: String,
    /// The share of `weight` this criterion earns: met 1, missed 0, partial between
    /// [`PARTIAL_CREDIT`]'s bounds by how close the evidence came to met (the coverage judge).
    /// Absent: the verdict's own value (partial 0.5), as the LLM judge and older grades give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<f32>,
}

/// What a partial verdict earns, from barely partial to nearly met: a partial criterion is
/// worth a quarter to three quarters of its weight, never a met one's and never nothing.
pub const PARTIAL_CREDIT: (f32, f32) = (0.25, 0.75);

impl CriterionResult {
    /// The share of the weight earned: the verdict's value, or for a partial verdict the
    /// judge's `credit` held within [`PARTIAL_CREDIT`] (a credit can never move a verdict).
    pub fn earned(&self) -> f32 {
        match (self.verdict, self.credit) {
            (Verdict::Partial, Some(c)) if c.is_finite() => {
                c.clamp(PARTIAL_CREDIT.0, PARTIAL_CREDIT.1)
            }
            (v, _) => v.value(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MisconceptionResult {
    pub id: String,
    pub evidence: String,
    pub penalty: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JudgeInfo {
    /// `coverage`, `llm` or `hybrid`.
    #[schema(value_type = String)]
    pub kind: JudgeKind,
    pub model: String,
    pub samples: u32,
    /// Share of per-criterion votes that agreed with the majority (1.0 for a single sample).
    pub agreement: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

/// Conditions a reader of the grade should know about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Some evidence was not found in the answer; those verdicts were downgraded.
    EvidenceUnverified,
    /// The answer contains text aimed at the grader; it cannot raise the score.
    InjectionSuspected,
    /// The answer was cut to the token limit.
    Truncated,
    /// Graded against a rubric derived from a reference answer.
    AdHocRubric,
    /// The LLM failed and the coverage judge graded instead.
    FallbackToCoverage,
    /// Hybrid mode: the coverage judge strongly disagrees; worth a human look.
    JudgesDisagree,
    /// The answer is empty of content or only restates the question.
    NoContent,
    /// The answer takes back what it said ("all of the above is false"): nothing it retracted
    /// is credited.
    Retracted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Grade {
    /// Unique per grade (UUID v7, so ids sort by time): `GET /v1/grades/{id}` finds it in the
    /// audit store. Older reports without one read as the nil UUID.
    #[serde(default)]
    pub id: uuid::Uuid,
    pub rubric_id: String,
    pub question: String,
    pub score: f32,
    pub max_score: f32,
    pub criteria: Vec<CriterionResult>,
    pub misconceptions: Vec<MisconceptionResult>,
    /// What was missing or wrong, as sentences the candidate can act on.
    pub gaps: Vec<String>,
    pub feedback: String,
    pub judge: JudgeInfo,
    pub flags: Vec<Flag>,
    pub usage: Usage,
    pub latency_ms: u64,
    pub rubric_version: String,
}

/// What a judge decides, before verification and scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub criteria: Vec<CriterionResult>,
    pub misconceptions: Vec<MisconceptionResult>,
    /// Judge-written gaps (LLM); the pipeline adds its own from the verdicts when empty.
    pub gaps: Vec<String>,
    pub feedback: String,
    /// Per criterion (rubric order), the judge's continuous strength of evidence (the coverage
    /// judge's best similarity); empty when the judge has none. Shown to the LLM as hints.
    pub strength: Vec<f32>,
    pub judge: JudgeInfo,
    pub flags: Vec<Flag>,
    pub usage: Usage,
}

/// Check every quote against the answer; a verdict whose evidence is not there drops one level.
/// Returns whether anything was downgraded.
pub fn verify_evidence(answer: &str, judgement: &mut Judgement) -> bool {
    let norm = normalize_for_match(answer);
    let mut downgraded = false;
    for c in &mut judgement.criteria {
        let ok = !c.evidence.trim().is_empty() && quote_occurs(&norm, &c.evidence);
        c.evidence_verified = ok;
        if !ok && c.verdict != Verdict::Missed {
            c.verdict = c.verdict.downgrade();
            c.credit = None;
            c.reason = format!(
                "{} (downgraded: the quoted evidence is not in the answer)",
                c.reason
            );
            downgraded = true;
        }
    }
    // A misconception is only charged when the quote is really there.
    judgement
        .misconceptions
        .retain(|m| !m.evidence.trim().is_empty() && quote_occurs(&norm, &m.evidence));
    downgraded
}

/// max_score × Σ wᵢ·vᵢ / Σ wᵢ − penalties, clamped to [0, max_score], rounded to 0.1.
pub fn compute_score(
    max_score: f32,
    criteria: &[CriterionResult],
    misconceptions: &[MisconceptionResult],
) -> f32 {
    score(
        max_score,
        criteria.iter().map(|c| (c.weight, c.earned())),
        misconceptions.iter().map(|m| m.penalty),
    )
}

/// The score formula itself over (weight, share earned) pairs and penalties: what
/// [`compute_score`] and the calibration fit (which has no `CriterionResult`s) both use. A
/// share is a verdict's [`Verdict::credit`].
pub fn score(
    max_score: f32,
    earned: impl IntoIterator<Item = (f32, f32)> + Clone,
    penalties: impl IntoIterator<Item = f32>,
) -> f32 {
    let total: f32 = earned.clone().into_iter().map(|(w, _)| w).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let earned: f32 = earned.into_iter().map(|(w, e)| w * e).sum();
    let penalty: f32 = penalties.into_iter().sum();
    let raw = max_score * earned / total - penalty;
    (raw.clamp(0.0, max_score) * 10.0).round() / 10.0
}

/// Gap sentences from the verdicts: what to add or fix, most important first.
pub fn gaps_from_verdicts(
    rubric: &Rubric,
    criteria: &[CriterionResult],
    misconceptions: &[MisconceptionResult],
) -> Vec<String> {
    let mut gaps: Vec<(f32, String)> = Vec::new();
    for m in misconceptions {
        if let Some(def) =
            m.id.strip_prefix(crate::judge::coverage::CONTRADICTS)
                .and_then(|id| rubric.criterion(id))
        {
            gaps.push((
                f32::MAX,
                format!(
                    "Contradicts the point: \"{}\" — correct is: {}",
                    short(&m.evidence, 160),
                    def.point
                ),
            ));
            continue;
        }
        if let Some(def) = rubric.misconceptions.iter().find(|d| d.id == m.id) {
            gaps.push((
                f32::MAX,
                format!(
                    "Incorrect claim: \"{}\" — the misconception is: {}",
                    short(&m.evidence, 160),
                    def.claim
                ),
            ));
        }
    }
    for c in criteria {
        let Some(def) = rubric.criterion(&c.id) else {
            continue;
        };
        match c.verdict {
            Verdict::Missed => gaps.push((c.weight, format!("Missing: {}", def.point))),
            Verdict::Partial => gaps.push((
                c.weight * 0.5,
                format!("Only partly covered, be explicit: {}", def.point),
            )),
            Verdict::Met => {}
        }
    }
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0));
    gaps.into_iter().map(|(_, g)| g).collect()
}

/// A one-paragraph summary for the candidate.
pub fn feedback_from_verdicts(
    rubric: &Rubric,
    criteria: &[CriterionResult],
    misconceptions: &[MisconceptionResult],
) -> String {
    let met = criteria
        .iter()
        .filter(|c| c.verdict == Verdict::Met)
        .count();
    let partial = criteria
        .iter()
        .filter(|c| c.verdict == Verdict::Partial)
        .count();
    let n = criteria.len();
    let mut s = format!("Covers {met} of {n} points fully and {partial} partly.");
    let heaviest_missing = criteria
        .iter()
        .filter(|c| c.verdict != Verdict::Met)
        .max_by(|a, b| a.weight.total_cmp(&b.weight))
        .and_then(|c| rubric.criterion(&c.id));
    if let Some(c) = heaviest_missing {
        s.push_str(&format!(" Most important to add: {}", c.point));
    }
    if !misconceptions.is_empty() {
        s.push_str(&format!(
            " It also states {} misconception(s); see the gaps.",
            misconceptions.len()
        ));
    }
    s
}

pub(crate) fn short(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criterion(verdict: Verdict, weight: f32, credit: Option<f32>) -> CriterionResult {
        CriterionResult {
            id: "c".into(),
            verdict,
            weight,
            evidence: String::new(),
            evidence_verified: true,
            reason: String::new(),
            credit,
        }
    }

    #[test]
    fn a_partial_verdict_earns_by_how_close_it_came_and_no_credit_moves_a_verdict() {
        assert_eq!(Verdict::Partial.credit(Some(0.0)), 0.25);
        assert_eq!(Verdict::Partial.credit(Some(0.5)), 0.5);
        assert_eq!(Verdict::Partial.credit(Some(1.0)), 0.75);
        assert_eq!(Verdict::Partial.credit(Some(7.0)), 0.75, "held in the band");
        assert_eq!(Verdict::Partial.credit(None), 0.5);
        assert_eq!(Verdict::Partial.credit(Some(f32::NAN)), 0.5);
        assert_eq!(Verdict::Met.credit(Some(0.0)), 1.0);
        assert_eq!(Verdict::Missed.credit(Some(1.0)), 0.0);
        // A stored credit outside its verdict's band cannot raise or sink it.
        assert_eq!(criterion(Verdict::Missed, 1.0, Some(0.9)).earned(), 0.0);
        assert_eq!(criterion(Verdict::Met, 1.0, Some(0.3)).earned(), 1.0);
        assert_eq!(criterion(Verdict::Partial, 1.0, Some(1.0)).earned(), 0.75);
        assert_eq!(criterion(Verdict::Partial, 1.0, Some(0.0)).earned(), 0.25);
        assert_eq!(criterion(Verdict::Partial, 1.0, None).earned(), 0.5);
    }

    #[test]
    fn the_score_weighs_each_criterion_by_its_credit() {
        // 10 × (2×1 + 1×0.75 + 1×0.25) / 4 = 7.5; minus a 1-point penalty = 6.5.
        let criteria = [
            criterion(Verdict::Met, 2.0, Some(1.0)),
            criterion(Verdict::Partial, 1.0, Some(0.75)),
            criterion(Verdict::Partial, 1.0, Some(0.25)),
        ];
        assert_eq!(compute_score(10.0, &criteria, &[]), 7.5);
        let penalty = MisconceptionResult {
            id: "m".into(),
            evidence: "x".into(),
            penalty: 1.0,
        };
        assert_eq!(compute_score(10.0, &criteria, &[penalty]), 6.5);
        // Older grades (no credit) score as before: partial is half.
        let old = [
            criterion(Verdict::Met, 1.0, None),
            criterion(Verdict::Partial, 1.0, None),
        ];
        assert_eq!(compute_score(10.0, &old, &[]), 7.5);
    }

    #[test]
    fn a_quote_not_in_the_answer_drops_the_verdict_and_its_credit() {
        let mut j = Judgement {
            criteria: vec![criterion(Verdict::Met, 1.0, Some(1.0))],
            misconceptions: Vec::new(),
            gaps: Vec::new(),
            feedback: String::new(),
            strength: Vec::new(),
            judge: JudgeInfo {
                kind: JudgeKind::Coverage,
                model: "m".into(),
                samples: 1,
                agreement: 1.0,
            },
            flags: Vec::new(),
            usage: Usage::default(),
        };
        j.criteria[0].evidence = "not in it".into();
        assert!(verify_evidence("the answer says something else", &mut j));
        assert_eq!(j.criteria[0].verdict, Verdict::Partial);
        assert_eq!(j.criteria[0].credit, None);
        assert_eq!(j.criteria[0].earned(), 0.5);
    }
}
