//! Block Kit messages for grades and transcript summaries, within Slack's limits
//! (50 blocks per message, 3,000 characters per section text).

use serde_json::{Value, json};

use crate::grade::{Grade, Verdict};
use crate::transcript::TranscriptReport;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION: usize = 3000;
const TRUNCATED: &str = "… _(truncated)_";

/// Escape text for Slack mrkdwn (`&`, `<`, `>` are control characters there).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cut `s` to Slack's section limit, saying so.
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max - TRUNCATED.chars().count();
    format!("{}{TRUNCATED}", s.chars().take(keep).collect::<String>())
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": fit(text, MAX_SECTION)}})
}

/// Pack lines into as few sections as the 3,000-character limit allows.
fn sections(lines: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in lines {
        let line = fit(line, MAX_SECTION);
        if !cur.is_empty() && cur.chars().count() + 1 + line.chars().count() > MAX_SECTION {
            out.push(section(&cur));
            cur.clear();
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(&line);
    }
    if !cur.is_empty() {
        out.push(section(&cur));
    }
    out
}

/// Keep at most 50 blocks; the last one says what was left out.
fn cap(mut blocks: Vec<Value>) -> Vec<Value> {
    if blocks.len() > MAX_BLOCKS {
        let dropped = blocks.len() - (MAX_BLOCKS - 1);
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("_{dropped} more blocks truncated (Slack allows {MAX_BLOCKS})._")}]}));
    }
    blocks
}

fn verdict_icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => ":white_check_mark:",
        Verdict::Partial => ":large_yellow_circle:",
        Verdict::Missed => ":x:",
    }
}

/// A grade: score, per-criterion verdicts with evidence, gaps, feedback.
pub fn grade_message(g: &Grade) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": fit(&format!("{}: {:.1} / {}", g.rubric_id, g.score, g.max_score), 150)}}),
        section(&format!("*Question:* {}", esc(&g.question))),
    ];
    let lines: Vec<String> = g
        .criteria
        .iter()
        .map(|c| {
            let ev = if c.evidence.is_empty() {
                String::new()
            } else {
                format!(" — _“{}”_", esc(&crate::grade::short(&c.evidence, 300)))
            };
            format!(
                "{} *{}* (weight {}){ev}",
                verdict_icon(c.verdict),
                esc(&c.id),
                c.weight
            )
        })
        .chain(g.misconceptions.iter().map(|m| {
            format!(
                ":warning: *{}* (−{}) — _“{}”_",
                esc(&m.id),
                m.penalty,
                esc(&crate::grade::short(&m.evidence, 300))
            )
        }))
        .collect();
    blocks.extend(sections(&lines));
    if !g.gaps.is_empty() {
        let gaps: Vec<String> = std::iter::once("*Gaps*".to_string())
            .chain(g.gaps.iter().map(|x| format!("• {}", esc(x))))
            .collect();
        blocks.extend(sections(&gaps));
    }
    if !g.feedback.is_empty() {
        blocks.push(section(&esc(&g.feedback)));
    }
    let flags: Vec<String> = g
        .flags
        .iter()
        .map(|f| {
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    let mut ctx = format!("judge: {} ({})", g.judge.kind, g.judge.model);
    if !flags.is_empty() {
        ctx.push_str(&format!(" · flags: {}", flags.join(", ")));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": fit(&esc(&ctx), MAX_SECTION)}]}));
    json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": format!("{}: {:.1} / {}", g.rubric_id, g.score, g.max_score),
        "blocks": cap(blocks),
    })
}

/// A transcript report's summary for a thread reply.
pub fn transcript_message(r: &TranscriptReport) -> Value {
    let headline = match r.overall {
        Some(o) => format!("Interview report: {o:.1} / 10 ({})", r.tally()),
        None => format!("Interview report: nothing could be graded ({})", r.tally()),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": fit(&headline, 150)}}),
    ];
    let mut lines = Vec::new();
    for p in &r.pairs {
        let score = match (&p.grade, &p.rubric_id) {
            (Some(g), _) => format!("*{:.1}/{}*", g.score, g.max_score),
            (None, None) => "_not in the rubric set_".to_string(),
            (None, Some(_)) => format!("_{}_", esc(p.error.as_deref().unwrap_or("not graded"))),
        };
        lines.push(format!(
            "{}. {} — {score}",
            p.index + 1,
            esc(&crate::grade::short(&p.question, 200))
        ));
    }
    blocks.extend(sections(&lines));
    if !r.strongest.is_empty() || !r.weakest.is_empty() {
        blocks.push(section(&format!(
            "*Strongest:* {}\n*Weakest:* {}",
            esc(&r.strongest.join(", ")),
            esc(&r.weakest.join(", "))
        )));
    }
    if !r.key_gaps.is_empty() {
        let gaps: Vec<String> = std::iter::once("*Gaps that matter most*".to_string())
            .chain(r.key_gaps.iter().map(|g| format!("• {}", esc(g))))
            .collect();
        blocks.extend(sections(&gaps));
    }
    json!({"text": headline, "blocks": cap(blocks)})
}

/// A plain ephemeral message (help, errors).
pub fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": fit(text, MAX_SECTION)})
}
