//! What is stored for a grade and a transcript: where it came from, the answer (or not), the
//! full `Grade`, and its place in the review queue.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::ReviewSettings;
use crate::engine::QuestionRef;
use crate::grade::{Flag, Grade};
use crate::transcript::TranscriptReport;

/// The interface a grade came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Api,
    Cli,
    Batch,
    Slack,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Cli => "cli",
            Via::Batch => "batch",
            Via::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Via> {
        match s {
            "api" => Some(Via::Api),
            "cli" => Some(Via::Cli),
            "batch" => Some(Via::Batch),
            "slack" => Some(Via::Slack),
            _ => None,
        }
    }
}

/// Where a grade came from: the interface, and the Slack team and user or the transcript pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Source {
    pub via: Via,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_user: Option<String>,
    /// The stored transcript this grade is a pair of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_id: Option<String>,
    /// The pair's index in that transcript's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_index: Option<usize>,
}

impl Source {
    pub fn new(via: Via) -> Self {
        Source {
            via,
            slack_team: None,
            slack_user: None,
            transcript_id: None,
            pair_index: None,
        }
    }

    pub fn slack(team: &str, user: &str) -> Self {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Source {
            slack_team: some(team),
            slack_user: some(user),
            ..Source::new(Via::Slack)
        }
    }
}

/// Who and what asked: shared by a grade and a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub source: Source,
    /// The HTTP `x-request-id`, or the CLI run's id.
    pub request_id: Option<String>,
    /// Who answered (an id or e-mail the caller chooses), for `grader purge --candidate`.
    pub candidate: Option<String>,
}

impl Origin {
    pub fn new(source: Source) -> Self {
        Origin {
            source,
            request_id: None,
            candidate: None,
        }
    }

    pub fn request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id;
        self
    }

    pub fn candidate(mut self, c: Option<String>) -> Self {
        self.candidate = c.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
        self
    }
}

/// Why a grade is in the review queue, most pressing first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueReason {
    JudgesDisagree,
    InjectionSuspected,
    EvidenceUnverified,
    LowAgreement,
    NearBoundary,
}

impl QueueReason {
    pub const ALL: [QueueReason; 5] = [
        QueueReason::JudgesDisagree,
        QueueReason::InjectionSuspected,
        QueueReason::EvidenceUnverified,
        QueueReason::LowAgreement,
        QueueReason::NearBoundary,
    ];

    /// Queue weights: a design choice, not fitted. Each reason outranks every combination of
    /// the ones below it (the sums of the lower weights stay under it), so a grade where two
    /// judges disagree always comes before one that is merely near the boundary.
    pub fn weight(self) -> i64 {
        match self {
            QueueReason::JudgesDisagree => 16,
            QueueReason::InjectionSuspected => 8,
            QueueReason::EvidenceUnverified => 4,
            QueueReason::LowAgreement => 2,
            QueueReason::NearBoundary => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueReason::JudgesDisagree => "judges_disagree",
            QueueReason::InjectionSuspected => "injection_suspected",
            QueueReason::EvidenceUnverified => "evidence_unverified",
            QueueReason::LowAgreement => "low_agreement",
            QueueReason::NearBoundary => "near_boundary",
        }
    }

    pub fn parse(s: &str) -> Option<QueueReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reasons a grade deserves a human look, under the review settings.
    pub fn of(grade: &Grade, review: &ReviewSettings) -> Vec<QueueReason> {
        let mut out = Vec::new();
        for (flag, reason) in [
            (Flag::JudgesDisagree, QueueReason::JudgesDisagree),
            (Flag::InjectionSuspected, QueueReason::InjectionSuspected),
            (Flag::EvidenceUnverified, QueueReason::EvidenceUnverified),
        ] {
            if grade.flags.contains(&flag) {
                out.push(reason);
            }
        }
        if grade.judge.samples > 1 && grade.judge.agreement < review.min_agreement {
            out.push(QueueReason::LowAgreement);
        }
        if grade.max_score > 0.0
            // The epsilon keeps a score exactly at the margin (5 of 10 with 0.6 ± 0.1) near,
            // whatever f32 rounding does to 0.6 and 0.1.
            && (grade.score / grade.max_score - review.pass_mark).abs()
                <= review.boundary_margin + 1e-6
        {
            out.push(QueueReason::NearBoundary);
        }
        out
    }

    pub fn priority(reasons: &[QueueReason]) -> i64 {
        reasons.iter().map(|r| r.weight()).sum()
    }
}

/// One grade as it goes into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeRecord {
    pub origin: Origin,
    pub created_at: i64,
    /// The question as asked (the rubric's own text is in the grade).
    pub question: String,
    /// `None` when answers are not kept (`store.keep_answers = false`).
    pub answer: Option<String>,
    /// Ad hoc grades: the reference answer the grade was made against.
    pub reference_answer: Option<String>,
    pub grade: Grade,
    pub adhoc: bool,
    pub reasons: Vec<QueueReason>,
}

impl GradeRecord {
    /// `question` as the request named it: a rubric id stores the rubric's question.
    pub fn new(origin: Origin, question: &QuestionRef, answer: &str, grade: &Grade) -> Self {
        let (question, reference_answer) = match question {
            QuestionRef::Id(_) => (grade.question.clone(), None),
            QuestionRef::Text(t) => (t.clone(), None),
            QuestionRef::AdHoc {
                question,
                reference_answer,
                ..
            } => (question.clone(), Some(reference_answer.clone())),
        };
        GradeRecord {
            origin,
            created_at: super::time::now_ms(),
            question,
            reference_answer,
            answer: Some(answer.to_string()),
            adhoc: grade.flags.contains(&Flag::AdHocRubric),
            grade: grade.clone(),
            reasons: Vec::new(),
        }
    }

    pub fn id(&self) -> Uuid {
        self.grade.id
    }

    /// Drop the answer and every text that quotes it (evidence, reasons, gaps, feedback),
    /// keeping verdicts, scores and flags.
    pub fn redact(&mut self) {
        self.answer = None;
        redact_grade(&mut self.grade);
    }
}

/// The parts of a grade that quote the answer, blanked.
pub fn redact_grade(g: &mut Grade) {
    for c in &mut g.criteria {
        c.evidence.clear();
        c.reason.clear();
    }
    for m in &mut g.misconceptions {
        m.evidence.clear();
    }
    g.gaps.clear();
    g.feedback.clear();
}

/// A transcript as it goes into the store: the report, and a record per graded pair.
#[derive(Debug, Clone)]
pub struct TranscriptRecord {
    pub id: Uuid,
    pub origin: Origin,
    pub created_at: i64,
    pub report: TranscriptReport,
    pub pairs: Vec<GradeRecord>,
}

impl TranscriptRecord {
    /// Every graded pair becomes a grade record pointing back at the transcript.
    pub fn new(origin: Origin, report: &TranscriptReport) -> Self {
        let id = Uuid::now_v7();
        let pairs = report
            .pairs
            .iter()
            .filter_map(|p| {
                let g = p.grade.as_ref()?;
                let mut source = origin.source.clone();
                source.transcript_id = Some(id.to_string());
                source.pair_index = Some(p.index);
                let o = Origin {
                    source,
                    ..origin.clone()
                };
                Some(GradeRecord::new(
                    o,
                    &QuestionRef::Text(p.question.clone()),
                    &p.answer,
                    g,
                ))
            })
            .collect();
        TranscriptRecord {
            id,
            created_at: super::time::now_ms(),
            origin,
            report: report.clone(),
            pairs,
        }
    }

    pub fn redact(&mut self) {
        for p in &mut self.report.pairs {
            p.answer.clear();
            if let Some(g) = &mut p.grade {
                redact_grade(g);
            }
        }
        self.report.key_gaps.clear();
        for p in &mut self.pairs {
            p.redact();
        }
    }
}
