//! The audit store: every grade kept with where it came from, human reviews beside the
//! machine's verdicts, and what the grader learns from them.
//!
//! SQLite in `data_dir` by default, PostgreSQL when `store.database_url` is a `postgres://` URL
//! (replicas then share one database); the same schema (`migrations/`) and the same SQL on both.
//! Storing never holds up or fails a grade: [`Audit::record_grade`] queues the record and
//! returns, a background writer batches it into the database and retries while the database is
//! down (bounded, counted in `/metrics`), and [`Audit::close`] drains the queue at shutdown.
//!
//! # Layout
//! - `db/`: the two backends behind one interface (transactions, queries), migrations.
//! - `store.rs`: the operations (write, get, list with keyset pagination, review, counts, purge);
//!   `types.rs`: what they take and give; `sql.rs`: the SQL and the row ↔ type mapping.
//! - `record.rs`: what is stored per grade and transcript, and the review queue's reasons.
//! - `recorder.rs`: the non-blocking write path (queue, batches, retries, flush).
//! - `review.rs`: review input checks, human scores, agreement with reviewers.
//! - `learn.rs`: reviews → labelled items (calibration, `export-reviews`) and exemplars.
//! - `time.rs`: Unix ms ↔ RFC 3339 and typed dates.

mod db;
pub mod learn;
mod record;
mod recorder;
mod review;
mod sql;
mod store;
pub mod time;
mod types;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

pub use db::{DbError, Location, MIGRATIONS, sqlite_sql};
pub use record::{GradeRecord, Origin, QueueReason, Source, TranscriptRecord, Via};
pub use recorder::{AuditStats, Recorder};
pub use review::{
    Agreement, CriterionAgreement, CriterionVerdict, Review, ReviewError, ReviewInput,
    ReviewedPair, agreement,
};
pub use store::{AuditStore, MAX_PAGE, Write};
pub use types::{
    AddReviewError, Counts, Cursor, GradeSummary, ListQuery, Order, Page, Purged, ReviewedAnswer,
    StoredGrade,
};

use crate::config::{ReviewSettings, Settings};
use crate::engine::QuestionRef;
use crate::grade::Grade;
use crate::transcript::TranscriptReport;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "store.database_url: `{0}` is not a database URL: use postgres://user:password@host:5432/db (or sqlite:///path/grades.sqlite, or leave it unset for {1})"
    )]
    BadUrl(String, String),
    #[error(transparent)]
    DataDir(#[from] crate::assets::AssetError),
}

/// Where the settings put the audit store: `store.database_url` when set, else
/// `data_dir/store.database_file`.
pub fn location(settings: &Settings, base: &Path) -> Result<Location, AuditError> {
    let dir = crate::assets::data_dir(settings, base).map_err(AuditError::DataDir)?;
    let default = Settings::resolve(&dir, &settings.store.database_file);
    match settings
        .store
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().trim().to_string())
        .filter(|u| !u.is_empty())
    {
        None => Ok(Location::Sqlite(default)),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Ok(
            Location::Postgres(settings.store.database_url.clone().expect("checked")),
        ),
        Some(u) if u.starts_with("sqlite://") => {
            let p = u.trim_start_matches("sqlite://");
            Ok(Location::Sqlite(Settings::resolve(base, Path::new(p))))
        }
        Some(u) => {
            // Never echo a URL that may hold a password; its scheme is enough to say what is wrong.
            let scheme = u.split("://").next().unwrap_or("?").to_string();
            Err(AuditError::BadUrl(
                format!("{scheme}://…"),
                default.display().to_string(),
            ))
        }
    }
}

/// The audit store with its write path, as the interfaces use it.
pub struct Audit {
    store: Arc<AuditStore>,
    recorder: Recorder,
    keep_answers: bool,
    review: ReviewSettings,
}

/// How long shutdown waits for the store to take queued grades.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(10);

impl Audit {
    /// Open the store the settings name; `base` resolves relative paths.
    pub async fn open(settings: &Settings, base: &Path) -> Result<Audit, AuditError> {
        let store = AuditStore::open(&location(settings, base)?).await?;
        Ok(Self::with_store(Arc::new(store), settings))
    }

    /// Over an open store (tests use it to put a failing store under the writer).
    pub fn with_store(store: Arc<AuditStore>, settings: &Settings) -> Audit {
        Audit {
            recorder: Recorder::start(store.clone(), settings.store.write_queue),
            store,
            keep_answers: settings.store.keep_answers,
            review: settings.review.clone(),
        }
    }

    pub fn store(&self) -> &AuditStore {
        &self.store
    }

    pub fn stats(&self) -> &AuditStats {
        self.recorder.stats()
    }

    pub fn review_settings(&self) -> &ReviewSettings {
        &self.review
    }

    pub fn keeps_answers(&self) -> bool {
        self.keep_answers
    }

    /// Store a grade (queued; returns at once).
    pub fn record_grade(
        &self,
        origin: Origin,
        question: &QuestionRef,
        answer: &str,
        grade: &Grade,
    ) {
        let mut r = GradeRecord::new(origin, question, answer, grade);
        self.prepare(&mut r);
        self.recorder.record(Write::Grade(Box::new(r)));
    }

    /// Store a transcript, its report and a grade per graded pair (queued; returns at once).
    /// Returns the transcript's id.
    pub fn record_transcript(&self, origin: Origin, report: &TranscriptReport) -> String {
        let mut t = TranscriptRecord::new(origin, report);
        if !self.keep_answers {
            t.redact();
        }
        for p in &mut t.pairs {
            p.reasons = QueueReason::of(&p.grade, &self.review);
        }
        let id = t.id.to_string();
        self.recorder.record(Write::Transcript(Box::new(t)));
        id
    }

    fn prepare(&self, r: &mut GradeRecord) {
        if !self.keep_answers {
            r.redact();
        }
        r.reasons = QueueReason::of(&r.grade, &self.review);
    }

    /// A grade from the write queue when it is not written yet (so it can be read the moment
    /// it is returned, even while the database is down), else from the store.
    pub async fn get(&self, id: &str) -> Result<Option<StoredGrade>, DbError> {
        if let Some(r) = self.recorder.pending(id) {
            return Ok(Some(StoredGrade {
                id: r.id().to_string(),
                created_at: time::to_rfc3339(r.created_at),
                request_id: r.origin.request_id.clone(),
                source: r.origin.source.clone(),
                candidate: r.origin.candidate.clone(),
                question: r.question.clone(),
                answer: r.answer.clone(),
                reference_answer: r.reference_answer.clone(),
                grade: r.grade.clone(),
                priority: QueueReason::priority(&r.reasons),
                reasons: r.reasons.clone(),
                reviews: Vec::new(),
                stored: false,
            }));
        }
        self.store.get(id).await
    }

    /// Whether the grade is still waiting in the write queue.
    pub fn is_pending(&self, id: &str) -> bool {
        self.recorder.pending(id).is_some()
    }

    /// Wait until everything recorded so far is written (or waiting for a retry).
    pub async fn flush(&self) {
        self.recorder.flush().await
    }

    /// Drain the write queue before shutdown (waits at most `within`); returns the grades
    /// that could not be written.
    pub async fn close(&self, within: Duration) -> usize {
        self.recorder.close(within).await
    }
}
