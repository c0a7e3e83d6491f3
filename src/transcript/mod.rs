//! Interview transcripts: parse, segment into question/answer pairs, match each question to a
//! rubric, grade all pairs concurrently, and build the report (JSON, Markdown, HTML).
//!
//! # Layout
//! - `parse.rs`: text, WebVTT, SRT and JSON turns (errors name the line).
//! - `segment.rs`: turns → question/answer pairs (follow-ups and multi-turn answers merge).
//! - `report.rs`: Markdown and self-contained HTML.
//! - `batch.rs`: many transcript files → report files, resumable (`grader batch`).

pub mod batch;
pub mod parse;
pub mod report;
pub mod segment;

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::config::JudgeKind;
use crate::engine::{Engine, GradeOptions};
use crate::grade::Grade;
use crate::matching::Candidate;
use crate::rubric::content_hash;

pub use parse::{Format, Turn};
pub use segment::{Pair, Roles};

/// Candidates kept per question (shown for unmatched questions).
const MATCH_CANDIDATES: usize = 3;

// The report's bands on the 0–10 scale. Design choices for the reader, not fitted (nothing in
// grading depends on them): a topic averaging 7+ is a strength and under 6 a weakness (the
// gap between them keeps a middling topic out of both lists); answers under 8 contribute their
// top gaps (two each, eight at most: a summary, not the whole list).
const STRONG_TOPIC: f32 = 7.0;
const WEAK_TOPIC: f32 = 6.0;
const TOPICS_LISTED: usize = 3;
const GAP_ANSWER_BELOW: f32 = 8.0;
const GAPS_PER_ANSWER: usize = 2;
const KEY_GAPS: usize = 8;

/// How a transcript's questions came out, said the same way on the console, in the reports and
/// in Slack: every question found is one of graded, not in the rubric set (unmatched), or
/// failed (matched but not graded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub questions: usize,
    pub graded: usize,
    pub unmatched: usize,
    pub failed: usize,
}

impl Tally {
    /// From `(matched to a rubric, graded)` per question.
    pub fn of(pairs: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut t = Tally::default();
        for (matched, graded) in pairs {
            t.questions += 1;
            match (matched, graded) {
                (_, true) => t.graded += 1,
                (false, false) => t.unmatched += 1,
                (true, false) => t.failed += 1,
            }
        }
        t
    }
}

impl std::fmt::Display for Tally {
    /// "3 questions: 2 graded, 1 not in the rubric set" (", 1 failed" when any did).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.questions == 1 { "" } else { "s" };
        write!(
            f,
            "{} question{plural}: {} graded, {} not in the rubric set",
            self.questions, self.graded, self.unmatched
        )?;
        if self.failed > 0 {
            write!(f, ", {} failed", self.failed)?;
        }
        Ok(())
    }
}

/// A transcript that could not be graded: the file, the line and what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TranscriptError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// One question of the transcript, with its match and grade.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PairReport {
    pub index: usize,
    pub question: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<String>,
    pub answer: String,
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// The matched rubric, or `None` when the question is not in the rubric set.
    pub rubric_id: Option<String>,
    pub topic: Option<String>,
    pub similarity: f32,
    /// The closest rubrics (shown for unmatched questions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    pub grade: Option<Grade>,
    /// Why a matched pair has no grade (e.g. an empty answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicScore {
    pub topic: String,
    /// Mean score on a 0–10 scale.
    pub average: f32,
    pub answers: usize,
}

/// The report for one transcript.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TranscriptReport {
    pub file: String,
    /// sha256 prefix of the transcript text: a report for the same content can be reused.
    pub content_hash: String,
    /// Version of the rubric set the grades were made with.
    pub rubric_version: String,
    pub format: Format,
    pub judge: JudgeKind,
    pub pairs: Vec<PairReport>,
    pub topics: Vec<TopicScore>,
    /// Mean of the graded answers' scores, 0–10 (`None` when nothing could be graded).
    pub overall: Option<f32>,
    pub strongest: Vec<String>,
    pub weakest: Vec<String>,
    /// The gaps that matter most, from the weakest answers first.
    pub key_gaps: Vec<String>,
    pub unmatched: usize,
}

impl TranscriptReport {
    /// Questions graded, unmatched and failed.
    pub fn tally(&self) -> Tally {
        Tally::of(
            self.pairs
                .iter()
                .map(|p| (p.rubric_id.is_some(), p.grade.is_some())),
        )
    }
}

/// Options for grading a transcript.
#[derive(Debug, Clone)]
pub struct TranscriptOptions {
    pub format: Option<Format>,
    pub roles: Roles,
    pub concurrency: usize,
    pub judge: Option<JudgeKind>,
    /// Shared across transcripts graded at the same time, so `concurrency` bounds answers in
    /// flight overall, not per transcript.
    pub limit: std::sync::Arc<tokio::sync::Semaphore>,
}

impl TranscriptOptions {
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        TranscriptOptions {
            format: None,
            roles: Roles::default(),
            concurrency,
            judge: None,
            limit: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency)),
        }
    }
}

/// Parse and segment (no grading): for tests, previews and the fuzzer.
pub fn pairs_of(
    file: &str,
    text: &str,
    format: Option<Format>,
    roles: &Roles,
) -> Result<(Format, Vec<Pair>), TranscriptError> {
    let (format, turns) = parse::parse(text, format).map_err(|e| TranscriptError {
        file: file.into(),
        line: e.line,
        message: e.message,
    })?;
    let pairs = segment::segment(&turns, roles).map_err(|m| TranscriptError {
        file: file.into(),
        line: 1,
        message: m,
    })?;
    Ok((format, pairs))
}

/// Progress of a transcript, reported while it is graded.
pub enum PairEvent<'a> {
    /// Segmentation found this many pairs.
    Found(usize),
    /// One pair is done (graded, unmatched or failed).
    Done(&'a PairReport),
}

/// Grade a whole transcript. `on_event` hears how many pairs there are and each finished pair
/// (progress bars, streaming).
pub async fn grade_transcript(
    engine: &Engine,
    file: &str,
    text: &str,
    opts: &TranscriptOptions,
    on_event: &(dyn Fn(PairEvent<'_>) + Send + Sync),
) -> Result<TranscriptReport, TranscriptError> {
    let limit = engine.settings().limits.max_transcript_bytes;
    if text.len() > limit {
        return Err(TranscriptError {
            file: file.into(),
            line: 1,
            message: format!(
                "the transcript is {} bytes, over limits.max_transcript_bytes ({limit}); split it",
                text.len()
            ),
        });
    }
    let (format, mut pairs) = pairs_of(file, text, opts.format, &opts.roles)?;
    let max_pairs = engine.settings().limits.max_transcript_pairs;
    if pairs.len() > max_pairs {
        return Err(TranscriptError {
            file: file.into(),
            line: 1,
            message: format!(
                "the transcript has {} questions, more than limits.max_transcript_pairs ({max_pairs}); split it",
                pairs.len()
            ),
        });
    }
    if pairs.is_empty() {
        return Err(TranscriptError {
            file: file.into(),
            line: 1,
            message: "no questions found: the interviewer never asks anything".into(),
        });
    }
    // Match every question at once: one embedding call.
    let questions: Vec<String> = pairs.iter().map(|p| p.question.clone()).collect();
    let matches = engine
        .match_questions(&questions, MATCH_CANDIDATES)
        .await
        .map_err(|e| TranscriptError {
            file: file.into(),
            line: 0,
            message: e.to_string(),
        })?;
    // A question matched to the same rubric as the one before it continues that question.
    let mut merged: Vec<(Pair, crate::matching::MatchResult)> = Vec::with_capacity(pairs.len());
    for (p, m) in pairs.drain(..).zip(matches) {
        if let Some((prev, pm)) = merged.last_mut()
            && m.rubric_id.is_some()
            && m.rubric_id == pm.rubric_id
        {
            prev.follow_ups.push(p.question);
            if !p.answer.is_empty() {
                prev.answer.push('\n');
                prev.answer.push_str(&p.answer);
            }
            continue;
        }
        merged.push((p, m));
    }
    on_event(PairEvent::Found(merged.len()));
    let grade_opts = GradeOptions {
        judge: opts.judge,
        samples: None,
    };
    let reports: Vec<PairReport> = futures::stream::iter(merged.into_iter().enumerate().map(
        |(index, (p, m))| async move {
            // Resolved once, from the match: the grade uses this rubric as it is.
            let resolved = m
                .rubric_id
                .as_deref()
                .and_then(|id| engine.resolve_id(id).ok());
            let topic = resolved.as_ref().map(|r| r.rubric.topic.clone());
            let mut report = PairReport {
                index,
                question: p.question,
                follow_ups: p.follow_ups,
                answer: p.answer,
                line: p.line,
                start: p.start,
                rubric_id: m.rubric_id.clone(),
                topic,
                similarity: m.similarity,
                candidates: if m.rubric_id.is_none() {
                    m.candidates
                } else {
                    Vec::new()
                },
                grade: None,
                error: None,
            };
            if let Some(resolved) = resolved {
                if report.answer.trim().is_empty() {
                    report.error = Some("the candidate did not answer".into());
                } else {
                    // The permit bounds answers in flight across every transcript sharing
                    // these options (a batch), not only within this one.
                    let _permit = opts.limit.acquire().await.expect("never closed");
                    match engine
                        .grade_resolved(&resolved, &report.answer, grade_opts)
                        .await
                    {
                        Ok(g) => report.grade = Some(g),
                        Err(e) => report.error = Some(e.to_string()),
                    }
                }
            }
            on_event(PairEvent::Done(&report));
            report
        },
    ))
    .buffer_unordered(opts.concurrency.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect();
    let mut reports = reports;
    reports.sort_by_key(|r| r.index);
    Ok(summarize(engine, file, text, format, reports))
}

fn summarize(
    engine: &Engine,
    file: &str,
    text: &str,
    format: Format,
    pairs: Vec<PairReport>,
) -> TranscriptReport {
    let scaled = |g: &Grade| {
        if g.max_score > 0.0 {
            g.score / g.max_score * 10.0
        } else {
            0.0
        }
    };
    let mut by_topic: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for p in &pairs {
        if let (Some(t), Some(g)) = (&p.topic, &p.grade) {
            by_topic.entry(t.clone()).or_default().push(scaled(g));
        }
    }
    let round = |x: f32| (x * 10.0).round() / 10.0;
    let topics: Vec<TopicScore> = by_topic
        .into_iter()
        .map(|(topic, s)| TopicScore {
            topic,
            average: round(s.iter().sum::<f32>() / s.len() as f32),
            answers: s.len(),
        })
        .collect();
    let graded: Vec<f32> = pairs
        .iter()
        .filter_map(|p| p.grade.as_ref())
        .map(scaled)
        .collect();
    let overall =
        (!graded.is_empty()).then(|| round(graded.iter().sum::<f32>() / graded.len() as f32));
    let mut ranked = topics.clone();
    ranked.sort_by(|a, b| {
        b.average
            .total_cmp(&a.average)
            .then_with(|| a.topic.cmp(&b.topic))
    });
    let strongest = ranked
        .iter()
        .filter(|t| t.average >= STRONG_TOPIC)
        .take(TOPICS_LISTED)
        .map(|t| t.topic.clone())
        .collect();
    let weakest = ranked
        .iter()
        .rev()
        .filter(|t| t.average < WEAK_TOPIC)
        .take(TOPICS_LISTED)
        .map(|t| t.topic.clone())
        .collect();
    let mut weak_pairs: Vec<&PairReport> = pairs
        .iter()
        .filter(|p| {
            p.grade
                .as_ref()
                .is_some_and(|g| scaled(g) < GAP_ANSWER_BELOW)
        })
        .collect();
    weak_pairs.sort_by(|a, b| {
        scaled(a.grade.as_ref().unwrap()).total_cmp(&scaled(b.grade.as_ref().unwrap()))
    });
    let mut key_gaps = Vec::new();
    for p in weak_pairs {
        for gap in p
            .grade
            .as_ref()
            .map(|g| g.gaps.iter().take(GAPS_PER_ANSWER))
            .into_iter()
            .flatten()
        {
            key_gaps.push(format!("{}: {gap}", p.rubric_id.as_deref().unwrap_or("?")));
        }
        if key_gaps.len() >= KEY_GAPS {
            break;
        }
    }
    let judge = pairs
        .iter()
        .find_map(|p| p.grade.as_ref())
        .map_or_else(|| engine.effective_judge(None), |g| g.judge.kind);
    TranscriptReport {
        file: file.to_string(),
        content_hash: content_hash(text),
        rubric_version: engine.catalog().version(),
        format,
        judge,
        unmatched: pairs.iter().filter(|p| p.rubric_id.is_none()).count(),
        pairs,
        topics,
        overall,
        strongest,
        weakest,
        key_gaps,
    }
}
