//! The loop closes: grades reviewed by people make the next grades better. Grades of the
//! labelled set are stored and reviewed with their human scores; `calibrate --from-reviews`
//! refits on half of each rubric's reviews; agreement with the other half rises. Also the
//! eval export.

use std::sync::Arc;

use grader::audit::learn::{self, FromReviews};
use grader::audit::{Audit, Origin, ReviewInput, Source, Via};
use grader::config::JudgeKind;
use grader::judge::Calibration;
use grader::judge::calibration::Thresholds;

use crate::common::{Rubrics, data, engine_with};

/// Grade `items`, store each grade, and review it with the item's human score.
async fn graded_and_reviewed(
    engine: &grader::engine::Engine,
    audit: &Audit,
    items: &[(usize, grader::eval::EvalItem)],
) {
    for (_, item) in items {
        let req = item.request(Some(JudgeKind::Coverage));
        let g = engine.grade(&req).await.unwrap();
        audit.record_grade(
            Origin::new(Source::new(Via::Api)),
            &req.question,
            &req.answer,
            &g,
        );
        audit.flush().await;
        let human = (item.score / item.scale_max) as f32 * g.max_score;
        audit
            .store()
            .add_review(
                &g.id.to_string(),
                &ReviewInput {
                    criteria: vec![],
                    score_override: Some(human),
                    note: item.reason.clone().unwrap_or_default(),
                    reviewer: "labelled-set".into(),
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn reviews_close_the_loop() {
    // A deployment whose thresholds were never fitted to its graders' standard: the defaults.
    let start = Calibration {
        thresholds: Thresholds::default(),
        fit: Default::default(),
        adhoc_thresholds: None,
        adhoc_fit: None,
        adhoc_short_thresholds: None,
        adhoc_short_fit: None,
        rubrics: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut settings = None;
    let engine = engine_with(Rubrics::Shipped, |s| {
        s.data_dir = dir.path().to_path_buf();
        s.judge.kind = JudgeKind::Coverage;
        settings = Some(s.clone());
    })
    .await
    .with_calibration(start.clone());
    let audit = Arc::new(Audit::open(&settings.unwrap(), dir.path()).await.unwrap());
    let text = std::fs::read_to_string(data("labelled.jsonl")).unwrap();
    let (items, bad) = grader::eval::parse_items(&text);
    assert!(bad.is_empty());
    // Every other rubric of the labelled set keeps the test within a CI budget; the split is
    // still by review within each rubric, as the command does it.
    let mut rubrics: Vec<String> = items.iter().map(|(_, i)| i.group()).collect();
    rubrics.sort();
    rubrics.dedup();
    let keep: Vec<&String> = rubrics.iter().step_by(LOOP_RUBRIC_STEP).collect();
    let items: Vec<_> = items
        .into_iter()
        .filter(|(_, i)| keep.contains(&&i.group()))
        .collect();
    graded_and_reviewed(&engine, &audit, &items).await;
    let answers = audit.store().reviewed_answers().await.unwrap();
    assert_eq!(answers.len(), items.len());

    let opts = FromReviews {
        holdout: 0.5,
        min_per_rubric: 1000,
        judge: Some(JudgeKind::Coverage),
        command: "grader calibrate --from-reviews".into(),
    };
    let started = std::time::Instant::now();
    let (engine, report) = learn::calibrate_from_reviews(engine, &answers, &opts)
        .await
        .unwrap();
    eprintln!(
        "loop: {} reviews over {} rubrics, fitted on {}, held out {} ({:.0} s): pearson {:.3} -> {:.3}, qwk {:.3} -> {:.3}, mae {:.2} -> {:.2}",
        report.usable,
        keep.len(),
        report.fitted_on,
        report.held_out,
        started.elapsed().as_secs_f64(),
        report.before.pearson,
        report.after.pearson,
        report.before.qwk,
        report.after.qwk,
        report.before.mae,
        report.after.mae
    );
    assert_eq!(report.fitted_on + report.held_out, items.len());
    assert!(report.held_out * 3 >= items.len(), "about half held out");
    assert!(
        report.after.pearson > report.before.pearson,
        "held-out pearson rises: {:.3} -> {:.3}",
        report.before.pearson,
        report.after.pearson
    );
    assert!(
        report.after.qwk > report.before.qwk,
        "held-out QWK rises: {:.3} -> {:.3}",
        report.before.qwk,
        report.after.qwk
    );
    assert!(report.improved());
    assert_eq!(
        engine.calibration(),
        &start,
        "measuring the refit leaves the engine as it was"
    );
    assert_ne!(report.calibration.thresholds, start.thresholds);
}

/// Every LOOP_RUBRIC_STEP-th rubric of the labelled set goes into the loop test.
const LOOP_RUBRIC_STEP: usize = 2;

#[tokio::test]
async fn reviews_export_as_eval_jsonl_and_a_rubrics_own_thresholds_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = None;
    let engine = engine_with(Rubrics::Fixture, |s| {
        s.data_dir = dir.path().to_path_buf();
        settings = Some(s.clone());
    })
    .await;
    let audit = Audit::open(&settings.unwrap(), dir.path()).await.unwrap();
    let items: Vec<(usize, grader::eval::EvalItem)> = [
        (
            "A shallow copy shares nested objects; deepcopy copies them recursively.",
            6.0,
        ),
        ("copy.copy copies the outer list only.", 3.0),
    ]
    .iter()
    .enumerate()
    .map(|(i, (a, s))| {
        (
            i + 1,
            grader::eval::EvalItem {
                question_id: Some("core.copy".into()),
                question: None,
                reference_answer: None,
                reference_answers: Vec::new(),
                answer: a.to_string(),
                score: *s,
                scale_max: 10.0,
                reason: Some(format!("note {i}")),
            },
        )
    })
    .collect();
    graded_and_reviewed(&engine, &audit, &items).await;
    let answers = audit.store().reviewed_answers().await.unwrap();
    let jsonl = learn::export_jsonl(&answers);
    let (back, bad) = grader::eval::parse_items(&jsonl);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(back.len(), 2);
    for ((_, want), (_, got)) in items.iter().zip(&back) {
        assert_eq!(got.question_id, want.question_id);
        assert_eq!(got.answer, want.answer);
        assert_eq!(got.score, want.score);
        assert_eq!(got.scale_max, 10.0);
        assert_eq!(got.reason, want.reason);
    }
    // A rubric's own thresholds (fitted from its reviews) apply to it and to no other.
    let answer = &items[0].1.answer;
    let req = items[0].1.request(Some(JudgeKind::Coverage));
    let before = engine.grade(&req).await.unwrap();
    let mut cal = engine.calibration().clone();
    let mut strict = cal.thresholds;
    strict.met = 1.5;
    strict.partial = 1.4;
    cal.rubrics.insert(
        "core.copy".into(),
        grader::judge::calibration::RubricCalibration {
            thresholds: strict,
            fit: Default::default(),
        },
    );
    let old = engine.calibration().clone();
    let engine = engine.with_calibration(cal);
    let after = engine.grade(&req).await.unwrap();
    assert!(before.score > 0.0, "{answer}");
    assert_eq!(after.score, 0.0, "core.copy's own thresholds are used");
    let engine = engine.with_calibration(old);
    // Too few reviews to refit: a clear error, not a bad fit.
    let opts = FromReviews {
        holdout: 0.5,
        min_per_rubric: 20,
        judge: None,
        command: "test".into(),
    };
    let err = learn::calibrate_from_reviews(engine, &answers, &opts)
        .await
        .err()
        .expect("too few");
    assert!(err.to_string().contains("at least"), "{err}");
}
