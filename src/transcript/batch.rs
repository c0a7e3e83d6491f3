//! Grading many transcript files into report files (`grader batch`), resumable: a transcript
//! whose JSON report exists for the same content and rubric set is not graded again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::config::JudgeKind;
use crate::engine::Engine;
use crate::rubric::content_hash;

use super::{
    Format, PairEvent, TranscriptError, TranscriptOptions, TranscriptReport, grade_transcript,
    report,
};

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Folder for the reports (created if missing).
    pub out: PathBuf,
    /// Answers graded at once across all transcripts.
    pub concurrency: usize,
    /// The transcripts' format (default: detected per file).
    pub format: Option<Format>,
    pub judge: Option<JudgeKind>,
    /// Grade again even when an up-to-date report exists.
    pub force: bool,
}

/// Transcripts read at once: enough to keep `concurrency` answers busy, few enough that a
/// large batch does not hold every file in memory.
const FILES_AT_ONCE: usize = 8;

/// Progress of a batch.
pub enum BatchEvent<'a> {
    /// A transcript turned out to hold this many answers.
    AnswersFound(usize),
    /// One answer is done.
    AnswerDone,
    /// One transcript is done (graded, skipped or failed).
    FileDone(&'a BatchSummary),
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchPairSummary {
    pub question: String,
    pub rubric_id: Option<String>,
    pub score: Option<f32>,
    pub max_score: Option<f32>,
}

/// One transcript's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    pub file: String,
    /// `graded`, `skipped` (an up-to-date report exists) or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub pairs: Vec<BatchPairSummary>,
    pub overall: Option<f32>,
}

impl BatchSummary {
    fn of(file: &str, status: &'static str, r: &TranscriptReport) -> Self {
        BatchSummary {
            file: file.to_string(),
            status,
            error: None,
            pairs: r
                .pairs
                .iter()
                .map(|p| BatchPairSummary {
                    question: p.question.clone(),
                    rubric_id: p.rubric_id.clone(),
                    score: p.grade.as_ref().map(|g| g.score),
                    max_score: p.grade.as_ref().map(|g| g.max_score),
                })
                .collect(),
            overall: r.overall,
        }
    }

    fn failed(file: &str, error: String) -> Self {
        BatchSummary {
            file: file.to_string(),
            status: "failed",
            error: Some(error),
            pairs: Vec::new(),
            overall: None,
        }
    }
}

/// Why one transcript of a batch failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Why the batch could not start.
#[derive(Debug, thiserror::Error)]
#[error("creating the report folder {path}: {source}")]
pub struct BatchError {
    pub path: String,
    pub source: std::io::Error,
}

/// Grade every file into `<out>/<name>.{md,html,json}` (the JSON last: its presence marks the
/// transcript done). One summary per file, in input order; failures are summaries too.
pub async fn run(
    engine: Arc<Engine>,
    files: &[PathBuf],
    opts: &BatchOptions,
    on_event: &(dyn Fn(BatchEvent<'_>) + Send + Sync),
) -> Result<Vec<BatchSummary>, BatchError> {
    std::fs::create_dir_all(&opts.out).map_err(|source| BatchError {
        path: opts.out.display().to_string(),
        source,
    })?;
    let concurrency = opts.concurrency.max(1);
    let rubric_version = engine.catalog().version();
    let mut topts = TranscriptOptions::new(concurrency);
    topts.format = opts.format;
    topts.judge = opts.judge;
    let topts = &topts;
    let rubric_version = &rubric_version;
    let engine = &engine;
    let jobs = files
        .iter()
        .zip(report_names(files))
        .map(|(file, name)| async move {
            let shown = file.display().to_string();
            let summary =
                match one(engine, file, &name, opts, topts, rubric_version, on_event).await {
                    Ok((status, r)) => BatchSummary::of(&shown, status, &r),
                    Err(e) => BatchSummary::failed(&shown, e.to_string()),
                };
            on_event(BatchEvent::FileDone(&summary));
            summary
        });
    Ok(futures::stream::iter(jobs)
        .buffered(concurrency.min(FILES_AT_ONCE))
        .collect()
        .await)
}

async fn one(
    engine: &Engine,
    file: &Path,
    name: &str,
    opts: &BatchOptions,
    topts: &TranscriptOptions,
    rubric_version: &str,
    on_event: &(dyn Fn(BatchEvent<'_>) + Send + Sync),
) -> Result<(&'static str, TranscriptReport), FileError> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|source| FileError::Read {
        file: shown.clone(),
        source,
    })?;
    let json_path = opts.out.join(format!("{name}.json"));
    if !opts.force
        && let Ok(old) = std::fs::read_to_string(&json_path)
        && let Ok(old) = serde_json::from_str::<TranscriptReport>(&old)
        && old.content_hash == content_hash(&text)
        && old.rubric_version == rubric_version
    {
        return Ok(("skipped", old));
    }
    let on_pair = |e: PairEvent<'_>| match e {
        PairEvent::Found(n) => on_event(BatchEvent::AnswersFound(n)),
        PairEvent::Done(_) => on_event(BatchEvent::AnswerDone),
    };
    let r = grade_transcript(engine, &shown, &text, topts, &on_pair).await?;
    let write = |path: PathBuf, body: String| {
        std::fs::write(&path, body).map_err(|source| FileError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    write(opts.out.join(format!("{name}.md")), report::markdown(&r))?;
    write(opts.out.join(format!("{name}.html")), report::html(&r))?;
    // The JSON last: its presence marks the transcript as done (resume).
    write(
        json_path,
        serde_json::to_string_pretty(&r).unwrap_or_default(),
    )?;
    Ok(("graded", r))
}

/// Report file stem for each input: its own stem, made unique when two inputs share one.
fn report_names(files: &[PathBuf]) -> Vec<String> {
    let mut seen = HashMap::<String, usize>::new();
    files
        .iter()
        .map(|f| {
            let stem = f.file_stem().map_or_else(
                || "transcript".to_string(),
                |s| s.to_string_lossy().to_string(),
            );
            let n = seen.entry(stem.clone()).or_default();
            *n += 1;
            if *n == 1 { stem } else { format!("{stem}-{n}") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_are_unique() {
        let files: Vec<PathBuf> = ["a/x.txt", "b/x.vtt", "y.srt", "c/x.json"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(report_names(&files), ["x", "x-2", "y", "x-3"]);
    }
}
