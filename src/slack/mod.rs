//! The Slack bot: `/grade` slash commands and app mentions with transcript files.
//!
//! Every request is verified (`X-Slack-Signature` = `v0=` + HMAC-SHA256 of
//! `v0:{timestamp}:{raw body}` with the signing secret, constant-time compare, timestamps more
//! than `slack.max_clock_skew_secs` off are replays). Slack wants an answer within 3 s, so the
//! handlers acknowledge at once and grade in the background, then post the result to the
//! command's `response_url` or reply in the thread through the Web API
//! (`slack.api_base_url`, configurable so tests point it at a local server).

// An early-return `Response` is the error path of handlers; its size does not matter.
#![allow(clippy::result_large_err)]

pub mod blocks;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::engine::{Engine, GradeRequest, QuestionRef};
use crate::server::{AppState, Problem};
use crate::transcript::{TranscriptOptions, grade_transcript, report};

/// Shared Slack state: the Web API client and the event ids already handled.
pub struct SlackState {
    http: reqwest::Client,
    seen: Mutex<HashMap<String, Instant>>,
}

impl Default for SlackState {
    fn default() -> Self {
        crate::llm::install_crypto_provider();
        SlackState {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            seen: Mutex::new(HashMap::new()),
        }
    }
}

/// How long an event id is remembered (Slack retries within minutes).
const DEDUPE_WINDOW: Duration = Duration::from_secs(3600);

impl SlackState {
    /// True the first time an event id is seen.
    fn first_time(&self, event_id: &str) -> bool {
        let mut seen = self.seen.lock().expect("slack dedupe lock");
        let now = Instant::now();
        seen.retain(|_, t| now.duration_since(*t) < DEDUPE_WINDOW);
        seen.insert(event_id.to_string(), now).is_none()
    }
}

/// Why a request is not from Slack. Never includes the secret or the expected signature.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp or X-Slack-Signature header")]
    MissingHeaders,
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    #[error("request timestamp is {0} s from now (more than the allowed skew): possible replay")]
    Stale(i64),
    #[error("signature does not match")]
    BadSignature,
}

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a request's signature and freshness.
pub fn verify(
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    max_skew: u64,
) -> Result<(), VerifyError> {
    let ts = headers
        .get("x-slack-request-timestamp")
        .and_then(|v| v.to_str().ok());
    let sig = headers
        .get("x-slack-signature")
        .and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return Err(VerifyError::MissingHeaders);
    };
    let t: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now - t;
    if skew.unsigned_abs() > max_skew {
        return Err(VerifyError::Stale(skew));
    }
    let expected = sign(secret.expose_secret(), ts.trim(), body);
    // Compare the MACs themselves (constant time), not strings.
    let given = sig
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
        .unwrap_or_default();
    let want = hex::decode(&expected[3..]).unwrap_or_default();
    if given.len() == want.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_slice(),
            want.as_slice(),
        ))
    {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unauthorized(e: &VerifyError) -> Response {
    tracing::warn!(reason = %e, "rejected a Slack request");
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "slack-unverified",
        "Not a verified Slack request",
        e.to_string(),
    )
    .into_response()
}

/// The signing secret, or the problem to return when Slack is not configured.
fn secret(engine: &Engine) -> Result<SecretString, Response> {
    engine.settings.slack.signing_secret.clone().ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "slack-not-configured", "Slack is not configured", "set SLACK_SIGNING_SECRET (and SLACK_BOT_TOKEN for transcripts) to enable the Slack endpoints").into_response()
    })
}

#[derive(Debug, Deserialize)]
struct Command {
    /// Always sent by Slack; its absence means this is not a slash command payload.
    command: String,
    #[serde(default)]
    text: String,
    response_url: Option<String>,
    #[serde(default)]
    user_id: String,
}

const HELP: &str = "*Grade an answer:* `/grade <question id or question text> :: <answer>` (or put the answer on the lines after the question)\n\
*List questions:* `/grade list [topic]`\n\
*Grade a whole interview:* mention me in a message with a transcript file attached (text, VTT, SRT or JSON).";

/// What a `/grade` text asks for.
#[derive(Debug, PartialEq)]
pub enum Ask {
    Help,
    List(Option<String>),
    Grade {
        question: QuestionRef,
        answer: String,
    },
    Invalid(String),
}

/// Parse the text of a `/grade` command.
pub fn parse_command(text: &str, is_id: impl Fn(&str) -> bool) -> Ask {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("help") {
        return Ask::Help;
    }
    let mut words = t.split_whitespace();
    if words.next().is_some_and(|w| w.eq_ignore_ascii_case("list")) {
        let rest: Vec<&str> = words.collect();
        if rest.len() <= 1 {
            return Ask::List(rest.first().map(|s| s.to_lowercase()));
        }
    }
    let (q, a) = match t.split_once("::") {
        Some((q, a)) => (q.trim(), a.trim()),
        None => match t.split_once('\n') {
            Some((q, a)) => (q.trim(), a.trim()),
            None => return Ask::Invalid("give the question and the answer separated by `::` (or the answer on the next lines). Try `/grade help`.".into()),
        },
    };
    if q.is_empty() {
        return Ask::Invalid("the question is missing before `::`".into());
    }
    if a.is_empty() {
        return Ask::Invalid("the answer is missing after `::`".into());
    }
    let question = if is_id(q) {
        QuestionRef::Id(q.to_string())
    } else {
        QuestionRef::Text(q.to_string())
    };
    Ask::Grade {
        question,
        answer: a.to_string(),
    }
}

/// Verify a request's Slack signature against the configured signing secret; the error is the
/// response to send (404 when Slack is not configured, 401 when the signature does not hold).
fn authenticate(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    let secret = secret(&state.engine)?;
    verify(
        &secret,
        headers,
        body,
        now_secs(),
        state.engine.settings.slack.max_clock_skew_secs,
    )
    .map_err(|e| unauthorized(&e))
}

/// `POST /slack/commands`
pub async fn commands(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authenticate(&state, &headers, &body) {
        return r;
    }
    let cmd: Command = match serde_urlencoded::from_bytes(&body) {
        Ok(c) => c,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "slack-bad-payload",
                "Malformed slash command",
                format!("expected a form-encoded slash command payload: {e}"),
            )
            .into_response();
        }
    };
    tracing::info!(command = %cmd.command, user = %cmd.user_id, "slash command");
    let engine = state.engine.clone();
    match parse_command(&cmd.text, |q| engine.catalog.get(q).is_some()) {
        Ask::Help => Json(blocks::ephemeral(HELP)).into_response(),
        Ask::Invalid(why) => Json(blocks::ephemeral(&format!(":warning: {why}"))).into_response(),
        Ask::List(topic) => {
            let lines: Vec<String> = engine
                .catalog
                .iter()
                .filter(|r| topic.as_ref().is_none_or(|t| r.topic == *t))
                .map(|r| format!("`{}` {}", r.id, blocks::esc(&r.question)))
                .collect();
            let text = if lines.is_empty() {
                format!("No questions in topic `{}`.", topic.unwrap_or_default())
            } else {
                lines.join("\n")
            };
            Json(blocks::ephemeral(&text)).into_response()
        }
        Ask::Grade { question, answer } => {
            let Some(url) = cmd.response_url.filter(|u| u.starts_with("http")) else {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "slack-bad-payload",
                    "Malformed slash command",
                    "the payload has no response_url",
                )
                .into_response();
            };
            let slack = state.slack.clone();
            tokio::spawn(async move {
                let msg = match engine
                    .grade(&GradeRequest {
                        question,
                        answer,
                        judge: None,
                        samples: None,
                    })
                    .await
                {
                    Ok(g) => blocks::grade_message(&g),
                    Err(e) => blocks::ephemeral(&format!(
                        ":warning: Could not grade: {}",
                        blocks::esc(&e.to_string())
                    )),
                };
                if let Err(e) = slack
                    .http
                    .post(&url)
                    .json(&msg)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                {
                    tracing::error!(error = %e, "posting the grade to response_url failed");
                }
            });
            Json(blocks::ephemeral(
                "Grading… the result will appear here in a moment.",
            ))
            .into_response()
        }
    }
}

/// `POST /slack/events`
pub async fn events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authenticate(&state, &headers, &body) {
        return r;
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "slack-bad-payload",
                "Malformed event",
                format!("expected a JSON event payload: {e}"),
            )
            .into_response();
        }
    };
    match payload["type"].as_str() {
        Some("url_verification") => match payload["challenge"].as_str() {
            Some(c) => Json(json!({"challenge": c})).into_response(),
            None => Problem::new(
                StatusCode::BAD_REQUEST,
                "slack-bad-payload",
                "Malformed event",
                "url_verification without a challenge",
            )
            .into_response(),
        },
        Some("event_callback") => {
            let Some(event_id) = payload["event_id"].as_str() else {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "slack-bad-payload",
                    "Malformed event",
                    "event_callback without an event_id",
                )
                .into_response();
            };
            let retry = headers
                .get("x-slack-retry-num")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0");
            if !state.slack.first_time(event_id) {
                tracing::info!(event_id, retry, "duplicate Slack event ignored");
                return StatusCode::OK.into_response();
            }
            let event = payload["event"].clone();
            if matches!(
                event["type"].as_str(),
                Some("app_mention") | Some("message")
            ) && event["bot_id"].is_null()
            {
                let engine = state.engine.clone();
                let slack = state.slack.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle_mention(&engine, &slack, &event).await {
                        tracing::error!(error = %e, "handling a Slack mention failed");
                    }
                });
            }
            StatusCode::OK.into_response()
        }
        _ => Problem::new(
            StatusCode::BAD_REQUEST,
            "slack-bad-payload",
            "Malformed event",
            "unknown event envelope type",
        )
        .into_response(),
    }
}

/// A Web API call's failure.
#[derive(Debug, thiserror::Error)]
#[error("Slack {method}: {message}")]
pub struct ApiError {
    method: String,
    message: String,
}

async fn api(
    engine: &Engine,
    slack: &SlackState,
    method: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let err = |message: String| ApiError {
        method: method.to_string(),
        message,
    };
    let token = engine
        .settings
        .slack
        .bot_token
        .as_ref()
        .ok_or_else(|| err("SLACK_BOT_TOKEN is not set".into()))?;
    let url = format!(
        "{}/{method}",
        engine.settings.slack.api_base_url.trim_end_matches('/')
    );
    let resp: Value = slack
        .http
        .post(&url)
        .bearer_auth(token.expose_secret())
        .json(&body)
        .send()
        .await
        .map_err(|e| err(e.without_url().to_string()))?
        .json()
        .await
        .map_err(|e| err(e.without_url().to_string()))?;
    if resp["ok"].as_bool() != Some(true) {
        return Err(err(resp["error"].as_str().unwrap_or("not ok").to_string()));
    }
    Ok(resp)
}

async fn reply(
    engine: &Engine,
    slack: &SlackState,
    channel: &str,
    thread: &str,
    msg: Value,
) -> Result<(), ApiError> {
    let mut body = msg;
    body["channel"] = channel.into();
    body["thread_ts"] = thread.into();
    api(engine, slack, "chat.postMessage", body)
        .await
        .map(|_| ())
}

const TRANSCRIPT_TYPES: &[&str] = &["text", "txt", "vtt", "srt", "json", "markdown", "md"];

/// Grade the transcript attached to a mention (or to the thread it is in) and reply in the thread.
async fn handle_mention(
    engine: &Engine,
    slack: &SlackState,
    event: &Value,
) -> Result<(), ApiError> {
    let channel = event["channel"].as_str().unwrap_or_default().to_string();
    let thread = event["thread_ts"]
        .as_str()
        .or(event["ts"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut files: Vec<Value> = event["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() && event["thread_ts"].is_string() {
        // Mentioned in a thread: look for the file in the thread's messages.
        let replies = api(
            engine,
            slack,
            "conversations.replies",
            json!({"channel": channel, "ts": thread, "limit": 50}),
        )
        .await?;
        files = replies["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["files"].as_array().cloned().unwrap_or_default())
            .collect();
    }
    let file = files.iter().find(|f| {
        let ft = f["filetype"].as_str().unwrap_or("");
        let name = f["name"].as_str().unwrap_or("");
        TRANSCRIPT_TYPES.contains(&ft)
            || TRANSCRIPT_TYPES
                .iter()
                .any(|t| name.ends_with(&format!(".{t}")))
    });
    let Some(file) = file else {
        return reply(engine, slack, &channel, &thread, blocks::ephemeral(HELP)).await;
    };
    let id = file["id"].as_str().unwrap_or_default();
    // files.info gives the private download URL (and confirms access).
    let info = api(engine, slack, "files.info", json!({"file": id})).await?;
    let url = info["file"]["url_private_download"]
        .as_str()
        .or(info["file"]["url_private"].as_str())
        .unwrap_or_default()
        .to_string();
    let name = info["file"]["name"]
        .as_str()
        .unwrap_or("transcript")
        .to_string();
    let token = engine
        .settings
        .slack
        .bot_token
        .as_ref()
        .map(|t| t.expose_secret().to_string())
        .unwrap_or_default();
    let fetched = slack
        .http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let text = match fetched {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => {
            let msg = blocks::ephemeral(&format!(
                ":warning: Could not download `{}`: {}",
                blocks::esc(&name),
                e.without_url()
            ));
            return reply(engine, slack, &channel, &thread, msg).await;
        }
    };
    let opts = TranscriptOptions::new(engine.settings.limits.concurrency);
    let r = match grade_transcript(engine, &name, &text, &opts, &|_| {}).await {
        Ok(r) => r,
        Err(e) => {
            let msg = blocks::ephemeral(&format!(
                ":warning: Could not grade `{}`: {}",
                blocks::esc(&name),
                blocks::esc(&e.to_string())
            ));
            return reply(engine, slack, &channel, &thread, msg).await;
        }
    };
    reply(
        engine,
        slack,
        &channel,
        &thread,
        blocks::transcript_message(&r),
    )
    .await?;
    upload_report(engine, slack, &channel, &thread, &name, &report::html(&r)).await
}

/// Attach the HTML report to the thread (Slack's external upload flow).
async fn upload_report(
    engine: &Engine,
    slack: &SlackState,
    channel: &str,
    thread: &str,
    name: &str,
    html: &str,
) -> Result<(), ApiError> {
    let filename = format!(
        "{}-report.html",
        name.rsplit_once('.').map_or(name, |(s, _)| s)
    );
    let start = api(
        engine,
        slack,
        "files.getUploadURLExternal",
        json!({"filename": filename, "length": html.len()}),
    )
    .await?;
    let upload_url = start["upload_url"].as_str().unwrap_or_default();
    let file_id = start["file_id"].as_str().unwrap_or_default().to_string();
    slack
        .http
        .post(upload_url)
        .body(html.to_string())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| ApiError {
            method: "upload".into(),
            message: e.without_url().to_string(),
        })?;
    api(engine, slack, "files.completeUploadExternal", json!({"files": [{"id": file_id, "title": "Interview report"}], "channel_id": channel, "thread_ts": thread})).await.map(|_| ())
}
