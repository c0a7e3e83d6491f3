//! Turns → question/answer pairs.
//!
//! An interviewer turn that asks something opens a pair; the candidate's turns until the next
//! real question are its answer; follow-ups ("can you say more?") stay in the same pair; small
//! talk where nothing substantive is asked is skipped. Roles come from configured names or are
//! inferred: whoever asks the most questions is the interviewer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::parse::Turn;

/// Who is who.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Roles {
    /// Speaker labels (case-insensitive; a label that starts with one counts) of interviewers.
    pub interviewer_names: Vec<String>,
    pub candidate_names: Vec<String>,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            interviewer_names: [
                "interviewer",
                "q",
                "question",
                "host",
                "panel",
                "interviewer 1",
                "interviewer 2",
            ]
            .map(String::from)
            .to_vec(),
            candidate_names: ["candidate", "a", "answer", "interviewee", "applicant"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// A question and the candidate's answer to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The question as asked (acknowledgements before it removed).
    pub question: String,
    /// Follow-up prompts merged into this pair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub follow_ups: Vec<String>,
    /// The candidate's turns, joined.
    pub answer: String,
    /// Line (or turn) where the question was asked.
    pub line: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
}

const QUESTION_STARTS: &[&str] = &[
    "explain",
    "describe",
    "tell me",
    "walk me through",
    "write",
    "implement",
    "show me",
    "give me",
    "compare",
    "design",
    "how ",
    "what ",
    "why ",
    "when ",
    "which ",
    "where ",
    "can you",
    "could you",
    "would you",
    "have you",
    "do you",
    "did you",
    "is there",
    "are there",
    "suppose",
    "imagine",
    "let's say",
    "say you",
    "talk about",
    "what's",
    "how's",
    "define",
    "list ",
    "name ",
    "discuss",
    "share",
];

const SMALL_TALK: &[&str] = &[
    "how are you",
    "can you hear me",
    "nice to meet you",
    "thanks for joining",
    "thank you for joining",
    "any questions for me",
    "do you have any questions",
    "ready to start",
    "ready to begin",
    "shall we start",
    "shall we begin",
    "how's your day",
    "how is your day",
    "is this a good time",
    "can you see my screen",
    "did you find the",
    "are you ready",
    "is my audio",
    "can everyone hear",
    "where are you based",
    "how was your weekend",
];

const FOLLOW_UPS: &[&str] = &[
    "say more",
    "tell me more",
    "elaborate",
    "go on",
    "anything else",
    "what else",
    "expand on",
    "an example",
    "example of that",
    "why is that",
    "how so",
    "in what way",
    "what do you mean",
    "be more specific",
    "clarify",
    "can you go deeper",
    "dig into",
    "and then",
    "what happens then",
    "follow up",
    "follow-up",
    "keep going",
    "continue",
    "what did you learn",
    "what would you do differently",
    "how did that go",
    "what was the result",
    "what was the impact",
];

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// Sentences of a turn.
fn sentences(text: &str) -> Vec<String> {
    crate::text::segments(text)
        .into_iter()
        .map(|s| s.text)
        .collect()
}

/// Prompts that ask even when they are not at the start ("so, first question - tell me about…").
const QUESTION_PHRASES: &[&str] = &[
    "tell me about",
    "walk me through",
    "explain",
    "describe",
    "how would you",
    "how do you",
    "can you",
    "could you",
    "what is",
    "what are",
];

fn is_question_sentence(s: &str) -> bool {
    let l = lower(s.trim());
    l.ends_with('?')
        || l.contains("? ")
        || QUESTION_STARTS.iter().any(|p| l.starts_with(p))
        || QUESTION_PHRASES
            .iter()
            .any(|p| l.starts_with(p) || l.contains(&format!(" {p}")))
}

/// The asking part of a turn ("Great. Next, what is X?" → "Next, what is X?"), if any.
pub fn question_part(text: &str) -> Option<String> {
    let s = sentences(text);
    let first = s.iter().position(|x| is_question_sentence(x))?;
    Some(s[first..].join(" "))
}

fn is_small_talk(q: &str) -> bool {
    let l = lower(q);
    let words = l.split_whitespace().count();
    SMALL_TALK
        .iter()
        .any(|p| l.starts_with(p) || (words <= 12 && l.contains(p)))
}

fn is_follow_up(q: &str) -> bool {
    let l = lower(q);
    let words = l.split_whitespace().count();
    (words <= 16 && FOLLOW_UPS.iter().any(|p| l.contains(p)))
        || matches!(l.trim_end_matches('?').trim(), "why" | "and" | "how" | "really" | "because")
        // "And how does that scale?" / "So why not threads?": a short question leaning on the last one.
        || (words <= 10 && (l.starts_with("and ") || l.starts_with("so why") || l.starts_with("but ")))
}

fn matches_name(speaker: &str, names: &[String]) -> bool {
    let s = lower(speaker.trim());
    names.iter().any(|n| {
        let n = lower(n);
        s == n || (n.len() > 1 && s.starts_with(&n))
    })
}

/// The interviewer speakers: configured names, else whoever asks the most questions.
pub(crate) fn interviewers(turns: &[Turn], roles: &Roles) -> Vec<String> {
    let mut speakers: Vec<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
    speakers.sort();
    speakers.dedup();
    let named: Vec<String> = speakers
        .iter()
        .filter(|s| matches_name(s, &roles.interviewer_names))
        .map(|s| s.to_string())
        .collect();
    if !named.is_empty() {
        return named;
    }
    let named_candidates: Vec<&str> = speakers
        .iter()
        .copied()
        .filter(|s| matches_name(s, &roles.candidate_names))
        .collect();
    let mut asked: BTreeMap<&str, usize> = BTreeMap::new();
    for t in turns {
        if named_candidates.contains(&t.speaker.as_str()) {
            continue;
        }
        let n = sentences(&t.text)
            .iter()
            .filter(|s| s.trim_end().ends_with('?'))
            .count();
        *asked.entry(t.speaker.as_str()).or_default() += n;
    }
    asked
        .into_iter()
        .max_by_key(|(s, n)| (*n, std::cmp::Reverse(*s)))
        .filter(|(_, n)| *n > 0)
        .map(|(s, _)| vec![s.to_string()])
        .unwrap_or_default()
}

/// Split turns into pairs. Returns an error message when nobody asks anything.
pub fn segment(turns: &[Turn], roles: &Roles) -> Result<Vec<Pair>, String> {
    let interviewers = interviewers(turns, roles);
    if interviewers.is_empty() {
        return Err("cannot tell who the interviewer is: nobody asks a question; label turns `Interviewer:` / `Candidate:` or set the interviewer and candidate names in `Roles`".into());
    }
    let mut pairs: Vec<Pair> = Vec::new();
    // Whether candidate speech currently belongs to the last pair (false after small talk).
    let mut open = false;
    for t in turns {
        if interviewers.contains(&t.speaker) {
            let Some(q) = question_part(&t.text) else {
                continue; // acknowledgement ("Great, thanks."): the current pair stays open
            };
            if open && is_follow_up(&q) {
                if let Some(p) = pairs.last_mut() {
                    p.follow_ups.push(q);
                }
                continue;
            }
            if is_small_talk(&q) {
                open = false;
                continue;
            }
            pairs.push(Pair {
                question: q,
                follow_ups: Vec::new(),
                answer: String::new(),
                line: t.line,
                start: t.start,
            });
            open = true;
        } else if open && let Some(p) = pairs.last_mut() {
            if !p.answer.is_empty() {
                p.answer.push('\n');
            }
            p.answer.push_str(t.text.trim());
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interviewer_is_who_asks_when_nobody_is_named() {
        let text = "Dana: Hi Sam, thanks for joining.\nSam: Happy to be here.\nDana: How do you profile a slow Python service?\nSam: I start with py-spy on the live process.\nDana: And memory?\nSam: tracemalloc snapshots.\n";
        let (_, turns) = crate::transcript::parse::parse(text, None).unwrap();
        assert_eq!(
            interviewers(&turns, &Roles::default()),
            vec!["Dana".to_string()]
        );
    }
}
