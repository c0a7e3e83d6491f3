//! The SQL both backends run, and the mapping between rows and types: the inserts for a grade
//! and a transcript, the columns a list or a review reads, and a small builder for `WHERE`
//! clauses whose placeholders number themselves.

use super::db::{DbError, Row, Stmt, Value};
use super::record::{GradeRecord, QueueReason, Source, TranscriptRecord, Via};
use super::review::{CriterionVerdict, Review};
use super::time::to_rfc3339;
use super::types::GradeSummary;
use crate::grade::Flag;

pub(super) const INSERT_GRADE: &str = "INSERT INTO grades (id, created_at, request_id, source, slack_team, slack_user, transcript_id, pair_index, candidate, question, rubric_id, rubric_version, adhoc, answer, reference_answer, grade_json, score, max_score, judge, model, flags, priority, reasons) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) ON CONFLICT (id) DO NOTHING";
pub(super) const INSERT_FLAG: &str = "INSERT INTO grade_flags (flag, grade_id) VALUES ($1, $2) ON CONFLICT (flag, grade_id) DO NOTHING";
pub(super) const INSERT_TRANSCRIPT: &str = "INSERT INTO transcripts (id, created_at, request_id, source, slack_team, slack_user, candidate, name, content_hash, report_json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING";
pub(super) const INSERT_REVIEW: &str = "INSERT INTO reviews (id, grade_id, created_at, reviewer, criteria_json, score_override, human_score, note) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The summary columns, in `summary_of`'s order.
pub(super) const SUMMARY_COLUMNS: &str = "g.id, g.created_at, g.source, g.slack_team, g.slack_user, g.transcript_id, g.pair_index, g.candidate, g.question, g.rubric_id, g.score, g.max_score, g.judge, g.flags, g.priority, g.reasons, \
     (SELECT COUNT(*) FROM reviews r WHERE r.grade_id = g.id), \
     (SELECT r.human_score FROM reviews r WHERE r.grade_id = g.id ORDER BY r.created_at DESC, r.id DESC LIMIT 1)";

pub(super) fn flag_str(f: Flag) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(super) fn parse_flags(s: &str) -> Vec<Flag> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .filter_map(|x| serde_json::from_value(serde_json::Value::String(x.into())).ok())
        .collect()
}

pub(super) fn parse_reasons(s: &str) -> Vec<QueueReason> {
    s.split(',').filter_map(QueueReason::parse).collect()
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, DbError> {
    serde_json::from_str(s).map_err(|e| DbError::Decode(format!("{what}: {e}")))
}

pub(super) fn source_of(row: &Row, at: usize) -> Result<Source, DbError> {
    let via = row.text(at)?;
    Ok(Source {
        via: Via::parse(&via).ok_or_else(|| DbError::Decode(format!("source `{via}`")))?,
        slack_team: row.opt_text(at + 1)?,
        slack_user: row.opt_text(at + 2)?,
        transcript_id: row.opt_text(at + 3)?,
        pair_index: row.opt_int(at + 4)?.map(|n| n as usize),
    })
}

pub(super) fn summary_of(row: &Row) -> Result<GradeSummary, DbError> {
    Ok(GradeSummary {
        id: row.text(0)?,
        created_at: to_rfc3339(row.int(1)?),
        source: source_of(row, 2)?,
        candidate: row.opt_text(7)?,
        question: row.text(8)?,
        rubric_id: row.text(9)?,
        score: row.real(10)? as f32,
        max_score: row.real(11)? as f32,
        judge: row.text(12)?,
        flags: parse_flags(&row.text(13)?),
        priority: row.int(14)?,
        reasons: parse_reasons(&row.text(15)?),
        reviews: row.int(16)? as usize,
        human_score: row.opt_real(17)?.map(|x| x as f32),
    })
}

pub(super) fn review_of(row: &Row) -> Result<Review, DbError> {
    Ok(Review {
        id: row.text(0)?,
        grade_id: row.text(1)?,
        created_at: to_rfc3339(row.int(2)?),
        reviewer: row.text(3)?,
        criteria: decode::<Vec<CriterionVerdict>>("review criteria", &row.text(4)?)?,
        score_override: row.opt_real(5)?.map(|x| x as f32),
        human_score: row.real(6)? as f32,
        note: row.text(7)?,
    })
}

pub(super) const REVIEW_COLUMNS: &str = "r.id, r.grade_id, r.created_at, r.reviewer, r.criteria_json, r.score_override, r.human_score, r.note";

/// A query under construction: conditions and their parameters, numbered as they are added.
pub(super) struct Query {
    pub(super) conds: Vec<String>,
    pub(super) params: Vec<Value>,
}

impl Query {
    pub(super) fn new() -> Self {
        Query {
            conds: Vec::new(),
            params: Vec::new(),
        }
    }

    /// The next placeholder for `v`.
    pub(super) fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("${}", self.params.len())
    }

    pub(super) fn cond(&mut self, c: String) {
        self.conds.push(c);
    }

    pub(super) fn where_clause(&self) -> String {
        if self.conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conds.join(" AND "))
        }
    }
}

pub(super) fn grade_stmts(r: &GradeRecord) -> Vec<Stmt> {
    let g = &r.grade;
    let id = g.id.to_string();
    let s = &r.origin.source;
    let flags: Vec<String> = g.flags.iter().map(|f| flag_str(*f)).collect();
    let reasons: Vec<&str> = r.reasons.iter().map(|x| x.as_str()).collect();
    let mut out = vec![Stmt::new(
        INSERT_GRADE,
        vec![
            id.clone().into(),
            r.created_at.into(),
            r.origin.request_id.clone().into(),
            s.via.as_str().into(),
            s.slack_team.clone().into(),
            s.slack_user.clone().into(),
            s.transcript_id.clone().into(),
            s.pair_index.map(|i| i as i64).into(),
            r.origin.candidate.clone().into(),
            r.question.clone().into(),
            g.rubric_id.clone().into(),
            g.rubric_version.clone().into(),
            i64::from(r.adhoc).into(),
            r.answer.clone().into(),
            r.reference_answer.clone().into(),
            serde_json::to_string(g).unwrap_or_default().into(),
            (g.score as f64).into(),
            (g.max_score as f64).into(),
            g.judge.kind.as_str().into(),
            g.judge.model.clone().into(),
            flags.join(",").into(),
            QueueReason::priority(&r.reasons).into(),
            reasons.join(",").into(),
        ],
    )];
    for f in flags {
        out.push(Stmt::new(INSERT_FLAG, vec![f.into(), id.clone().into()]));
    }
    out
}

pub(super) fn transcript_stmts(t: &TranscriptRecord) -> Vec<Stmt> {
    let s = &t.origin.source;
    let mut out = vec![Stmt::new(
        INSERT_TRANSCRIPT,
        vec![
            t.id.to_string().into(),
            t.created_at.into(),
            t.origin.request_id.clone().into(),
            s.via.as_str().into(),
            s.slack_team.clone().into(),
            s.slack_user.clone().into(),
            t.origin.candidate.clone().into(),
            t.report.file.clone().into(),
            t.report.content_hash.clone().into(),
            serde_json::to_string(&t.report).unwrap_or_default().into(),
        ],
    )];
    for p in &t.pairs {
        out.extend(grade_stmts(p));
    }
    out
}

/// Something to write.
#[derive(Debug, Clone)]
pub enum Write {
    Grade(Box<GradeRecord>),
    Transcript(Box<TranscriptRecord>),
}

impl Write {
    pub(super) fn stmts(&self) -> Vec<Stmt> {
        match self {
            Write::Grade(g) => grade_stmts(g),
            Write::Transcript(t) => transcript_stmts(t),
        }
    }

    /// Grades in it (a transcript's pairs).
    pub fn grades(&self) -> usize {
        match self {
            Write::Grade(_) => 1,
            Write::Transcript(t) => t.pairs.len(),
        }
    }
}
