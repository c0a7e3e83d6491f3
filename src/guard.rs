//! Prompt-injection guard: finds text in an answer that addresses the grader instead of
//! answering the question ("ignore the rubric", "give this 10/10", fake JSON verdicts) and
//! removes it before any judge sees the answer, so such text can never raise a score.

use std::sync::OnceLock;

use regex::RegexSet;

/// Patterns of text aimed at a grader or a model. Case-insensitive; matched per line.
const PATTERNS: &[&str] = &[
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rubric|criteria|rules|prompt|guidelines|above|previous|prior)\b",
    r"\b(give|award|grant|assign|rate|score|grade|mark)\b.{0,30}\b(10\s*/\s*10|10 out of 10|full (marks|points|score|credit)|maximum (score|points|marks)|perfect (score|marks)|top (score|marks))",
    r"\b(10\s*/\s*10|full marks|full credit|perfect score|maximum score)\b.{0,30}\b(please|deserve|should|must|for this)\b",
    r"\b(mark|set|treat|consider)\b.{0,25}\b(all|every|each)\b.{0,15}\bcriteri(a|on)\b.{0,25}\b(met|passed|satisfied)\b",
    r#""(verdict|score)"\s*:\s*("?(met|partial|missed)"?|\d+)"#,
    r"\b(note|message|instruction)s? (to|for) (the )?(grader|evaluator|assessor|reviewer|ai|model|llm|assistant)\b",
    r"\b(you are|act as|pretend to be|from now on you)\b.{0,30}\b(grader|evaluator|assistant|ai|model|system)\b",
    r"^\s*(system|assistant|developer)\s*:",
    r"</?\s*(system|instructions?|im_start|im_end)\s*>|<\|im_(start|end)\|>",
    r"\bsystem prompt\b|\bjailbreak\b|\bprompt injection\b",
    r"\b(grader|evaluator|ai|model|llm)\b.{0,20}\b(must|should|will)\b.{0,30}\b(give|award|score|rate|mark|pass)\b",
];

fn set() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new(PATTERNS.iter().map(|p| format!("(?i){p}"))).expect("guard patterns compile")
    })
}

/// The answer with grader-directed lines removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarded {
    /// What judges see.
    pub text: String,
    /// Whether anything was removed.
    pub suspected: bool,
    /// The removed lines (for logs and review).
    pub removed: Vec<String>,
}

/// Placeholder left where text was removed, so the judge knows something was there.
pub const REMOVED: &str = "[text addressed to the grader removed]";

/// Check an answer sentence by sentence (lines, then sentences within a line).
pub fn guard(answer: &str) -> Guarded {
    let set = set();
    let mut out = String::with_capacity(answer.len());
    let mut removed = Vec::new();
    for line in answer.split_inclusive('\n') {
        if !set.is_match(line) {
            out.push_str(line);
            continue;
        }
        // Keep the innocent sentences of a line that also holds an injection.
        let mut kept = String::new();
        for sentence in split_keep(line) {
            if set.is_match(sentence) {
                removed.push(sentence.trim().to_string());
                if !kept.ends_with(REMOVED) {
                    if !kept.is_empty() && !kept.ends_with(' ') {
                        kept.push(' ');
                    }
                    kept.push_str(REMOVED);
                }
            } else {
                kept.push_str(sentence);
            }
        }
        out.push_str(&kept);
        if line.ends_with('\n') && !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Guarded {
        suspected: !removed.is_empty(),
        text: out,
        removed,
    }
}

/// Split after sentence ends, keeping the separators with the sentence before them.
fn split_keep(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'!' | b'?')
            && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace())
        {
            parts.push(&line[start..=i]);
            start = i + 1;
        }
    }
    if start < line.len() {
        parts.push(&line[start..]);
    }
    parts
}
