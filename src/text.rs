//! Text helpers shared by indexing and judging: splitting answers into sentences and clauses
//! (code blocks kept whole) and the normalisation used to verify quoted evidence.

/// A piece of an answer: a sentence, a clause, or a whole code block.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub text: String,
    pub is_code: bool,
}

/// Sentences longer than this many words are split further at clause boundaries.
const LONG_SENTENCE_WORDS: usize = 30;

/// Split `text` into sentences/clauses. Fenced code blocks (```) and runs of lines that look
/// like code stay whole, because a function means something only as a whole.
pub fn segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut prose = String::new();
    let mut code = String::new();
    let mut in_fence = false;
    let flush_prose = |prose: &mut String, out: &mut Vec<Segment>| {
        for s in split_prose(prose) {
            out.push(Segment {
                text: s,
                is_code: false,
            });
        }
        prose.clear();
    };
    let flush_code = |code: &mut String, out: &mut Vec<Segment>| {
        let t = code.trim_matches('\n');
        if !t.trim().is_empty() {
            out.push(Segment {
                text: t.to_string(),
                is_code: true,
            });
        }
        code.clear();
    };
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            if in_fence {
                flush_code(&mut code, &mut out);
            } else {
                flush_prose(&mut prose, &mut out);
            }
            in_fence = !in_fence;
            continue;
        }
        if in_fence || looks_like_code(line) || (!code.is_empty() && is_continuation(line)) {
            if !in_fence && code.is_empty() {
                flush_prose(&mut prose, &mut out);
            }
            code.push_str(line);
            code.push('\n');
            continue;
        }
        if !code.is_empty() {
            flush_code(&mut code, &mut out);
        }
        if trimmed.is_empty() || is_bullet(trimmed) {
            flush_prose(&mut prose, &mut out);
        }
        prose.push_str(line);
        prose.push('\n');
    }
    flush_code(&mut code, &mut out);
    flush_prose(&mut prose, &mut out);
    out
}

fn is_bullet(line: &str) -> bool {
    line.starts_with("- ")
        || line.starts_with("* ")
        || line.starts_with("• ")
        || line.split_once(['.', ')']).is_some_and(|(n, rest)| {
            !n.is_empty()
                && n.len() <= 2
                && n.chars().all(|c| c.is_ascii_digit())
                && rest.starts_with(' ')
        })
}

/// A line of Python-looking code (outside fences).
fn looks_like_code(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() {
        return false;
    }
    const STARTS: [&str; 14] = [
        "def ",
        "class ",
        "import ",
        "from ",
        "return ",
        "async def ",
        "@",
        "for ",
        "while ",
        "with ",
        "try:",
        "except",
        "yield ",
        ">>> ",
    ];
    // A sentence that happens to start like code ("@dataclass generates __init__ …", a wrapped
    // line starting "from the …"): many words, at least half of them plain, no comment, not
    // indented.
    let words: Vec<&str> = t.split_whitespace().collect();
    let plain = words
        .iter()
        .filter(|w| {
            let w = w.trim_matches(|c: char| ",.;!?\"'".contains(c));
            !w.is_empty() && w.chars().all(char::is_alphabetic)
        })
        .count();
    if words.len() >= 8
        && plain * 2 >= words.len()
        && !t.ends_with(':')
        && !t.contains('#')
        && !line.starts_with([' ', '\t'])
    {
        return false;
    }
    let indented_code =
        line.starts_with("    ") && (t.ends_with(':') || t.contains('=') || t.contains('('));
    STARTS.iter().any(|s| t.starts_with(s))
        && (t.ends_with(':')
            || t.contains('(')
            || t.contains('=')
            || t.starts_with("import ")
            || t.starts_with("from ")
            || t.starts_with("return ")
            || t.starts_with("yield ")
            || t.starts_with('@')
            || t.starts_with(">>> "))
        || indented_code
        || is_call(t)
        || (t.contains(" = ")
            && !t.contains(". ")
            && t.split_whitespace().count() <= 8
            && !t.ends_with('.'))
}

/// A Python name, dotted or not: "sorted", "self.cache", "typing.Optional".
pub fn is_dotted_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
}

/// One call, the whole line: a dotted name, then parentheses that open after it and close at
/// the end ("sorted(staff, key=lambda e: (e.dept, e.name))", "logging.basicConfig(level=x)").
/// "copy(), deepcopy(), id()" is three calls listed, not one.
pub fn is_call(line: &str) -> bool {
    let line = line.trim_end_matches(';').trim();
    let Some(open) = line.find('(') else {
        return false;
    };
    // No space before the parenthesis: "See (the docs)" is prose.
    if !is_dotted_name(line[..open].trim_start_matches("await ")) {
        return false;
    }
    let mut depth = 0i32;
    for (i, c) in line[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return open + i + 1 == line.len();
                }
            }
            _ => {}
        }
    }
    false
}

/// Inside a code run, blank and indented lines belong to the code.
fn is_continuation(line: &str) -> bool {
    line.trim().is_empty()
        || line.starts_with(' ')
        || line.starts_with('\t')
        || looks_like_code(line)
}

fn split_prose(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `text` is one paragraph (blank lines and bullets end paragraphs in `segments`); hard
    // line wraps inside it are not sentence boundaries.
    let joined = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    for para in std::iter::once(joined.as_str()).filter(|p| !p.is_empty()) {
        for sentence in split_sentences(para) {
            if sentence.split_whitespace().count() > LONG_SENTENCE_WORDS {
                out.extend(split_clauses(&sentence));
            } else {
                out.push(sentence);
            }
        }
    }
    // Drop pieces with no letters or digits (stray punctuation, rules, bullets): there is
    // nothing in them to embed or quote.
    out.retain(|s| s.chars().any(char::is_alphanumeric));
    out
}

fn split_sentences(para: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = para.chars().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let end_mark = matches!(c, '.' | '!' | '?' | ';');
        let next_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        // "e.g. ", "i.e. ", "etc. ", "vs. " and numbers like 3.11 do not end a sentence.
        let abbrev = c == '.' && {
            let word: String = chars[start..i]
                .iter()
                .rev()
                .take_while(|ch| !ch.is_whitespace())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let w = word.to_lowercase();
            ["e.g", "i.e", "etc", "vs", "mr", "dr", "approx", "cf"]
                .contains(&w.trim_start_matches('('))
                || w.len() == 1
        };
        if end_mark && next_space && !abbrev {
            let s: String = chars[start..=i].iter().collect();
            if !s.trim().is_empty() {
                out.push(s.trim().to_string());
            }
            start = i + 1;
        }
        i += 1;
    }
    let rest: String = chars[start..].iter().collect();
    if !rest.trim().is_empty() {
        out.push(rest.trim().to_string());
    }
    out
}

fn split_clauses(sentence: &str) -> Vec<String> {
    const BREAKS: [&str; 7] = [
        ", but ",
        ", and ",
        ", so ",
        ", which ",
        ", whereas ",
        ", while ",
        " - ",
    ];
    let mut parts = vec![sentence.to_string()];
    for b in BREAKS {
        parts = parts
            .into_iter()
            .flat_map(|p| {
                if p.split_whitespace().count() <= LONG_SENTENCE_WORDS / 2 {
                    return vec![p];
                }
                let mut pieces = Vec::new();
                let mut rest = p.as_str();
                while let Some(pos) = rest.find(b) {
                    let (head, tail) = rest.split_at(pos);
                    pieces.push(head.trim().to_string());
                    rest = tail[2..].trim_start();
                }
                pieces.push(rest.trim().to_string());
                pieces.retain(|s| !s.is_empty());
                pieces
            })
            .collect();
    }
    parts
}

/// Lowercase, straight quotes, dashes as '-', runs of whitespace as one space; used to check
/// that quoted evidence really occurs in an answer.
pub fn normalize_for_match(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201b}' | '`' | '\u{00b4}' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{201f}' | '\u{00ab}' | '\u{00bb}' => '"',
            '\u{2013}' | '\u{2014}' | '\u{2212}' => '-',
            '\u{2026}' => '.',
            c => c,
        };
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// Whether `quote` occurs in `answer` after normalisation. Trailing punctuation and an
/// ellipsis in the quote are ignored ("the GIL ... is released" counts when both halves do).
pub fn quote_occurs(answer_normalized: &str, quote: &str) -> bool {
    let q = normalize_for_match(quote);
    let q = q.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '.' | ',' | ';' | ':' | '"' | '\'')
    });
    if q.is_empty() {
        return false;
    }
    if answer_normalized.contains(q) {
        return true;
    }
    // "first part ... second part": every part must occur, in order.
    if q.contains("...") {
        let mut from = 0;
        for part in q.split("...").map(str::trim).filter(|p| !p.is_empty()) {
            match answer_normalized[from..].find(part) {
                Some(pos) => from += pos + part.len(),
                None => return false,
            }
        }
        return true;
    }
    false
}

/// Words in `text` (letters, digits, `_`), lowercase.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Common English function words: they say nothing about what a sentence is about.
pub fn is_stopword(w: &str) -> bool {
    const STOP: &[&str] = &[
        "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be",
        "because", "been", "before", "being", "between", "both", "but", "by", "can", "could", "do",
        "does", "doing", "done", "down", "each", "either", "else", "etc", "even", "every", "few",
        "for", "from", "get", "gets", "had", "has", "have", "having", "here", "how", "however",
        "i", "if", "in", "into", "is", "it", "its", "itself", "just", "less", "like", "made",
        "make", "makes", "many", "may", "might", "more", "most", "much", "must", "need", "no",
        "not", "of", "off", "often", "on", "once", "one", "only", "or", "other", "others", "our",
        "out", "over", "own", "per", "rather", "same", "should", "since", "so", "some", "still",
        "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
        "those", "through", "thus", "to", "too", "two", "under", "until", "up", "upon", "us",
        "use", "used", "uses", "using", "usually", "very", "via", "was", "way", "we", "well",
        "were", "what", "when", "where", "whether", "which", "while", "who", "whole", "why",
        "will", "with", "within", "without", "would", "yet", "you", "your",
    ];
    STOP.binary_search(&w).is_ok()
}

/// A crude stem for prefix matching: the word without a common inflectional suffix, never
/// shorter than four characters ("maintained" → "maintain", "indexes" → "index").
pub fn stem(word: &str) -> &str {
    const SUFFIXES: &[&str] = &[
        "ations", "ation", "ings", "ing", "ions", "ion", "ities", "ity", "ies", "ed", "es", "ly",
        "s",
    ];
    for s in SUFFIXES {
        if let Some(base) = word.strip_suffix(s)
            && base.chars().count() >= 4
        {
            return base;
        }
    }
    word
}

/// The distinctive terms of each statement, for keyword evidence on rubrics that have none
/// (ad hoc rubrics built from a reference answer): content words that are not in `exclude`
/// (the question's words), preferring words no other statement uses, then longer words; at
/// most `per_statement` each, as prefix terms (`stem*`) so inflections match.
pub fn key_terms(
    statements: &[String],
    exclude: &std::collections::HashSet<String>,
    per_statement: usize,
) -> Vec<Vec<String>> {
    let excluded_stems: std::collections::HashSet<&str> = exclude.iter().map(|w| stem(w)).collect();
    let per: Vec<Vec<String>> = statements
        .iter()
        .map(|s| {
            let mut seen = std::collections::HashSet::new();
            words(s)
                .filter(|w| {
                    w.chars().count() >= 3
                        && !w.chars().all(|c| c.is_ascii_digit())
                        && !is_stopword(w)
                        && !excluded_stems.contains(stem(w))
                })
                .map(|w| stem(&w).to_string())
                .filter(|w| seen.insert(w.clone()))
                .collect()
        })
        .collect();
    let mut df: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for terms in &per {
        for t in terms {
            *df.entry(t.as_str()).or_default() += 1;
        }
    }
    per.iter()
        .map(|terms| {
            let mut ranked: Vec<&String> = terms.iter().collect();
            ranked.sort_by_key(|t| (df[t.as_str()], std::cmp::Reverse(t.chars().count())));
            ranked
                .into_iter()
                .take(per_statement)
                .map(|t| format!("{t}*"))
                .collect()
        })
        .collect()
}

/// The language of a prose answer that is clearly not English (its English name), or `None`
/// for English, code, and text too short or too mixed to tell. Clearly: at least six prose
/// words, fewer than one in ten of them English function words, and whatlang reliably names
/// another language.
pub fn foreign_language(text: &str) -> Option<String> {
    const ENGLISH: &[&str] = &[
        "a", "an", "and", "are", "as", "at", "be", "because", "but", "by", "can", "do", "does",
        "for", "from", "has", "have", "if", "in", "is", "it", "its", "not", "of", "on", "or", "so",
        "that", "the", "their", "there", "this", "to", "was", "when", "which", "with", "you",
    ];
    let prose: String = segments(text)
        .into_iter()
        .filter(|s| !s.is_code)
        .map(|s| s.text)
        .collect::<Vec<_>>()
        .join(" ");
    let ws: Vec<String> = words(&prose).collect();
    if ws.len() < 6 {
        return None;
    }
    let english = ws.iter().filter(|w| ENGLISH.contains(&w.as_str())).count();
    if english * 10 >= ws.len() {
        return None;
    }
    let info = whatlang::detect(&prose)?;
    (info.is_reliable() && info.lang() != whatlang::Lang::Eng)
        .then(|| info.lang().eng_name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentence_that_starts_like_code_is_prose() {
        let s = segments(
            "```python\n@dataclass\nclass A:\n    x: int\n```\n\n@dataclass generates __init__, __repr__ and __eq__ from the annotated fields; frozen=True makes\nrecords immutable. from the docs you learn more.\n",
        );
        assert_eq!(s.iter().filter(|s| s.is_code).count(), 1, "{s:?}");
        assert!(
            s.iter()
                .any(|s| !s.is_code && s.text.starts_with("@dataclass generates")),
            "{s:?}"
        );
        // Short decorated lines and imports outside a fence stay code.
        let s = segments("Use it like this:\n@functools.wraps(func)\nimport functools\n");
        assert!(
            s.iter()
                .any(|s| s.is_code && s.text.contains("@functools.wraps")),
            "{s:?}"
        );
    }

    #[test]
    fn a_line_that_is_one_call_is_code_and_a_sentence_about_a_call_is_not() {
        let s = segments(
            "Sort them like this:\nsorted(employees, key=lambda e: (e.dept, e.name))\nUse sorted(employees, key=len) for a copy.\n",
        );
        assert!(
            s.iter()
                .any(|s| s.is_code && s.text == "sorted(employees, key=lambda e: (e.dept, e.name))"),
            "{s:?}"
        );
        assert!(
            s.iter()
                .any(|s| !s.is_code && s.text.starts_with("Use sorted(employees")),
            "{s:?}"
        );
    }
}
