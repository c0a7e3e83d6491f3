//! `POST /v1/transcripts`: a transcript in, its graded report out (JSON), or streamed one
//! graded pair per line (NDJSON) as the pairs finish. The transcript's size and question count
//! are checked before anything is graded; it is admitted with one place per question; and when
//! the client goes away, grading stops (the JSON request is dropped with its connection, the
//! stream's grading task stops when nobody reads the stream).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::body::TextBody;
use crate::audit::{Origin, Source, Via};
use crate::engine::LimitError;
use crate::problem::Problem;
use crate::transcript::{
    Format, PairEvent, Roles, TranscriptError, TranscriptOptions, grade_transcript, pairs_of,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TranscriptQuery {
    /// text, vtt, srt or json (default: detected from the content).
    pub format: Option<String>,
    /// A name for the report (default `transcript`).
    pub name: Option<String>,
    /// Who was interviewed (stored with the grades, for `grader purge --candidate`).
    pub candidate: Option<String>,
}

/// `POST /v1/transcripts`: a transcript as text (`text/plain`, `text/vtt`, `application/x-subrip`)
/// or JSON turns (`application/json`). Returns the report, or with
/// `Accept: application/x-ndjson` streams one graded pair per line as it finishes, then a
/// summary line.
#[utoipa::path(post, path = "/v1/transcripts", params(TranscriptQuery),
    request_body(content = String, description = "The transcript", content_type = "text/plain"),
    responses((status = 200, description = "The report (JSON), or NDJSON lines `{\"type\":\"pair\",...}` then `{\"type\":\"summary\",...}`", body = serde_json::Value),
              (status = 415, description = "Unsupported content type", body = Problem),
              (status = 422, description = "The transcript cannot be read (line and fix in `detail`), or is over a limit", body = Problem),
              (status = 503, description = "At capacity (limits.max_queued_grades); see Retry-After", body = Problem)))]
pub async fn transcripts(
    State(state): State<AppState>,
    query: Result<Query<TranscriptQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: TextBody,
) -> Result<Response, Problem> {
    let Query(query) =
        query.map_err(|e| Problem::bad_query(&e, "?format=text|vtt|srt|json and ?name="))?;
    let mut format: Option<Format> = match query.format.as_deref() {
        Some(f) => Some(
            f.parse()
                .map_err(|e: String| Problem::validation("format", e))?,
        ),
        None => None,
    };
    if body.json {
        format = Some(Format::Json);
    }
    let text = body.text;
    let name = query.name.unwrap_or_else(|| "transcript".into());
    // Every graded pair is stored, with the report, once the transcript is done.
    let origin = Origin::new(Source::new(Via::Api))
        .request_id(super::grades::request_id(&headers))
        .candidate(query.candidate);
    let engine = state.engine.clone();
    let problem = |e: TranscriptError| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-transcript",
            "The transcript cannot be read",
            e.to_string(),
        )
        .field("body")
    };
    // Check it reads, and its limits, before answering 200 (a stream cannot turn into a 422
    // later).
    let limits = &engine.settings().limits;
    let over = |field: &str, limit, value, max, unit, fix| {
        Problem::over_limit(
            &LimitError {
                field: field.into(),
                limit,
                value,
                max,
                unit,
                fix,
            },
            "",
        )
    };
    if text.len() > limits.max_transcript_bytes {
        return Err(over(
            "body",
            "limits.max_transcript_bytes",
            text.len(),
            limits.max_transcript_bytes,
            "bytes",
            "split the transcript",
        ));
    }
    let (_, pairs) = pairs_of(&name, &text, format, &Roles::default()).map_err(problem)?;
    if pairs.len() > limits.max_transcript_pairs {
        return Err(over(
            "body",
            "limits.max_transcript_pairs",
            pairs.len(),
            limits.max_transcript_pairs,
            "questions",
            "split the transcript",
        ));
    }
    let admitted = engine
        .admit(pairs.len())
        .map_err(|o| Problem::overloaded(&o))?;
    let mut opts = TranscriptOptions::new(engine.settings().limits.concurrency);
    opts.format = format;
    let wants_ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"));
    if !wants_ndjson {
        let report = admitted
            .run(grade_transcript(&engine, &name, &text, &opts, &|_| {}))
            .await
            .map_err(problem)?;
        if let Some(audit) = engine.audit() {
            audit.record_transcript(origin, &report);
        }
        return Ok(Json(report).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let pair_tx = tx.clone();
        let on_event = move |e: PairEvent<'_>| {
            if let PairEvent::Done(p) = e {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                v["type"] = "pair".into();
                let _ = pair_tx.send(format!("{v}\n"));
            }
        };
        let grading = admitted.run(grade_transcript(&engine, &name, &text, &opts, &on_event));
        // The stream's receiver is dropped with the connection: stop grading for nobody.
        let outcome = tokio::select! {
            outcome = grading => outcome,
            () = tx.closed() => {
                tracing::info!(transcript = %name, "the client went away; grading stopped");
                return;
            }
        };
        let line = match outcome {
            Ok(mut r) => {
                if let Some(audit) = engine.audit() {
                    audit.record_transcript(origin, &r);
                }
                r.pairs.clear();
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["type"] = "summary".into();
                v.as_object_mut().map(|o| o.remove("pairs"));
                v
            }
            Err(e) => serde_json::json!({"type": "error", "detail": e.to_string()}),
        };
        let _ = tx.send(format!("{line}\n"));
    });
    let stream = tokio_stream_from(rx);
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> impl futures::Stream<Item = Result<String, std::convert::Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}
