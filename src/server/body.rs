//! The JSON body extractor: content type, size, UTF-8 and shape problems each become a
//! precise 4xx problem that names the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// A JSON request body (`application/json` or any `+json` type).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json")))
        {
            let got = if content_type.is_empty() {
                "no Content-Type".to_string()
            } else {
                format!("Content-Type `{content_type}`")
            };
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("{got}: send the body as JSON with `Content-Type: application/json`"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                    "the body is larger than limits.max_body_bytes; send less (e.g. split a batch)",
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable-body",
                    "Unreadable request body",
                    format!("the request body could not be read: {e}"),
                )
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parse JSON bytes into `T` with problems that point at the spot.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-utf8",
            "Body is not UTF-8",
            format!("the body is not valid UTF-8 (first bad byte at offset {}); encode the JSON as UTF-8", e.valid_up_to()),
        )
    })?;
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
