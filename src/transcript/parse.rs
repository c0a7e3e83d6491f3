//! Transcript formats → speaker turns. Never panics on any input (fuzzed in tests).
//!
//! - plain text: `Name: text` lines (`Interviewer:`, `Candidate:`, `Q:`, `A:`, any name); a
//!   line without a label continues the previous turn;
//! - WebVTT: cues with `<v Name>` voice tags or `Name:` prefixes, timings kept;
//! - SRT: numbered cues, `Name:` prefixes, timings kept;
//! - JSON: `[{"speaker", "text", "start"?, "end"?}]` (or `{"turns": [...]}`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Vtt,
    Srt,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" | "plain" => Ok(Format::Text),
            "vtt" | "webvtt" => Ok(Format::Vtt),
            "srt" => Ok(Format::Srt),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "unknown transcript format `{other}`: use text, vtt, srt or json"
            )),
        }
    }
}

/// One speaker's turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// 1-based line where the turn starts (0 for JSON input).
    #[serde(default)]
    pub line: usize,
}

/// A transcript that cannot be read: names the line and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Guess the format from the content.
pub fn detect(text: &str) -> Format {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with("WEBVTT") {
        return Format::Vtt;
    }
    if looks_like_json(t) {
        return Format::Json;
    }
    let mut lines = t.lines().map(str::trim);
    if let (Some(first), Some(second)) = (lines.next(), lines.next())
        && first.chars().all(|c| c.is_ascii_digit())
        && !first.is_empty()
        && second.contains("-->")
    {
        return Format::Srt;
    }
    Format::Text
}

/// Content that starts like a JSON document (`{"`, `{}`, `[{`, `[]`, `["`) is JSON, valid or
/// not, so a truncated file reports its JSON error rather than "no speaker labels". A text
/// transcript starting with `[00:01] Name:` does not look like JSON.
fn looks_like_json(t: &str) -> bool {
    let mut chars = t.chars();
    let (Some(open @ ('[' | '{')), Some(next)) =
        (chars.next(), chars.by_ref().find(|c| !c.is_whitespace()))
    else {
        return false;
    };
    match open {
        '{' => matches!(next, '"' | '}'),
        _ => matches!(next, '{' | '[' | '"' | ']'),
    }
}

/// Parse in the given (or detected) format.
pub fn parse(text: &str, format: Option<Format>) -> Result<(Format, Vec<Turn>), ParseError> {
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Err(err(1, "the transcript is empty"));
    }
    let format = format.unwrap_or_else(|| detect(text));
    let turns = match format {
        Format::Text => parse_text(text)?,
        Format::Vtt => parse_vtt(text)?,
        Format::Srt => parse_srt(text)?,
        Format::Json => parse_json(text)?,
    };
    if turns.is_empty() {
        return Err(err(1, "no speaker turns found"));
    }
    Ok((format, merge_consecutive(turns)))
}

/// `Name: rest` where Name is a plausible speaker label (short, starts with a letter).
fn split_label(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= 40
        && name.split_whitespace().count() <= 4
        && name.chars().next().is_some_and(char::is_alphabetic)
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '\'' | '(' | ')'))
        // "Note: ..." inside an answer is text, not a speaker; a URL is not a label either.
        && !rest.starts_with("//");
    ok.then_some((name, rest.trim()))
}

fn parse_text(text: &str) -> Result<Vec<Turn>, ParseError> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut unlabelled_before_first = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        match split_label(line) {
            Some((name, rest)) => turns.push(Turn {
                speaker: name.to_string(),
                text: rest.to_string(),
                start: None,
                end: None,
                line: i + 1,
            }),
            None => match turns.last_mut() {
                Some(t) => {
                    if !t.text.is_empty() {
                        t.text.push('\n');
                    }
                    t.text.push_str(line);
                }
                None => {
                    unlabelled_before_first.get_or_insert(i + 1);
                }
            },
        }
    }
    if turns.is_empty() {
        return Err(err(
            unlabelled_before_first.unwrap_or(1),
            "no speaker labels: start each turn with `Name:` (e.g. `Interviewer:` / `Candidate:`, or `Q:` / `A:`)",
        ));
    }
    Ok(turns)
}

/// `hh:mm:ss.mmm` or `mm:ss.mmm` (VTT) or `hh:mm:ss,mmm` (SRT) → seconds.
fn timestamp(s: &str) -> Option<f64> {
    let s = s.trim().replace(',', ".");
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m, sec] => (
            h.parse::<u64>().ok()?,
            m.parse::<u64>().ok()?,
            sec.parse::<f64>().ok()?,
        ),
        [m, sec] => (0, m.parse::<u64>().ok()?, sec.parse::<f64>().ok()?),
        _ => return None,
    };
    if m >= 60 || !(0.0..60.0).contains(&sec) {
        return None;
    }
    Some(h as f64 * 3600.0 + m as f64 * 60.0 + sec)
}

fn timing(line: &str, n: usize) -> Result<(f64, f64), ParseError> {
    let (a, b) = line.split_once("-->").ok_or_else(|| {
        err(
            n,
            format!(
                "expected a cue timing `start --> end`, found `{}`",
                crate::grade::short(line, 60)
            ),
        )
    })?;
    let b = b.split_whitespace().next().unwrap_or("");
    let start = timestamp(a).ok_or_else(|| {
        err(
            n,
            format!("bad start time `{}` (use hh:mm:ss.mmm)", a.trim()),
        )
    })?;
    let end =
        timestamp(b).ok_or_else(|| err(n, format!("bad end time `{b}` (use hh:mm:ss.mmm)")))?;
    if end < start {
        return Err(err(
            n,
            format!("cue ends ({}) before it starts ({})", b, a.trim()),
        ));
    }
    Ok((start, end))
}

/// A cue's speaker: `<v Name>text</v>` or `Name: text`; otherwise the previous speaker.
fn cue_speaker(text: &str) -> (Option<String>, String) {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("<v")
        && let Some(close) = rest.find('>')
    {
        let name = rest[..close]
            .trim()
            .trim_start_matches('.')
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let body = rest[close + 1..].replace("</v>", "");
        let name = name.split_once(' ').map_or(name.clone(), |(cls, n)| {
            if cls.starts_with('.') {
                n.to_string()
            } else {
                name.clone()
            }
        });
        return (Some(name), strip_tags(&body).trim().to_string());
    }
    match split_label(t) {
        Some((name, rest)) => (Some(name.to_string()), strip_tags(rest)),
        None => (None, strip_tags(t)),
    }
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn cues_to_turns(cues: Vec<(usize, f64, f64, String)>) -> Result<Vec<Turn>, ParseError> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut missing = None;
    for (line, start, end, text) in cues {
        let (speaker, body) = cue_speaker(&text);
        match (speaker, turns.last_mut()) {
            (Some(s), _) => turns.push(Turn {
                speaker: s,
                text: body,
                start: Some(start),
                end: Some(end),
                line,
            }),
            (None, Some(prev)) => {
                prev.text.push(' ');
                prev.text.push_str(&body);
                prev.end = Some(end);
            }
            (None, None) => {
                missing.get_or_insert(line);
            }
        }
    }
    if turns.is_empty() {
        return Err(err(
            missing.unwrap_or(1),
            "no speakers: mark cues with `<v Name>` or start their text with `Name:`",
        ));
    }
    Ok(turns)
}

fn parse_vtt(text: &str) -> Result<Vec<Turn>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    if !lines
        .first()
        .is_some_and(|l| l.trim_start_matches('\u{feff}').starts_with("WEBVTT"))
    {
        return Err(err(1, "a WebVTT file starts with `WEBVTT`"));
    }
    let mut cues = Vec::new();
    let mut i = 1;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() {
            i += 1;
            continue;
        }
        // NOTE / STYLE / REGION blocks run to the next blank line.
        if line.starts_with("NOTE") || line == "STYLE" || line == "REGION" {
            while i < lines.len() && !lines[i].trim().is_empty() {
                i += 1;
            }
            continue;
        }
        // An optional cue identifier line precedes the timing.
        let timing_line = if line.contains("-->") { i } else { i + 1 };
        if timing_line >= lines.len() || !lines[timing_line].contains("-->") {
            return Err(err(
                i + 1,
                format!(
                    "expected a cue timing `start --> end` after `{}`",
                    crate::grade::short(line, 40)
                ),
            ));
        }
        let (start, end) = timing(lines[timing_line], timing_line + 1)?;
        let mut body = Vec::new();
        let mut j = timing_line + 1;
        while j < lines.len() && !lines[j].trim().is_empty() {
            body.push(lines[j].trim());
            j += 1;
        }
        cues.push((timing_line + 1, start, end, body.join(" ")));
        i = j;
    }
    cues_to_turns(cues)
}

fn parse_srt(text: &str) -> Result<Vec<Turn>, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cues = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() {
            i += 1;
            continue;
        }
        if !line.chars().all(|c| c.is_ascii_digit()) {
            return Err(err(
                i + 1,
                format!(
                    "expected a cue number, found `{}`",
                    crate::grade::short(line, 40)
                ),
            ));
        }
        if i + 1 >= lines.len() {
            return Err(err(i + 1, "cue number without a timing line"));
        }
        let (start, end) = timing(lines[i + 1], i + 2)?;
        let mut body = Vec::new();
        let mut j = i + 2;
        while j < lines.len() && !lines[j].trim().is_empty() {
            body.push(lines[j].trim());
            j += 1;
        }
        cues.push((i + 1, start, end, body.join(" ")));
        i = j;
    }
    cues_to_turns(cues)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTurn {
    speaker: Option<String>,
    text: Option<String>,
    #[serde(default)]
    start: Option<f64>,
    #[serde(default)]
    end: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonDoc {
    Turns(Vec<JsonTurn>),
    Wrapped { turns: Vec<JsonTurn> },
}

fn parse_json(text: &str) -> Result<Vec<Turn>, ParseError> {
    let doc: JsonDoc = serde_json::from_str(text).map_err(|e| {
        const SHAPE: &str =
            "expected a JSON array of {\"speaker\", \"text\", \"start\"?, \"end\"?} turns";
        // serde_json's message ends with its own "at line L column C"; say it once.
        let full = e.to_string();
        let why = full
            .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
            .unwrap_or(&full);
        let at = format!("line {}, column {}", e.line(), e.column());
        let message = if !looks_like_json(text.trim_start()) {
            format!("{SHAPE} ({at}: {why})")
        } else if e.is_eof() {
            format!("the JSON ends early (is the file truncated?) at {at}: {why}")
        } else if e.is_syntax() {
            format!("invalid JSON at {at}: {why}")
        } else {
            format!("{SHAPE} ({at}: {why})")
        };
        err(e.line().max(1), message)
    })?;
    let turns = match doc {
        JsonDoc::Turns(t) | JsonDoc::Wrapped { turns: t } => t,
    };
    let mut out = Vec::with_capacity(turns.len());
    for (i, t) in turns.into_iter().enumerate() {
        let speaker = t
            .speaker
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err(0, format!("turn {i}: `speaker` is missing or empty")))?;
        let text = t
            .text
            .ok_or_else(|| err(0, format!("turn {i}: `text` is missing")))?;
        if let (Some(s), Some(e)) = (t.start, t.end)
            && e < s
        {
            return Err(err(0, format!("turn {i}: end ({e}) is before start ({s})")));
        }
        out.push(Turn {
            speaker,
            text: text.trim().to_string(),
            start: t.start,
            end: t.end,
            line: 0,
        });
    }
    Ok(out)
}

/// Consecutive turns of one speaker are one turn (subtitle formats split long speech into cues).
fn merge_consecutive(turns: Vec<Turn>) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len());
    for t in turns {
        match out.last_mut() {
            Some(prev) if prev.speaker == t.speaker => {
                if !t.text.is_empty() {
                    if !prev.text.is_empty() {
                        prev.text.push('\n');
                    }
                    prev.text.push_str(&t.text);
                }
                if t.end.is_some() {
                    prev.end = t.end;
                }
            }
            _ => out.push(t),
        }
    }
    out
}
