//! Rubric loading, validation messages, and the shipped rubric set.

use std::collections::BTreeSet;
use std::path::Path;

use grader::rubric::{Catalog, Rubric};

use crate::common::{Rubrics, data, root};

const GOOD: &str = r#"
id = "core.copy"
topic = "core"
kind = "concept"
question = "Difference between deepcopy and shallow copy?"
aliases = ["a", "b", "c"]
level = "mid"
max_score = 10

[[criteria]]
id = "one"
weight = 3
point = "A shallow copy shares nested objects."
keywords = ["copy.copy"]

[[criteria]]
id = "two"
weight = 2
point = "A deep copy copies recursively."

[[criteria]]
id = "three"
weight = 1
point = "deepcopy uses a memo for cycles."

[[misconceptions]]
id = "slice-deep"
claim = "Slicing makes a deep copy."
penalty = 2

[[model_answers]]
text = "An excellent answer."

[[exemplars]]
score = 9
answer = "Strong."
rationale = "Covers all."
"#;

fn errors_of(text: &str) -> Vec<String> {
    match Rubric::parse(Path::new("rubrics/core/copy.toml"), text) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(|e| e.to_string()).collect(),
    }
}

/// `check(edit, expected)`: apply a text substitution to the good rubric and expect exactly
/// one error with this message.
fn check(from: &str, to: &str, expected: &str) {
    assert!(GOOD.contains(from), "fixture lacks {from:?}");
    let errs = errors_of(&GOOD.replacen(from, to, 1));
    assert!(
        errs.iter().any(|e| e == expected),
        "expected {expected:?}, got {errs:#?}"
    );
}

#[test]
fn good_rubric_loads() {
    let r = Rubric::parse(Path::new("x.toml"), GOOD).unwrap();
    assert_eq!(r.id, "core.copy");
    assert_eq!(r.criteria.len(), 3);
    assert_eq!(r.total_weight(), 6.0);
    assert_eq!(r.version.len(), 16);
}

#[test]
fn each_bad_field_is_named_with_the_fix() {
    check(
        "weight = 1\n",
        "weight = 0\n",
        "rubrics/core/copy.toml: criteria[2].weight: must be > 0",
    );
    check(
        "id = \"two\"",
        "id = \"one\"",
        "rubrics/core/copy.toml: criteria[1].id: `one` repeats criteria[0].id; ids must be unique",
    );
    check(
        "id = \"core.copy\"",
        "id = \"Core Copy\"",
        "rubrics/core/copy.toml: id: must be `<topic>.<slug>` in lowercase letters, digits and dashes, e.g. `core.copy`",
    );
    check(
        "topic = \"core\"",
        "topic = \"oop\"",
        "rubrics/core/copy.toml: topic: must be the part of the id before the dot (`core`)",
    );
    check(
        "max_score = 10",
        "max_score = 0",
        "rubrics/core/copy.toml: max_score: must be > 0 (the seed set uses 10)",
    );
    check(
        "score = 9",
        "score = 11",
        "rubrics/core/copy.toml: exemplars[0].score: must be within 0..=10",
    );
    check(
        "penalty = 2",
        "penalty = -1",
        "rubrics/core/copy.toml: misconceptions[0].penalty: must be between 0 and max_score",
    );
    check(
        "point = \"A deep copy copies recursively.\"",
        "point = \"  \"",
        "rubrics/core/copy.toml: criteria[1].point: must not be empty: state the point a correct answer makes",
    );
    check(
        "text = \"An excellent answer.\"",
        "text = \"\"",
        "rubrics/core/copy.toml: model_answers[0].text: must not be empty",
    );
    check(
        "rationale = \"Covers all.\"",
        "rationale = \"\"",
        "rubrics/core/copy.toml: exemplars[0].rationale: must not be empty: say why it earns its score",
    );
}

#[test]
fn too_few_criteria_and_no_model_answer() {
    let start = GOOD.find("[[criteria]]\nid = \"two\"").unwrap();
    let end = GOOD.find("[[misconceptions]]").unwrap();
    let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let errs = errors_of(&text);
    assert!(
        errs.contains(
            &"rubrics/core/copy.toml: criteria: needs at least 3 [[criteria]] (has 1)".to_string()
        ),
        "{errs:#?}"
    );
    let start = GOOD.find("[[model_answers]]").unwrap();
    let end = GOOD.find("[[exemplars]]").unwrap();
    let errs = errors_of(&format!("{}{}", &GOOD[..start], &GOOD[end..]));
    assert!(errs.contains(&"rubrics/core/copy.toml: model_answers: needs at least one [[model_answers]] with an excellent answer".to_string()), "{errs:#?}");
}

#[test]
fn unknown_keys_and_bad_toml_name_the_file() {
    let errs = errors_of(&GOOD.replace("level = \"mid\"", "level = \"mid\"\ncolour = \"red\""));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("rubrics/core/copy.toml: ") && errs[0].contains("colour"),
        "{errs:?}"
    );
    let errs = errors_of("id = \"x\n");
    assert!(errs[0].starts_with("rubrics/core/copy.toml: "), "{errs:?}");
    let errs = errors_of(&GOOD.replace("kind = \"concept\"", "kind = \"essay\""));
    assert!(
        errs[0].contains("essay") && errs[0].contains("concept"),
        "lists the allowed kinds: {errs:?}"
    );
}

#[test]
fn duplicate_ids_across_files_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("core")).unwrap();
    std::fs::write(dir.path().join("core/a.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("core/b.toml"), GOOD).unwrap();
    let err = Catalog::load_dir(dir.path()).unwrap_err().to_string();
    let a = dir.path().join("core/a.toml").display().to_string();
    let b = dir.path().join("core/b.toml").display().to_string();
    assert_eq!(
        err,
        format!("duplicate rubric id `core.copy` in {a} and {b}: ids must be unique, rename one")
    );
}

#[test]
fn every_error_in_a_set_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        GOOD.replace("weight = 1\n", "weight = 0\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        GOOD.replace("core.copy", "core.other")
            .replace("score = 9", "score = 99"),
    )
    .unwrap();
    let errs = Catalog::load_dir(dir.path()).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
    let err = Catalog::load_dir(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rubrics_dir"), "{err}");
}

#[test]
fn shipped_rubrics_cover_the_seed_questions_exactly() {
    let catalog = crate::common::catalog(Rubrics::Shipped);
    let want: BTreeSet<String> = std::fs::read_to_string(data("seed-ids.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(want.len(), 55);
    let have: BTreeSet<String> = catalog.ids().map(str::to_string).collect();
    assert_eq!(have, want, "rubric ids differ from tests/data/seed-ids.txt");
    // The seed list itself, when the shared folder is beside the checkout.
    if let Ok(seed) = std::fs::read_to_string(root().join("../shared/seed-questions.md")) {
        for id in &want {
            assert!(
                seed.contains(&format!("| {id} |")),
                "{id} is not in shared/seed-questions.md"
            );
        }
    }
    for r in catalog.iter() {
        let file = catalog.file_of(&r.id).unwrap();
        assert_eq!(
            file,
            root()
                .join("rubrics")
                .join(&r.topic)
                .join(format!("{}.toml", r.id.split('.').nth(1).unwrap())),
            "file layout"
        );
    }
}

#[test]
fn shipped_rubrics_meet_the_quality_bar() {
    let catalog = crate::common::catalog(Rubrics::Shipped);
    let mut problems = Vec::new();
    for r in catalog.iter() {
        problems.extend(
            r.lint_quality(catalog.file_of(&r.id).unwrap())
                .into_iter()
                .map(|e| e.to_string()),
        );
        assert_eq!(r.max_score, 10.0, "{}", r.id);
        assert!(
            r.model_answers
                .iter()
                .all(|m| m.text.split_whitespace().count() >= 60),
            "{}: model answers should be complete answers",
            r.id
        );
        if r.kind == grader::rubric::RubricKind::Coding {
            assert!(
                r.model_answers.iter().any(|m| m.text.contains("```")),
                "{}: coding rubrics carry a model solution",
                r.id
            );
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn labelled_set_parses_and_references_rubrics() {
    let catalog = crate::common::catalog(Rubrics::Shipped);
    let text = std::fs::read_to_string(data("labelled.jsonl")).unwrap();
    let (items, bad) = grader::eval::parse_items(&text);
    assert!(bad.is_empty(), "{bad:?}");
    assert!(items.len() >= 200, "{} items", items.len());
    let mut questions = BTreeSet::new();
    let mut scores = BTreeSet::new();
    for (line, item) in &items {
        let id = item
            .question_id
            .as_deref()
            .unwrap_or_else(|| panic!("line {line}: no question_id"));
        assert!(
            catalog.get(id).is_some(),
            "line {line}: unknown question id {id}"
        );
        assert!(
            item.reason.as_deref().is_some_and(|r| !r.is_empty()),
            "line {line}: no reason"
        );
        questions.insert(id.to_string());
        scores.insert(item.score as i64);
        // Written for the purpose: not a copy of an exemplar or model answer.
        let r = catalog.get(id).unwrap();
        let a = item.answer.trim();
        assert!(
            r.exemplars.iter().all(|e| e.answer.trim() != a)
                && r.model_answers.iter().all(|m| m.text.trim() != a),
            "line {line} copies the rubric"
        );
    }
    assert!(questions.len() >= 40, "{} questions", questions.len());
    assert!(
        scores.contains(&0) && scores.contains(&10) && scores.len() >= 9,
        "scores cover the range: {scores:?}"
    );
}
