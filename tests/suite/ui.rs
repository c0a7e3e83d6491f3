//! The reviewer's web page in a real browser: Debian's Chromium, headless, driven by
//! Playwright (`tests/e2e/reviewer.mjs`) against `grader serve` on 127.0.0.1. It grades an
//! answer, uploads a transcript, reviews a grade from the queue with the keyboard, and checks the
//! queue's counts move; this test then checks the review is in the store. Screenshots of each
//! page are written to `target/tmp/ui-screenshots/` (or `GRADER_SCREENSHOTS_DIR`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use grader::audit::{Audit, Origin, Source, Via};
use grader::engine::{GradeRequest, QuestionRef};
use grader::server::Application;
use serde_json::Value;

use crate::common::{Rubrics, data, engine_with, root};

const ADMIN: &str = "e2e-admin-key";

/// Chromium's full path (Playwright launches an executable path, not a name on PATH).
fn chromium() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["chromium", "chromium-browser"]
        .into_iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|exe| {
            Command::new(exe)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| panic!("no chromium on PATH: apt-get install chromium (.ci/run does)"))
        .display()
        .to_string()
}

#[tokio::test]
#[ignore = "needs Chromium and Node with playwright-core: .ci/run installs them (apt chromium, npm ci in tests/e2e)"]
async fn reviewer_page_in_chromium() {
    let chromium = chromium();
    let e2e = root().join("tests/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: npm ci --prefix tests/e2e"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut settings = None;
    let engine = engine_with(Rubrics::Shipped, |s| {
        s.data_dir = dir.path().to_path_buf();
        s.server.host = "127.0.0.1".into();
        s.server.port = 0;
        s.server.admin_keys = vec![ADMIN.to_string().into()];
        settings = Some(s.clone());
    })
    .await;
    let audit = Arc::new(Audit::open(&settings.unwrap(), dir.path()).await.unwrap());
    let engine = Arc::new(engine.with_audit(audit.clone()));

    // Something in the queue before the reviewer arrives: labelled answers, and attacks on
    // the grader (flagged), as the service would have stored them.
    let mut seed: Vec<(String, String)> = Vec::new();
    for (file, n) in [("labelled.jsonl", 8), ("injection.jsonl", 3)] {
        let text = std::fs::read_to_string(data(file)).unwrap();
        for line in text.lines().take(n) {
            let v: Value = serde_json::from_str(line).unwrap();
            seed.push((
                v["question_id"].as_str().unwrap().into(),
                v["answer"].as_str().unwrap().into(),
            ));
        }
    }
    for (i, (id, answer)) in seed.iter().enumerate() {
        let req = GradeRequest {
            question: QuestionRef::Id(id.clone()),
            answer: answer.clone(),
            judge: None,
            samples: None,
        };
        let g = engine.grade(&req).await.unwrap();
        let origin = Origin::new(Source::new(Via::Api)).candidate(Some(format!("candidate-{i}")));
        audit.record_grade(origin, &req.question, &req.answer, &g);
    }
    audit.flush().await;

    let app = Application::with_engine(engine.clone()).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let out_dir = std::env::var("GRADER_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(e2e.join("reviewer.mjs"))
        .env("BASE_URL", format!("http://{addr}"))
        .env("ADMIN_KEY", ADMIN)
        .env("OUT_DIR", &out_dir)
        .env("CHROMIUM", &chromium)
        .env("TRANSCRIPT", data("transcripts/basic.txt"))
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("browser run: {result}");

    // What the browser did is in the store: the review, with the verdicts set by keyboard.
    audit.flush().await;
    let reviewed = result["reviewed"].as_str().unwrap();
    let stored = audit.get(reviewed).await.unwrap().expect("reviewed grade");
    assert_eq!(stored.reviews.len(), 1, "one review stored");
    let review = &stored.reviews[0];
    assert_eq!(review.reviewer, "e2e-reviewer");
    assert_eq!(review.note, "Checked by the end-to-end test.");
    assert_eq!(
        review.criteria[0].verdict,
        grader::grade::Verdict::Missed,
        "key 3 on the first criterion"
    );
    assert_eq!(
        review.criteria[1].verdict,
        grader::grade::Verdict::Met,
        "key 1 on the second"
    );
    let graded = result["graded"].as_str().unwrap();
    assert!(
        audit.get(graded).await.unwrap().is_some(),
        "the page's grade is stored"
    );
    let counts = audit.store().counts(None).await.unwrap();
    assert_eq!(counts.reviewed, 1);
    assert_eq!(result["after"]["reviewed"], 1);
    assert_eq!(
        result["after"]["unreviewed"].as_u64().unwrap() + 1,
        result["before"]["unreviewed"].as_u64().unwrap()
    );
    for page in ["grade", "transcript", "queue", "review", "rubric"] {
        let png = std::fs::read(out_dir.join(format!("{page}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{page}.png"
        );
    }
    eprintln!("screenshots in {}", out_dir.display());
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
