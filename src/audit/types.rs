//! What the audit store takes and gives: list queries and their cursors, pages, a stored grade
//! with its reviews, counts, reviewed answers, purge results.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::db::DbError;
use super::record::{QueueReason, Source, Via};
use super::review::Review;
use crate::grade::{Flag, Grade};

/// Which grades to list, in which order, from where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub rubric_id: Option<String>,
    pub flag: Option<Flag>,
    pub reviewed: Option<bool>,
    /// Created at or after (Unix ms).
    pub since: Option<i64>,
    /// Created before (Unix ms).
    pub until: Option<i64>,
    pub via: Option<Via>,
    pub candidate: Option<String>,
    pub transcript_id: Option<String>,
    pub order: Order,
    /// 1..=`MAX_PAGE` (0 means the default, 50).
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first.
    #[default]
    Recent,
    /// The review queue: highest priority first, then newest.
    Queue,
}

/// Where the next page starts: the sort key of the last row returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub priority: i64,
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// Opaque to clients: hex of `priority:created_at:id`.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}:{}:{}", self.priority, self.created_at, self.id))
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let mut it = raw.splitn(3, ':');
        let priority = it.next()?.parse().ok()?;
        let created_at = it.next()?.parse().ok()?;
        let id = it.next()?.to_string();
        Uuid::parse_str(&id).ok()?;
        Some(Cursor {
            priority,
            created_at,
            id,
        })
    }
}

/// A grade in a list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GradeSummary {
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    pub question: String,
    pub rubric_id: String,
    pub score: f32,
    pub max_score: f32,
    pub judge: String,
    pub flags: Vec<Flag>,
    /// Review queue priority (0: nothing flagged).
    pub priority: i64,
    pub reasons: Vec<QueueReason>,
    pub reviews: usize,
    /// The latest review's score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human_score: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Page {
    pub items: Vec<GradeSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One grade with everything stored about it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredGrade {
    pub id: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    pub question: String,
    /// `null` when answers are not kept, or purged.
    pub answer: Option<String>,
    /// Ad hoc grades: the reference answer graded against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_answer: Option<String>,
    /// The machine's grade, exactly as it was returned.
    pub grade: Grade,
    pub priority: i64,
    pub reasons: Vec<QueueReason>,
    /// Oldest first; the last is the one that counts.
    pub reviews: Vec<Review>,
    /// Whether it is written yet (`false`: still in the write queue).
    pub stored: bool,
}

/// Review counts for the queue's header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    pub grades: usize,
    pub reviewed: usize,
    pub unreviewed: usize,
    /// Unreviewed grades with at least one queue reason.
    pub queue: usize,
    /// Unreviewed grades per queue reason.
    pub by_reason: BTreeMap<String, usize>,
}

/// A reviewed grade with its answer: what calibration and exemplars learn from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedAnswer {
    pub grade_id: String,
    pub rubric_id: String,
    pub rubric_version: String,
    pub adhoc: bool,
    pub question: String,
    pub answer: String,
    /// Ad hoc grades: the reference answer graded against.
    pub reference_answer: Option<String>,
    pub human_score: f32,
    pub max_score: f32,
    pub note: String,
    pub reviewer: String,
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Purged {
    pub grades: usize,
    pub reviews: usize,
    pub transcripts: usize,
    /// Grades that had reviews (their exemplars leave the vector store too).
    pub reviewed_grade_ids: Vec<(String, String)>,
}

/// Why a review could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum AddReviewError {
    #[error("no stored grade `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] super::review::ReviewError),
    #[error(transparent)]
    Db(#[from] DbError),
}
