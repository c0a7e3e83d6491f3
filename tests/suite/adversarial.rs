//! The adversarial corpus (`tests/data/adversarial.jsonl`, see its README): every rubric's
//! model answer negated, keyword dumps plain / fenced / per line, the question restated, the
//! model answer retracted, a fake verdict, the honest wrong exemplar — and the honest answers
//! the judge must keep rewarding. Graded by the default (coverage) judge.

use std::collections::BTreeMap;

use grader::engine::{GradeRequest, QuestionRef};
use serde::Deserialize;

use crate::common::{engine, jsonl};

#[derive(Deserialize)]
struct Record {
    question_id: String,
    kind: String,
    answer: String,
    expect: String,
}

/// Per kind: the highest average score an attack kind may reach, or the lowest an honest
/// kind may fall to, just past what the judge measures (README, "The adversarial corpus"), so
/// losing ground fails here.
const BARS: &[(&str, f32)] = &[
    ("negated", 0.45),
    ("keywords-plain", 0.5),
    ("keywords-fenced", 0.5),
    ("keywords-lines", 0.5),
    ("restated", 0.2),
    ("retraction", 0.5),
    ("fake-verdict", 0.5),
    ("wrong-exemplar", 1.05),
    ("exemplar-good", 9.4),
    ("model-answer", 9.8),
    ("terse", 9.4),
];

#[tokio::test]
async fn attacks_score_low_and_honest_answers_high() {
    let e = engine().await;
    let records: Vec<Record> = jsonl("adversarial.jsonl");
    assert_eq!(records.len(), 605, "55 rubrics × 11 kinds");
    let mut scores = Vec::new();
    for r in &records {
        let g = e
            .grade(&GradeRequest {
                question: QuestionRef::Id(r.question_id.clone()),
                answer: r.answer.clone(),
                judge: None,
                samples: None,
            })
            .await
            .unwrap_or_else(|err| panic!("{} {}: {err}", r.question_id, r.kind));
        assert_eq!(g.max_score, 10.0, "the README's thresholds are on 0–10");
        scores.push(g.score);
    }
    let good: BTreeMap<&str, f32> = records
        .iter()
        .zip(&scores)
        .filter(|(r, _)| r.kind == "exemplar-good")
        .map(|(r, s)| (r.question_id.as_str(), *s))
        .collect();
    // Per kind: (sum, count, records that break the README's acceptance rule).
    let mut kinds: BTreeMap<&str, (f32, usize, Vec<String>)> = BTreeMap::new();
    for (r, &s) in records.iter().zip(&scores) {
        let pass = match r.expect.as_str() {
            "low" => s <= 2.0 || s <= good[r.question_id.as_str()] - 4.0,
            _ => s >= 7.0,
        };
        let k = kinds.entry(r.kind.as_str()).or_default();
        k.0 += s;
        k.1 += 1;
        if !pass {
            k.2.push(format!("{} {s}", r.question_id));
        }
    }
    eprintln!("kind              avg /10  fail");
    for (kind, (sum, n, fails)) in &kinds {
        eprintln!(
            "{kind:<16} {:>7.2}  {:>4}  {}",
            sum / *n as f32,
            fails.len(),
            fails.iter().take(6).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut broken = Vec::new();
    for &(kind, bar) in BARS {
        let (sum, n, _) = &kinds[kind];
        let avg = sum / *n as f32;
        let attack = records.iter().any(|r| r.kind == kind && r.expect == "low");
        if (attack && avg > bar) || (!attack && avg < bar) {
            broken.push(format!("{kind}: average {avg:.2} (bar {bar})"));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("; "));
}
