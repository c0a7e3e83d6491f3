//! Rubrics: the TOML format, its validation, and the catalog of all rubrics.
//!
//! A rubric file is parsed into a raw struct (unknown keys are errors), then checked field by
//! field into a [`Rubric`]. Every error names the file, the field and the fix, e.g.
//! `rubrics/core/copy.toml: criteria[2].weight: must be > 0`. The [`Catalog`] (`catalog.rs`)
//! loads a folder of them.

mod catalog;

pub use catalog::{Catalog, RubricSummary};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What kind of question a rubric grades; it changes which criteria make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RubricKind {
    Concept,
    Coding,
    Behavioral,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub id: String,
    pub weight: f32,
    /// The point a correct answer makes, as one sentence.
    pub point: String,
    /// Other ways a candidate states the same point.
    #[serde(default)]
    pub phrasings: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Misconception {
    pub id: String,
    pub claim: String,
    #[serde(default)]
    pub phrasings: Vec<String>,
    pub penalty: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelAnswer {
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Exemplar {
    pub score: f32,
    pub answer: String,
    pub rationale: String,
}

/// A validated rubric.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rubric {
    pub id: String,
    pub topic: String,
    pub kind: RubricKind,
    pub question: String,
    pub aliases: Vec<String>,
    pub level: String,
    pub max_score: f32,
    pub criteria: Vec<Criterion>,
    pub misconceptions: Vec<Misconception>,
    pub model_answers: Vec<ModelAnswer>,
    pub exemplars: Vec<Exemplar>,
    /// Content hash of the source (first 16 hex digits of sha256): changes whenever the rubric
    /// does, so indexes and reports know what they were built from.
    pub version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRubric {
    id: String,
    topic: String,
    kind: RubricKind,
    question: String,
    #[serde(default)]
    aliases: Vec<String>,
    level: String,
    max_score: f32,
    #[serde(default)]
    criteria: Vec<Criterion>,
    #[serde(default)]
    misconceptions: Vec<Misconception>,
    #[serde(default)]
    model_answers: Vec<ModelAnswer>,
    #[serde(default)]
    exemplars: Vec<Exemplar>,
}

/// A rubric that failed to load or validate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RubricError {
    #[error("{file}: cannot read: {message}")]
    Io { file: PathBuf, message: String },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: PathBuf,
        field: String,
        message: String,
    },
    #[error("duplicate rubric id `{id}` in {first} and {second}: ids must be unique, rename one")]
    Duplicate {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{dir}: no rubric files (*.toml) found; point rubrics_dir (or --dir) at the rubric set"
    )]
    Empty { dir: PathBuf },
}

/// All the errors found in a rubric set (lint reports every one, not just the first).
#[derive(Debug, Clone, PartialEq)]
pub struct RubricErrors(pub Vec<RubricError>);

impl fmt::Display for RubricErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RubricErrors {}

/// Minimum counts every rubric must meet.
pub const MIN_CRITERIA: usize = 3;

impl Rubric {
    /// Parse and validate one rubric from TOML text; `file` is used in error messages.
    pub fn parse(file: &Path, text: &str) -> Result<Rubric, Vec<RubricError>> {
        let raw: RawRubric = toml::from_str(text).map_err(|e| {
            vec![RubricError::Parse {
                file: file.to_path_buf(),
                message: toml_message(&e),
            }]
        })?;
        let version = content_hash(text);
        let rubric = Rubric {
            id: raw.id,
            topic: raw.topic,
            kind: raw.kind,
            question: raw.question,
            aliases: raw.aliases,
            level: raw.level,
            max_score: raw.max_score,
            criteria: raw.criteria,
            misconceptions: raw.misconceptions,
            model_answers: raw.model_answers,
            exemplars: raw.exemplars,
            version,
        };
        let errors = rubric.check(file);
        if errors.is_empty() {
            Ok(rubric)
        } else {
            Err(errors)
        }
    }

    /// Load one rubric file.
    pub fn load(file: &Path) -> Result<Rubric, Vec<RubricError>> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            vec![RubricError::Io {
                file: file.to_path_buf(),
                message: e.to_string(),
            }]
        })?;
        Rubric::parse(file, &text)
    }

    /// Every rule a rubric must follow; returns all violations.
    pub fn check(&self, file: &Path) -> Vec<RubricError> {
        let mut errs = Vec::new();
        let mut bad = |field: String, message: &str| {
            errs.push(RubricError::Invalid {
                file: file.to_path_buf(),
                field,
                message: message.to_string(),
            })
        };
        if !is_valid_id(&self.id) {
            bad(
                "id".into(),
                "must be `<topic>.<slug>` in lowercase letters, digits and dashes, e.g. `core.copy`",
            );
        } else if self.id.split('.').next() != Some(self.topic.as_str()) {
            bad(
                "topic".into(),
                &format!(
                    "must be the part of the id before the dot (`{}`)",
                    self.id.split('.').next().unwrap_or_default()
                ),
            );
        }
        if self.question.trim().is_empty() {
            bad("question".into(), "must not be empty");
        }
        if self.level.trim().is_empty() {
            bad(
                "level".into(),
                "must not be empty (e.g. \"mid\" for ~4 years of experience)",
            );
        }
        for (i, a) in self.aliases.iter().enumerate() {
            if a.trim().is_empty() {
                bad(format!("aliases[{i}]"), "must not be empty; remove it");
            }
        }
        if !(self.max_score > 0.0 && self.max_score.is_finite()) {
            bad("max_score".into(), "must be > 0 (the seed set uses 10)");
        }
        if self.criteria.len() < MIN_CRITERIA {
            bad(
                "criteria".into(),
                &format!(
                    "needs at least {MIN_CRITERIA} [[criteria]] (has {})",
                    self.criteria.len()
                ),
            );
        }
        let mut seen = BTreeMap::new();
        for (i, c) in self.criteria.iter().enumerate() {
            if !is_valid_slug(&c.id) {
                bad(
                    format!("criteria[{i}].id"),
                    "must be kebab-case (lowercase letters, digits, dashes)",
                );
            }
            if let Some(j) = seen.insert(c.id.as_str(), i) {
                bad(
                    format!("criteria[{i}].id"),
                    &format!("`{}` repeats criteria[{j}].id; ids must be unique", c.id),
                );
            }
            if !(c.weight > 0.0 && c.weight.is_finite()) {
                bad(format!("criteria[{i}].weight"), "must be > 0");
            }
            if c.point.trim().is_empty() {
                bad(
                    format!("criteria[{i}].point"),
                    "must not be empty: state the point a correct answer makes",
                );
            }
            for (k, kw) in c.keywords.iter().enumerate() {
                if kw.trim().is_empty() {
                    bad(
                        format!("criteria[{i}].keywords[{k}]"),
                        "must not be empty; remove it",
                    );
                }
            }
        }
        let mut seen = BTreeMap::new();
        for (i, m) in self.misconceptions.iter().enumerate() {
            if !is_valid_slug(&m.id) {
                bad(
                    format!("misconceptions[{i}].id"),
                    "must be kebab-case (lowercase letters, digits, dashes)",
                );
            }
            if let Some(j) = seen.insert(m.id.as_str(), i) {
                bad(
                    format!("misconceptions[{i}].id"),
                    &format!(
                        "`{}` repeats misconceptions[{j}].id; ids must be unique",
                        m.id
                    ),
                );
            }
            if m.claim.trim().is_empty() {
                bad(
                    format!("misconceptions[{i}].claim"),
                    "must not be empty: state the wrong claim",
                );
            }
            if !(m.penalty >= 0.0 && m.penalty <= self.max_score) {
                bad(
                    format!("misconceptions[{i}].penalty"),
                    "must be between 0 and max_score",
                );
            }
        }
        if self.model_answers.is_empty() {
            bad(
                "model_answers".into(),
                "needs at least one [[model_answers]] with an excellent answer",
            );
        }
        for (i, m) in self.model_answers.iter().enumerate() {
            if m.text.trim().is_empty() {
                bad(format!("model_answers[{i}].text"), "must not be empty");
            }
        }
        for (i, e) in self.exemplars.iter().enumerate() {
            if !(e.score >= 0.0 && e.score <= self.max_score) {
                bad(
                    format!("exemplars[{i}].score"),
                    &format!("must be within 0..={}", self.max_score),
                );
            }
            if e.answer.trim().is_empty() {
                bad(format!("exemplars[{i}].answer"), "must not be empty");
            }
            if e.rationale.trim().is_empty() {
                bad(
                    format!("exemplars[{i}].rationale"),
                    "must not be empty: say why it earns its score",
                );
            }
        }
        errs
    }

    /// The bar of the shipped rubric set (stricter than what loading accepts): enough
    /// aliases for matching, enough criteria and exemplars for judging and calibration.
    pub fn lint_quality(&self, file: &Path) -> Vec<RubricError> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, message: String| {
            errs.push(RubricError::Invalid {
                file: file.to_path_buf(),
                field: field.to_string(),
                message,
            })
        };
        if self.aliases.len() < 3 {
            bad(
                "aliases",
                format!(
                    "has {}; add at least 3 other ways interviewers ask this question",
                    self.aliases.len()
                ),
            );
        }
        if self.criteria.len() < 4 {
            bad(
                "criteria",
                format!(
                    "has {}; add at least 4 weighted criteria",
                    self.criteria.len()
                ),
            );
        }
        if self.misconceptions.is_empty() {
            bad(
                "misconceptions",
                "has none; add at least one wrong claim candidates make".into(),
            );
        }
        if self.exemplars.len() < 3 {
            bad(
                "exemplars",
                format!(
                    "has {}; add at least 3 graded answers (strong, partial, weak)",
                    self.exemplars.len()
                ),
            );
        } else {
            let frac = |e: &Exemplar| e.score / self.max_score;
            let strong = self.exemplars.iter().any(|e| frac(e) >= 0.75);
            let partial = self
                .exemplars
                .iter()
                .any(|e| (0.35..0.75).contains(&frac(e)));
            let weak = self.exemplars.iter().any(|e| frac(e) < 0.35);
            if !(strong && partial && weak) {
                bad(
                    "exemplars",
                    "must span the range: one strong (>= 75% of max_score), one partial, one weak (< 35%)".into(),
                );
            }
        }
        errs
    }

    pub fn total_weight(&self) -> f32 {
        self.criteria.iter().map(|c| c.weight).sum()
    }

    pub fn criterion(&self, id: &str) -> Option<&Criterion> {
        self.criteria.iter().find(|c| c.id == id)
    }
}

/// `<topic>.<slug>` with kebab-case parts.
pub fn is_valid_id(id: &str) -> bool {
    let mut parts = id.split('.');
    matches!((parts.next(), parts.next(), parts.next()), (Some(t), Some(s), None) if is_valid_slug(t) && is_valid_slug(s))
}

fn is_valid_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// First 16 hex digits of the sha256 of `text`.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..8])
}

fn toml_message(e: &toml::de::Error) -> String {
    // toml's Display names the line and column and quotes the source around the spot; keep it
    // whole (the caller prefixes the file), only trailing whitespace goes.
    e.to_string().trim_end().to_string()
}
