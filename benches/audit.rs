//! The audit store's numbers: what storing adds to a grade (the work on the grade's own path:
//! building the record and queueing it), how fast the background writer stores grades, and
//! how long a filtered page of 10,000 stored grades takes, on SQLite and — when
//! `GRADER_TEST_DATABASE_URL` points at a server — on PostgreSQL.
//!
//! `cargo bench --bench audit -- --bench` prints the numbers; under `cargo test` a smoke run
//! (500 grades, a few queries) keeps it working.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use grader::audit::{Audit, Cursor, ListQuery, Order, Origin, ReviewInput, Source, Via};
use grader::config::{JudgeKind, Settings};
use grader::engine::QuestionRef;
use grader::grade::{CriterionResult, Flag, Grade, JudgeInfo, Usage, Verdict};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A realistic grade: five criteria with quotes, a few flags on some.
fn grade(i: usize) -> Grade {
    let flags = match i % 10 {
        0 => vec![Flag::JudgesDisagree],
        1 => vec![Flag::EvidenceUnverified],
        2 => vec![Flag::InjectionSuspected],
        _ => vec![],
    };
    Grade {
        id: uuid::Uuid::now_v7(),
        rubric_id: format!("topic.rubric-{}", i % 55),
        question: "Explain Python's memory management (reference counting, garbage collection)."
            .into(),
        score: (i % 21) as f32 / 2.0,
        max_score: 10.0,
        criteria: (0..5)
            .map(|c| CriterionResult {
                id: format!("criterion-{c}"),
                verdict: [Verdict::Met, Verdict::Partial, Verdict::Missed][(i + c) % 3],
                weight: 1.0 + c as f32,
                evidence: "CPython frees an object as soon as its reference count drops to zero"
                    .into(),
                evidence_verified: true,
                reason: "best match 0.71 to the criterion".into(),
                credit: None,
            })
            .collect(),
        misconceptions: vec![],
        gaps: vec!["Missing: the cycle collector finds reference cycles.".into()],
        feedback: "Covers 3 of 5 points fully and 1 partly.".into(),
        judge: JudgeInfo {
            kind: JudgeKind::Coverage,
            model: "all-MiniLM-L6-v2/256".into(),
            samples: 1,
            agreement: 1.0,
        },
        flags,
        usage: Usage::default(),
        latency_ms: 60,
        rubric_version: "3f1c0a".into(),
    }
}

const ANSWER: &str = "CPython uses reference counting: every object has a count of references, and when it drops to zero the memory is freed at once. Reference cycles are found by a generational garbage collector that runs from time to time. __del__ methods make cycles harder to collect.";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::defaults().unwrap();
        settings.data_dir = dir.path().to_path_buf();
        run("SQLite", &settings, dir.path(), full).await;
        if let Ok(url) = std::env::var("GRADER_TEST_DATABASE_URL") {
            let db = fresh_database(&url).await;
            settings.store.database_url = Some(db.clone().into());
            run("PostgreSQL", &settings, dir.path(), full).await;
        } else if full {
            println!("PostgreSQL: skipped (set GRADER_TEST_DATABASE_URL to measure it)");
        }
    });
}

/// A new database on the server, so the numbers start from empty tables.
async fn fresh_database(url: &str) -> String {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("GRADER_TEST_DATABASE_URL reachable");
    tokio::spawn(conn);
    let name = format!("grader_bench_{}", uuid::Uuid::new_v4().simple());
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (head, _) = url.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

async fn run(label: &str, settings: &Settings, base: &std::path::Path, full: bool) {
    let n = if full { 10_000 } else { 500 };
    let audit = Arc::new(Audit::open(settings, base).await.unwrap());
    let store = audit.store();

    // What storing adds to a grade: the record built and queued on the grade's path, while
    // the writer stores them in the background.
    let mut on_path = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let g = grade(i);
        let origin = Origin::new(Source::new(if i % 7 == 0 { Via::Slack } else { Via::Api }))
            .request_id(Some(uuid::Uuid::new_v4().to_string()))
            .candidate(Some(format!("candidate-{}", i % 400)));
        let q = QuestionRef::Id(g.rubric_id.clone());
        let t = Instant::now();
        audit.record_grade(origin, &q, ANSWER, &g);
        on_path.push(t.elapsed());
        // Grades arrive over time, not all at once: a service at ~20 grades/s per core
        // leaves the writer far more room than this.
        if i % 64 == 63 {
            tokio::task::yield_now().await;
        }
    }
    audit.flush().await;
    let write_secs = started.elapsed().as_secs_f64();
    let stats = audit.stats();
    assert_eq!(stats.written.load(Ordering::Relaxed), n as u64);
    on_path.sort();
    println!(
        "{label}: storing a grade adds p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms to it (record + queue); the writer stored {n} grades in {:.2} s ({:.0} grades/s)",
        ms(percentile(&on_path, 0.5)),
        ms(percentile(&on_path, 0.99)),
        ms(*on_path.last().unwrap()),
        write_secs,
        n as f64 / write_secs
    );

    // A tenth of them reviewed.
    let page = store
        .list(&ListQuery {
            limit: 200,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    for g in page.items.iter().step_by(2).take(n / 10) {
        let input = ReviewInput {
            criteria: vec![],
            score_override: Some(5.0),
            note: "ok".into(),
            reviewer: "bench".into(),
        };
        store.add_review(&g.id, &input).await.unwrap();
    }

    // Filtered pages: the queries the reviewer's page makes.
    let since = grader::audit::time::now_ms() - 3_600_000;
    let queries: Vec<(&str, ListQuery)> = vec![
        (
            "newest 50",
            ListQuery {
                limit: 50,
                ..ListQuery::default()
            },
        ),
        (
            "one rubric",
            ListQuery {
                rubric_id: Some("topic.rubric-7".into()),
                limit: 50,
                ..ListQuery::default()
            },
        ),
        (
            "flag",
            ListQuery {
                flag: Some(Flag::JudgesDisagree),
                limit: 50,
                ..ListQuery::default()
            },
        ),
        (
            "queue (unreviewed by priority)",
            ListQuery {
                reviewed: Some(false),
                order: Order::Queue,
                limit: 50,
                ..ListQuery::default()
            },
        ),
        (
            "rubric + unreviewed + since",
            ListQuery {
                rubric_id: Some("topic.rubric-3".into()),
                reviewed: Some(false),
                since: Some(since),
                limit: 50,
                ..ListQuery::default()
            },
        ),
        (
            "candidate",
            ListQuery {
                candidate: Some("candidate-17".into()),
                limit: 50,
                ..ListQuery::default()
            },
        ),
    ];
    let rounds = if full { 100 } else { 3 };
    let mut all = Vec::new();
    for (name, q) in &queries {
        let mut times = Vec::new();
        for round in 0..rounds {
            let mut q = q.clone();
            // Every other round asks for the second page, through the cursor.
            if round % 2 == 1 {
                let first = store.list(&q).await.unwrap();
                q.cursor = first.next_cursor.as_deref().and_then(Cursor::decode);
            }
            let t = Instant::now();
            let page = store.list(&q).await.unwrap();
            times.push(t.elapsed());
            assert!(page.items.len() <= 50);
        }
        times.sort();
        if full {
            println!(
                "{label}:   page '{name}': p50 {:.2} ms, p99 {:.2} ms",
                ms(percentile(&times, 0.5)),
                ms(percentile(&times, 0.99))
            );
        }
        all.extend(times);
    }
    all.sort();
    let t = Instant::now();
    let counts = store.counts(None).await.unwrap();
    let counts_ms = ms(t.elapsed());
    println!(
        "{label}: a filtered page of 50 out of {} stored grades: p50 {:.2} ms, p99 {:.2} ms over {} queries; review counts {:.2} ms",
        counts.grades,
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        all.len(),
        counts_ms
    );
    audit.close(Duration::from_secs(10)).await;
}
