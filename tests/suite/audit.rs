//! The audit store: one conformance suite run on SQLite (always) and on a real PostgreSQL
//! (`GRADER_TEST_DATABASE_URL`, which `.ci/run` starts), the write path under failure, and the
//! migrations checked in.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use grader::audit::{
    Audit, AuditStore, CriterionVerdict, ListQuery, Location, MIGRATIONS, Order, Origin,
    QueueReason, ReviewInput, Source, TranscriptRecord, Via, Write,
};
use grader::config::{ReviewSettings, Settings};
use grader::engine::QuestionRef;
use grader::grade::{CriterionResult, Flag, Grade, JudgeInfo, MisconceptionResult, Usage, Verdict};
use grader::judge::Calibration;

use crate::common::required_env;

/// A grade to store: `score` of 10, the flags given, four criteria.
pub fn grade(rubric: &str, score: f32, flags: &[Flag]) -> Grade {
    let criteria = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, id)| CriterionResult {
            id: id.to_string(),
            verdict: if (i as f32) < score / 2.5 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
            weight: 1.0 + i as f32,
            evidence: format!("quote {id}"),
            evidence_verified: true,
            reason: format!("reason {id}"),
            credit: None,
        })
        .collect();
    Grade {
        id: uuid::Uuid::now_v7(),
        rubric_id: rubric.into(),
        question: format!("What is {rubric}?"),
        score,
        max_score: 10.0,
        criteria,
        misconceptions: vec![MisconceptionResult {
            id: "m".into(),
            evidence: "quote m".into(),
            penalty: 1.0,
        }],
        gaps: vec!["Missing: c.".into()],
        feedback: "Fine.".into(),
        judge: JudgeInfo {
            kind: grader::config::JudgeKind::Coverage,
            model: "all-MiniLM-L6-v2/256".into(),
            samples: 1,
            agreement: 1.0,
        },
        flags: flags.to_vec(),
        usage: Usage::default(),
        latency_ms: 12,
        rubric_version: "v1".into(),
    }
}

fn review_settings() -> ReviewSettings {
    crate::common::settings().review
}

/// A record with an explicit time (ties on purpose: pagination must still be exact).
fn record(g: &Grade, at: i64, via: Via, candidate: Option<&str>) -> Write {
    let origin = Origin::new(Source::new(via))
        .request_id(Some(format!("req-{}", g.id)))
        .candidate(candidate.map(str::to_string));
    let mut r = grader::audit::GradeRecord::new(
        origin,
        &QuestionRef::Id(g.rubric_id.clone()),
        &format!("answer about {}", g.rubric_id),
        g,
    );
    r.created_at = at;
    r.reasons = QueueReason::of(g, &review_settings());
    Write::Grade(Box::new(r))
}

fn ids(page: &grader::audit::Page) -> Vec<String> {
    page.items.iter().map(|g| g.id.clone()).collect()
}

/// Every page of a query, following the cursors.
async fn all_pages(store: &AuditStore, mut q: ListQuery) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let page = store.list(&q).await.unwrap();
        assert!(page.items.len() <= q.limit);
        out.extend(ids(&page));
        match page.next_cursor {
            Some(c) => q.cursor = Some(grader::audit::Cursor::decode(&c).expect("own cursor")),
            None => return out,
        }
    }
}

/// What both backends must do, the same way.
pub async fn conformance(location: Location) {
    // Opening twice runs the migrations once.
    drop(AuditStore::open(&location).await.unwrap());
    let store = AuditStore::open(&location).await.unwrap();
    store.ready().await.unwrap();

    // 30 grades over three rubrics; times tie in threes.
    let base = 1_767_225_600_000; // 2026-01-01
    let mut grades = Vec::new();
    for i in 0..30 {
        let rubric = ["core.copy", "core.gil", "oop.mro"][i % 3];
        let flags: &[Flag] = match i % 5 {
            0 => &[Flag::JudgesDisagree],
            1 => &[Flag::EvidenceUnverified],
            2 => &[Flag::InjectionSuspected, Flag::EvidenceUnverified],
            _ => &[],
        };
        let g = grade(rubric, [2.0, 6.0, 9.5][i % 3], flags);
        let at = base + (i as i64 / 3) * 1000;
        let via = if i % 4 == 0 { Via::Slack } else { Via::Api };
        grades.push((g, at, via, (i % 2 == 0).then_some("cand-even")));
    }
    let writes: Vec<Write> = grades
        .iter()
        .map(|(g, at, via, c)| record(g, *at, *via, *c))
        .collect();
    store.write(&writes[..10]).await.unwrap();
    store.write(&writes[10..]).await.unwrap();
    // Writing again (a retry after a lost acknowledgement) changes nothing.
    store.write(&writes[..3]).await.unwrap();

    // Get: the grade exactly as returned, with where it came from.
    let (g0, at0, ..) = &grades[0];
    let got = store
        .get(&g0.id.to_string())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(&got.grade, g0, "the stored grade is the grade returned");
    assert_eq!(got.source.via, Via::Slack);
    assert_eq!(got.candidate.as_deref(), Some("cand-even"));
    assert_eq!(got.answer.as_deref(), Some("answer about core.copy"));
    assert_eq!(got.question, "What is core.copy?");
    assert_eq!(got.request_id, Some(format!("req-{}", g0.id)));
    assert_eq!(got.created_at, grader::audit::time::to_rfc3339(*at0));
    assert_eq!(got.reasons, vec![QueueReason::JudgesDisagree]);
    assert!(got.reviews.is_empty() && got.stored);
    assert!(
        store
            .get(&uuid::Uuid::now_v7().to_string())
            .await
            .unwrap()
            .is_none()
    );

    // Newest first, exact across pages even where times tie.
    let mut want: Vec<(i64, String)> = grades
        .iter()
        .map(|(g, at, ..)| (*at, g.id.to_string()))
        .collect();
    want.sort_by(|a, b| b.cmp(a));
    let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
    let q = ListQuery {
        limit: 4,
        ..ListQuery::default()
    };
    assert_eq!(
        all_pages(&store, q).await,
        want,
        "keyset pages: no gaps, no repeats"
    );

    // Filters, each alone and together.
    let count = |q: ListQuery| {
        let store = &store;
        async move { all_pages(store, ListQuery { limit: 7, ..q }).await.len() }
    };
    assert_eq!(
        count(ListQuery {
            rubric_id: Some("core.gil".into()),
            ..ListQuery::default()
        })
        .await,
        10
    );
    assert_eq!(
        count(ListQuery {
            flag: Some(Flag::EvidenceUnverified),
            ..ListQuery::default()
        })
        .await,
        12
    );
    assert_eq!(
        count(ListQuery {
            flag: Some(Flag::InjectionSuspected),
            rubric_id: Some("core.copy".into()),
            ..ListQuery::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(ListQuery {
            via: Some(Via::Slack),
            ..ListQuery::default()
        })
        .await,
        8
    );
    assert_eq!(
        count(ListQuery {
            candidate: Some("cand-even".into()),
            ..ListQuery::default()
        })
        .await,
        15
    );
    assert_eq!(
        count(ListQuery {
            since: Some(base + 5000),
            ..ListQuery::default()
        })
        .await,
        15
    );
    assert_eq!(
        count(ListQuery {
            since: Some(base + 5000),
            until: Some(base + 7000),
            ..ListQuery::default()
        })
        .await,
        6
    );
    assert_eq!(
        count(ListQuery {
            reviewed: Some(true),
            ..ListQuery::default()
        })
        .await,
        0
    );

    // The queue: priority first (judges disagree > injection > unverified > near the boundary),
    // then newest.
    let queue = all_pages(
        &store,
        ListQuery {
            order: Order::Queue,
            limit: 5,
            ..ListQuery::default()
        },
    )
    .await;
    assert_eq!(queue.len(), 30);
    let prio: Vec<i64> = {
        let mut p = Vec::new();
        let mut q = ListQuery {
            order: Order::Queue,
            limit: 200,
            ..ListQuery::default()
        };
        q.cursor = None;
        for g in store.list(&q).await.unwrap().items {
            p.push(g.priority);
        }
        p
    };
    assert!(
        prio.windows(2).all(|w| w[0] >= w[1]),
        "queue order: {prio:?}"
    );
    let first = store.get(&queue[0]).await.unwrap().unwrap();
    assert!(
        first.grade.flags.contains(&Flag::JudgesDisagree),
        "{:?}",
        first.grade.flags
    );
    // Score 6.0 on a pass mark of 0.6 ± 0.1: near the boundary.
    let near = grades
        .iter()
        .find(|(g, ..)| g.score == 6.0 && g.flags.is_empty())
        .unwrap();
    let near = store.get(&near.0.id.to_string()).await.unwrap().unwrap();
    assert_eq!(near.reasons, vec![QueueReason::NearBoundary]);

    // Reviews: beside the machine's grade, never over it.
    let target = &grades[13].0; // core.gil, 6.0, no flags, 2026-01-01T00:00:04Z
    let id = target.id.to_string();
    let bad = ReviewInput {
        criteria: vec![CriterionVerdict {
            id: "zzz".into(),
            verdict: Verdict::Met,
        }],
        score_override: None,
        note: String::new(),
        reviewer: "ana".into(),
    };
    match store.add_review(&id, &bad).await {
        Err(grader::audit::AddReviewError::Invalid(e)) => assert_eq!(e.field, "criteria[0].id"),
        other => panic!("{other:?}"),
    }
    let missing = uuid::Uuid::now_v7().to_string();
    assert!(matches!(
        store.add_review(&missing, &bad).await,
        Err(grader::audit::AddReviewError::NotFound(_))
    ));
    let input = ReviewInput {
        criteria: vec![
            CriterionVerdict {
                id: "c".into(),
                verdict: Verdict::Met,
            },
            CriterionVerdict {
                id: "d".into(),
                verdict: Verdict::Partial,
            },
        ],
        score_override: None,
        note: "Knows c; d half right.".into(),
        reviewer: "ana".into(),
    };
    let r1 = store.add_review(&id, &input).await.unwrap();
    // a, b met (machine), c met, d partial: (1+2+3+2)/10 × 10 − 1 penalty = 7.0
    assert_eq!(r1.human_score, 7.0);
    assert_eq!(r1.criteria.len(), 4);
    let second = ReviewInput {
        criteria: vec![],
        score_override: Some(8.5),
        note: "On reflection, better.".into(),
        reviewer: "ben".into(),
    };
    let r2 = store.add_review(&id, &second).await.unwrap();
    let after = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        &after.grade, target,
        "the machine's grade is never overwritten"
    );
    assert_eq!(after.reviews.len(), 2);
    assert_eq!(after.reviews[0].id, r1.id);
    assert_eq!(after.reviews[1], r2);
    assert_eq!(after.reviews[1].human_score, 8.5);
    let reviewed = store
        .list(&ListQuery {
            reviewed: Some(true),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&reviewed), vec![id.clone()]);
    assert_eq!(
        reviewed.items[0].human_score,
        Some(8.5),
        "the latest review counts"
    );
    assert_eq!(reviewed.items[0].reviews, 2);
    let unreviewed = count(ListQuery {
        reviewed: Some(false),
        ..ListQuery::default()
    })
    .await;
    assert_eq!(unreviewed, 29);

    // Counts for the queue's header.
    let c = store.counts(None).await.unwrap();
    assert_eq!((c.grades, c.reviewed, c.unreviewed), (30, 1, 29));
    let flagged_unreviewed = grades
        .iter()
        .filter(|(g, ..)| g.id.to_string() != id)
        .filter(|(g, ..)| !QueueReason::of(g, &review_settings()).is_empty())
        .count();
    assert_eq!(c.queue, flagged_unreviewed);
    assert_eq!(c.by_reason["judges_disagree"], 6);
    let gil = store.counts(Some("core.gil")).await.unwrap();
    assert_eq!((gil.grades, gil.reviewed), (10, 1));

    // Agreement per rubric, from the latest review.
    let pairs = store.reviewed(None).await.unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].review.human_score, 8.5);
    let a = grader::audit::agreement(&pairs);
    assert_eq!(a[0].rubric_id, "core.gil");
    assert!((a[0].mae - 2.5).abs() < 1e-6, "{}", a[0].mae);

    // What learning reads: reviewed answers with the latest score and note.
    let answers = store.reviewed_answers().await.unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].human_score, 8.5);
    assert_eq!(answers[0].note, "On reflection, better.");
    assert_eq!(answers[0].answer, "answer about core.gil");

    // Transcripts: the report, and a grade per graded pair pointing back at it.
    let report = transcript_report(&[grade("core.copy", 7.0, &[]), grade("core.gil", 3.0, &[])]);
    let t = TranscriptRecord::new(
        Origin::new(Source::new(Via::Batch)).candidate(Some("jordan".into())),
        &report,
    );
    let tid = t.id.to_string();
    store
        .write(&[Write::Transcript(Box::new(t))])
        .await
        .unwrap();
    let pairs = all_pages(
        &store,
        ListQuery {
            transcript_id: Some(tid.clone()),
            limit: 10,
            ..ListQuery::default()
        },
    )
    .await;
    assert_eq!(pairs.len(), 2);
    let p = store.get(&pairs[0]).await.unwrap().unwrap();
    assert_eq!(p.source.transcript_id.as_deref(), Some(tid.as_str()));
    assert!(p.source.pair_index.is_some());
    assert_eq!(p.candidate.as_deref(), Some("jordan"));
    let stored = store
        .transcript(&tid)
        .await
        .unwrap()
        .expect("report stored");
    assert_eq!(stored["file"], "interview.txt");

    // Purge: one candidate, then everything before a time; reviews go with their grades.
    let purged = store.purge(None, Some("jordan")).await.unwrap();
    assert_eq!((purged.grades, purged.transcripts), (2, 1));
    assert!(store.transcript(&tid).await.unwrap().is_none());
    let purged = store.purge(Some(base + 2000), None).await.unwrap();
    assert_eq!(purged.grades, 6);
    let purged = store.purge(Some(base + 100_000), None).await.unwrap();
    assert_eq!((purged.grades, purged.reviews), (24, 2));
    assert_eq!(
        purged.reviewed_grade_ids,
        vec![(id.clone(), "core.gil".to_string())]
    );
    assert_eq!(store.counts(None).await.unwrap().grades, 0);
    assert!(store.get(&id).await.unwrap().is_none());
}

fn transcript_report(grades: &[Grade]) -> grader::transcript::TranscriptReport {
    let pairs = grades
        .iter()
        .enumerate()
        .map(|(i, g)| grader::transcript::PairReport {
            index: i,
            question: g.question.clone(),
            follow_ups: vec![],
            answer: format!("answer {i}"),
            line: i * 2 + 1,
            start: None,
            rubric_id: Some(g.rubric_id.clone()),
            topic: Some("core".into()),
            similarity: 0.9,
            candidates: vec![],
            grade: Some(g.clone()),
            error: None,
        })
        .collect();
    grader::transcript::TranscriptReport {
        file: "interview.txt".into(),
        content_hash: "abc".into(),
        rubric_version: "v1".into(),
        format: grader::transcript::Format::Text,
        judge: grader::config::JudgeKind::Coverage,
        pairs,
        topics: vec![],
        overall: Some(5.0),
        strongest: vec![],
        weakest: vec![],
        key_gaps: vec!["Missing: c.".into()],
        unmatched: 0,
    }
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Location::Sqlite(dir.path().join("nested/grades.sqlite"))).await;
}

/// A fresh database on the server `GRADER_TEST_DATABASE_URL` points at (dropped afterwards),
/// so runs never see each other's rows.
async fn fresh_postgres() -> (String, impl std::future::Future<Output = ()>) {
    let url = required_env("GRADER_TEST_DATABASE_URL");
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at GRADER_TEST_DATABASE_URL: {e}"));
    tokio::spawn(conn);
    let name = format!("grader_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (head, _) = url.rsplit_once('/').expect("URL ends with /database");
    let db_url = format!("{head}/{name}");
    let drop = async move {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    };
    (db_url, drop)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GRADER_TEST_DATABASE_URL (.ci/run starts one)"]
async fn postgres_store_conforms() {
    let (url, drop) = fresh_postgres().await;
    conformance(Location::Postgres(url.into())).await;
    drop.await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set GRADER_TEST_DATABASE_URL (.ci/run starts one)"]
async fn postgres_replicas_migrate_at_once_and_share_grades() {
    let (url, drop) = fresh_postgres().await;
    // Two "replicas" start together on an empty database: one migrates, both work.
    let (la, lb) = (
        Location::Postgres(url.clone().into()),
        Location::Postgres(url.clone().into()),
    );
    let (a, b) = tokio::join!(AuditStore::open(&la), AuditStore::open(&lb));
    let (a, b) = (a.unwrap(), b.unwrap());
    let (ra, rb) = tokio::join!(a.ready(), b.ready());
    ra.unwrap();
    rb.unwrap();
    let g = grade("core.copy", 5.0, &[]);
    a.write(&[record(&g, 1, Via::Api, None)]).await.unwrap();
    let seen = b.get(&g.id.to_string()).await.unwrap().expect("shared");
    assert_eq!(seen.grade, g);
    drop.await;
}

#[test]
fn migrations_dir_matches_the_embedded_list() {
    let dir = crate::common::root().join("migrations");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    let embedded: Vec<(String, String)> = MIGRATIONS
        .iter()
        .map(|(_, name, sql)| (name.to_string(), sql.to_string()))
        .collect();
    assert_eq!(
        files, embedded,
        "every file in migrations/ is in audit::db::MIGRATIONS, in order"
    );
    for (i, (version, name, _)) in MIGRATIONS.iter().enumerate() {
        assert_eq!(*version, i as i64 + 1);
        assert!(name.starts_with(&format!("{version:04}_")), "{name}");
    }
}

// ---- the write path ------------------------------------------------------------------------

fn settings_for(dir: &Path, tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = crate::common::settings();
    s.data_dir = dir.to_path_buf();
    tweak(&mut s);
    s
}

/// Make the SQLite store fail (its table gone) or work again, from another connection.
fn break_store(file: &Path, broken: bool) {
    let c = rusqlite::Connection::open(file).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let sql = if broken {
        "ALTER TABLE grades RENAME TO grades_away"
    } else {
        "ALTER TABLE grades_away RENAME TO grades"
    };
    c.execute_batch(sql).unwrap();
}

fn rows(file: &Path) -> i64 {
    let c = rusqlite::Connection::open(file).unwrap();
    c.query_row("SELECT COUNT(*) FROM grades", [], |r| r.get(0))
        .unwrap()
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn origin() -> Origin {
    Origin::new(Source::new(Via::Api))
}

#[tokio::test]
async fn failed_writes_are_retried_until_the_store_is_back() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), |_| {});
    let audit = Audit::open(&settings, dir.path()).await.unwrap();
    let file = dir.path().join("grades.sqlite");
    break_store(&file, true);
    let g = grade("core.copy", 5.0, &[]);
    let started = std::time::Instant::now();
    audit.record_grade(
        origin(),
        &QuestionRef::Id("core.copy".into()),
        "an answer",
        &g,
    );
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "recording never waits for the store"
    );
    wait_for("a failed write", || {
        audit.stats().write_errors.load(Relaxed) >= 1
    })
    .await;
    // Still readable while it waits: from the queue.
    let pending = audit.get(&g.id.to_string()).await.unwrap().expect("queued");
    assert!(!pending.stored);
    assert_eq!(pending.grade, g);
    assert!(audit.is_pending(&g.id.to_string()));
    assert_eq!(audit.stats().queued.load(Relaxed), 1);
    break_store(&file, false);
    wait_for("the retried write", || {
        audit.stats().written.load(Relaxed) == 1
    })
    .await;
    assert_eq!(rows(&file), 1);
    assert_eq!(audit.stats().queued.load(Relaxed), 0);
    assert_eq!(audit.stats().dropped.load(Relaxed), 0);
    let stored = audit.get(&g.id.to_string()).await.unwrap().unwrap();
    assert!(stored.stored);
}

#[tokio::test]
async fn the_retry_queue_is_bounded_and_losses_are_counted() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), |s| s.store.write_queue = 4);
    let audit = Audit::open(&settings, dir.path()).await.unwrap();
    let file = dir.path().join("grades.sqlite");
    break_store(&file, true);
    for _ in 0..20 {
        let g = grade("core.copy", 5.0, &[]);
        audit.record_grade(
            origin(),
            &QuestionRef::Id("core.copy".into()),
            "an answer",
            &g,
        );
        // Let the writer take it and fail, so the retry queue (not only the channel) fills.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_for("losses", || audit.stats().dropped.load(Relaxed) > 0).await;
    break_store(&file, false);
    audit.close(Duration::from_secs(10)).await;
    let s = audit.stats();
    let written = s.written.load(Relaxed);
    let dropped = s.dropped.load(Relaxed);
    assert_eq!(
        written + dropped,
        20,
        "every grade is written or counted as lost"
    );
    assert!(
        (4..=8).contains(&written),
        "at most the queue and the retry queue survive: {written}"
    );
    assert_eq!(rows(&file) as u64, written);
}

#[tokio::test]
async fn close_flushes_what_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), |_| {});
    let audit = Arc::new(Audit::open(&settings, dir.path()).await.unwrap());
    let file = dir.path().join("grades.sqlite");
    break_store(&file, true);
    for _ in 0..25 {
        let g = grade("core.gil", 5.0, &[]);
        audit.record_grade(
            origin(),
            &QuestionRef::Id("core.gil".into()),
            "an answer",
            &g,
        );
    }
    // Shutdown begins while the store is down; it comes back a moment later.
    let f = file.clone();
    let healer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        break_store(&f, false);
    });
    let left = audit.close(Duration::from_secs(15)).await;
    healer.await.unwrap();
    assert_eq!(left, 0);
    assert_eq!(rows(&file), 25, "nothing queued is lost at shutdown");
}

#[tokio::test]
async fn answers_can_be_stored_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), |s| s.store.keep_answers = false);
    let audit = Audit::open(&settings, dir.path()).await.unwrap();
    let g = grade("core.copy", 5.0, &[]);
    audit.record_grade(
        origin(),
        &QuestionRef::Id("core.copy".into()),
        "secret answer",
        &g,
    );
    audit.flush().await;
    let stored = audit.get(&g.id.to_string()).await.unwrap().unwrap();
    assert!(stored.stored);
    assert_eq!(stored.answer, None);
    assert!(
        stored
            .grade
            .criteria
            .iter()
            .all(|c| c.evidence.is_empty() && c.reason.is_empty())
    );
    assert!(
        stored
            .grade
            .misconceptions
            .iter()
            .all(|m| m.evidence.is_empty())
    );
    assert!(stored.grade.gaps.is_empty() && stored.grade.feedback.is_empty());
    assert_eq!(stored.grade.score, g.score, "verdicts and scores are kept");
    let raw = std::fs::read(dir.path().join("grades.sqlite")).unwrap();
    let wal = std::fs::read(dir.path().join("grades.sqlite-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!String::from_utf8_lossy(&bytes).contains("secret answer"));
        assert!(!String::from_utf8_lossy(&bytes).contains("quote a"));
    }
    // Reviewable, but nothing to learn from: no answer to calibrate on or show as an exemplar.
    let input = ReviewInput {
        criteria: vec![],
        score_override: Some(3.0),
        note: String::new(),
        reviewer: "ana".into(),
    };
    audit
        .store()
        .add_review(&g.id.to_string(), &input)
        .await
        .unwrap();
    assert!(audit.store().reviewed_answers().await.unwrap().is_empty());
}

#[test]
fn queue_reasons_follow_the_review_settings() {
    let r = ReviewSettings {
        pass_mark: 0.6,
        boundary_margin: 0.1,
        min_agreement: 0.8,
    };
    let check = |g: Grade, want: &[QueueReason]| assert_eq!(QueueReason::of(&g, &r), want);
    check(grade("x", 9.0, &[]), &[]);
    check(grade("x", 6.5, &[]), &[QueueReason::NearBoundary]);
    check(grade("x", 5.0, &[]), &[QueueReason::NearBoundary]);
    check(grade("x", 4.9, &[]), &[]);
    check(
        grade("x", 2.0, &[Flag::InjectionSuspected, Flag::JudgesDisagree]),
        &[QueueReason::JudgesDisagree, QueueReason::InjectionSuspected],
    );
    let mut voted = grade("x", 9.0, &[]);
    voted.judge.samples = 5;
    voted.judge.agreement = 0.6;
    check(voted, &[QueueReason::LowAgreement]);
    // Each reason outranks every combination of the ones below it.
    let w: Vec<i64> = QueueReason::ALL.iter().map(|r| r.weight()).collect();
    for i in 0..w.len() {
        assert!(w[i] > w[i + 1..].iter().sum::<i64>());
    }
}

/// Calibration is unused here but must stay loadable with per-rubric thresholds.
#[test]
fn calibration_files_with_per_rubric_thresholds_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c: Calibration = crate::common::calibration();
    let mut t = c.thresholds;
    t.met = 0.9;
    c.rubrics.insert(
        "core.copy".into(),
        grader::judge::calibration::RubricCalibration {
            thresholds: t,
            fit: Default::default(),
        },
    );
    let path = dir.path().join("cal.toml");
    std::fs::write(&path, toml::to_string_pretty(&c).unwrap()).unwrap();
    let back = Calibration::load(&path).unwrap();
    assert_eq!(back.for_rubric_id("core.copy", false).met, 0.9);
    assert_eq!(back.for_rubric_id("core.copy", true), back.for_rubric(true));
    assert_eq!(back.for_rubric_id("core.gil", false), &back.thresholds);
}
