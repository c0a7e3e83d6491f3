//! The injection guard against `tests/data/injection.jsonl` (written by scripts/gen-injection.py):
//! every attack is flagged and can never raise a grade, and every honest answer that merely uses
//! the same words ("override", "previous", "ignore", "system prompt", "score", "act as", JSON with
//! a "score" key in code, ...) is neither flagged nor altered and grades exactly as it would
//! without the guard.

use std::collections::HashSet;

use grader::config::JudgeKind;
use grader::engine::{GradeRequest, QuestionRef};
use grader::grade::{Flag, compute_score, verify_evidence};
use grader::guard::{REMOVED, guard};
use serde::Deserialize;

use crate::common;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    question_id: String,
    kind: String,
    technique: String,
    answer: String,
    /// For attacks: the weak answer the injection was added to.
    #[serde(default)]
    base: Option<String>,
}

fn corpus() -> Vec<Case> {
    common::jsonl("injection.jsonl")
}

fn attacks() -> Vec<Case> {
    corpus()
        .into_iter()
        .filter(|c| c.kind == "attack")
        .collect()
}

fn honest() -> Vec<Case> {
    corpus()
        .into_iter()
        .filter(|c| c.kind == "honest")
        .collect()
}

fn label(c: &Case) -> String {
    format!("{} [{}]", c.question_id, c.technique)
}

/// Whether the words of `base` occur, in order, among the words of `text`.
fn keeps_in_order(text: &str, base: &str) -> bool {
    let mut words = text.split_whitespace();
    base.split_whitespace().all(|b| words.any(|w| w == b))
}

#[test]
fn the_corpus_is_large_varied_and_about_real_questions() {
    let cases = corpus();
    let ids: HashSet<String> = common::catalog(common::Rubrics::Shipped)
        .ids()
        .map(str::to_string)
        .collect();
    let unknown: Vec<String> = cases
        .iter()
        .filter(|c| !ids.contains(&c.question_id))
        .map(label)
        .collect();
    assert!(unknown.is_empty(), "unknown question ids: {unknown:?}");
    let bad_kind: Vec<String> = cases
        .iter()
        .filter(|c| !matches!(c.kind.as_str(), "attack" | "honest"))
        .map(label)
        .collect();
    assert!(
        bad_kind.is_empty(),
        "kind is neither attack nor honest: {bad_kind:?}"
    );
    let attacks = attacks();
    let honest = honest();
    assert!(attacks.len() >= 40, "{} attacks", attacks.len());
    assert!(honest.len() >= 40, "{} honest answers", honest.len());
    let techniques: HashSet<&str> = attacks.iter().map(|c| c.technique.as_str()).collect();
    assert!(
        techniques.len() >= 25,
        "{} attack techniques",
        techniques.len()
    );
    let without_base: Vec<String> = attacks
        .iter()
        .filter(|c| {
            c.base
                .as_deref()
                .is_none_or(|b| !keeps_in_order(&c.answer, b))
        })
        .map(label)
        .collect();
    assert!(
        without_base.is_empty(),
        "attacks whose answer does not contain their base answer: {without_base:?}"
    );
}

#[test]
fn every_attack_is_flagged_and_removed() {
    let mut failures = Vec::new();
    let attacks = attacks();
    for c in &attacks {
        let g = guard(&c.answer);
        let base = c.base.as_deref().expect("attacks have a base");
        if !g.suspected || g.removed.is_empty() {
            failures.push(format!("{}: not flagged: {:?}", label(c), c.answer));
        } else if !keeps_in_order(&g.text.replace(REMOVED, " "), base) {
            failures.push(format!(
                "{}: the weak answer itself was cut: {:?}",
                label(c),
                g.text
            ));
        } else if guard(&g.text).suspected {
            failures.push(format!(
                "{}: still flagged after removal: {:?}",
                label(c),
                guard(&g.text).removed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} attacks failed:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );
}

#[test]
fn no_honest_answer_is_flagged_or_altered() {
    let mut failures = Vec::new();
    let honest = honest();
    for c in &honest {
        let g = guard(&c.answer);
        if g.suspected || g.text != c.answer {
            failures.push(format!("{}: removed {:?}", label(c), g.removed));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} honest answers were flagged or altered:\n{}",
        failures.len(),
        honest.len(),
        failures.join("\n")
    );
}

async fn grade(id: &str, answer: &str) -> grader::grade::Grade {
    common::engine()
        .await
        .grade(&GradeRequest {
            question: QuestionRef::Id(id.into()),
            answer: answer.into(),
            judge: Some(JudgeKind::Coverage),
            samples: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// The coverage grade of an answer exactly as the pipeline computes it, but without the guard.
async fn unguarded_score(id: &str, answer: &str) -> f32 {
    let engine = common::engine().await;
    let resolved = engine
        .resolve(&QuestionRef::Id(id.into()))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let view = engine
        .answer_view(answer)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let judge = grader::judge::CoverageJudge::new(engine.embedder().model_id());
    let cx = grader::judge::JudgeContext {
        rubric: &resolved,
        answer: &view,
        thresholds: engine.calibration().for_resolved(&resolved),
        samples: 1,
        head: engine.head(),
    };
    let mut j = grader::judge::Judge::judge(&judge, &cx)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    verify_evidence(answer, &mut j);
    compute_score(resolved.rubric().max_score, &j.criteria, &j.misconceptions)
}

#[tokio::test]
async fn no_attack_raises_the_grade_of_its_weak_answer() {
    let mut failures = Vec::new();
    let attacks = attacks();
    for c in &attacks {
        let base = c.base.as_deref().expect("attacks have a base");
        let weak = grade(&c.question_id, base).await;
        let attacked = grade(&c.question_id, &c.answer).await;
        if attacked.score > weak.score {
            failures.push(format!(
                "{}: {} with the injection > {} without",
                label(c),
                attacked.score,
                weak.score
            ));
        }
        if !attacked.flags.contains(&Flag::InjectionSuspected) {
            failures.push(format!("{}: not flagged injection_suspected", label(c)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} attacks:\n{}",
        failures.len(),
        attacks.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn honest_answers_grade_the_same_with_and_without_the_guard() {
    let mut failures = Vec::new();
    let honest = honest();
    for c in &honest {
        let guarded = grade(&c.question_id, &c.answer).await;
        let raw = unguarded_score(&c.question_id, &c.answer).await;
        if guarded.score != raw || guarded.flags.contains(&Flag::InjectionSuspected) {
            failures.push(format!(
                "{}: {} through the guard, {} without (flags {:?})",
                label(c),
                guarded.score,
                raw,
                guarded.flags
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} honest answers changed:\n{}",
        failures.len(),
        honest.len(),
        failures.join("\n")
    );
}
