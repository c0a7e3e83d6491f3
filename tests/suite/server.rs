//! The HTTP service: every endpoint and every kind of bad input (status, content type, body).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use grader::config::Settings;
use grader::engine::{Engine, Parts};
use grader::server::{AppState, Application, router};
use grader::store::{EmbeddedStore, VectorStore};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tower::ServiceExt;

use crate::common::{Gated, Rubrics, data};

/// The fixture catalog, served on 127.0.0.1 and a free port.
async fn engine_with(tweak: impl FnOnce(&mut Settings)) -> Arc<Engine> {
    let e = crate::common::engine_with(Rubrics::Fixture, |s| {
        s.server.host = "127.0.0.1".into();
        s.server.port = 0;
        tweak(s);
    });
    Arc::new(e.await)
}

pub async fn shared() -> Arc<Engine> {
    static E: OnceCell<Arc<Engine>> = OnceCell::const_new();
    E.get_or_init(|| engine_with(|s| s.limits.max_body_bytes = 64 * 1024))
        .await
        .clone()
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

pub async fn call(engine: Arc<Engine>, req: Request<Body>) -> Reply {
    let resp = router(AppState::new(engine).unwrap())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    Reply {
        status,
        content_type,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

const ANSWER: &str = "A shallow copy makes a new list but the inner lists are the same objects. A deep copy copies everything recursively.";

fn assert_problem(r: &Reply, status: u16, field: Option<&str>, detail_has: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "{}", r.text);
    assert_eq!(r.body["status"], status);
    assert!(
        r.body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://grader.dev/problems/")
    );
    assert!(r.body["title"].is_string());
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "detail {detail:?} lacks {detail_has:?}"
    );
    if let Some(f) = field {
        assert_eq!(r.body["field"], f, "{}", r.text);
    }
}

#[tokio::test]
async fn grade_returns_the_grade() {
    let r = call(
        shared().await,
        post_json(
            "/v1/grade",
            &json!({"question_id": "core.copy", "answer": ANSWER}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.body["rubric_id"], "core.copy");
    assert_eq!(r.body["max_score"], 10.0);
    assert!(r.body["score"].as_f64().unwrap() > 0.0);
    assert_eq!(r.body["judge"]["kind"], "coverage");
    assert_eq!(r.body["criteria"].as_array().unwrap().len(), 4);
    for key in [
        "misconceptions",
        "gaps",
        "feedback",
        "flags",
        "usage",
        "latency_ms",
        "rubric_version",
    ] {
        assert!(r.body.get(key).is_some(), "missing {key}");
    }
    assert!(
        r.headers.get("x-request-id").is_some(),
        "a request id is generated"
    );
}

#[tokio::test]
async fn grade_by_question_text_and_ad_hoc() {
    let r = call(shared().await, post_json("/v1/grade", &json!({"question": "What is the difference between a deep copy and a shallow copy in Python?", "answer": ANSWER}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["rubric_id"], "core.copy");
    let r = call(
        shared().await,
        post_json("/v1/grade", &json!({"question": "What is a B-tree?", "reference_answer": "A B-tree is a balanced search tree whose nodes hold many keys. It keeps data sorted and allows searches, inserts and deletes in logarithmic time. Databases use B-trees for indexes because each node fits a disk page.", "answer": "A B-tree is a balanced tree with many keys per node, used by databases for indexes since a node matches a disk page."})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["rubric_id"].as_str().unwrap().starts_with("adhoc."));
    assert!(
        r.body["flags"]
            .as_array()
            .unwrap()
            .contains(&json!("ad_hoc_rubric"))
    );
}

#[tokio::test]
async fn bad_requests_are_precise_problems() {
    let e = shared().await;
    assert_problem(
        &call(
            e.clone(),
            Request::post("/v1/grade")
                .header("content-type", "text/plain")
                .body(Body::from("hi"))
                .unwrap(),
        )
        .await,
        415,
        None,
        "application/json",
    );
    assert_problem(
        &call(
            e.clone(),
            Request::post("/v1/grade").body(Body::from("{}")).unwrap(),
        )
        .await,
        415,
        None,
        "no Content-Type",
    );
    assert_problem(
        &call(
            e.clone(),
            Request::post("/v1/grade")
                .header("content-type", "application/json")
                .body(Body::from("{\"answer\": "))
                .unwrap(),
        )
        .await,
        400,
        None,
        "not valid JSON",
    );
    assert_problem(
        &call(
            e.clone(),
            Request::post("/v1/grade")
                .header("content-type", "application/json")
                .body(Body::from(vec![b'{', 0xff, 0xfe, b'}']))
                .unwrap(),
        )
        .await,
        400,
        None,
        "UTF-8",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": 42}),
            ),
        )
        .await,
        422,
        Some("answer"),
        "expected a string",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json("/v1/grade", &json!({"question_id": "core.copy"})),
        )
        .await,
        422,
        Some("answer"),
        "answer is required",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": "   "}),
            ),
        )
        .await,
        422,
        Some("answer"),
        "empty",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json("/v1/grade", &json!({"answer": ANSWER})),
        )
        .await,
        422,
        Some("question_id"),
        "name the question",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "question": "x", "answer": ANSWER}),
            ),
        )
        .await,
        422,
        Some("question_id"),
        "one way",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"reference_answer": "x y z", "answer": ANSWER}),
            ),
        )
        .await,
        422,
        Some("question"),
        "reference_answer needs",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": ANSWER, "colour": 1}),
            ),
        )
        .await,
        422,
        None,
        "unknown field `colour`",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": ANSWER, "judge": "oracle"}),
            ),
        )
        .await,
        422,
        Some("judge"),
        "unknown variant",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": ANSWER, "samples": 0}),
            ),
        )
        .await,
        422,
        Some("samples"),
        "between 1 and 15",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": ANSWER, "judge": "llm"}),
            ),
        )
        .await,
        422,
        Some("judge"),
        "no LLM endpoint",
    );
    let r = call(
        e.clone(),
        post_json(
            "/v1/grade",
            &json!({"question_id": "core.cpy", "answer": ANSWER}),
        ),
    )
    .await;
    assert_problem(
        &r,
        422,
        Some("question_id"),
        "unknown question id `core.cpy`",
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("core.copy"),
        "suggests the closest id"
    );
    let r = call(
        e.clone(),
        post_json(
            "/v1/grade",
            &json!({"question": "How do I make a good risotto?", "answer": ANSWER}),
        ),
    )
    .await;
    assert_problem(&r, 422, Some("question"), "no rubric matches");
    assert_eq!(
        r.body["candidates"][0]["rubric_id"], "core.copy",
        "lists the closest rubrics"
    );
    let huge = "word ".repeat(20_000);
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": huge}),
            ),
        )
        .await,
        413,
        None,
        "limits.max_body_bytes",
    );
    let long = "copying lists ".repeat(2_000);
    assert_problem(
        &call(
            e.clone(),
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": long}),
            ),
        )
        .await,
        422,
        Some("answer"),
        "too long",
    );
    assert_problem(
        &call(e.clone(), get("/v1/nothing")).await,
        404,
        None,
        "no route GET /v1/nothing",
    );
    assert_problem(
        &call(e.clone(), get("/v1/grade")).await,
        405,
        None,
        "GET is not allowed",
    );
    assert_problem(
        &call(e.clone(), get("/v1/questions?limit=abc")).await,
        400,
        None,
        "?topic=",
    );
}

#[tokio::test]
async fn batch_keeps_order_and_isolates_failures() {
    let e = shared().await;
    let body = json!({"items": [
        {"question_id": "core.copy", "answer": ANSWER},
        {"question_id": "nope.nope", "answer": ANSWER},
        {"question_id": "core.copy", "answer": 7},
        {"question_id": "core.copy"},
        {"question_id": "core.copy", "answer": "I do not know."}
    ]});
    let r = call(e.clone(), post_json("/v1/grade/batch", &body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for (i, item) in results.iter().enumerate() {
        assert_eq!(item["index"], i);
    }
    assert_eq!(results[0]["grade"]["rubric_id"], "core.copy");
    assert_eq!(results[1]["error"]["field"], "items[1].question_id");
    assert_eq!(results[2]["error"]["status"], 422);
    assert!(
        results[2]["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("items[2]"),
        "{}",
        results[2]
    );
    assert_eq!(results[3]["error"]["field"], "items[3].answer");
    assert!(
        results[4]["grade"]["score"].as_f64().unwrap()
            < results[0]["grade"]["score"].as_f64().unwrap()
    );
    assert_eq!(r.body["succeeded"], 2);
    assert_eq!(r.body["failed"], 3);
    let too_many = json!({"items": vec![json!({"question_id": "core.copy", "answer": "x"}); e.settings().limits.max_batch + 1]});
    assert_problem(
        &call(e.clone(), post_json("/v1/grade/batch", &too_many)).await,
        422,
        Some("items"),
        "limits.max_batch",
    );
    assert_problem(
        &call(
            e.clone(),
            post_json("/v1/grade/batch", &json!({"items": []})),
        )
        .await,
        422,
        Some("items"),
        "empty",
    );
}

#[tokio::test]
async fn questions_list_filter_search_and_get() {
    let e = shared().await;
    let r = call(e.clone(), get("/v1/questions")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), e.catalog().len());
    assert_eq!(r.body[0]["id"], "core.copy");
    let r = call(e.clone(), get("/v1/questions?topic=oop")).await;
    assert_eq!(r.body.as_array().unwrap().len(), 0);
    let r = call(e.clone(), get("/v1/questions?q=deep%20vs%20shallow%20copy")).await;
    assert_eq!(r.body[0]["id"], "core.copy");
    assert!(r.body[0]["similarity"].as_f64().unwrap() > 0.5);
    let r = call(e.clone(), get("/v1/questions/core.copy")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["view"], "public");
    assert_eq!(r.body["criteria"][0], "shallow-shares-nested");
    assert_problem(
        &call(e.clone(), get("/v1/questions/core.nope")).await,
        404,
        None,
        "no rubric `core.nope`",
    );
}

#[tokio::test]
async fn health_readiness_metrics_openapi() {
    let e = shared().await;
    let r = call(e.clone(), get("/healthz")).await;
    assert_eq!(
        (r.status, r.body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let r = call(e.clone(), get("/readyz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ready"], true);
    assert_eq!(r.body["llm_configured"], false);
    assert_eq!(r.body["default_judge"], "coverage");
    assert!(r.body["indexed_points"].as_u64().unwrap() > 0);
    let state = AppState::new(e.clone()).unwrap();
    let app = router(state.clone());
    let _ = app
        .clone()
        .oneshot(post_json(
            "/v1/grade",
            &json!({"question_id": "core.copy", "answer": ANSWER}),
        ))
        .await
        .unwrap();
    let _ = app
        .clone()
        .oneshot(post_json("/v1/grade", &json!({"question_id": "core.copy"})))
        .await
        .unwrap();
    let resp = app.clone().oneshot(get("/metrics")).await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            r#"grader_http_requests_total{route="/v1/grade",method="POST",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"grader_http_requests_total{route="/v1/grade",method="POST",status="422"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"grader_grades_total{judge="coverage"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("grader_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("grader_llm_cost_usd_total 0"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
    let r = call(e.clone(), get("/openapi.json")).await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/v1/grade",
        "/v1/grade/batch",
        "/v1/questions",
        "/v1/questions/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            r.body["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let grade = &r.body["components"]["schemas"]["Grade"]["properties"];
    for key in [
        "rubric_id",
        "score",
        "criteria",
        "gaps",
        "flags",
        "usage",
        "judge",
    ] {
        assert!(grade.get(key).is_some(), "Grade schema lacks {key}");
    }
}

#[tokio::test]
async fn api_keys_cors_and_request_ids() {
    let e = engine_with(|s| {
        s.server.api_keys = vec!["key-one".to_string().into(), "key-two".to_string().into()];
        s.server.cors_origins = vec!["https://interviews.example".into()];
    })
    .await;
    let body = json!({"question_id": "core.copy", "answer": ANSWER});
    let r = call(e.clone(), post_json("/v1/grade", &body)).await;
    assert_problem(&r, 401, None, "needs an API key");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let bad = Request::post("/v1/grade")
        .header("content-type", "application/json")
        .header("authorization", "Bearer nope")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = call(e.clone(), bad).await;
    assert_problem(&r, 401, None, "not valid");
    assert!(!r.text.contains("key-one") && !r.text.contains("key-two"));
    let ok = Request::post("/v1/grade")
        .header("content-type", "application/json")
        .header("authorization", "Bearer key-two")
        .header("x-request-id", "req-123")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = call(e.clone(), ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers["x-request-id"], "req-123",
        "the caller's request id is propagated"
    );
    let ok = Request::post("/v1/grade")
        .header("content-type", "application/json")
        .header("x-api-key", "key-one")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(call(e.clone(), ok).await.status, StatusCode::OK);
    // Health endpoints stay open for probes.
    assert_eq!(
        call(e.clone(), get("/healthz")).await.status,
        StatusCode::OK
    );
    let pre = Request::builder()
        .method("OPTIONS")
        .uri("/v1/grade")
        .header("origin", "https://interviews.example")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let r = call(e.clone(), pre).await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://interviews.example"
    );
    let other = Request::get("/healthz")
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    assert!(
        call(e.clone(), other)
            .await
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[derive(serde::Deserialize)]
struct BadCase {
    name: String,
    method: String,
    path: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_hex: Option<String>,
    #[serde(default)]
    repeat: Option<usize>,
    expect: u16,
}

/// The corpus in tests/data/bad-requests.jsonl: every request is a 4xx problem, never a 5xx.
#[tokio::test]
async fn bad_input_corpus_never_yields_5xx() {
    let e = shared().await;
    let cases: Vec<BadCase> = crate::common::jsonl("bad-requests.jsonl");
    assert!(cases.len() >= 50, "{} cases", cases.len());
    // Replay over a real socket too: the same router, bound to loopback.
    let app = Application::with_engine(e.clone()).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = crate::common::http();
    for c in &cases {
        let mut bytes = match (&c.body, &c.body_hex) {
            (_, Some(h)) => hex::decode(h).unwrap(),
            (Some(b), None) => b.clone().into_bytes(),
            _ => Vec::new(),
        };
        if let Some(n) = c.repeat {
            bytes = bytes.repeat(n);
        }
        let mut req = Request::builder().method(c.method.as_str()).uri(&c.path);
        if let Some(ct) = &c.content_type {
            req = req.header("content-type", ct);
        }
        let r = call(e.clone(), req.body(Body::from(bytes.clone())).unwrap()).await;
        assert_eq!(r.status.as_u16(), c.expect, "{}: {}", c.name, r.text);
        assert!(r.status.is_client_error(), "{}: {}", c.name, r.status);
        assert_eq!(r.content_type, "application/problem+json", "{}", c.name);
        let mut sock = client
            .request(
                c.method.parse().unwrap(),
                format!("http://{addr}{}", c.path),
            )
            .body(bytes);
        if let Some(ct) = &c.content_type {
            sock = sock.header("content-type", ct);
        }
        let status = sock.send().await.unwrap().status().as_u16();
        assert_eq!(status, c.expect, "{} over the socket", c.name);
    }
    // The server still answers after all of that.
    assert_eq!(
        client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// The fixture catalog over a gated embedder, as the parts of an engine (the gate starts
/// `open` or closed).
fn gated_parts(open: bool) -> (Parts, Arc<Gated>) {
    let gate = Gated::new(open);
    let parts = parts_over(Rubrics::Fixture, gate.clone(), EmbeddedStore::in_memory());
    (parts, gate)
}

/// The parts of a server on a free loopback port: `which` rubrics over `embedder` and `store`.
fn parts_over(which: Rubrics, embedder: Arc<Gated>, store: EmbeddedStore) -> Parts {
    let mut settings = crate::common::settings();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    Parts {
        settings,
        catalog: crate::common::catalog(which),
        embedder,
        store: Arc::new(store),
        calibration: crate::common::calibration(),
        head: grader::judge::Head::builtin(),
    }
}

/// Wait (up to 10 s) until nothing accepts connections on `addr`.
async fn until_closed(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let (parts, gate) = gated_parts(true);
    let engine = Arc::new(parts.open(&|_, _| {}).await.unwrap());
    let app = Application::with_engine(engine).await.unwrap();
    let addr = app.local_addr().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = crate::common::http();
    // The grade embeds the answer: with the gate closed it stops there, inside the handler.
    gate.close();
    let inflight = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post(format!("http://{addr}/v1/grade"))
                .json(&json!({"question_id": "core.copy", "answer": ANSWER}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    gate.arrived().await;
    tx.send(()).unwrap();
    // Shutdown has begun once the listener is gone; only then let the grade finish.
    until_closed(addr).await;
    gate.open();
    assert_eq!(
        inflight.await.unwrap(),
        200,
        "the in-flight request completes"
    );
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn listens_at_once_and_answers_503_with_progress_until_indexed() {
    let (parts, gate) = gated_parts(false);
    let app = Application::with_parts(parts).await.unwrap();
    assert!(app.state().is_none(), "not ready before indexing");
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = crate::common::http();
    let get = |path: &str| client.get(format!("http://{addr}{path}")).send();
    // Indexing is held at its first batch.
    gate.arrived().await;
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false);
    let total = body["to_index"].as_u64().unwrap();
    assert!(total > 10, "{body}");
    assert_eq!(body["status"], format!("indexing 0/{total}"), "{body}");
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let r = client
        .post(format!("http://{addr}/v1/grade"))
        .json(&json!({"question_id": "core.copy", "answer": ANSWER}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("indexing 0/"),
        "{problem}"
    );
    gate.open();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while get("/readyz").await.unwrap().status() != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after 120 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = client
        .post(format!("http://{addr}/v1/grade"))
        .json(&json!({"question_id": "core.copy", "answer": ANSWER}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A start where one rubric changed: the others grade by id at once, the changed one and
/// matching by text answer 503 with `Retry-After` until its points are in, then everything works.
#[tokio::test]
async fn grades_indexed_rubrics_by_id_while_the_rest_is_indexed() {
    // The shipped set already indexed, but for core.copy (as after an edit to it).
    let store =
        EmbeddedStore::load_detached(&crate::common::index_snapshot().await.join("store")).unwrap();
    let names = grader::index::Collections::new(&crate::common::settings().store.collection_prefix);
    for c in [&names.questions, &names.references, &names.criteria] {
        store
            .delete(c, &grader::store::Filter::rubric("core.copy"))
            .await
            .unwrap();
    }
    // Indexing core.copy embeds dozens of texts in one call: the gate holds it; a short
    // answer's few texts pass.
    let gate = crate::common::Gated::holding_calls_over(8);
    let parts = parts_over(Rubrics::Shipped, gate.clone(), store);
    let app = Application::with_parts(parts).await.unwrap();
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = crate::common::http();
    let grade = |body: Value| {
        client
            .post(format!("http://{addr}/v1/grade"))
            .json(&body)
            .send()
    };
    gate.arrived().await;
    let r = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    let total = body["to_index"].as_u64().unwrap();
    assert!(total > 10, "{body}");
    assert_eq!(body["status"], format!("indexing 0/{total}"), "{body}");
    // Another rubric grades now.
    let r = grade(json!({"question_id": "concurrency.gil", "answer": "The GIL lets only one thread run Python bytecode at a time, so threads do not speed up CPU-bound work."}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The one being indexed, and matching by text (which needs every question), wait.
    for body in [
        json!({"question_id": "core.copy", "answer": ANSWER}),
        json!({"question": "Difference between deepcopy and shallow copy? When to use each?", "answer": ANSWER}),
    ] {
        let r = grade(body.clone()).await.unwrap();
        assert_eq!(r.status(), 503, "{body}");
        assert_eq!(r.headers()["retry-after"], "5");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(
            problem["type"].as_str().unwrap().rsplit('/').next(),
            Some("indexing"),
            "{problem}"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("indexing 0/{total}")), "{detail}");
    }
    gate.open();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = grade(json!({"question_id": "core.copy", "answer": ANSWER}))
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            std::time::Instant::now() < deadline,
            "core.copy not graded after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = grade(json!({"question": "Difference between deepcopy and shallow copy? When to use each?", "answer": ANSWER}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["rubric_id"], "core.copy", "{body}");
    let r = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert!(body.get("to_index").is_none(), "{body}");
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// An embedder that always fails: indexing in the background fails.
struct Broken;

impl grader::embed::Embedder for Broken {
    fn dim(&self) -> usize {
        384
    }
    fn model_id(&self) -> &str {
        "broken"
    }
    fn embed<'a>(
        &'a self,
        _texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, grader::embed::EmbedError>> {
        Box::pin(async {
            Err(grader::embed::EmbedError::Inference(
                "broken on purpose".into(),
            ))
        })
    }
}

#[tokio::test]
async fn a_failed_background_index_stops_the_server_with_the_error() {
    let (mut parts, _gate) = gated_parts(true);
    parts.embedder = Arc::new(Broken);
    let app = Application::with_parts(parts).await.unwrap();
    let addr = app.local_addr().unwrap();
    let served = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.run_until(std::future::pending()),
    )
    .await
    .expect("the server stops by itself");
    let err = served.unwrap_err().to_string();
    assert!(err.contains("broken on purpose"), "{err}");
    until_closed(addr).await;
}

#[tokio::test]
async fn transcripts_endpoint_returns_the_report_or_streams_pairs() {
    let e = shared().await;
    let text = std::fs::read_to_string(data("transcripts/basic.txt")).unwrap();
    let req = Request::post("/v1/transcripts?name=basic.txt")
        .header("content-type", "text/plain")
        .body(Body::from(text.clone()))
        .unwrap();
    let r = call(e.clone(), req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["file"], "basic.txt");
    assert_eq!(r.body["pairs"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["pairs"][0]["rubric_id"], "core.copy");
    assert_eq!(r.body["unmatched"], 2);
    // JSON turns.
    let turns = std::fs::read_to_string(data("transcripts/turns.json")).unwrap();
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts")
            .header("content-type", "application/json")
            .body(Body::from(turns))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["format"], "json");
    // Streaming: one line per pair as it finishes, then the summary.
    let req = Request::post("/v1/transcripts?format=text")
        .header("content-type", "text/plain")
        .header("accept", "application/x-ndjson")
        .body(Body::from(text))
        .unwrap();
    let r = call(e.clone(), req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/x-ndjson");
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{}", r.text);
    assert!(lines[..3].iter().all(|l| l["type"] == "pair"));
    assert_eq!(lines[3]["type"], "summary");
    assert!(lines[3]["overall"].is_number());
    // Bad transcripts are 4xx problems naming the line.
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts")
            .header("content-type", "text/plain")
            .body(Body::from("just prose, no speakers"))
            .unwrap(),
    )
    .await;
    assert_problem(&r, 422, Some("body"), "transcript:1: no speaker labels");
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts?format=vtt")
            .header("content-type", "text/plain")
            .body(Body::from("Interviewer: hi?"))
            .unwrap(),
    )
    .await;
    assert_problem(&r, 422, Some("body"), "WEBVTT");
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts?format=docx")
            .header("content-type", "text/plain")
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_problem(&r, 422, Some("format"), "text, vtt, srt or json");
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts")
            .header("content-type", "image/png")
            .body(Body::from("x"))
            .unwrap(),
    )
    .await;
    assert_problem(&r, 415, None, "text/plain");
    let r = call(
        e.clone(),
        Request::post("/v1/transcripts")
            .header("content-type", "text/plain")
            .body(Body::from(vec![0xffu8, 0xfe]))
            .unwrap(),
    )
    .await;
    assert_problem(&r, 400, None, "UTF-8");
}

/// What a full rubric holds that the public view must not: points, keywords, model answers,
/// exemplars (any of them turns into a 10/10 answer).
fn leaks_answer_key(body: &Value) -> bool {
    let text = body.to_string();
    [
        "exemplars",
        "model_answers",
        "keywords",
        "point",
        "phrasings",
        "misconceptions",
    ]
    .iter()
    .any(|k| text.contains(&format!("\"{k}\"")))
}

#[tokio::test]
async fn full_rubrics_need_an_admin_key_or_expose_rubrics() {
    let ask = |key: Option<&str>| {
        let mut r = Request::get("/v1/questions/core.copy");
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r.body(Body::empty()).unwrap()
    };
    // The default: no keys, nothing exposed; anyone gets the public view only.
    let open = shared().await;
    let r = call(open.clone(), ask(None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!leaks_answer_key(&r.body), "{}", r.text);
    assert_eq!(r.body["id"], "core.copy");
    assert!(r.body["question"].as_str().unwrap().contains("copy"));
    assert_eq!(r.body["criteria"].as_array().unwrap().len(), 4);
    // Graders and admins.
    let e = engine_with(|s| {
        s.server.api_keys = vec!["grader-key".to_string().into()];
        s.server.admin_keys = vec!["admin-key".to_string().into()];
    })
    .await;
    let r = call(e.clone(), ask(Some("grader-key"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !leaks_answer_key(&r.body),
        "a grader key reads the public view: {}",
        r.text
    );
    let r = call(e.clone(), ask(Some("admin-key"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["exemplars"].as_array().unwrap().len(),
        3,
        "{}",
        r.text
    );
    assert!(r.body["model_answers"].is_array() && r.body["criteria"][0]["point"].is_string());
    assert_problem(
        &call(e.clone(), ask(None)).await,
        401,
        None,
        "needs an API key",
    );
    assert_problem(
        &call(e.clone(), ask(Some("nope"))).await,
        401,
        None,
        "not valid",
    );
    // An admin key grades too.
    let g = Request::post("/v1/grade")
        .header("content-type", "application/json")
        .header("authorization", "Bearer admin-key")
        .body(Body::from(
            json!({"question_id": "core.copy", "answer": ANSWER}).to_string(),
        ))
        .unwrap();
    assert_eq!(call(e.clone(), g).await.status, StatusCode::OK);
    // Admin keys alone: grading stays open, the full rubric needs the key.
    let e = engine_with(|s| s.server.admin_keys = vec!["admin-key".to_string().into()]).await;
    assert!(!leaks_answer_key(&call(e.clone(), ask(None)).await.body));
    assert!(leaks_answer_key(
        &call(e.clone(), ask(Some("admin-key"))).await.body
    ));
    // Local use: everything exposed on purpose.
    let e = engine_with(|s| s.server.expose_rubrics = true).await;
    assert!(leaks_answer_key(&call(e.clone(), ask(None)).await.body));
}

/// Every input that creates work has a limit; going over it is a 422 that names the limit and
/// the value, before any work starts.
#[tokio::test]
async fn inputs_over_their_limits_are_422_naming_limit_and_value() {
    let e = engine_with(|s| {
        s.limits.max_question_chars = 80;
        s.limits.max_reference_chars = 400;
        s.limits.max_reference_statements = 4;
        s.limits.max_answer_segments = 6;
        s.limits.max_batch = 3;
        s.limits.max_transcript_pairs = 2;
        s.limits.max_transcript_bytes = 2000;
    })
    .await;
    let sentence = "A shallow copy shares the nested lists with the original.";
    let long_q = format!("What is a shallow copy{}?", " really".repeat(20));
    let statements = "Deep copies recurse into nested objects. ".repeat(6);
    let segments = "Copies share nested objects. ".repeat(7);
    let pair = "Interviewer: What is a deep copy?\nCandidate: It copies nested objects too.\n";
    let cases: Vec<(&str, Request<Body>, &str, &str, usize)> = vec![
        (
            "question text",
            post_json(
                "/v1/grade",
                &json!({"question": long_q, "answer": sentence}),
            ),
            "question",
            "limits.max_question_chars",
            long_q.chars().count(),
        ),
        (
            "reference size",
            post_json(
                "/v1/grade",
                &json!({"question": "What is a copy?", "reference_answer": "x".repeat(401), "answer": sentence}),
            ),
            "reference_answer",
            "limits.max_reference_chars",
            401,
        ),
        (
            "reference statements",
            post_json(
                "/v1/grade",
                &json!({"question": "What is a copy?", "reference_answer": statements, "answer": sentence}),
            ),
            "reference_answer",
            "limits.max_reference_statements",
            6,
        ),
        (
            "answer segments",
            post_json(
                "/v1/grade",
                &json!({"question_id": "core.copy", "answer": segments}),
            ),
            "answer",
            "limits.max_answer_segments",
            7,
        ),
        (
            "batch items",
            post_json(
                "/v1/grade/batch",
                &json!({"items": vec![json!({"question_id": "core.copy", "answer": sentence}); 4]}),
            ),
            "items",
            "limits.max_batch",
            4,
        ),
        (
            "transcript pairs",
            Request::post("/v1/transcripts")
                .header("content-type", "text/plain")
                .header("accept", "application/x-ndjson")
                .body(Body::from(pair.repeat(3)))
                .unwrap(),
            "body",
            "limits.max_transcript_pairs",
            3,
        ),
        (
            "transcript size",
            Request::post("/v1/transcripts")
                .header("content-type", "text/plain")
                .body(Body::from(format!(
                    "{pair}{}",
                    "Candidate: and more.\n".repeat(100)
                )))
                .unwrap(),
            "body",
            "limits.max_transcript_bytes",
            pair.len() + 21 * 100,
        ),
        (
            "search text",
            get(&format!("/v1/questions?q={}", "c".repeat(100))),
            "q",
            "limits.max_question_chars",
            100,
        ),
    ];
    for (name, req, field, limit, value) in cases {
        let r = call(e.clone(), req).await;
        assert_problem(&r, 422, Some(field), limit);
        assert_eq!(r.body["limit"]["name"], limit, "{name}: {}", r.text);
        assert_eq!(r.body["limit"]["value"], value, "{name}: {}", r.text);
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains(&value.to_string()),
            "{name}: the detail names the value: {}",
            r.text
        );
    }
    // Within the limits, the same kinds of request are graded.
    let r = call(
        e.clone(),
        post_json(
            "/v1/grade",
            &json!({"question_id": "core.copy", "answer": sentence}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A full queue answers at once with 503 and Retry-After (no waiting into a 504), readiness
/// says saturated, and both recover when places free up.
#[tokio::test]
async fn a_full_queue_is_503_with_retry_after_at_once() {
    let e = engine_with(|s| {
        s.limits.max_queued_grades = 3;
        s.limits.retry_after_secs = 4;
    })
    .await;
    let grade = || {
        post_json(
            "/v1/grade",
            &json!({"question_id": "core.copy", "answer": ANSWER}),
        )
    };
    assert_eq!(call(e.clone(), grade()).await.status, StatusCode::OK);
    // Three grades in flight elsewhere (held directly, so the test does not race them).
    let held = e.admit(3).unwrap();
    let started = std::time::Instant::now();
    let r = call(e.clone(), grade()).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "answered at once"
    );
    assert_problem(&r, 503, None, "limits.max_queued_grades");
    assert_eq!(r.headers["retry-after"], "4");
    let batch = json!({"items": [{"question_id": "core.copy", "answer": ANSWER}]});
    assert_eq!(
        call(e.clone(), post_json("/v1/grade/batch", &batch))
            .await
            .status,
        503
    );
    let t = Request::post("/v1/transcripts")
        .header("content-type", "text/plain")
        .body(Body::from(
            std::fs::read_to_string(data("transcripts/basic.txt")).unwrap(),
        ))
        .unwrap();
    assert_eq!(call(e.clone(), t).await.status, 503);
    let r = call(e.clone(), get("/readyz")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(
        (r.body["saturated"].clone(), r.body["ready"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        (
            r.body["queue"]["capacity"].clone(),
            r.body["queue"]["admitted"].clone()
        ),
        (json!(3), json!(3))
    );
    assert!(r.body["queue"]["queue_delay_ms"].is_u64(), "{}", r.text);
    // Lists and health never need a place.
    assert_eq!(
        call(e.clone(), get("/v1/questions")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(e.clone(), get("/healthz")).await.status,
        StatusCode::OK
    );
    drop(held);
    assert_eq!(call(e.clone(), grade()).await.status, StatusCode::OK);
    let r = call(e.clone(), get("/readyz")).await;
    assert_eq!(
        (r.status, r.body["saturated"].clone()),
        (StatusCode::OK, json!(false))
    );
}

/// A vector store that goes away: the embedded store until `down`, then a Qdrant client
/// pointed at a closed port (the real client, the real connection error).
struct FlakyStore {
    up: grader::store::EmbeddedStore,
    gone: grader::store::QdrantStore,
    down: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    fn pick(&self) -> &dyn grader::store::VectorStore {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            &self.gone
        } else {
            &self.up
        }
    }
}

type StoreFuture<'a, T> = futures::future::BoxFuture<'a, Result<T, grader::store::StoreError>>;

impl grader::store::VectorStore for FlakyStore {
    fn describe(&self) -> String {
        self.pick().describe()
    }
    fn ensure_collection<'a>(&'a self, name: &'a str, dim: usize) -> StoreFuture<'a, ()> {
        self.pick().ensure_collection(name, dim)
    }
    fn recreate_collection<'a>(&'a self, name: &'a str, dim: usize) -> StoreFuture<'a, ()> {
        self.pick().recreate_collection(name, dim)
    }
    fn upsert<'a>(&'a self, c: &'a str, p: Vec<grader::store::Point>) -> StoreFuture<'a, ()> {
        self.pick().upsert(c, p)
    }
    fn delete<'a>(&'a self, c: &'a str, f: &'a grader::store::Filter) -> StoreFuture<'a, ()> {
        self.pick().delete(c, f)
    }
    fn search<'a>(
        &'a self,
        c: &'a str,
        v: &'a [f32],
        f: &'a grader::store::Filter,
        limit: usize,
    ) -> StoreFuture<'a, Vec<grader::store::Hit>> {
        self.pick().search(c, v, f, limit)
    }
    fn scroll<'a>(
        &'a self,
        c: &'a str,
        f: &'a grader::store::Filter,
    ) -> StoreFuture<'a, Vec<grader::store::Point>> {
        self.pick().scroll(c, f)
    }
    fn count<'a>(&'a self, c: &'a str) -> StoreFuture<'a, usize> {
        self.pick().count(c)
    }
    fn flush(&self) -> StoreFuture<'_, ()> {
        self.pick().flush()
    }
}

/// With the store unreachable, what needs it is a 503 with Retry-After (not a 500), readiness
/// names the store error, and grading by question_id keeps working from memory.
#[tokio::test]
async fn an_unreachable_store_is_503_and_readiness_names_it() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let store = Arc::new(FlakyStore {
        up: grader::store::EmbeddedStore::in_memory(),
        gone: grader::store::QdrantStore::connect(grader::store::QdrantOptions {
            url,
            api_key: None,
            shard_number: 1,
            replication_factor: 1,
        })
        .unwrap(),
        down: false.into(),
    });
    let e = Arc::new(
        Engine::with_parts(
            crate::common::settings(),
            crate::common::catalog(Rubrics::Fixture),
            Arc::new(crate::common::embedder()),
            store.clone(),
            crate::common::calibration(),
            &|_, _| {},
        )
        .await
        .unwrap(),
    );
    let by_text = || {
        post_json(
            "/v1/grade",
            &json!({"question": "What is the difference between a deep copy and a shallow copy in Python?", "answer": ANSWER}),
        )
    };
    assert_eq!(call(e.clone(), by_text()).await.status, StatusCode::OK);
    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = call(e.clone(), by_text()).await;
    assert_problem(&r, 503, None, "cannot be reached");
    assert!(
        r.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/store-unavailable")
    );
    assert!(r.headers.get("retry-after").is_some());
    let r = call(e.clone(), get("/v1/questions?q=deep%20copy")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.headers.get("retry-after").is_some());
    let r = call(e.clone(), get("/readyz")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["ready"], false);
    assert!(
        r.body["store_error"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{}",
        r.text
    );
    let r = call(
        e.clone(),
        post_json(
            "/v1/grade",
            &json!({"question_id": "core.copy", "answer": ANSWER}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "by id, from memory: {}", r.text);
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(call(e.clone(), by_text()).await.status, StatusCode::OK);
    assert_eq!(call(e.clone(), get("/readyz")).await.status, StatusCode::OK);
}
