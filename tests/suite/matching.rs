//! Question matching over the shipped rubric set, and index persistence.

use grader::engine::Engine;

use crate::common::{Rubrics, copy_dir, data, data_dir_from_snapshot, engine, root, settings};

#[derive(serde::Deserialize)]
struct Paraphrase {
    question_id: String,
    question: String,
}

/// Paraphrases written for the test (not the rubric aliases) find their rubric.
#[tokio::test]
async fn paraphrases_match_their_rubric() {
    let e = engine().await;
    let items: Vec<Paraphrase> = crate::common::jsonl("paraphrases.jsonl");
    assert!(items.len() >= 100);
    let cat = crate::common::catalog(Rubrics::Shipped);
    let mut top1 = 0;
    let mut matched = 0;
    let mut misses = Vec::new();
    for p in &items {
        assert!(
            cat.get(&p.question_id).is_some(),
            "unknown id {}",
            p.question_id
        );
        // Not an alias copied from the rubric.
        let r = cat.get(&p.question_id).unwrap();
        assert!(
            !r.aliases
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&p.question))
                && !r.question.eq_ignore_ascii_case(&p.question),
            "{} is a rubric alias",
            p.question
        );
        let m = e.match_question(&p.question).await.unwrap();
        if m.candidates
            .first()
            .is_some_and(|c| c.rubric_id == p.question_id)
        {
            top1 += 1;
        }
        if m.rubric_id.as_deref() == Some(p.question_id.as_str()) {
            matched += 1;
        } else {
            misses.push(format!(
                "{} ({:.2}, got {:?}): {}",
                p.question_id, m.similarity, m.rubric_id, p.question
            ));
        }
    }
    let n = items.len() as f64;
    eprintln!(
        "paraphrases: top-1 {:.1}%, matched above threshold {:.1}%",
        top1 as f64 / n * 100.0,
        matched as f64 / n * 100.0
    );
    assert!(top1 as f64 / n >= 0.9, "top-1 {top1}/{n}: {misses:#?}");
    assert!(
        matched as f64 / n >= 0.9,
        "matched {matched}/{n}: {misses:#?}"
    );
}

/// Questions from other fields are not forced onto a rubric.
#[tokio::test]
async fn off_topic_questions_match_nothing() {
    let e = engine().await;
    let text = std::fs::read_to_string(data("offtopic-questions.txt")).unwrap();
    let qs: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(qs.len() >= 20);
    let mut forced = Vec::new();
    for q in &qs {
        let m = e.match_question(q).await.unwrap();
        assert!(
            !m.candidates.is_empty(),
            "candidates are listed even when nothing matches"
        );
        if m.rubric_id.is_some() {
            forced.push(format!("{q} → {:?} ({:.2})", m.rubric_id, m.similarity));
        }
    }
    assert!(forced.is_empty(), "{forced:#?}");
}

/// The embedded store persists the index: a restart re-embeds nothing, and a changed rubric is
/// the only one re-indexed. (The data dir starts as a copy of the suite's index snapshot,
/// itself built cold by `index_catalog`; opening it is the restart.)
#[tokio::test]
async fn restart_keeps_the_index_and_reindexes_only_changes() {
    let dir = tempfile::tempdir().unwrap();
    let rubrics = dir.path().join("rubrics");
    copy_dir(&root().join("rubrics"), &rubrics);
    data_dir_from_snapshot(&dir.path().join("data")).await;
    let open = || async {
        let mut s = settings();
        s.data_dir = dir.path().join("data");
        s.rubrics_dir = rubrics.clone();
        s.judge.calibration = root().join("config/calibration.toml");
        Engine::open(s, dir.path()).await.unwrap()
    };
    let restarted = open().await;
    assert_eq!(restarted.index_report().unchanged, 55);
    assert_eq!(
        restarted.index_report().points_written,
        0,
        "nothing re-embedded after a restart"
    );
    let q = "When should I reach for deepcopy instead of copy?";
    // Same rubric and same candidates; similarities equal up to float rounding (the vectors
    // come back from disk, the reference engine's may come from a different batch shape).
    let after = restarted.match_question(q).await.unwrap();
    let before = engine().await.match_question(q).await.unwrap();
    assert_eq!(
        after.rubric_id, before.rubric_id,
        "same match after a restart"
    );
    let ids = |m: &grader::matching::MatchResult| {
        m.candidates
            .iter()
            .map(|c| c.rubric_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(&before), "same candidates after a restart");
    for (a, b) in after.candidates.iter().zip(&before.candidates) {
        assert!(
            (a.similarity - b.similarity).abs() < 1e-5,
            "{}: {} after a restart, {} before",
            a.rubric_id,
            a.similarity,
            b.similarity
        );
    }
    drop(restarted);
    let file = rubrics.join("core/copy.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(
            "aliases = [",
            "aliases = [\"How do copies of nested lists behave?\", ",
            1,
        ),
    )
    .unwrap();
    std::fs::remove_file(rubrics.join("oop/mro.toml")).unwrap();
    let third = open().await;
    assert_eq!(third.index_report().updated, vec!["core.copy".to_string()]);
    assert_eq!(third.index_report().removed, vec!["oop.mro".to_string()]);
    assert_eq!(third.index_report().unchanged, 53);
    let m = third
        .match_question("What is the method resolution order in multiple inheritance?")
        .await
        .unwrap();
    assert!(
        m.candidates.iter().all(|c| c.rubric_id != "oop.mro"),
        "a removed rubric is gone from the index"
    );
}

/// Retrieval for the judges: references of one rubric ranked by similarity to an answer.
#[tokio::test]
async fn retrieval_filters_by_rubric_and_kind() {
    let e = engine().await;
    let answer = grader::embed::Embedder::embed(e.embedder(), &["Reference counting frees objects when the count hits zero; the cyclic GC handles cycles.".to_string()]).await.unwrap().remove(0);
    let f = grader::store::Filter::rubric("core.memory-management").kinds(&["exemplar"]);
    let hits = e
        .store()
        .search(&e.collections().references, &answer, &f, 3)
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter()
            .all(|h| h.payload.rubric_id == "core.memory-management"
                && h.payload.kind == "exemplar"
                && h.payload.score.is_some())
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
}
