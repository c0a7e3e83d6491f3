//! Human reviews: a reviewer's verdicts beside the machine's, the human score they give, and
//! how far the machine agrees with its reviewers (per rubric and per criterion).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::grade::{Grade, Verdict, score};

/// A reviewer's verdict on one criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionVerdict {
    pub id: String,
    pub verdict: Verdict,
}

/// `POST /v1/grades/{id}/review`: the criteria whose verdict the reviewer sets (the others keep
/// the machine's), an optional score that overrides the one the verdicts give, a note (the
/// rationale an exemplar carries), and who reviewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    #[serde(default)]
    pub criteria: Vec<CriterionVerdict>,
    #[serde(default)]
    pub score_override: Option<f32>,
    #[serde(default)]
    pub note: String,
    pub reviewer: String,
}

/// A stored review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Review {
    pub id: String,
    pub grade_id: String,
    /// RFC 3339.
    pub created_at: String,
    pub reviewer: String,
    /// Every criterion of the grade, with the reviewer's verdict.
    pub criteria: Vec<CriterionVerdict>,
    pub score_override: Option<f32>,
    /// The override, else the score the reviewer's verdicts give (same formula and
    /// misconception penalties as the machine's).
    pub human_score: f32,
    pub note: String,
}

/// Why a review was refused: the field and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ReviewError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ReviewError {
    ReviewError {
        field: field.into(),
        message: message.into(),
    }
}

/// Longest reviewer name and note kept (a note is a rationale, not an essay).
const MAX_REVIEWER: usize = 200;
const MAX_NOTE: usize = 4000;

impl ReviewInput {
    /// Check the input against the grade it reviews: every criterion id must be the grade's,
    /// at most once; the override within 0..=max_score. Returns the full verdict list (the
    /// machine's where the reviewer set none) and the human score.
    pub fn check(&self, grade: &Grade) -> Result<(Vec<CriterionVerdict>, f32), ReviewError> {
        let reviewer = self.reviewer.trim();
        if reviewer.is_empty() {
            return Err(bad("reviewer", "reviewer is empty: say who reviewed"));
        }
        if reviewer.chars().count() > MAX_REVIEWER {
            return Err(bad(
                "reviewer",
                format!("reviewer is longer than {MAX_REVIEWER} characters"),
            ));
        }
        if self.note.chars().count() > MAX_NOTE {
            return Err(bad(
                "note",
                format!("note is longer than {MAX_NOTE} characters; shorten it"),
            ));
        }
        let mut set: BTreeMap<&str, Verdict> = BTreeMap::new();
        for (i, c) in self.criteria.iter().enumerate() {
            if !grade.criteria.iter().any(|g| g.id == c.id) {
                let ids: Vec<&str> = grade.criteria.iter().map(|c| c.id.as_str()).collect();
                return Err(bad(
                    format!("criteria[{i}].id"),
                    format!(
                        "`{}` is not a criterion of this grade; use one of {}",
                        c.id,
                        ids.join(", ")
                    ),
                ));
            }
            if set.insert(&c.id, c.verdict).is_some() {
                return Err(bad(
                    format!("criteria[{i}].id"),
                    format!("`{}` is given twice", c.id),
                ));
            }
        }
        if let Some(s) = self.score_override
            && !(s.is_finite() && (0.0..=grade.max_score).contains(&s))
        {
            return Err(bad(
                "score_override",
                format!("must be between 0 and {}", grade.max_score),
            ));
        }
        let verdicts: Vec<CriterionVerdict> = grade
            .criteria
            .iter()
            .map(|c| CriterionVerdict {
                id: c.id.clone(),
                verdict: set.get(c.id.as_str()).copied().unwrap_or(c.verdict),
            })
            .collect();
        let human = self.score_override.unwrap_or_else(|| {
            score(
                grade.max_score,
                grade
                    .criteria
                    .iter()
                    .zip(&verdicts)
                    // A criterion the reviewer left as the machine graded it keeps its credit.
                    .map(|(c, v)| match v.verdict == c.verdict {
                        true => (c.weight, c.earned()),
                        false => (c.weight, v.verdict.value()),
                    }),
                grade.misconceptions.iter().map(|m| m.penalty),
            )
        });
        Ok((verdicts, human))
    }
}

/// One reviewed grade, as agreement is measured on it.
#[derive(Debug, Clone)]
pub struct ReviewedPair {
    pub rubric_id: String,
    pub machine: Grade,
    pub review: Review,
}

/// How one criterion's machine verdicts agree with reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CriterionAgreement {
    pub id: String,
    pub reviews: usize,
    /// Share of reviews whose verdict is the machine's.
    pub agreement: f64,
}

/// How a rubric's machine grades agree with their latest reviews.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Agreement {
    pub rubric_id: String,
    pub reviews: usize,
    /// Mean |machine − human| on a 0–10 scale.
    pub mae: f64,
    /// Pearson r between machine and human scores (absent under three reviews or no spread).
    pub pearson: Option<f64>,
    /// Share of grades within one point (0–10 scale) of the human score.
    pub within_one: f64,
    pub criteria: Vec<CriterionAgreement>,
}

/// Agreement per rubric over reviewed grades (the latest review of each).
pub fn agreement(pairs: &[ReviewedPair]) -> Vec<Agreement> {
    let mut by: BTreeMap<&str, Vec<&ReviewedPair>> = BTreeMap::new();
    for p in pairs {
        by.entry(&p.rubric_id).or_default().push(p);
    }
    by.into_iter()
        .map(|(rubric, ps)| {
            let scale = |x: f32, max: f32| {
                if max > 0.0 {
                    x as f64 / max as f64 * 10.0
                } else {
                    0.0
                }
            };
            let xs: Vec<f64> = ps
                .iter()
                .map(|p| scale(p.machine.score, p.machine.max_score))
                .collect();
            let ys: Vec<f64> = ps
                .iter()
                .map(|p| scale(p.review.human_score, p.machine.max_score))
                .collect();
            let n = ps.len();
            let diffs: Vec<f64> = xs.iter().zip(&ys).map(|(x, y)| (x - y).abs()).collect();
            let pearson = (n >= 3)
                .then(|| crate::eval::pearson(&xs, &ys))
                .filter(|r| r.is_finite());
            let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for p in &ps {
                for c in &p.machine.criteria {
                    if let Some(h) = p.review.criteria.iter().find(|h| h.id == c.id) {
                        let e = per.entry(&c.id).or_default();
                        e.0 += 1;
                        e.1 += usize::from(h.verdict == c.verdict);
                    }
                }
            }
            Agreement {
                rubric_id: rubric.to_string(),
                reviews: n,
                mae: diffs.iter().sum::<f64>() / n.max(1) as f64,
                pearson,
                within_one: diffs.iter().filter(|d| **d <= 1.0 + 1e-9).count() as f64
                    / n.max(1) as f64,
                criteria: per
                    .into_iter()
                    .map(|(id, (n, same))| CriterionAgreement {
                        id: id.to_string(),
                        reviews: n,
                        agreement: same as f64 / n.max(1) as f64,
                    })
                    .collect(),
            }
        })
        .collect()
}
