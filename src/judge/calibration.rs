//! The coverage judge's thresholds, read from a calibration file fitted by `grader calibrate`
//! (never set by hand; the fitting command and its output are committed with the file).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Combined evidence at or above this → met.
    #[serde(serialize_with = "two_decimals")]
    pub met: f32,
    /// At or above this (and below `met`) → partial.
    #[serde(serialize_with = "two_decimals")]
    pub partial: f32,
    /// Weight of keyword evidence (share of a criterion's keywords present) in the combined score.
    #[serde(serialize_with = "two_decimals")]
    pub keyword_weight: f32,
    /// Similarity lost by list-like fragments ("refcount, gc, arenas") that name without explaining.
    #[serde(serialize_with = "two_decimals")]
    pub list_penalty: f32,
    /// A sentence at or above this similarity to a misconception claims it...
    #[serde(serialize_with = "two_decimals")]
    pub misconception: f32,
    /// ...when it is also this much closer to the misconception than to any correct point.
    #[serde(serialize_with = "two_decimals")]
    pub misconception_margin: f32,
    /// A sentence that says a criterion's words with the opposite sense contradicts it (and is
    /// charged the criterion's points) when it is at least this similar to the criterion.
    #[serde(serialize_with = "two_decimals", default = "off")]
    pub contradiction: f32,
    /// How much of a sentence's evidence is the correctness head's probability rather than
    /// its similarity (0 = similarity only).
    #[serde(serialize_with = "two_decimals", default)]
    pub entail_weight: f32,
}

/// The (similarity, margin) pairs `grader calibrate` tries for charging a misconception: off,
/// or closer to it than to any point by a margin that shrinks as the similarity grows.
pub const MISCONCEPTION_RULES: &[(f32, f32)] = &[
    (2.0, 0.0),
    (0.7, 0.1),
    (0.75, 0.05),
    (0.8, 0.03),
    (0.85, 0.03),
];

impl Thresholds {
    /// A piece of evidence's strength: its similarity, mixed with the correctness head's
    /// probability by `entail_weight`.
    pub fn evidence(&self, similarity: f32, entail: f32) -> f32 {
        if self.entail_weight > 0.0 {
            (1.0 - self.entail_weight) * similarity + self.entail_weight * entail
        } else {
            similarity
        }
    }

    /// The verdict combined evidence earns; a guess (`hedged`) earns at most partial credit.
    pub fn verdict(&self, combined: f32, hedged: bool) -> crate::grade::Verdict {
        use crate::grade::Verdict;
        if combined >= self.met && !hedged {
            Verdict::Met
        } else if combined >= self.partial {
            Verdict::Partial
        } else {
            Verdict::Missed
        }
    }
}

/// Older calibration files have no contradiction threshold: off.
fn off() -> f32 {
    2.0
}

/// Thresholds are written with two decimals (an f32 widened to f64 would print 0.800000011920929).
fn two_decimals<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((*x as f64 * 100.0).round() / 100.0)
}

impl Default for Thresholds {
    /// Only for fitting and tests; the shipped values come from config/calibration.toml.
    fn default() -> Self {
        Thresholds {
            met: 0.62,
            partial: 0.48,
            keyword_weight: 0.1,
            list_penalty: 0.1,
            misconception: 0.8,
            misconception_margin: 0.05,
            contradiction: 0.4,
            entail_weight: 0.5,
        }
    }
}

/// How the thresholds were fitted, recorded next to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitInfo {
    pub command: String,
    pub data: String,
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub qwk: f64,
    pub rmse: f64,
    /// Two-fold cross-validation by question: fitted on half the questions, scored on the rest.
    pub cv_pearson: f64,
    pub cv_qwk: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub thresholds: Thresholds,
    #[serde(default)]
    pub fit: FitInfo,
    /// Thresholds for ad hoc rubrics (criteria are a reference answer's sentences: no
    /// phrasings, no keywords, so similarities sit lower). Fitted on the same labelled answers
    /// graded against each rubric's model answer as the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adhoc_thresholds: Option<Thresholds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adhoc_fit: Option<FitInfo>,
    /// Thresholds for ad hoc rubrics of at most [`SHORT_REFERENCE`] criteria (a reference of a
    /// sentence or two, as in SemEval): one point, judged whole, sits differently from one of
    /// five. Fitted on the ad hoc items with such references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adhoc_short_thresholds: Option<Thresholds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adhoc_short_fit: Option<FitInfo>,
    /// Per-rubric thresholds where enough human reviews exist (`grader calibrate
    /// --from-reviews`); other rubrics use `thresholds`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rubrics: BTreeMap<String, RubricCalibration>,
}

/// One rubric's own thresholds, fitted on its reviews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RubricCalibration {
    pub thresholds: Thresholds,
    pub fit: FitInfo,
}

/// An ad hoc rubric with at most this many criteria is a short reference.
pub const SHORT_REFERENCE: usize = 2;

impl Calibration {
    /// The thresholds for an ad hoc rubric of `criteria` criteria: the short-reference ones
    /// when fitted and it is short, else the ad hoc ones.
    pub fn for_adhoc(&self, criteria: usize) -> &Thresholds {
        match &self.adhoc_short_thresholds {
            Some(t) if criteria <= SHORT_REFERENCE => t,
            _ => self.for_rubric(true),
        }
    }

    /// The thresholds for a rubric from the catalog or an ad hoc one.
    pub fn for_rubric(&self, adhoc: bool) -> &Thresholds {
        match (&self.adhoc_thresholds, adhoc) {
            (Some(t), true) => t,
            _ => &self.thresholds,
        }
    }

    /// The thresholds a resolved rubric is judged with: an ad hoc rubric's by its size
    /// ([`Calibration::for_adhoc`]), a catalog rubric's own or the catalog's
    /// ([`Calibration::for_rubric_id`]).
    pub fn for_resolved(&self, r: &super::ResolvedRubric) -> &Thresholds {
        if r.is_adhoc() {
            self.for_adhoc(r.rubric.criteria.len())
        } else {
            self.for_rubric_id(&r.rubric.id, false)
        }
    }

    /// The thresholds for one rubric: its own when reviews fitted some, else as
    /// [`Calibration::for_rubric`].
    pub fn for_rubric_id(&self, id: &str, adhoc: bool) -> &Thresholds {
        match self.rubrics.get(id) {
            Some(r) if !adhoc => &r.thresholds,
            _ => self.for_rubric(adhoc),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error(
        "calibration file {path}: {message} (refit with `grader calibrate tests/data/labelled.jsonl`)"
    )]
    Invalid { path: String, message: String },
}

impl Calibration {
    pub fn load(path: &Path) -> Result<Self, CalibrationError> {
        let text = std::fs::read_to_string(path).map_err(|e| CalibrationError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and check a calibration file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CalibrationError> {
        let err = |message: String| CalibrationError::Invalid {
            path: origin.to_string(),
            message,
        };
        let cal: Calibration = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let t = cal.thresholds;
        if !(0.0..=1.0).contains(&t.partial) || !(0.0..=1.5).contains(&t.met) || t.partial > t.met {
            return Err(err("thresholds must satisfy 0 <= partial <= met".into()));
        }
        Ok(cal)
    }
}
