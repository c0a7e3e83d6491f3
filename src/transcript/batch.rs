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
    // One request id per run: every transcript and grade it stores carries it.
    let run_id = uuid::Uuid::new_v4().to_string();
    let run_id = &run_id;
    let names = report_names(files, &opts.out);
    let jobs = files.iter().zip(names).map(|(file, name)| async move {
        let shown = file.display().to_string();
        let summary = match name {
            ReportName::Duplicate(first) => BatchSummary {
                status: "skipped",
                error: Some(format!(
                    "listed more than once: graded once, as input {}",
                    first + 1
                )),
                ..BatchSummary::failed(&shown, String::new())
            },
            ReportName::Stem(name) => {
                match one(engine, file, &name, opts, topts, rubric_version, on_event).await {
                    Ok((status, r)) => {
                        if let (Some(audit), "graded") = (engine.audit(), status) {
                            let origin = crate::audit::Origin::new(crate::audit::Source::new(
                                crate::audit::Via::Batch,
                            ))
                            .request_id(Some(run_id.clone()));
                            audit.record_transcript(origin, &r);
                        }
                        BatchSummary::of(&shown, status, &r)
                    }
                    Err(e) => BatchSummary::failed(&shown, e.to_string()),
                }
            }
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

/// Where an input's reports go.
#[derive(Debug, Clone, PartialEq)]
enum ReportName {
    /// `<out>/<stem>.{json,md,html}`.
    Stem(String),
    /// The same file as input `n` (0-based): graded once, under that input's name.
    Duplicate(usize),
}

/// Report file stem for each input, unique within the batch and stable for a given path: the
/// file's own stem when no other input of the batch has that stem and no report in `out`
/// belongs to another file; otherwise the stem plus a hash of the file's absolute path (which
/// is also kept once a report exists under it). A name is never shared, so a report is never
/// overwritten by another input's.
fn report_names(files: &[PathBuf], out: &Path) -> Vec<ReportName> {
    let absolute = |f: &Path| {
        std::fs::canonicalize(f)
            .or_else(|_| std::path::absolute(f))
            .unwrap_or_else(|_| f.to_path_buf())
    };
    let stem = |f: &Path| {
        f.file_stem().map_or_else(
            || "transcript".to_string(),
            |s| s.to_string_lossy().to_string(),
        )
    };
    let hashed = |stem: &str, abs: &Path, len: usize| {
        let h = content_hash(&abs.to_string_lossy());
        format!("{stem}-{}", &h[..len.min(h.len())])
    };
    let abs: Vec<PathBuf> = files.iter().map(|f| absolute(f)).collect();
    let mut first_of: HashMap<&Path, usize> = HashMap::new();
    let mut stems: HashMap<String, usize> = HashMap::new();
    for (i, a) in abs.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(v) = first_of.entry(a.as_path()) {
            v.insert(i);
            *stems.entry(stem(a)).or_default() += 1;
        }
    }
    // Whose report is `<out>/<name>.json`: the `file` it records, as an absolute path.
    let owner = |name: &str| -> Option<PathBuf> {
        let text = std::fs::read_to_string(out.join(format!("{name}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(absolute(Path::new(v["file"].as_str()?)))
    };
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut names = Vec::with_capacity(files.len());
    for (i, a) in abs.iter().enumerate() {
        let first = first_of[a.as_path()];
        if first != i {
            names.push(ReportName::Duplicate(first));
            continue;
        }
        let s = stem(a);
        let plain_ok = stems[&s] == 1 && owner(&s).is_none_or(|o| &o == a);
        let mut name = if !out.join(format!("{}.json", hashed(&s, a, 8))).exists() && plain_ok {
            s.clone()
        } else {
            hashed(&s, a, 8)
        };
        // A file literally named like another input's hashed name: lengthen the hash.
        if taken.contains_key(&name) {
            name = hashed(&s, a, 16);
        }
        taken.insert(name.clone(), i);
        names.push(ReportName::Stem(name));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stems(names: &[ReportName]) -> Vec<String> {
        names
            .iter()
            .map(|n| match n {
                ReportName::Stem(s) => s.clone(),
                ReportName::Duplicate(i) => format!("dup of {i}"),
            })
            .collect()
    }

    /// Shared stems get a hash of the path; the hashed names are stable, unique, and kept by a
    /// later run that grades one of the files alone.
    #[test]
    fn report_names_are_unique_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let p = |n: &str| dir.path().join(n);
        let files = vec![
            p("a/interview.txt"),
            p("b/interview.txt"),
            p("interview-2.vtt"),
            p("y.srt"),
            p("a/interview.txt"),
        ];
        let names = stems(&report_names(&files, &out));
        assert!(
            names[0].starts_with("interview-") && names[1].starts_with("interview-"),
            "{names:?}"
        );
        assert_ne!(names[0], names[1]);
        assert_ne!(names[0], "interview-2");
        assert_eq!(names[2], "interview-2");
        assert_eq!(names[3], "y");
        assert_eq!(names[4], "dup of 0");
        assert_eq!(stems(&report_names(&files, &out)), names, "stable");
        // Once a hashed report exists, the file keeps its name when graded alone.
        std::fs::write(out.join(format!("{}.json", names[1])), "{}").unwrap();
        assert_eq!(stems(&report_names(&files[1..2], &out)), [names[1].clone()]);
    }

    /// A report in `out` that belongs to another file is never overwritten.
    #[test]
    fn a_report_of_another_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let other = dir.path().join("a/x.txt");
        let mine = dir.path().join("b/x.txt");
        let report = serde_json::json!({"file": other.display().to_string()});
        std::fs::write(out.join("x.json"), report.to_string()).unwrap();
        assert_eq!(stems(&report_names(&[other], &out)), ["x"]);
        let name = stems(&report_names(std::slice::from_ref(&mine), &out)).remove(0);
        assert!(
            name.starts_with("x-") && name.len() == "x-".len() + 8,
            "{name}"
        );
    }
}
