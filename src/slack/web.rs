//! Slack's Web API: calls with the bot token, thread replies, and the app-mention flow (find the
//! transcript file, download it, grade it, reply with the report and attach the HTML page).

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{HELP, SlackState, blocks};
use crate::engine::Engine;
use crate::transcript::{TranscriptOptions, grade_transcript, pairs_of, report};

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
        .settings()
        .slack
        .bot_token
        .as_ref()
        .ok_or_else(|| err("SLACK_BOT_TOKEN is not set".into()))?;
    let url = format!(
        "{}/{method}",
        engine.settings().slack.api_base_url.trim_end_matches('/')
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
pub(super) async fn handle_mention(
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
        .settings()
        .slack
        .bot_token
        .as_ref()
        .map(|t| t.expose_secret().to_string())
        .unwrap_or_default();
    let max = engine.settings().limits.max_transcript_bytes;
    let text = match download(slack, &url, &token, max).await {
        Ok(text) => text,
        Err(why) => {
            tracing::warn!(file = %name, error = %why, "downloading a Slack file failed");
            let msg = blocks::ephemeral(&format!(
                ":warning: Could not download `{}`: {}",
                blocks::esc(&name),
                blocks::esc(&why)
            ));
            return reply(engine, slack, &channel, &thread, msg).await;
        }
    };
    let opts = TranscriptOptions::new(engine.settings().limits.concurrency);
    // One place per question in the admission queue (the count is checked again, with the
    // limits, when it is graded).
    let questions = pairs_of(&name, &text, None, &opts.roles).map_or(1, |(_, p)| p.len());
    let admitted = match engine.admit(questions) {
        Ok(a) => a,
        Err(o) => {
            let msg = blocks::ephemeral(&format!(
                ":hourglass: The grader is busy; mention me again in {} s.",
                o.retry_after_secs
            ));
            return reply(engine, slack, &channel, &thread, msg).await;
        }
    };
    let graded = admitted
        .run(grade_transcript(engine, &name, &text, &opts, &|_| {}))
        .await;
    let r = match graded {
        Ok(r) => {
            if let Some(audit) = engine.audit() {
                let team = event["team"].as_str().unwrap_or_default();
                let user = event["user"].as_str().unwrap_or_default();
                audit.record_transcript(
                    crate::audit::Origin::new(crate::audit::Source::slack(team, user)),
                    &r,
                );
            }
            r
        }
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

/// A file's text, read whole: any failure (status, a body cut short, not UTF-8, a web page
/// instead of the file, more than `max` bytes) is an error, never an empty transcript.
async fn download(
    slack: &SlackState,
    url: &str,
    token: &str,
    max: usize,
) -> Result<String, String> {
    if url.is_empty() {
        return Err("Slack gave no download URL for the file".into());
    }
    let mut resp = slack
        .http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.without_url().to_string())?;
    // Without the files:read scope Slack answers 200 with its sign-in page.
    let html = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html {
        return Err(
            "Slack sent a web page instead of the file (does the app have the files:read scope?)"
                .into(),
        );
    }
    let too_big = || format!("the file is larger than limits.max_transcript_bytes ({max})");
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("the download broke off: {}", e.without_url()))?
    {
        if bytes.len() + chunk.len() > max {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "the file is not UTF-8 text (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
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
