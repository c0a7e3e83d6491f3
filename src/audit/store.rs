//! The audit store's operations, the same SQL on SQLite and PostgreSQL: write grades and
//! transcripts, read a grade with its reviews, list grades (filters, keyset pagination, the
//! review queue), add a review, count, measure agreement, and purge.

use uuid::Uuid;

use super::db::{Db, DbError, Location, Stmt};
use super::review::{Review, ReviewInput, ReviewedPair};
use super::sql::{
    INSERT_REVIEW, Query, REVIEW_COLUMNS, SUMMARY_COLUMNS, decode, flag_str, parse_reasons,
    review_of, source_of, summary_of,
};
use super::time::{now_ms, to_rfc3339};
use super::types::{
    AddReviewError, Counts, Cursor, ListQuery, Order, Page, Purged, ReviewedAnswer, StoredGrade,
};
use crate::grade::Grade;

pub use super::sql::Write;

/// The longest page a list returns.
pub const MAX_PAGE: usize = 200;

/// The audit store over one database.
pub struct AuditStore {
    db: Db,
}

impl AuditStore {
    pub async fn open(location: &Location) -> Result<AuditStore, DbError> {
        Ok(AuditStore {
            db: Db::open(location).await?,
        })
    }

    pub fn describe(&self) -> String {
        self.db.describe()
    }

    /// Connects (PostgreSQL) and checks the schema.
    pub async fn ready(&self) -> Result<(), DbError> {
        self.db.ready().await
    }

    /// Write grades and transcripts in one transaction. Writing the same record twice is a
    /// no-op (a retry after a commit whose acknowledgement was lost).
    pub async fn write(&self, writes: &[Write]) -> Result<(), DbError> {
        let stmts: Vec<Stmt> = writes.iter().flat_map(Write::stmts).collect();
        self.db.transaction(stmts).await.map(|_| ())
    }

    /// One grade, with its reviews.
    pub async fn get(&self, id: &str) -> Result<Option<StoredGrade>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT g.id, g.created_at, g.source, g.slack_team, g.slack_user, g.transcript_id, g.pair_index, g.candidate, g.question, g.answer, g.grade_json, g.priority, g.reasons, g.request_id, g.reference_answer \
                 FROM grades g WHERE g.id = $1",
                vec![id.into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let reviews = self.reviews_of(id).await?;
        Ok(Some(StoredGrade {
            id: row.text(0)?,
            created_at: to_rfc3339(row.int(1)?),
            source: source_of(row, 2)?,
            candidate: row.opt_text(7)?,
            question: row.text(8)?,
            answer: row.opt_text(9)?,
            grade: decode("grade_json", &row.text(10)?)?,
            priority: row.int(11)?,
            reasons: parse_reasons(&row.text(12)?),
            request_id: row.opt_text(13)?,
            reference_answer: row.opt_text(14)?,
            reviews,
            stored: true,
        }))
    }

    async fn reviews_of(&self, grade_id: &str) -> Result<Vec<Review>, DbError> {
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews r WHERE r.grade_id = $1 ORDER BY r.created_at, r.id"
        );
        self.db
            .query(&sql, vec![grade_id.into()])
            .await?
            .iter()
            .map(review_of)
            .collect()
    }

    /// A page of grades. Keyset pagination: the cursor is the last row's sort key, so a page
    /// costs the same wherever it is and rows written meanwhile never shift it.
    pub async fn list(&self, q: &ListQuery) -> Result<Page, DbError> {
        let limit = match q.limit {
            0 => 50,
            n => n.min(MAX_PAGE),
        };
        let mut b = Query::new();
        if let Some(r) = &q.rubric_id {
            let p = b.bind(r);
            b.cond(format!("g.rubric_id = {p}"));
        }
        if let Some(f) = q.flag {
            let p = b.bind(flag_str(f));
            b.cond(format!(
                "EXISTS (SELECT 1 FROM grade_flags f WHERE f.grade_id = g.id AND f.flag = {p})"
            ));
        }
        match q.reviewed {
            Some(true) => b.cond("EXISTS (SELECT 1 FROM reviews r WHERE r.grade_id = g.id)".into()),
            Some(false) => {
                b.cond("NOT EXISTS (SELECT 1 FROM reviews r WHERE r.grade_id = g.id)".into())
            }
            None => {}
        }
        if let Some(t) = q.since {
            let p = b.bind(t);
            b.cond(format!("g.created_at >= {p}"));
        }
        if let Some(t) = q.until {
            let p = b.bind(t);
            b.cond(format!("g.created_at < {p}"));
        }
        if let Some(v) = q.via {
            let p = b.bind(v.as_str());
            b.cond(format!("g.source = {p}"));
        }
        if let Some(c) = &q.candidate {
            let p = b.bind(c);
            b.cond(format!("g.candidate = {p}"));
        }
        if let Some(t) = &q.transcript_id {
            let p = b.bind(t);
            b.cond(format!("g.transcript_id = {p}"));
        }
        let order = match q.order {
            Order::Recent => "g.created_at DESC, g.id DESC",
            Order::Queue => "g.priority DESC, g.created_at DESC, g.id DESC",
        };
        if let Some(c) = &q.cursor {
            match q.order {
                Order::Recent => {
                    let (a, i) = (b.bind(c.created_at), b.bind(&c.id));
                    b.cond(format!("(g.created_at, g.id) < ({a}, {i})"));
                }
                Order::Queue => {
                    let (p, a, i) = (b.bind(c.priority), b.bind(c.created_at), b.bind(&c.id));
                    b.cond(format!(
                        "(g.priority, g.created_at, g.id) < ({p}, {a}, {i})"
                    ));
                }
            }
        }
        let lim = b.bind((limit + 1) as i64);
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM grades g{} ORDER BY {order} LIMIT {lim}",
            b.where_clause()
        );
        let rows = self.db.query(&sql, b.params).await?;
        let more = rows.len() > limit;
        let mut items = Vec::with_capacity(limit);
        let mut last = None;
        for row in rows.iter().take(limit) {
            items.push(summary_of(row)?);
            last = Some((row.int(14)?, row.int(1)?, row.text(0)?));
        }
        Ok(Page {
            items,
            next_cursor: last.filter(|_| more).map(|(priority, created_at, id)| {
                Cursor {
                    priority,
                    created_at,
                    id,
                }
                .encode()
            }),
        })
    }

    /// Store a review of a stored grade; the grade itself is never changed.
    pub async fn add_review(
        &self,
        grade_id: &str,
        input: &ReviewInput,
    ) -> Result<Review, AddReviewError> {
        let rows = self
            .db
            .query(
                "SELECT g.grade_json FROM grades g WHERE g.id = $1",
                vec![grade_id.into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(AddReviewError::NotFound(grade_id.to_string()));
        };
        let grade: Grade = decode("grade_json", &row.text(0)?)?;
        let (criteria, human_score) = input.check(&grade)?;
        let review = Review {
            id: Uuid::now_v7().to_string(),
            grade_id: grade_id.to_string(),
            created_at: String::new(),
            reviewer: input.reviewer.trim().to_string(),
            criteria,
            score_override: input.score_override,
            human_score,
            note: input.note.trim().to_string(),
        };
        let now = now_ms();
        self.db
            .transaction(vec![Stmt::new(
                INSERT_REVIEW,
                vec![
                    review.id.clone().into(),
                    review.grade_id.clone().into(),
                    now.into(),
                    review.reviewer.clone().into(),
                    serde_json::to_string(&review.criteria)
                        .unwrap_or_default()
                        .into(),
                    review.score_override.map(f64::from).into(),
                    f64::from(review.human_score).into(),
                    review.note.clone().into(),
                ],
            )])
            .await?;
        Ok(Review {
            created_at: to_rfc3339(now),
            ..review
        })
    }

    /// Totals for the queue's header (optionally for one rubric).
    pub async fn counts(&self, rubric_id: Option<&str>) -> Result<Counts, DbError> {
        let mut b = Query::new();
        if let Some(r) = rubric_id {
            let p = b.bind(r);
            b.cond(format!("g.rubric_id = {p}"));
        }
        let sql = format!(
            "SELECT g.reasons, CASE WHEN EXISTS (SELECT 1 FROM reviews r WHERE r.grade_id = g.id) THEN 1 ELSE 0 END AS reviewed, COUNT(*) \
             FROM grades g{} GROUP BY g.reasons, reviewed",
            b.where_clause()
        );
        let mut c = Counts::default();
        for row in self.db.query(&sql, b.params).await? {
            let n = row.int(2)? as usize;
            c.grades += n;
            if row.int(1)? == 1 {
                c.reviewed += n;
                continue;
            }
            c.unreviewed += n;
            let reasons = parse_reasons(&row.text(0)?);
            if !reasons.is_empty() {
                c.queue += n;
            }
            for r in reasons {
                *c.by_reason.entry(r.as_str().to_string()).or_default() += n;
            }
        }
        Ok(c)
    }

    /// Every reviewed grade with its latest review (optionally one rubric's).
    pub async fn reviewed(&self, rubric_id: Option<&str>) -> Result<Vec<ReviewedPair>, DbError> {
        let mut b = Query::new();
        if let Some(r) = rubric_id {
            let p = b.bind(r);
            b.cond(format!("g.rubric_id = {p}"));
        }
        let sql = format!(
            "SELECT {REVIEW_COLUMNS}, g.rubric_id, g.grade_json FROM reviews r JOIN grades g ON g.id = r.grade_id{} \
             ORDER BY r.grade_id, r.created_at DESC, r.id DESC",
            b.where_clause()
        );
        let mut out: Vec<ReviewedPair> = Vec::new();
        for row in self.db.query(&sql, b.params).await? {
            let review = review_of(&row)?;
            // Rows come newest first per grade: keep the first.
            if out
                .last()
                .is_some_and(|p| p.review.grade_id == review.grade_id)
            {
                continue;
            }
            out.push(ReviewedPair {
                rubric_id: row.text(8)?,
                machine: decode("grade_json", &row.text(9)?)?,
                review,
            });
        }
        Ok(out)
    }

    /// Reviewed grades whose answer is kept, with the latest review's score and note: what
    /// calibration, exemplars and `export-reviews` learn from. Oldest first.
    pub async fn reviewed_answers(&self) -> Result<Vec<ReviewedAnswer>, DbError> {
        self.reviewed_answers_where(None).await
    }

    /// One grade's, when it is reviewed and its answer kept.
    pub async fn reviewed_answers_of(
        &self,
        grade_id: &str,
    ) -> Result<Option<ReviewedAnswer>, DbError> {
        Ok(self.reviewed_answers_where(Some(grade_id)).await?.pop())
    }

    async fn reviewed_answers_where(
        &self,
        grade_id: Option<&str>,
    ) -> Result<Vec<ReviewedAnswer>, DbError> {
        let mut b = Query::new();
        b.cond("g.answer IS NOT NULL".into());
        if let Some(id) = grade_id {
            let p = b.bind(id);
            b.cond(format!("g.id = {p}"));
        }
        let sql = format!(
            "SELECT g.id, g.rubric_id, g.rubric_version, g.adhoc, g.question, g.answer, r.human_score, g.max_score, r.note, r.reviewer, g.reference_answer \
             FROM reviews r JOIN grades g ON g.id = r.grade_id{} \
             ORDER BY g.created_at, g.id, r.created_at DESC, r.id DESC",
            b.where_clause()
        );
        let rows = self.db.query(&sql, b.params).await?;
        let mut out: Vec<ReviewedAnswer> = Vec::new();
        for row in rows {
            let id = row.text(0)?;
            if out.last().is_some_and(|a| a.grade_id == id) {
                continue;
            }
            out.push(ReviewedAnswer {
                grade_id: id,
                rubric_id: row.text(1)?,
                rubric_version: row.text(2)?,
                adhoc: row.int(3)? != 0,
                question: row.text(4)?,
                answer: row.text(5)?,
                human_score: row.real(6)? as f32,
                max_score: row.real(7)? as f32,
                note: row.text(8)?,
                reviewer: row.text(9)?,
                reference_answer: row.opt_text(10)?,
            });
        }
        Ok(out)
    }

    /// One stored transcript's report.
    pub async fn transcript(&self, id: &str) -> Result<Option<serde_json::Value>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT t.report_json FROM transcripts t WHERE t.id = $1",
                vec![id.into()],
            )
            .await?;
        rows.first()
            .map(|r| decode("report_json", &r.text(0)?))
            .transpose()
    }

    /// Delete grades (with their flags and reviews) and transcripts created before `before`
    /// (Unix ms) or answered by `candidate`.
    pub async fn purge(
        &self,
        before: Option<i64>,
        candidate: Option<&str>,
    ) -> Result<Purged, DbError> {
        let mut b = Query::new();
        if let Some(t) = before {
            let p = b.bind(t);
            b.cond(format!("created_at < {p}"));
        }
        if let Some(c) = candidate {
            let p = b.bind(c);
            b.cond(format!("candidate = {p}"));
        }
        if b.conds.is_empty() {
            return Ok(Purged::default());
        }
        let w = b.where_clause();
        // The ids first, for the exemplars that must leave the vector store too.
        let reviewed = self
            .db
            .query(
                &format!(
                    "SELECT DISTINCT g.id, g.rubric_id FROM grades g JOIN reviews r ON r.grade_id = g.id WHERE g.id IN (SELECT id FROM grades{w})"
                ),
                b.params.clone(),
            )
            .await?;
        let reviewed_grade_ids = reviewed
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .collect::<Result<_, DbError>>()?;
        // Children first (PostgreSQL enforces the foreign keys).
        let changed = self
            .db
            .transaction(vec![
                Stmt::new(
                    format!("DELETE FROM reviews WHERE grade_id IN (SELECT id FROM grades{w})"),
                    b.params.clone(),
                ),
                Stmt::new(
                    format!("DELETE FROM grade_flags WHERE grade_id IN (SELECT id FROM grades{w})"),
                    b.params.clone(),
                ),
                Stmt::new(format!("DELETE FROM grades{w}"), b.params.clone()),
                Stmt::new(format!("DELETE FROM transcripts{w}"), b.params.clone()),
            ])
            .await?;
        Ok(Purged {
            reviews: changed[0] as usize,
            grades: changed[2] as usize,
            transcripts: changed[3] as usize,
            reviewed_grade_ids,
        })
    }
}
