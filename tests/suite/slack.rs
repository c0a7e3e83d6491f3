//! The Slack bot against a local fake Slack (Web API, files, response_url), with requests
//! signed in the test by the real HMAC.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use grader::engine::{Engine, QuestionRef};
use grader::server::{AppState, router};
use grader::slack::{Ask, SlackState, blocks, parse_command, sign};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Rubrics, data, engine_with};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN: &str = "xoxb-test-token";

#[derive(Default)]
struct Seen {
    /// (path, body) of every call.
    calls: Vec<(String, Value)>,
    uploads: Vec<String>,
    auth: Vec<String>,
}

struct FakeSlack {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

async fn fake_slack() -> FakeSlack {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let transcript = std::fs::read_to_string(data("transcripts/basic.txt")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let app = Router::new()
        .route(
            "/api/{method}",
            post(move |State(seen): State<Arc<Mutex<Seen>>>, Path(method): Path<String>, headers: HeaderMap, body: Bytes| {
                let b = b.clone();
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut s = seen.lock().unwrap();
                    s.auth.push(headers.get("authorization").map(|h| h.to_str().unwrap().to_string()).unwrap_or_default());
                    s.calls.push((method.clone(), v.clone()));
                    axum::Json(match method.as_str() {
                        "files.info" => {
                            // F1 is the transcript; FBROKEN breaks off mid-download; FPAGE is
                            // the sign-in page Slack sends without the files:read scope.
                            let path = match v["file"].as_str() {
                                Some("FBROKEN") => "broken",
                                Some("FPAGE") => "page",
                                _ => "basic.txt",
                            };
                            json!({"ok": true, "file": {"id": v["file"], "name": "basic.txt", "url_private_download": format!("{b}/files/{path}")}})
                        }
                        "conversations.replies" => json!({"ok": true, "messages": [{"ts": "1.0", "files": [{"id": "F1", "name": "basic.txt", "filetype": "text"}]}]}),
                        "files.getUploadURLExternal" => json!({"ok": true, "upload_url": format!("{b}/upload/F9"), "file_id": "F9"}),
                        _ => json!({"ok": true}),
                    })
                }
            }),
        )
        .route(
            "/files/{name}",
            get(move |Path(name): Path<String>, headers: HeaderMap| {
                let t = transcript.clone();
                async move {
                    use axum::response::IntoResponse;
                    if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
                        return (StatusCode::FORBIDDEN, String::new()).into_response();
                    }
                    match name.as_str() {
                        "broken" => {
                            use futures::StreamExt;
                            let half = t[..t.len() / 2].to_string();
                            // Half the file, flushed, then the connection breaks (after a
                            // pause, so the head and the first half reach the client first).
                            let parts = futures::stream::once(async move {
                                Ok::<_, std::io::Error>(half)
                            })
                            .chain(futures::stream::once(async {
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                Err(std::io::Error::other("connection lost"))
                            }));
                            Body::from_stream(parts).into_response()
                        }
                        "page" => (
                            [("content-type", "text/html; charset=utf-8")],
                            "<!doctype html><title>Sign in to Slack</title>",
                        )
                            .into_response(),
                        _ => (StatusCode::OK, t).into_response(),
                    }
                }
            }),
        )
        .route(
            "/upload/{id}",
            post(|State(seen): State<Arc<Mutex<Seen>>>, body: String| async move {
                seen.lock().unwrap().uploads.push(body);
                "OK"
            }),
        )
        .route(
            "/response/{id}",
            post(|State(seen): State<Arc<Mutex<Seen>>>, Path(id): Path<String>, body: Bytes| async move {
                seen.lock().unwrap().calls.push((format!("response/{id}"), serde_json::from_slice(&body).unwrap_or(Value::Null)));
                "ok"
            }),
        )
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeSlack { base, seen }
}

async fn engine(slack: &FakeSlack) -> Arc<Engine> {
    let e = engine_with(Rubrics::Fixture, |s| {
        s.slack.signing_secret = Some(SECRET.to_string().into());
        s.slack.bot_token = Some(TOKEN.to_string().into());
        s.slack.api_base_url = format!("{}/api", slack.base);
        // The fake's response URLs are allowed (Slack's own are hooks.slack.com).
        s.slack.response_url_prefixes = vec![format!("{}/response/", slack.base)];
    });
    Arc::new(e.await)
}

/// The service's router and the bot's state (to wait until its background jobs are done).
async fn app(slack: &FakeSlack) -> (Router, Arc<SlackState>) {
    let state = AppState::new(engine(slack).await).unwrap();
    let bot = state.slack.clone();
    (router(state), bot)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(path: &str, content_type: &str, body: &str, ts: i64) -> Request<Body> {
    let ts = ts.to_string();
    Request::post(path)
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sign(SECRET, &ts, body.as_bytes()))
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn command_body(text: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("command", "/grade"),
        ("text", text),
        ("response_url", response_url),
        ("user_id", "U1"),
        ("channel_id", "C1"),
    ])
    .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

/// Wait (bounded) until `pred` holds on what the fake saw.
async fn wait_for(slack: &FakeSlack, pred: impl Fn(&Seen) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if pred(&slack.seen.lock().unwrap()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn slash_command_acks_fast_then_posts_block_kit() {
    let slack = fake_slack().await;
    let app = router(AppState::new(engine(&slack).await).unwrap());
    let url = format!("{}/response/1", slack.base);
    let body = command_body(
        "core.copy :: A shallow copy shares the nested lists; deepcopy copies them recursively.",
        &url,
    );
    let started = Instant::now();
    let (status, ack) = send(
        &app,
        signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            &body,
            now(),
        ),
    )
    .await;
    let ack_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert!(ack_time < Duration::from_secs(3), "ack took {ack_time:?}");
    let ack: Value = serde_json::from_str(&ack).unwrap();
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(ack["text"].as_str().unwrap().starts_with("Grading"));
    assert!(
        wait_for(&slack, |s| s.calls.iter().any(|(p, _)| p == "response/1")).await,
        "no Block Kit post arrived"
    );
    let seen = slack.seen.lock().unwrap();
    let msg = &seen
        .calls
        .iter()
        .find(|(p, _)| p == "response/1")
        .unwrap()
        .1;
    let blocks = msg["blocks"].as_array().unwrap();
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("core.copy: "),
        "{msg}"
    );
    let all = msg.to_string();
    assert!(
        all.contains("shallow-shares-nested") && all.contains(":white_check_mark:"),
        "per-criterion verdicts: {all}"
    );
    assert!(all.contains("Gaps") || all.contains("Covers"), "{all}");
}

#[tokio::test]
async fn answer_on_following_lines_and_question_text() {
    let ask = parse_command(
        "What is the difference between deepcopy and copy?\nA deep copy copies nested objects too.",
        |_| false,
    );
    assert_eq!(
        ask,
        Ask::Grade {
            question: QuestionRef::Text("What is the difference between deepcopy and copy?".into()),
            answer: "A deep copy copies nested objects too.".into()
        }
    );
    assert_eq!(
        parse_command("core.copy :: x", |q| q == "core.copy"),
        Ask::Grade {
            question: QuestionRef::Id("core.copy".into()),
            answer: "x".into()
        }
    );
    assert_eq!(parse_command("help", |_| true), Ask::Help);
    assert_eq!(parse_command("", |_| true), Ask::Help);
    assert_eq!(
        parse_command("list core", |_| true),
        Ask::List(Some("core".into()))
    );
    assert!(matches!(
        parse_command("core.copy", |_| true),
        Ask::Invalid(_)
    ));
    assert!(
        matches!(parse_command("core.copy ::   ", |_| true), Ask::Invalid(m) if m.contains("answer is missing"))
    );
}

#[tokio::test]
async fn help_list_and_usage_errors_are_ephemeral() {
    let slack = fake_slack().await;
    let app = router(AppState::new(engine(&slack).await).unwrap());
    let url = format!("{}/response/x", slack.base);
    for (text, want) in [
        ("help", "/grade <question id"),
        ("list", "`core.copy`"),
        ("list oop", "No questions in topic `oop`"),
        ("core.copy", "separated by `::`"),
    ] {
        let (status, body) = send(
            &app,
            signed(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                &command_body(text, &url),
                now(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["response_type"], "ephemeral");
        assert!(v["text"].as_str().unwrap().contains(want), "{text}: {body}");
    }
}

#[tokio::test]
async fn unverified_requests_are_rejected_and_nothing_is_graded() {
    let slack = fake_slack().await;
    let (app, bot) = app(&slack).await;
    let url = format!("{}/response/2", slack.base);
    let body = command_body("core.copy :: anything", &url);
    let ts = now().to_string();
    let bad_sig = Request::post("/slack/commands")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            sign("wrong-secret", &ts, body.as_bytes()),
        )
        .body(Body::from(body.clone()))
        .unwrap();
    let stale = signed(
        "/slack/commands",
        "application/x-www-form-urlencoded",
        &body,
        now() - 301,
    );
    let future = signed(
        "/slack/commands",
        "application/x-www-form-urlencoded",
        &body,
        now() + 400,
    );
    let missing = Request::post("/slack/commands")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.clone()))
        .unwrap();
    let tampered = {
        let mut r = signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            &body,
            now(),
        );
        *r.body_mut() = Body::from(body.replace("anything", "everything"));
        r
    };
    let garbage_sig = Request::post("/slack/events")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", "v0=zz")
        .body(Body::from("{}"))
        .unwrap();
    for (name, req, why) in [
        ("bad signature", bad_sig, "does not match"),
        ("stale", stale, "replay"),
        ("future", future, "replay"),
        ("missing headers", missing, "missing"),
        ("tampered body", tampered, "does not match"),
        ("garbage signature", garbage_sig, "does not match"),
    ] {
        let (status, text) = send(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {text}");
        assert!(text.contains(why), "{name}: {text}");
        assert!(!text.contains(SECRET), "{name}: the secret leaked");
    }
    // Nothing was started; had anything been, it would have finished by now.
    bot.idle().await;
    assert!(
        slack.seen.lock().unwrap().calls.is_empty(),
        "nothing graded or posted"
    );
}

#[tokio::test]
async fn malformed_payloads_are_400_without_panics() {
    let slack = fake_slack().await;
    let app = router(AppState::new(engine(&slack).await).unwrap());
    for (path, ct, body) in [
        ("/slack/events", "application/json", "{not json"),
        ("/slack/events", "application/json", "[]"),
        (
            "/slack/events",
            "application/json",
            r#"{"type": "url_verification"}"#,
        ),
        (
            "/slack/events",
            "application/json",
            r#"{"type": "event_callback", "event": {}}"#,
        ),
        (
            "/slack/commands",
            "application/x-www-form-urlencoded",
            "command=%2Fgrade&text=core.copy%20%3A%3A%20an%20answer",
        ),
        (
            "/slack/commands",
            "application/x-www-form-urlencoded",
            "%%%",
        ),
    ] {
        let (status, text) = send(&app, signed(path, ct, body, now())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {text}");
    }
}

#[tokio::test]
async fn url_verification_echoes_the_challenge() {
    let slack = fake_slack().await;
    let app = router(AppState::new(engine(&slack).await).unwrap());
    let body = r#"{"type": "url_verification", "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#;
    let (status, text) = send(
        &app,
        signed("/slack/events", "application/json", body, now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
}

fn mention(event_id: &str, with_file: bool) -> String {
    mention_of(event_id, with_file.then_some("F1"))
}

fn mention_of(event_id: &str, file: Option<&str>) -> String {
    let mut event = json!({"type": "app_mention", "user": "U1", "text": "<@UBOT> grade this", "ts": "1700000000.000100", "channel": "C1"});
    if let Some(id) = file {
        event["files"] = json!([{"id": id, "name": "basic.txt", "filetype": "text"}]);
    } else {
        event["thread_ts"] = json!("1700000000.000001");
    }
    json!({"type": "event_callback", "event_id": event_id, "event": event}).to_string()
}

#[tokio::test]
async fn transcript_file_gets_a_thread_reply_with_the_report_and_retries_grade_once() {
    let slack = fake_slack().await;
    let (app, bot) = app(&slack).await;
    let body = mention("Ev1", true);
    let started = Instant::now();
    let (status, _) = send(
        &app,
        signed("/slack/events", "application/json", &body, now()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(3));
    // Slack retries the same event: acknowledged, not graded again.
    let mut retry = signed("/slack/events", "application/json", &body, now());
    retry
        .headers_mut()
        .insert("x-slack-retry-num", "1".parse().unwrap());
    assert_eq!(send(&app, retry).await.0, StatusCode::OK);
    assert!(
        wait_for(&slack, |s| s
            .calls
            .iter()
            .any(|(p, _)| p == "files.completeUploadExternal"))
        .await,
        "no report uploaded"
    );
    // Every background job (including any the retry might have started) has finished.
    bot.idle().await;
    let seen = slack.seen.lock().unwrap();
    let posts: Vec<&Value> = seen
        .calls
        .iter()
        .filter(|(p, _)| p == "chat.postMessage")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(posts.len(), 1, "graded once despite the retry");
    assert_eq!(posts[0]["channel"], "C1");
    assert_eq!(
        posts[0]["thread_ts"], "1700000000.000100",
        "replies in the thread"
    );
    assert!(
        posts[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Interview report"),
        "{}",
        posts[0]
    );
    assert!(posts[0].to_string().contains("not in the rubric set"));
    assert_eq!(seen.uploads.len(), 1);
    assert!(seen.uploads[0].starts_with("<!doctype html>"));
    let done = &seen
        .calls
        .iter()
        .find(|(p, _)| p == "files.completeUploadExternal")
        .unwrap()
        .1;
    assert_eq!(done["thread_ts"], "1700000000.000100");
    assert!(
        seen.auth.iter().all(|a| a == &format!("Bearer {TOKEN}")),
        "Web API calls carry the bot token"
    );
}

#[tokio::test]
async fn mention_in_a_thread_finds_the_file_in_the_thread() {
    let slack = fake_slack().await;
    let app = router(AppState::new(engine(&slack).await).unwrap());
    let (status, _) = send(
        &app,
        signed(
            "/slack/events",
            "application/json",
            &mention("Ev2", false),
            now(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        wait_for(&slack, |s| s
            .calls
            .iter()
            .any(|(p, _)| p == "chat.postMessage"))
        .await
    );
    let seen = slack.seen.lock().unwrap();
    assert!(
        seen.calls
            .iter()
            .any(|(p, v)| p == "conversations.replies" && v["ts"] == "1700000000.000001")
    );
    let post = &seen
        .calls
        .iter()
        .find(|(p, _)| p == "chat.postMessage")
        .unwrap()
        .1;
    assert_eq!(post["thread_ts"], "1700000000.000001");
}

#[tokio::test]
async fn block_kit_limits_are_respected() {
    let g = grader::grade::Grade {
        id: uuid::Uuid::now_v7(),
        rubric_id: "core.copy".into(),
        question: "q".into(),
        score: 5.0,
        max_score: 10.0,
        criteria: (0..200)
            .map(|i| grader::grade::CriterionResult {
                id: format!("c{i}"),
                verdict: grader::grade::Verdict::Met,
                weight: 1.0,
                evidence: "evidence ".repeat(100),
                evidence_verified: true,
                reason: String::new(),
                credit: None,
            })
            .collect(),
        misconceptions: vec![],
        gaps: (0..100)
            .map(|i| format!("gap {i} {}", "x".repeat(4000)))
            .collect(),
        feedback: "f".repeat(10_000),
        judge: grader::grade::JudgeInfo {
            kind: grader::config::JudgeKind::Coverage,
            model: "m".into(),
            samples: 1,
            agreement: 1.0,
        },
        flags: vec![],
        usage: Default::default(),
        latency_ms: 1,
        rubric_version: "v".into(),
    };
    let msg = blocks::grade_message(&g);
    let bl = msg["blocks"].as_array().unwrap();
    assert!(bl.len() <= 50, "{} blocks", bl.len());
    assert!(
        bl.last().unwrap().to_string().contains("truncated"),
        "says that content was cut"
    );
    for b in bl {
        if let Some(t) = b["text"]["text"].as_str() {
            assert!(
                t.chars().count() <= 3000,
                "section of {} chars",
                t.chars().count()
            );
        }
    }
    assert!(msg.to_string().contains("(truncated)"));
}

#[tokio::test]
async fn slack_endpoints_404_when_not_configured() {
    let e = crate::server_engine().await;
    let app = router(AppState::new(e).unwrap());
    let (status, text) = send(
        &app,
        signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            "text=help",
            now(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("SLACK_SIGNING_SECRET"), "{text}");
}

/// A signed request replayed within the freshness window is not acted on again.
#[tokio::test]
async fn a_replayed_signed_command_is_not_graded_twice() {
    let slack = fake_slack().await;
    let (app, bot) = app(&slack).await;
    let url = format!("{}/response/replay", slack.base);
    let body = command_body(
        "core.copy :: deepcopy copies nested objects recursively.",
        &url,
    );
    let ts = now();
    let (status, first) = send(
        &app,
        signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            &body,
            ts,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("Grading"), "{first}");
    let (status, again) = send(
        &app,
        signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            &body,
            ts,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.contains("already received"), "{again}");
    bot.idle().await;
    let posts = slack
        .seen
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|(p, _)| p == "response/replay")
        .count();
    assert_eq!(posts, 1, "graded and posted once");
}

/// Grades are posted only under `slack.response_url_prefixes` (Slack's hooks by default).
#[tokio::test]
async fn response_urls_outside_the_allow_list_are_refused() {
    let slack = fake_slack().await;
    let (app, bot) = app(&slack).await;
    for url in [
        "https://evil.example/collect".to_string(),
        "https://hooks.slack.com.evil.example/x".to_string(),
        format!("{}/elsewhere/1", slack.base),
    ] {
        let body = command_body("core.copy :: an answer about copies.", &url);
        let (status, text) = send(
            &app,
            signed(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                &body,
                now(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {text}");
        assert!(text.contains("response_url_prefixes"), "{text}");
    }
    bot.idle().await;
    assert!(
        slack.seen.lock().unwrap().calls.is_empty(),
        "nothing graded or posted"
    );
    // The default list is Slack's.
    let e = crate::server_engine().await;
    assert_eq!(
        e.settings().slack.response_url_prefixes,
        ["https://hooks.slack.com/".to_string()]
    );
}

/// A download that fails (broken off, or a web page instead of the file) is reported as such,
/// never graded as an empty transcript.
#[tokio::test]
async fn a_failed_file_download_is_an_error_not_an_empty_transcript() {
    let slack = fake_slack().await;
    let (app, bot) = app(&slack).await;
    for (event, file, why) in [
        ("EvBroken", "FBROKEN", "broke off"),
        ("EvPage", "FPAGE", "files:read"),
    ] {
        let (status, _) = send(
            &app,
            signed(
                "/slack/events",
                "application/json",
                &mention_of(event, Some(file)),
                now(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        bot.idle().await;
        let seen = slack.seen.lock().unwrap();
        let post = seen
            .calls
            .iter()
            .rev()
            .find(|(p, _)| p == "chat.postMessage")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        assert!(post.contains("Could not download"), "{file}: {post}");
        assert!(post.contains(why), "{file}: {post}");
        assert!(!post.contains("Interview report"), "{file}: {post}");
    }
}
