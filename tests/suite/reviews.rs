//! Stored grades and reviews over HTTP: ids on every grade, the admin-only audit routes,
//! reviews beside the machine's verdicts, reviewed answers as the LLM judge's exemplars, the
//! reviewer's page assets, and nothing lost at shutdown.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use grader::audit::Audit;
use grader::config::Settings;
use grader::engine::Engine;
use grader::server::Application;
use grader::store::Filter;
use serde_json::{Value, json};

use crate::common::{Rubrics, data, engine_with};
use crate::fake_openai::{FakeOpenAi, Scripted, content_reply};
use crate::server::call;

const ADMIN: &str = "admin-key-for-tests";
const ANSWER: &str = "A shallow copy makes a new list but the inner lists are the same objects. A deep copy copies everything recursively.";

/// The fixture catalog with an audit store in `dir` (SQLite) and an admin key.
async fn engine_storing(dir: &Path, tweak: impl FnOnce(&mut Settings)) -> Arc<Engine> {
    let mut settings = None;
    let e = engine_with(Rubrics::Fixture, |s| {
        s.data_dir = dir.to_path_buf();
        s.server.host = "127.0.0.1".into();
        s.server.port = 0;
        s.server.admin_keys = vec![ADMIN.to_string().into()];
        tweak(s);
        settings = Some(s.clone());
    })
    .await;
    let audit = Audit::open(&settings.unwrap(), dir).await.unwrap();
    Arc::new(e.with_audit(Arc::new(audit)))
}

fn req(method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

async fn flush(e: &Engine) {
    e.audit().unwrap().flush().await;
}

#[tokio::test]
async fn grades_are_stored_listed_and_reviewed_beside_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_storing(dir.path(), |_| {}).await;
    let graded = call(
        e.clone(),
        Request::post("/v1/grade")
            .header("content-type", "application/json")
            .header("x-request-id", "req-review-1")
            .body(Body::from(
                json!({"question_id": "core.copy", "answer": ANSWER, "candidate": "cand-1"})
                    .to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(graded.status, StatusCode::OK, "{}", graded.text);
    let id = graded.body["id"]
        .as_str()
        .expect("every grade has an id")
        .to_string();
    uuid::Uuid::parse_str(&id).unwrap();
    flush(&e).await;

    // Admin keys only: none → 401, another key → 403.
    let r = call(e.clone(), req("GET", "/v1/grades", None, None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = call(e.clone(), req("GET", "/v1/grades", Some("nope"), None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{id}/review"),
            None,
            Some(&json!({"reviewer": "x"})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = call(
        e.clone(),
        req("GET", "/v1/grades?candidate=cand-1", Some(ADMIN), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["source"]["via"], "api");
    assert_eq!(items[0]["reviews"], 0);

    let r = call(
        e.clone(),
        req("GET", &format!("/v1/grades/{id}"), Some(ADMIN), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["grade"], graded.body,
        "the stored grade is the one returned"
    );
    assert_eq!(r.body["request_id"], "req-review-1");
    assert_eq!(r.body["answer"], ANSWER);
    assert_eq!(r.body["stored"], true);

    // Bad reviews are precise 422s.
    let bad = json!({"criteria": [{"id": "nope", "verdict": "met"}], "reviewer": "ana"});
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{id}/review"),
            Some(ADMIN),
            Some(&bad),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["field"], "criteria[0].id");
    let bad = json!({"criteria": [], "reviewer": "ana", "score_override": 11});
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{id}/review"),
            Some(ADMIN),
            Some(&bad),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["field"], "score_override");
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{id}/review"),
            Some(ADMIN),
            Some(&json!({"criteria": []})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let other = uuid::Uuid::now_v7();
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{other}/review"),
            Some(ADMIN),
            Some(&json!({"reviewer": "ana"})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // A review: every criterion's verdict, a note, who.
    let criteria: Vec<Value> = graded.body["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!({"id": c["id"], "verdict": "met"}))
        .collect();
    let review =
        json!({"criteria": criteria, "note": "Complete enough for us.", "reviewer": "ana"});
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{id}/review"),
            Some(ADMIN),
            Some(&review),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["review"]["human_score"], 10.0);
    assert_eq!(r.body["exemplar"], true);

    let r = call(
        e.clone(),
        req("GET", &format!("/v1/grades/{id}"), Some(ADMIN), None),
    )
    .await;
    assert_eq!(
        r.body["grade"], graded.body,
        "the machine's grade is never overwritten"
    );
    let reviews = r.body["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0]["reviewer"], "ana");
    assert_eq!(reviews[0]["note"], "Complete enough for us.");

    let r = call(
        e.clone(),
        req("GET", "/v1/reviews/counts", Some(ADMIN), None),
    )
    .await;
    assert_eq!(
        (r.body["grades"].as_u64(), r.body["reviewed"].as_u64()),
        (Some(1), Some(1)),
        "{}",
        r.text
    );
    let r = call(
        e.clone(),
        req(
            "GET",
            "/v1/reviews/agreement?rubric_id=core.copy",
            Some(ADMIN),
            None,
        ),
    )
    .await;
    assert_eq!(r.body[0]["rubric_id"], "core.copy", "{}", r.text);
    assert_eq!(r.body[0]["reviews"], 1);
    let r = call(
        e.clone(),
        req(
            "GET",
            "/v1/grades?reviewed=false&order=queue",
            Some(ADMIN),
            None,
        ),
    )
    .await;
    assert!(r.body["items"].as_array().unwrap().is_empty());

    // The reviewed answer is now an exemplar of its rubric, with the human score and note.
    let points = e
        .store()
        .scroll(&e.collections().exemplars, &Filter::rubric("core.copy"))
        .await
        .unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].payload.item_id.as_deref(), Some(id.as_str()));
    assert_eq!(points[0].payload.score, Some(10.0));
    assert_eq!(points[0].payload.text, ANSWER);
    assert_eq!(
        points[0].payload.rationale.as_deref(),
        Some("Complete enough for us.")
    );

    // Filters that do not parse are 422s that say what to send.
    for (q, field) in [
        ("flag=shiny", "flag"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("cursor=zz", "cursor"),
        ("order=random", "order"),
        ("source=fax", "source"),
    ] {
        let r = call(
            e.clone(),
            req("GET", &format!("/v1/grades?{q}"), Some(ADMIN), None),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{q}: {}",
            r.text
        );
        assert_eq!(r.body["field"], field, "{q}");
    }
    let r = call(
        e.clone(),
        req("GET", "/v1/grades/not-an-id", Some(ADMIN), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The OpenAPI document describes the new routes.
    let r = call(e.clone(), req("GET", "/openapi.json", None, None)).await;
    for path in [
        "/v1/grades",
        "/v1/grades/{id}",
        "/v1/grades/{id}/review",
        "/v1/reviews/counts",
    ] {
        assert!(
            r.body["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
}

#[tokio::test]
async fn without_admin_keys_nobody_reviews_and_admins_pass_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_storing(dir.path(), |s| s.server.admin_keys.clear()).await;
    let r = call(e.clone(), req("GET", "/v1/grades", Some("anything"), None)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("server.admin_keys")
    );

    let dir = tempfile::tempdir().unwrap();
    let e = engine_storing(dir.path(), |s| {
        s.server.api_keys = vec!["grader-key".to_string().into()]
    })
    .await;
    let body = json!({"question_id": "core.copy", "answer": ANSWER});
    for key in ["grader-key", ADMIN] {
        let r = call(e.clone(), req("POST", "/v1/grade", Some(key), Some(&body))).await;
        assert_eq!(r.status, StatusCode::OK, "{key}: {}", r.text);
    }
    let r = call(
        e.clone(),
        req("GET", "/v1/grades", Some("grader-key"), None),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a grader's key does not read the store"
    );
}

#[tokio::test]
async fn transcripts_are_stored_with_their_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_storing(dir.path(), |_| {}).await;
    let text = std::fs::read_to_string(data("transcripts/basic.txt")).unwrap();
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts?name=basic.txt&candidate=jordan")
            .header("content-type", "text/plain")
            .body(Body::from(text))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let report_ids: Vec<String> = r.body["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["grade"]["id"].as_str().map(str::to_string))
        .collect();
    assert!(!report_ids.is_empty());
    flush(&e).await;
    let list = call(
        e.clone(),
        req("GET", "/v1/grades?candidate=jordan", Some(ADMIN), None),
    )
    .await;
    let items = list.body["items"].as_array().unwrap();
    let mut stored: Vec<String> = items
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    stored.sort();
    let mut want = report_ids.clone();
    want.sort();
    assert_eq!(
        stored, want,
        "every graded pair is stored under the report's grade id"
    );
    let tid = items[0]["source"]["transcript_id"].as_str().unwrap();
    assert!(items.iter().all(|g| g["source"]["transcript_id"] == tid));
    assert!(items.iter().all(|g| g["source"]["pair_index"].is_u64()));
    let t = call(
        e.clone(),
        req("GET", &format!("/v1/transcripts/{tid}"), Some(ADMIN), None),
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["file"], "basic.txt");
}

#[tokio::test]
async fn the_llm_judge_sees_reviewed_answers_as_exemplars() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeOpenAi::start().await;
    let criteria: Vec<Value> = [
        "shallow-shares-nested",
        "deep-recursive",
        "memo-cycles",
        "when-to-use",
    ]
    .iter()
    .map(|id| json!({"id": id, "verdict": "missed", "evidence": "", "reason": "r"}))
    .collect();
    let reply = json!({"criteria": criteria, "misconceptions": [], "gaps": [], "feedback": "f"});
    fake.set_default(Scripted::ok(content_reply(&reply.to_string())));
    let url = fake.base_url();
    let e = engine_storing(dir.path(), |s| {
        s.llm.base_url = url;
        s.llm.timeout_ms = 0;
        s.judge.kind = grader::config::JudgeKind::Coverage;
    })
    .await;
    let reviewed_answer = "Shallow copies share the nested lists; deepcopy walks the whole structure and remembers what it copied.";
    let r = call(
        e.clone(),
        req(
            "POST",
            "/v1/grade",
            None,
            Some(&json!({"question_id": "core.copy", "answer": reviewed_answer})),
        ),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    flush(&e).await;
    let review = json!({"criteria": [], "score_override": 7.5, "note": "REVIEWER-NOTE-42: misses when to use each.", "reviewer": "ana"});
    let r = call(
        e.clone(),
        req(
            "POST",
            &format!("/v1/grades/{id}/review"),
            Some(ADMIN),
            Some(&review),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A similar answer graded by the LLM judge: the reviewed one is among its examples.
    let r = call(e.clone(), req("POST", "/v1/grade", None, Some(&json!({"question_id": "core.copy", "judge": "llm", "answer": "A shallow copy shares nested lists, and deepcopy copies the whole structure recursively."})))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let prompt = fake.requests().last().unwrap().to_string();
    assert!(
        prompt.contains("REVIEWER-NOTE-42"),
        "the reviewer's note is in the prompt"
    );
    assert!(
        prompt.contains("remembers what it copied"),
        "the reviewed answer is in the prompt"
    );
    assert!(prompt.contains("score 7.5"), "with its human score");
}

#[tokio::test]
async fn the_reviewers_page_is_served_with_no_outside_requests() {
    let e = crate::server::shared().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let r = call(e.clone(), req("GET", path, None, None)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            r.content_type.starts_with(kind),
            "{path}: {}",
            r.content_type
        );
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        // Nothing to fetch from elsewhere: no absolute URLs in the assets at all.
        assert!(
            !r.text.contains("http://") && !r.text.contains("https://"),
            "{path} names an outside URL"
        );
    }
}

/// Grades queued while the database is down are written during graceful shutdown.
#[tokio::test]
async fn graceful_shutdown_writes_queued_grades() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_storing(dir.path(), |_| {}).await;
    let file = dir.path().join("grades.sqlite");
    let app = Application::with_engine(e.clone()).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let rename = |sql: &str| {
        let c = rusqlite::Connection::open(&file).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute_batch(sql).unwrap();
    };
    rename("ALTER TABLE grades RENAME TO grades_away");
    let client = crate::common::http();
    for _ in 0..5 {
        let r = client
            .post(format!("http://{addr}/v1/grade"))
            .json(&json!({"question_id": "core.copy", "answer": ANSWER}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "a store that is down never fails a grade");
    }
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("grader_audit_queued"), "{metrics}");
    tx.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    rename("ALTER TABLE grades_away RENAME TO grades");
    server.await.unwrap().unwrap();
    let c = rusqlite::Connection::open(&file).unwrap();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM grades", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5, "queued grades are flushed at shutdown");
    let s = e.audit().unwrap().stats();
    assert!(s.write_errors.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}
