//! The request body extractors, one set of checks for every route: content type (415), size
//! (413), UTF-8 (400), and for JSON the shape, each as a precise problem that names the field
//! at fault. [`JsonBody`] for JSON routes, [`TextBody`] for transcripts.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// The request's `Content-Type` as sent, and its lower-case essence (no parameters).
fn content_type(req: &Request) -> (String, String) {
    let sent = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let essence = sent
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (sent, essence)
}

fn unsupported(sent: &str, fix: &str) -> Problem {
    let got = if sent.is_empty() {
        "no Content-Type".to_string()
    } else {
        format!("Content-Type `{sent}`")
    };
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        format!("{got}: {fix}"),
    )
}

/// The whole body, within `limits.max_body_bytes` (the router's `DefaultBodyLimit`).
async fn bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                "the body is larger than limits.max_body_bytes; send less (split a batch or a transcript)",
            )
        } else if timed_out(&e) {
            // The connection layer gave up on a body that stopped arriving (the connection is
            // closed after this answer).
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body too slow",
                "the body did not arrive within server.body_read_timeout_ms; send it at once",
            )
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable-body",
                "Unreadable request body",
                format!("the request body could not be read: {e}"),
            )
        }
    })
}

/// Whether an error was caused by a read that timed out.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn utf8(bytes: &[u8]) -> Result<&str, Problem> {
    std::str::from_utf8(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-utf8",
            "Body is not UTF-8",
            format!(
                "the body is not valid UTF-8 (first bad byte at offset {}); encode it as UTF-8",
                e.valid_up_to()
            ),
        )
    })
}

/// A JSON request body (`application/json` or any `+json` type).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let (sent, essence) = content_type(&req);
        if !(essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json")))
        {
            return Err(unsupported(
                &sent,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = bytes(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// A transcript body: text (`text/plain`, `text/vtt`, `application/x-subrip`, `text/srt`,
/// `text/markdown`) or JSON turns (`application/json`).
pub struct TextBody {
    pub text: String,
    /// Sent as `application/json` (JSON turns).
    pub json: bool,
}

const TEXT_TYPES: &[&str] = &[
    "text/plain",
    "text/vtt",
    "application/x-subrip",
    "text/srt",
    "text/markdown",
];

impl<S: Send + Sync> FromRequest<S> for TextBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let (sent, essence) = content_type(&req);
        let json = essence == "application/json";
        if !json && !TEXT_TYPES.contains(&essence.as_str()) {
            return Err(unsupported(
                &sent,
                "send text/plain (or text/vtt, application/x-subrip) or application/json turns",
            ));
        }
        let bytes = bytes(req, state).await?;
        let text = utf8(&bytes)?.to_string();
        Ok(TextBody { text, json })
    }
}

/// Parse JSON bytes into `T` with problems that point at the spot.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let text = utf8(bytes)?;
    if text.trim().is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            "the body is empty: send a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "Malformed JSON",
                format!("the body is not valid JSON: {inner}"),
            )
        } else {
            let mut field = if path == "." { String::new() } else { path };
            // serde reports a missing field at its parent; name the field itself.
            let msg = inner.to_string();
            if let Some(rest) = msg.strip_prefix("missing field `") {
                let name = rest.split('`').next().unwrap_or("");
                field = if field.is_empty() {
                    name.to_string()
                } else {
                    format!("{field}.{name}")
                };
            }
            let mut p = Problem::validation(
                &field,
                format!(
                    "{}{inner}",
                    if field.is_empty() {
                        String::new()
                    } else {
                        format!("{field}: ")
                    }
                ),
            );
            if p.field.as_deref() == Some("") {
                p.field = None;
            }
            p
        }
    })?;
    de.end().map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            format!("trailing characters after the JSON value: {e}"),
        )
    })?;
    Ok(value)
}
