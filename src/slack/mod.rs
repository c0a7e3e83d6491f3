//! The Slack bot: `/grade` slash commands and app mentions with transcript files.
//!
//! Every request is verified (`X-Slack-Signature` = `v0=` + HMAC-SHA256 of
//! `v0:{timestamp}:{raw body}` with the signing secret, constant-time compare, timestamps more
//! than `slack.max_clock_skew_secs` off are replays). Slack wants an answer within 3 s, so the
//! handlers acknowledge at once and grade in the background, then post the result to the
//! command's `response_url` or reply in the thread through the Web API
//! (`slack.api_base_url`, configurable so tests point it at a local server).
//!
//! The bot brings its own [`router`] over its own [`SlackState`]; the HTTP service mounts it.
//!
//! # Layout
//! - `verify.rs`: signatures and freshness; `web.rs`: Web API calls and the mention flow;
//!   `blocks.rs`: Block Kit messages.

// An early-return `Response` is the error path of handlers; its size does not matter.
#![allow(clippy::result_large_err)]

pub mod blocks;
mod verify;
mod web;

pub use verify::{VerifyError, sign, verify};
pub use web::ApiError;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Engine, GradeRequest, QuestionRef};
use crate::problem::Problem;
use verify::{now_secs, unauthorized};
use web::handle_mention;

/// The bot's state: the engine, the Web API client, the event ids and signed requests already
/// handled, and the background jobs still running.
pub struct SlackState {
    engine: Arc<Engine>,
    http: reqwest::Client,
    seen: Mutex<HashMap<String, Instant>>,
    /// Background jobs (grading, posting) started and not yet finished.
    jobs: tokio::sync::watch::Sender<usize>,
}

/// The bot's HTTP client could not be built (TLS set-up); the service does not start.
#[derive(Debug, thiserror::Error)]
#[error("the Slack HTTP client could not be built: {0}")]
pub struct ClientError(String);

impl SlackState {
    pub fn new(engine: Arc<Engine>) -> Result<Self, ClientError> {
        crate::llm::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(SlackState {
            engine,
            http,
            seen: Mutex::new(HashMap::new()),
            jobs: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Run a job after the acknowledgement, counted until it finishes.
    fn spawn(self: &Arc<Self>, job: impl std::future::Future<Output = ()> + Send + 'static) {
        self.jobs.send_modify(|n| *n += 1);
        let state = self.clone();
        tokio::spawn(async move {
            job.await;
            state.jobs.send_modify(|n| *n -= 1);
        });
    }

    /// Resolves when no background job is running (tests wait on it instead of sleeping;
    /// shutdown could too).
    pub async fn idle(&self) {
        let mut rx = self.jobs.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// `POST /slack/commands` and `POST /slack/events` over the bot's state.
pub fn router(state: Arc<SlackState>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/events", post(events))
        .with_state(state)
}

/// How long an event id is remembered (Slack retries within minutes). A signed request is
/// remembered as long, which is longer than it stays fresh (`slack.max_clock_skew_secs`).
const DEDUPE_WINDOW: Duration = Duration::from_secs(3600);

impl SlackState {
    /// True the first time a key (an event id, or a request's timestamp and signature) is seen.
    fn first_time(&self, key: &str) -> bool {
        let mut seen = self.seen.lock().expect("slack dedupe lock");
        let now = Instant::now();
        seen.retain(|_, t| now.duration_since(*t) < DEDUPE_WINDOW);
        seen.insert(key.to_string(), now).is_none()
    }

    /// The key of a verified request: its timestamp and signature. A replay within the
    /// freshness window carries both unchanged (a new signature needs the secret).
    fn replay_key(headers: &HeaderMap) -> String {
        let h = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
                .to_string()
        };
        format!(
            "request:{}:{}",
            h("x-slack-request-timestamp"),
            h("x-slack-signature")
        )
    }
}

/// The signing secret, or the problem to return when Slack is not configured.
fn secret(engine: &Engine) -> Result<SecretString, Response> {
    engine.settings().slack.signing_secret.clone().ok_or_else(|| {
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
    #[serde(default)]
    team_id: String,
}

pub(crate) const HELP: &str = "*Grade an answer:* `/grade <question id or question text> :: <answer>` (or put the answer on the lines after the question)\n\
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
/// A verified request seen before (same timestamp and signature: a replay) is acknowledged
/// with 200 and not acted on again.
fn authenticate(state: &SlackState, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    let secret = secret(&state.engine)?;
    verify(
        &secret,
        headers,
        body,
        now_secs(),
        state.engine.settings().slack.max_clock_skew_secs,
    )
    .map_err(|e| unauthorized(&e))?;
    if !state.first_time(&SlackState::replay_key(headers)) {
        tracing::warn!("a signed Slack request was received again (replay); ignored");
        return Err(Json(blocks::ephemeral(
            "This request was already received; it is not run again.",
        ))
        .into_response());
    }
    Ok(())
}

/// Whether `url` is under one of the allowed prefixes (`slack.response_url_prefixes`). Each
/// prefix is checked at load to be an http(s) URL whose host is followed by `/`, so a URL that
/// starts with it has that host (`https://hooks.slack.com.evil.example/` does not start with
/// `https://hooks.slack.com/`).
fn response_url_allowed(url: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| url.starts_with(p.as_str()))
}

/// `POST /slack/commands`
async fn commands(
    State(state): State<Arc<SlackState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    match parse_command(&cmd.text, |q| engine.catalog().get(q).is_some()) {
        Ask::Help => Json(blocks::ephemeral(HELP)).into_response(),
        Ask::Invalid(why) => Json(blocks::ephemeral(&format!(":warning: {why}"))).into_response(),
        Ask::List(topic) => {
            let lines: Vec<String> = engine
                .rubrics(topic.as_deref())
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
            let Some(url) = cmd.response_url else {
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "slack-bad-payload",
                    "Malformed slash command",
                    "the payload has no response_url",
                )
                .into_response();
            };
            let allowed = &engine.settings().slack.response_url_prefixes;
            if !response_url_allowed(&url, allowed) {
                tracing::warn!(
                    "slash command with a response_url outside slack.response_url_prefixes"
                );
                return Problem::new(
                    StatusCode::BAD_REQUEST,
                    "slack-bad-payload",
                    "Malformed slash command",
                    format!(
                        "the response_url is not under an allowed prefix ({}); see slack.response_url_prefixes",
                        allowed.join(", ")
                    ),
                )
                .into_response();
            }
            let admitted = match engine.admit(1) {
                Ok(a) => a,
                Err(o) => {
                    return Json(blocks::ephemeral(&format!(
                        ":hourglass: The grader is busy; try again in {} s.",
                        o.retry_after_secs
                    )))
                    .into_response();
                }
            };
            let slack = state.clone();
            let origin =
                crate::audit::Origin::new(crate::audit::Source::slack(&cmd.team_id, &cmd.user_id));
            state.spawn(async move {
                let req = GradeRequest {
                    question,
                    answer,
                    judge: None,
                    samples: None,
                };
                let graded = admitted.run(engine.grade(&req)).await;
                let msg = match graded {
                    Ok(g) => {
                        if let Some(audit) = engine.audit() {
                            audit.record_grade(origin, &req.question, &req.answer, &g);
                        }
                        blocks::grade_message(&g)
                    }
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
async fn events(State(state): State<Arc<SlackState>>, headers: HeaderMap, body: Bytes) -> Response {
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
            if !state.first_time(event_id) {
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
                let slack = state.clone();
                state.spawn(async move {
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
