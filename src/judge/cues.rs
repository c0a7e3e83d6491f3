//! Text cues the coverage judge reads beside similarity, so that a sentence counts as evidence
//! only when it *asserts* a point: polarity (negation and antonyms against the criterion's own
//! phrasing), hedges, retractions ("all of the above is false"), whether a code block is code,
//! and whether prose is a bare list of terms.
//!
//! Embedding models put "X shares Y" and "X does not share Y" next to each other; these cues
//! are what tells them apart. They are deliberately lexical and explainable: each is a rule a
//! reviewer can read in the grade's reason.
//!
//! Long because the cue lists (negations, hedges, antonyms, statement shapes) and the rules
//! reading them are one unit, tested together.

use crate::text::{is_stopword, stem};

/// Words that negate the clause they are in. Not "without": it negates its object ("without
/// the lock threads lose updates" asserts that they lose them), and it is the antonym of "with".
const NEGATIONS: &[&str] = &[
    "cannot", "neither", "never", "no", "nobody", "none", "nor", "not", "nothing", "nowhere",
];

/// Pairs of words that say opposite things (either order). Prefix antonyms (mutable /
/// immutable, safe / unsafe) are found by rule, not listed.
const ANTONYMS: &[(&str, &str)] = &[
    ("above", "below"),
    ("absorb", "reflect"),
    ("accept", "reject"),
    ("add", "remove"),
    ("all", "none"),
    ("always", "never"),
    ("attract", "repel"),
    ("before", "after"),
    ("big", "small"),
    ("both", "neither"),
    ("can", "cannot"),
    ("conductor", "insulator"),
    ("connected", "separated"),
    ("decrease", "increase"),
    ("deep", "shallow"),
    ("different", "same"),
    ("each", "none"),
    ("eager", "lazy"),
    ("enable", "disable"),
    ("explicit", "implicit"),
    ("fast", "slow"),
    ("faster", "slower"),
    ("gain", "lose"),
    ("global", "local"),
    ("hard", "soft"),
    ("harder", "softer"),
    ("high", "low"),
    ("higher", "lower"),
    ("hot", "cold"),
    ("in", "out"),
    ("include", "exclude"),
    ("inside", "outside"),
    ("large", "small"),
    ("larger", "smaller"),
    ("less", "more"),
    ("lose", "keep"),
    ("many", "few"),
    ("maximum", "minimum"),
    ("must", "needn"),
    ("off", "on"),
    ("open", "closed"),
    ("own", "same"),
    ("parallel", "serial"),
    ("positive", "negative"),
    ("private", "public"),
    ("releases", "holds"),
    ("safe", "unsafe"),
    ("shared", "independent"),
    ("shares", "copies"),
    ("static", "dynamic"),
    ("strong", "weak"),
    ("stronger", "weaker"),
    ("sync", "async"),
    ("synchronous", "asynchronous"),
    ("true", "false"),
    ("with", "without"),
];

/// Antonyms among prepositions ([`ANTONYMS`]), which flip a claim only with the same object.
const PREPOSITIONS: &[&str] = &[
    "after", "before", "in", "off", "on", "out", "with", "without",
];

/// Negative contractions typed without their apostrophe, and what they stand for (sorted: a
/// binary search per token).
const BARE_CONTRACTIONS: &[(&str, &str)] = &[
    ("arent", "aren't"),
    ("cant", "can't"),
    ("couldnt", "couldn't"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("isnt", "isn't"),
    ("shouldnt", "shouldn't"),
    ("wasnt", "wasn't"),
    ("werent", "weren't"),
    ("wont", "won't"),
    ("wouldnt", "wouldn't"),
];

/// Phrases that mark a statement as a guess.
const HEDGES: &[&str] = &[
    "i assume",
    "i believe",
    "i guess",
    "i suppose",
    "i think",
    "if i recall",
    "if i remember",
    "i'm not sure",
    "im not sure",
    "i am not sure",
    "maybe",
    "might be",
    "not sure",
    "not 100%",
    "perhaps",
    "possibly",
    "probably",
];

/// The words of a text in lower case, with contractions opened ("doesn't" → "does", "not";
/// "cannot" stays one word, a negation).
pub fn tokens(text: &str) -> Vec<String> {
    // A contraction typed with a double quote ("isn"t") or without its apostrophe ("doesnt")
    // is still a negation.
    let text: std::borrow::Cow<'_, str> = if text.contains("n\"t") {
        text.replace("n\"t", "n't").into()
    } else {
        text.into()
    };
    let mut out = Vec::new();
    for raw in text
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '_'))
        .filter(|w| !w.is_empty())
    {
        let w = raw.to_lowercase().replace('’', "'");
        let w = w.trim_matches('\'');
        if w.is_empty() {
            continue;
        }
        let w = match BARE_CONTRACTIONS.binary_search_by_key(&w, |&(bare, _)| bare) {
            Ok(i) => BARE_CONTRACTIONS[i].1,
            Err(_) => w,
        };
        if let Some(stemmed) = w.strip_suffix("n't") {
            let base = match stemmed {
                "wo" => "will",
                "ca" => "can",
                "sha" => "shall",
                other => other,
            };
            if !base.is_empty() {
                out.push(base.to_string());
            }
            out.push("not".to_string());
        } else if raw == "None" && !out.is_empty() {
            // Python's None inside a sentence is a value, not a negation ("returns None").
            out.push("py_none".to_string());
        } else if let Some((base, _)) = w.split_once('\'') {
            // "it's", "I'd", "you're": the word, without its clitic.
            out.push(base.to_string());
        } else {
            out.push(respelled(w).unwrap_or(w).to_string());
        }
    }
    out
}

/// A word one letter off a long word of [`ANTONYMS`] ("postive", "positve", "seperated",
/// "conected"), read as that word: student answers are typed fast, and a misspelt antonym hides
/// the swap that cancels a negation ("not connected to the negative terminal" against
/// "connected to the postive terminal"). A letter missing or extra for words of 7 letters and
/// more, one changed for 8 and more, never the first ("either" is not "neither"); a spelling
/// two known words share is left alone.
fn respelled(w: &str) -> Option<&'static str> {
    const MIN: usize = 7;
    const MIN_CHANGED: usize = 8;
    struct Typos {
        known: std::collections::HashSet<&'static str>,
        /// Each known word with one letter dropped, and the word (None when two share it).
        dropped: std::collections::HashMap<String, Option<&'static str>>,
    }
    fn drops(w: &str) -> impl Iterator<Item = String> + '_ {
        w.char_indices().map(|(i, c)| {
            let mut d = String::with_capacity(w.len());
            d.push_str(&w[..i]);
            d.push_str(&w[i + c.len_utf8()..]);
            d
        })
    }
    static TABLE: std::sync::OnceLock<Typos> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let known: std::collections::HashSet<&'static str> = ANTONYMS
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter(|w| w.len() >= MIN)
            .collect();
        let mut dropped: std::collections::HashMap<String, Option<&'static str>> =
            Default::default();
        for &k in &known {
            for d in drops(k) {
                dropped
                    .entry(d)
                    .and_modify(|e| {
                        if *e != Some(k) {
                            *e = None
                        }
                    })
                    .or_insert(Some(k));
            }
        }
        Typos { known, dropped }
    });
    if w.len() + 1 < MIN || !w.bytes().all(|b| b.is_ascii_lowercase()) || t.known.contains(w) {
        return None;
    }
    let same_start = |k: &&str| k.as_bytes()[0] == w.as_bytes()[0];
    // A letter missing: the word is a known word with one dropped.
    if let Some(k) = t.dropped.get(w) {
        return k.filter(same_start);
    }
    for d in drops(w) {
        // A letter extra: dropping one gives a known word.
        if let Some(&k) = t.known.get(d.as_str())
            && same_start(&k)
        {
            return Some(k);
        }
        // A letter changed (or two swapped): both lose one letter to the same spelling.
        if let Some(Some(k)) = t.dropped.get(&d)
            && same_start(k)
            && k.len() >= MIN_CHANGED
            && k.len() == w.len()
        {
            return Some(k);
        }
    }
    None
}

fn is_negation(w: &str) -> bool {
    NEGATIONS.binary_search(&w).is_ok()
}

/// Negation cues in a token list ("no longer" counts once, as "no").
fn negation_count(tokens: &[String]) -> usize {
    tokens.iter().filter(|w| is_negation(w)).count()
}

/// How many words after a negation it scopes over ([`negated_roots`]).
const NEGATION_SCOPE: usize = 3;

/// The content words (roots) a negation scopes over in a clause's tokens: the words of the
/// next [`NEGATION_SCOPE`] tokens after each negation, up to another negation.
fn negated_roots(tokens: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !is_negation(t) {
            continue;
        }
        for w in tokens[i + 1..].iter().take(NEGATION_SCOPE) {
            if is_negation(w) {
                break;
            }
            if !is_stopword(w) && w.chars().count() >= 2 {
                out.push(root(w).to_string());
            }
        }
    }
    out
}

/// The content words of a token list, stemmed: what a claim is about.
fn content(tokens: &[String]) -> Vec<String> {
    tokens
        .iter()
        .filter(|w| !is_negation(w) && !is_stopword(w) && w.chars().count() >= 2)
        .map(|w| root(w).to_string())
        .collect()
}

/// A word's [`stem`] without a final "e", so that "generate" meets "generates" (stem
/// "generat") and "stable" meets "stability".
fn root(w: &str) -> &str {
    let s = stem(w);
    match s.strip_suffix('e') {
        Some(base) if base.chars().count() >= 4 => base,
        _ => s,
    }
}

/// Whether `a` and `b` say opposite things as words: a listed pair, or one is the other with a
/// negating prefix (mutable / immutable, safe / unsafe, blocking / non-blocking).
fn antonyms(a: &str, b: &str) -> bool {
    // Called for every pair of words of every pair of clauses: a hash lookup and a suffix
    // test, no scan of the list.
    if a == b {
        return false;
    }
    let (long, short) = if a.len() > b.len() { (a, b) } else { (b, a) };
    let prefixed = short.len() >= 4
        && long.ends_with(short)
        && ["un", "in", "im", "ir", "il", "non", "non-", "dis"]
            .contains(&&long[..long.len() - short.len()]);
    prefixed
        || antonym_table()
            .get(a)
            .is_some_and(|ps| ps.iter().any(|p| p == b))
}

/// [`ANTONYMS`] both ways, each word also as its stem (content words are stemmed).
fn antonym_table() -> &'static std::collections::HashMap<String, Vec<String>> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<String, Vec<String>>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: std::collections::HashMap<String, Vec<String>> = Default::default();
        for &(x, y) in ANTONYMS {
            for (a, b) in [(x, y), (y, x)] {
                for a in [a, root(a)] {
                    for b in [b, root(b)] {
                        t.entry(a.to_string()).or_default().push(b.to_string());
                    }
                }
            }
        }
        t
    })
}

/// How a sentence stands to a claim, read from their words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polarity {
    /// Share of the claim's content words the sentence uses (stems; antonyms count as used).
    pub recall: f32,
    /// Share of the sentence's content words that come from the claim.
    pub precision: f32,
    /// The sentence negates or inverts the claim: the negations it adds or drops, plus antonym
    /// swaps, are odd in number ("not mutable" = "immutable"), or it negates two clauses the
    /// claim states plainly (each clause negated still contradicts both).
    pub flipped: bool,
}

impl Polarity {
    /// The sentence says the claim's words with the opposite sense: it contradicts the claim.
    /// Both shares must be high: a sentence that shares only a topic with the claim and
    /// happens to hold a "not" says nothing about it.
    pub fn opposes(&self) -> bool {
        self.flipped && self.recall >= 0.6 && self.precision >= 0.5
    }
}

/// A text's words, read once: its tokens and its stemmed content words.
#[derive(Debug, Clone)]
pub struct Words {
    tokens: Vec<String>,
    content: Vec<String>,
    /// The content words before any were left out ([`Words::without`]): an antonym swap
    /// counts even in words the question has ("mutable" / "immutable").
    all: Vec<String>,
}

impl Words {
    pub fn of(text: &str) -> Words {
        let tokens = tokens(text);
        let content = content(&tokens);
        Words {
            tokens,
            all: content.clone(),
            content,
        }
    }

    /// Content words: a clause with fewer than two says nothing to compare.
    pub fn content_len(&self) -> usize {
        self.content.len()
    }

    /// The words in order, contractions opened ([`tokens`]).
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Offered as a guess ([`is_hedged`]).
    pub fn is_hedged(&self) -> bool {
        hedged_tokens(&self.tokens)
    }

    /// The same words without the given content words (tokens stay: negations count).
    pub fn without(mut self, drop: &[String]) -> Words {
        self.content.retain(|w| !drop.contains(w));
        self
    }
}

/// Compare a sentence with a claim, both read into [`Words`] (see [`Polarity`]).
pub fn polarity_of(claim: &Words, sentence: &Words) -> Polarity {
    polarity_over(claim, sentence, false)
}

/// [`polarity_of`], over every content word when `whole` (the words [`Words::without`] left
/// out included), else over the content words kept.
fn polarity_over(claim: &Words, sentence: &Words, whole: bool) -> Polarity {
    let (ct, st) = (&claim.tokens, &sentence.tokens);
    let (cw, sw) = if whole {
        (&claim.all, &sentence.all)
    } else {
        (&claim.content, &sentence.content)
    };
    if cw.is_empty() || sw.is_empty() {
        return Polarity {
            recall: 0.0,
            precision: 0.0,
            flipped: false,
        };
    }
    let mut swaps = 0usize;
    let mut used = 0usize;
    for c in cw {
        if sw.contains(c) || sw.iter().any(|s| antonyms(c, s)) {
            used += 1;
        }
    }
    for c in &claim.all {
        if !sentence.all.contains(c) && sentence.all.iter().any(|s| antonyms(c, s)) {
            swaps += 1;
        }
    }
    // Antonyms among function words ("always" / "never" is a negation already; "all" /
    // "none" likewise; "before" / "after" is not).
    // A preposition flips only with its object: "without the lock" says nothing against
    // "with the GIL".
    let object = |ts: &[String], i: usize| {
        ts[i + 1..]
            .iter()
            .find(|w| !is_stopword(w))
            .map(|w| root(w).to_string())
    };
    for (i, c) in ct.iter().enumerate().filter(|(_, w)| !is_negation(w)) {
        if is_stopword(c)
            && !st.contains(c)
            && st.iter().enumerate().any(|(j, s)| {
                !is_negation(s)
                    && antonyms(c, s)
                    && (!PREPOSITIONS.contains(&c.as_str()) || object(ct, i) == object(st, j))
            })
        {
            swaps += 1;
        }
    }
    let from_claim = sw
        .iter()
        .filter(|s| {
            cw.contains(s)
                || cw.iter().any(|c| antonyms(c, s))
                || ct.iter().any(|c| is_negation(c) && antonyms(c, s))
        })
        .count();
    Polarity {
        recall: used as f32 / cw.len() as f32,
        precision: from_claim as f32 / sw.len() as f32,
        flipped: {
            let diff = negation_count(ct).abs_diff(negation_count(st));
            (diff + swaps) % 2 == 1 || (swaps == 0 && diff >= 2)
        },
    }
}

/// The share of the claim's content words that are not in the question and that the sentence
/// uses: overlap with the reference beyond what repeating the question gives ("question
/// demoting"). 0 when the claim adds nothing to the question.
pub fn demoted_recall(claim: &Words, sentence: &Words, question: &Words) -> f32 {
    let new: Vec<&String> = claim
        .content
        .iter()
        .filter(|w| !question.content.contains(w))
        .collect();
    if new.is_empty() {
        return 0.0;
    }
    new.iter().filter(|w| sentence.content.contains(w)).count() as f32 / new.len() as f32
}

/// How many [`overlap_features`] there are.
pub const OVERLAP_FEATURES: usize = 7;

/// Word overlap between a claim and a sentence, read against the question: the features that
/// say whether a sentence states the reference's point in any domain, whatever its topic
/// (the classic answer-grading overlaps). In order:
/// 1. Jaccard overlap of the two sets of content words;
/// 2. the share of the sentence's content words found in neither the claim nor the question
///    (what the answer adds of its own);
/// 3. the share of the sentence's content words that are the question's;
/// 4. of the sentence's words beyond the question, the share the claim has;
/// 5. the share of the claim's pairs of consecutive content words the sentence has too;
/// 6. 1 when one side has a negation and the other has none;
/// 7. ln(1 + the number of the claim's content words the question does not have).
pub fn overlap_features(
    claim: &Words,
    sentence: &Words,
    question: &Words,
) -> [f32; OVERLAP_FEATURES] {
    use std::collections::HashSet;
    let c: HashSet<&str> = claim.all.iter().map(String::as_str).collect();
    let s: HashSet<&str> = sentence.all.iter().map(String::as_str).collect();
    let q: HashSet<&str> = question.all.iter().map(String::as_str).collect();
    let share = |num: usize, den: usize| {
        if den == 0 {
            0.0
        } else {
            num as f32 / den as f32
        }
    };
    let jaccard = share(c.intersection(&s).count(), c.union(&s).count());
    let own = share(
        s.iter()
            .filter(|w| !c.contains(*w) && !q.contains(*w))
            .count(),
        s.len(),
    );
    let from_question = share(s.iter().filter(|w| q.contains(*w)).count(), s.len());
    let beyond: Vec<&&str> = s.iter().filter(|w| !q.contains(*w)).collect();
    let beyond_in_claim = share(
        beyond.iter().filter(|w| c.contains(**w)).count(),
        beyond.len(),
    );
    fn pairs(ws: &[String]) -> HashSet<(&str, &str)> {
        ws.windows(2)
            .map(|p| (p[0].as_str(), p[1].as_str()))
            .collect()
    }
    let (cp, sp) = (pairs(&claim.all), pairs(&sentence.all));
    let bigrams = share(cp.intersection(&sp).count(), cp.len());
    let negation_differs =
        (negation_count(&claim.tokens) > 0) != (negation_count(&sentence.tokens) > 0);
    let claim_new = c.iter().filter(|w| !q.contains(*w)).count();
    [
        jaccard,
        own,
        from_question,
        beyond_in_claim,
        bigrams,
        f32::from(u8::from(negation_differs)),
        (1.0 + claim_new as f32).ln(),
    ]
}

/// Spaced dashes in pairs as parentheses: " - aside - " → " (aside) ". An odd last dash stays.
fn dashes_as_parentheses(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for dash in [" - ", " – "] {
        let n = out.matches(dash).count();
        if n < 2 {
            continue;
        }
        let mut s = String::with_capacity(out.len());
        let mut rest: &str = &out;
        for i in 0..n - n % 2 {
            let at = rest.find(dash).expect("counted");
            s.push_str(&rest[..at]);
            s.push_str(if i % 2 == 0 { " (" } else { ") " });
            rest = &rest[at + dash.len()..];
        }
        s.push_str(rest);
        out = std::borrow::Cow::Owned(s);
    }
    out
}

/// A text's clauses: split at punctuation and at the conjunctions that join two claims
/// ("but", "while", "so", "because", "whereas", "although", "which", "and", "or"). Each is what one negation scopes
/// over; the whole text is not among them unless it is one clause.
pub fn clauses(text: &str) -> Vec<String> {
    // A parenthesis is an aside: its own clause, and the sentence reads on around it
    // ("taking from the first list on ties (<=) makes it stable").
    // So are words between two dashes ("When the block ends - normally or with an exception -
    // __exit__ is called"); a single dash breaks the clause.
    let text = dashes_as_parentheses(text);
    let (mut main, mut asides) = (String::new(), vec![String::new()]);
    let mut depth = 0usize;
    for ch in text.chars() {
        match ch {
            '(' => {
                depth += 1;
                asides.last_mut().expect("one").push(' ');
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    asides.push(String::new());
                }
            }
            _ if depth > 0 => asides.last_mut().expect("one").push(ch),
            _ => main.push(ch),
        }
    }
    let main = main.replace(" - ", "; ").replace(" – ", "; ");
    let mut out = Vec::new();
    for piece in std::iter::once(main.as_str())
        .chain(asides.iter().map(String::as_str))
        .flat_map(|t| t.split([',', ';', ':', '—', '\n']))
    {
        let mut rest = piece;
        // A negation with too few words of its own scopes over an "or" ("no blocking or
        // CPU-heavy call stalls the loop"): the part carries into the next.
        let mut carry = String::new();
        loop {
            let lower = rest.to_lowercase();
            let cut = [
                " but ",
                " while ",
                " whereas ",
                " although ",
                " so ",
                " because ",
                " which ",
                " and ",
                " or ",
                " rather than ",
                " instead of ",
            ]
            .iter()
            .filter_map(|c| joining_cut(&lower, c).map(|at| (at, c.len())))
            .min();
            match cut {
                // Lower-casing can move byte offsets (rare letters): then keep the piece whole.
                Some((at, len)) if lower.len() == rest.len() => {
                    let part = format!("{carry}{}", &rest[..at]);
                    let w = Words::of(&part);
                    if rest[at..at + len].trim() == "or"
                        && negation_count(&w.tokens) > 0
                        && w.content_len() < 2
                    {
                        carry = format!("{part}{}", &rest[at..at + len]);
                    } else {
                        out.push(part.trim().to_string());
                        carry.clear();
                    }
                    // What follows "rather than" / "instead of" is the rejected alternative:
                    // not a claim of the text, to the end of the piece.
                    if ["rather than", "instead of"].contains(&rest[at..at + len].trim()) {
                        break;
                    }
                    rest = &rest[at + len..];
                }
                _ => {
                    out.push(format!("{carry}{rest}").trim().to_string());
                    break;
                }
            }
        }
    }
    out.retain(|c| !c.is_empty());
    for c in &mut out {
        *c = c.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    out
}

/// Where `conj` first joins two clauses in `lower`: an "and" / "or" between two numbers or
/// single letters joins two items of one noun phrase ("mixtures 4 and 5 are saturated",
/// "terminals a and b"), not two claims.
fn joining_cut(lower: &str, conj: &str) -> Option<usize> {
    let item = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        !w.is_empty() && (w.chars().all(|c| c.is_ascii_digit()) || w.chars().count() == 1)
    };
    lower.match_indices(conj).map(|(at, _)| at).find(|&at| {
        !(matches!(conj, " and " | " or ")
            && lower[..at].split_whitespace().next_back().is_some_and(item)
            && lower[at + conj.len()..]
                .split_whitespace()
                .next()
                .is_some_and(item))
    })
}

/// The rubric's claims, clause by clause, to test answer sentences against: a sentence whose
/// clause says a claim's words with the opposite sense (and agrees with no claim better) is a
/// false statement about the topic.
#[derive(Debug, Clone, Default)]
pub struct Stance {
    /// Each claim clause as written, its words, and the criterion it belongs to (if known).
    claims: Vec<Claim>,
    /// The question's content words: the topic every sentence shares, left out of alignment.
    topic: Vec<String>,
    /// The fewest content words (the question's included) a clause that says little beyond
    /// the question needs to be compared whole ([`FULL_MIN`]; [`FULL_MIN_SHORT`] for
    /// [`Stance::short`]).
    full_min: usize,
}

#[derive(Debug, Clone)]
struct Claim {
    text: String,
    /// Its words without the question's (all of them kept too: [`Words`]).
    words: Words,
    owner: Option<usize>,
}

impl Stance {
    /// From the rubric's correct statements (criterion points, phrasings, model answers) and
    /// its question, whose words are the topic: "the GIL means …" and "the GIL does not make
    /// … thread-safe" share the topic, not a claim.
    pub fn new<'t>(question: &str, texts: impl IntoIterator<Item = &'t str>) -> Stance {
        Stance::with_owners(question, texts.into_iter().map(|t| (t, None)))
    }

    /// [`Stance::new`] with each statement's criterion (its index), which a
    /// [`Contradiction`] of it names.
    pub fn with_owners<'t>(
        question: &str,
        texts: impl IntoIterator<Item = (&'t str, Option<usize>)>,
    ) -> Stance {
        Stance::build(question, texts, FULL_MIN)
    }

    /// [`Stance::with_owners`] for a reference of a sentence or two, whose statements are
    /// short: a clause of two words, the question's included ("The sound is louder.", to a
    /// question about a sound's volume), is compared whole, so "The sound is not louder."
    /// contradicts it.
    pub fn short<'t>(
        question: &str,
        texts: impl IntoIterator<Item = (&'t str, Option<usize>)>,
    ) -> Stance {
        Stance::build(question, texts, FULL_MIN_SHORT)
    }

    fn build<'t>(
        question: &str,
        texts: impl IntoIterator<Item = (&'t str, Option<usize>)>,
        full_min: usize,
    ) -> Stance {
        let topic = Words::of(question).content;
        let mut claims = Vec::new();
        for (t, owner) in texts {
            for c in clauses(t) {
                let words = Words::of(&c).without(&topic);
                if words.content_len() >= 2 || words.all.len() >= full_min {
                    claims.push(Claim {
                        text: c,
                        words,
                        owner,
                    });
                }
            }
        }
        Stance {
            claims,
            topic,
            full_min,
        }
    }

    /// Whether `sentence` contradicts one of the claims: one of its clauses (two content words
    /// at least) is best aligned with a claim clause whose sense it flips, and that alignment
    /// is close ([`Polarity::opposes`]); a claim aligned as well without the flip wins.
    pub fn contradicts(&self, sentence: &str) -> bool {
        self.contradiction(sentence).is_some()
    }

    /// The sentence denies a claim: it contradicts one ([`Stance::contradicts`]), or a clause
    /// of it negates a word of a claim that the claim does not negate ("Slots do not make
    /// objects immutable" against "__slots__ makes instances immutable", whose other words
    /// differ too much to be compared). For misconceptions: a sentence that denies one is not
    /// charged with it, however similar its words.
    pub fn denies(&self, sentence: &str) -> bool {
        self.contradicts(sentence)
            || clauses(sentence).iter().any(|c| {
                let negated = negated_roots(Words::of(c).tokens());
                !negated.is_empty()
                    && self.claims.iter().any(|claim| {
                        let in_claim = negated_roots(claim.words.tokens());
                        negated
                            .iter()
                            .any(|w| claim.words.all.contains(w) && !in_claim.contains(w))
                    })
            })
    }

    /// [`Stance::contradicts`], saying which: the sentence's clause and the claim it flips.
    /// A clause that only sets a condition ("if items aren't hashable") asserts nothing.
    pub fn contradiction(&self, sentence: &str) -> Option<Contradiction> {
        self.contradictions(sentence).into_iter().next()
    }

    /// Every clause of `sentence` that contradicts a claim ([`Stance::contradiction`]), in
    /// order.
    pub fn contradictions(&self, sentence: &str) -> Vec<Contradiction> {
        let clauses = clauses(sentence);
        // A sentence with a condition is read whole too: the condition may undo a clause's
        // flip ("if items aren't hashable, dedupe on a hashable key").
        let whole = clauses
            .iter()
            .any(|c| is_condition(c))
            .then(|| Words::of(sentence).without(&self.topic));
        clauses
            .into_iter()
            .filter_map(|c| {
                if is_condition(&c) {
                    return None;
                }
                let w = Words::of(&c).without(&self.topic);
                let advice = advised_against(&w.tokens);
                // Compared beyond the question's words; a clause that says little else ("the
                // lines are not parsed independently with json.loads", to a question about
                // parsing JSON lines) is compared whole, with every claim whole.
                let compared_whole = if w.content_len() >= 2 {
                    false
                } else if w.all.len() >= self.full_min {
                    true
                } else {
                    return None;
                };
                let mut best: Option<(Polarity, &Claim)> = None;
                for claim in &self.claims {
                    let p = polarity_over(&claim.words, &w, compared_whole);
                    let score = |p: &Polarity| p.recall.min(p.precision);
                    let better = best.is_none_or(|(b, _)| {
                        score(&p) > score(&b) + 1e-6
                            || ((score(&p) - score(&b)).abs() <= 1e-6 && b.flipped && !p.flipped)
                    });
                    if better {
                        best = Some((p, claim));
                    }
                }
                best.filter(|(p, claim)| {
                    p.opposes()
                        && advice
                            .as_ref()
                            .is_none_or(|verb| imperative_of(&claim.words.tokens, verb))
                        && whole
                            .as_ref()
                            .is_none_or(|s| polarity_over(&claim.words, s, compared_whole).flipped)
                })
                .map(|(_, claim)| Contradiction {
                    clause: c.clone(),
                    claim: claim.text.clone(),
                    owner: claim.owner,
                })
            })
            .collect()
    }
}

/// The verb of a clause that advises against something ("don't return from finally",
/// "never use eval"): such advice flips only advice to do the same ("return …", "use eval"),
/// not a statement about it ("a return inside finally overrides the return value").
fn advised_against(tokens: &[String]) -> Option<String> {
    match tokens {
        [d, n, verb, ..] if d == "do" && n == "not" => Some(root(verb).to_string()),
        [n, verb, ..] if n == "never" => Some(root(verb).to_string()),
        _ => None,
    }
}

/// The claim is advice to do `verb` ("use …", "always use …"), or advice against it.
fn imperative_of(tokens: &[String], verb: &str) -> bool {
    let rest = match tokens {
        [a, rest @ ..] if a == "always" || a == "please" => rest,
        _ => tokens,
    };
    rest.first().is_some_and(|w| root(w) == verb) || advised_against(rest).is_some()
}

/// Content words a clause needs to be compared whole, question words included.
const FULL_MIN: usize = 3;

/// [`FULL_MIN`] for a short reference's stance ([`Stance::short`]).
const FULL_MIN_SHORT: usize = 2;

/// A clause of an answer that says the opposite of one of the rubric's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Contradiction {
    /// The answer's clause.
    pub clause: String,
    /// The rubric's clause it flips.
    pub claim: String,
    /// The criterion that clause belongs to, when the stance knows it.
    pub owner: Option<usize>,
}

/// A clause that only states a condition ("if items aren't hashable", "unless you lock"):
/// what follows the condition is the assertion, not the condition itself.
fn is_condition(clause: &str) -> bool {
    let t = tokens(clause);
    t.first()
        .is_some_and(|w| ["if", "unless", "whether"].contains(&w.as_str()))
}

/// The statement is offered as a guess ("I think…", "maybe", "not sure").
pub fn is_hedged(text: &str) -> bool {
    hedged_tokens(&tokens(text))
}

/// [`is_hedged`] on a text's [`tokens`] (the hedge phrases are tokenised once per process).
fn hedged_tokens(tokens: &[String]) -> bool {
    static PHRASES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let phrases = PHRASES.get_or_init(|| {
        HEDGES
            .iter()
            .map(|h| format!(" {} ", self::tokens(h).join(" ")))
            .collect()
    });
    let t = format!(" {} ", tokens.join(" ")).replace(" i m ", " im ");
    phrases.iter().any(|h| t.contains(h.as_str()))
}

/// The sentence takes back what came before it: a denial ("false", "wrong", "not true",
/// "ignore") of a reference to the answer itself ("the above", "everything I said", "every
/// claim in this answer").
pub fn retracts(text: &str) -> bool {
    let t = tokens(text);
    let has = |ws: &[&str]| t.iter().any(|w| ws.contains(&w.as_str()));
    let quantifier = has(&[
        "all",
        "everything",
        "every",
        "none",
        "each",
        "any",
        "anything",
    ]);
    let reference = has(&[
        "above",
        "said",
        "wrote",
        "written",
        "answer",
        "statements",
        "claims",
        "claim",
        "previous",
        "preceding",
        "this",
    ]);
    let denial = has(&[
        "false",
        "wrong",
        "incorrect",
        "untrue",
        "ignore",
        "disregard",
        "retract",
        "nonsense",
    ]) || (has(&["none"]) && has(&["true", "correct", "right"]))
        || t.windows(2).any(|w| {
            w[0] == "not" && ["true", "correct", "right", "valid"].contains(&w[1].as_str())
        });
    quantifier && reference && denial && t.len() <= 25
}

/// Whether a block is code: its lines are mostly statements (assignments, calls, `def`,
/// `return`, …), not a comma-separated list of terms in a fence.
pub fn is_real_code(block: &str) -> bool {
    const STARTS: &[&str] = &[
        "def ",
        "class ",
        "return",
        "import ",
        "from ",
        "for ",
        "while ",
        "if ",
        "elif ",
        "else:",
        "try:",
        "except",
        "finally:",
        "with ",
        "async ",
        "await ",
        "yield",
        "raise",
        "assert ",
        "print(",
        "@",
        ">>>",
        "lambda",
        "#",
        "pass",
        "break",
        "continue",
        "del ",
        "global ",
        "nonlocal ",
    ];
    let lines: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("```"))
        .collect();
    if lines.is_empty() {
        return false;
    }
    let statement = |l: &str| {
        // A call ("sorted(staff, key=lambda e: (e.dept, e.name))") or an annotated name
        // ("dept: str", "tags: list[str] = []") is a statement, commas and all.
        if crate::text::is_call(l) || is_annotation(l) {
            return true;
        }
        if is_term_list(l) {
            return false;
        }
        STARTS.iter().any(|s| l.starts_with(s))
            || l.ends_with(':')
            || l.ends_with(')') && l.contains('(') && !l.contains(", ")
            || l.split_once('=').is_some_and(|(lhs, rhs)| {
                // An assignment: a target of names ("a, b", "self.x[i]") and a value.
                let lhs = lhs
                    .trim_end_matches(['+', '-', '*', '/', '|', '&', '!', '<', '>', ':'])
                    .trim();
                !lhs.is_empty()
                    && lhs.len() <= 40
                    && lhs
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_.,[] ".contains(c))
                    && !rhs.trim().is_empty()
            })
            || l.ends_with(']') && l.contains('[')
            || l.ends_with('}') && l.contains('{')
    };
    let n = lines.iter().filter(|l| statement(l)).count();
    n * 2 >= lines.len()
}

/// An annotated name, with or without a value: "dept: str", "tags: list[str] = []",
/// "self.cache: dict[str, int] = {}". The annotation is one type expression (brackets may hold
/// commas and spaces; outside them only `|` unions), so "Note: this is fine" is prose; without
/// a value it must read as a type (a builtin, a capitalised class name, or subscripted), so a
/// glossary line ("copy: shallow") is not code.
fn is_annotation(line: &str) -> bool {
    use crate::text::is_dotted_name;
    let Some((name, rest)) = line.split_once(':') else {
        return false;
    };
    let (annotation, value) = match rest.split_once('=') {
        Some((a, v)) => (a.trim(), !v.trim().is_empty()),
        None => (rest.trim(), false),
    };
    const TYPES: &[&str] = &[
        "None",
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "object",
        "set",
        "str",
        "tuple",
        "type",
    ];
    // Outside brackets: dotted names joined by `|`, nothing else; without a value each must
    // read as a type.
    let mut depth = 0i32;
    let mut outside = String::new();
    for c in annotation.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    is_dotted_name(name.trim())
        && depth == 0
        && outside.split('|').all(|t| {
            let t = t.trim();
            is_dotted_name(t)
                && (value
                    || annotation.contains('[')
                    || TYPES.contains(&t)
                    || t.rsplit('.')
                        .next()
                        .is_some_and(|last| last.starts_with(|c: char| c.is_uppercase())))
        })
}

/// A line of comma-separated terms ("copy.copy, shallow, nested, same objects"): at least
/// three items, few words each. Items that each give an operation its complexity ("append
/// O(1), pop O(1), insert(0) O(n)") are claims in shorthand, not terms.
pub fn is_term_list(text: &str) -> bool {
    let items: Vec<&str> = text
        .split([',', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.len() < 3 {
        return false;
    }
    let rated = |item: &&&str| {
        let words: Vec<&str> = item.split_whitespace().collect();
        words.len() >= 2 && words.iter().skip(1).any(|w| is_big_o(w))
    };
    if items.iter().filter(rated).count() * 2 >= items.len() {
        return false;
    }
    let words: usize = items.iter().map(|s| s.split_whitespace().count()).sum();
    (words as f32 / items.len() as f32) < 2.5
}

/// A complexity in big-O notation: "O(1)", "O(n log n)" (its first word), "O(n)." at a
/// sentence's end.
fn is_big_o(word: &str) -> bool {
    word.strip_prefix("O(")
        .is_some_and(|rest| rest.chars().next().is_some_and(|c| c.is_alphanumeric()))
}

/// Whether a criterion is about code (so a code block may be its evidence): the rubric is a
/// coding question, or its point names code ("implement", "decorator", a call, backticks).
pub fn about_code(point: &str, coding_rubric: bool) -> bool {
    if coding_rubric {
        return true;
    }
    let t = point.to_lowercase();
    t.contains('`')
        || t.contains("()")
        || t.contains("@")
        || [
            "code",
            "implement",
            "function",
            "decorator",
            "syntax",
            "example",
            "def ",
            "class ",
            "snippet",
            "statement",
            "call",
        ]
        .iter()
        .any(|w| t.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polarity(claim: &str, sentence: &str) -> Polarity {
        polarity_of(&Words::of(claim), &Words::of(sentence))
    }

    #[test]
    fn lists_are_sorted_for_binary_search() {
        assert!(NEGATIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(BARE_CONTRACTIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn contractions_typed_loosely_are_negations() {
        for text in [
            "it isn\"t connected",
            "it isnt connected",
            "it doesnt connect",
        ] {
            assert!(
                tokens(text).contains(&"not".to_string()),
                "{text}: {:?}",
                tokens(text)
            );
        }
        // A double-quoted word is not a contraction.
        assert!(!tokens("the \"tension\" rises").contains(&"not".to_string()));
    }

    #[test]
    fn general_antonyms_flip_and_two_flips_cancel() {
        let claim = "terminal 4 is connected to the negative battery terminal";
        let p = polarity(
            claim,
            "terminal 4 is connected to the positive battery terminal",
        );
        assert!(p.opposes(), "{p:?}");
        // "not" and an antonym: the same sense.
        let p = polarity(
            claim,
            "terminal 4 is not connected to the positive battery terminal",
        );
        assert!(!p.flipped, "{p:?}");
        // "out of" against "in", with the same object.
        let p = polarity(
            "The battery is in a closed path",
            "The battery is out of the closed path",
        );
        assert!(p.flipped, "{p:?}");
        let p = polarity("The bulb is on", "The bulb is off");
        assert!(p.flipped, "{p:?}");
    }

    #[test]
    fn a_short_reference_compares_two_word_clauses_whole() {
        let q = "What happens to the volume of the sound if you pluck a rubber band harder?";
        let claims = [
            ("The volume increases.", Some(0)),
            ("The sound is louder.", Some(1)),
        ];
        let short = Stance::short(q, claims);
        let c = short
            .contradiction("The sound is not louder.")
            .expect("flips the second statement");
        assert_eq!(c.owner, Some(1));
        assert_eq!(c.claim, "The sound is louder.");
        assert!(short.contradiction("The sound is louder.").is_none());
        // A full stance leaves a clause of two words, one the question's, alone.
        let full = Stance::with_owners(q, claims);
        assert!(full.contradiction("The sound is not louder.").is_none());
    }

    #[test]
    fn overlap_features_read_against_the_question() {
        let q = Words::of("What happens to the volume when you pluck harder?");
        let claim = Words::of("The volume increases and the sound is louder.");
        let same = overlap_features(&claim, &claim, &q);
        assert_eq!(same[0], 1.0, "Jaccard of a text with itself");
        assert_eq!(same[1], 0.0, "nothing of its own");
        assert_eq!(same[4], 1.0, "every pair of words");
        assert_eq!(same[5], 0.0, "no negation on either side");
        let echo = overlap_features(&claim, &Words::of("The volume when you pluck harder."), &q);
        assert_eq!(echo[2], 1.0, "only the question's words");
        assert_eq!(echo[3], 0.0, "nothing beyond the question");
        let own = overlap_features(&claim, &Words::of("The band is not louder."), &q);
        assert_eq!(own[5], 1.0, "a negation on one side");
        assert!(own[1] > 0.0 && own[3] > 0.0, "{own:?}");
        assert!((same[6] - (1.0f32 + 3.0).ln()).abs() < 1e-6, "{same:?}");
    }

    #[test]
    fn a_sentence_that_negates_a_misconceptions_words_denies_it() {
        let slots = Stance::new(
            "What are slots (__slots__) in Python classes? Benefits?",
            ["__slots__ makes instances immutable."],
        );
        // "objects" against "instances": too different to compare whole, but the negation
        // is over "make ... immutable".
        assert!(
            slots.denies("Slots do not make objects immutable - values can still be reassigned.")
        );
        assert!(!slots.denies("Slots make your objects immutable."));
        let gil = Stance::new(
            "How do you make a counter thread-safe?",
            ["The GIL already makes count += 1 atomic, so no lock is needed."],
        );
        // The misconception negates the same words ("no lock is needed"): saying it again
        // with "don't" denies nothing.
        assert!(
            !gil.denies("You don't need a lock in Python because the GIL makes increments atomic.")
        );
        assert!(gil.denies("The GIL does not make count += 1 atomic, so you still need a lock."));
        // A negation over other words does not deny it.
        assert!(!gil.denies("The GIL makes increments atomic, not just reads."));
    }

    #[test]
    fn negation_flips_polarity_and_paraphrase_does_not() {
        let claim = "A shallow copy shares the nested objects with the original.";
        let neg = polarity(
            claim,
            "A shallow copy does not share the nested objects with the original.",
        );
        assert!(neg.opposes(), "{neg:?}");
        let same = polarity(
            claim,
            "The nested objects are shared between a shallow copy and the original.",
        );
        assert!(!same.opposes(), "{same:?}");
        // Prefix antonyms.
        let p = polarity("Tuples are immutable.", "Tuples are mutable.");
        assert!(p.opposes(), "{p:?}");
        // Double negation keeps the sense.
        let p = polarity(
            "Assignment never copies the object.",
            "Assignment does not copy the object.",
        );
        assert!(!p.flipped, "{p:?}");
        // A "not" in a sentence about something else is not a contradiction.
        let p = polarity(
            "The GIL lets only one thread run Python bytecode at a time.",
            "Threads are not useful for CPU-bound work in CPython.",
        );
        assert!(!p.opposes(), "{p:?}");
    }

    #[test]
    fn stance_finds_negated_clauses_of_long_sentences() {
        let stance = Stance::new(
            "",
            [
                "A shallow copy creates a new outer container, but the elements inside are references to the same objects as in the original.",
                "Assignment never copies: b = a just binds a second name to the same object.",
            ],
        );
        assert!(stance.contradicts(
            "A shallow copy does not create a new outer container, and the elements inside are references to the same objects."
        ));
        assert!(stance.contradicts("Assignment always copies the object."));
        assert!(!stance.contradicts("b = a isn't a copy at all; it binds another name."));
        assert!(!stance.contradicts(
            "copy.copy builds a new outer object but fills it with the same inner objects."
        ));
        assert_eq!(
            clauses("It runs, but it does not block while waiting"),
            vec!["It runs", "it does not block", "waiting"]
        );
    }

    #[test]
    fn a_misspelt_antonym_still_cancels_a_negation() {
        assert_eq!(respelled("postive"), Some("positive"));
        assert_eq!(respelled("posititve"), Some("positive"));
        assert_eq!(respelled("positve"), Some("positive"));
        assert_eq!(respelled("seperated"), Some("separated"));
        assert_eq!(respelled("conected"), Some("connected"));
        assert_eq!(respelled("positive"), None, "spelt right");
        assert_eq!(respelled("shapes"), None, "too short to guess");
        assert_eq!(respelled("terminal"), None);
        assert_eq!(
            respelled("either"),
            None,
            "a word of its own, not \"neither\""
        );
        let claim = "terminal 6 is not connected to the negative battery terminal";
        for right in [
            "Terminal 6 is connected to the positve battery terminal",
            "terminal 6 is connected to postive end of the battery",
        ] {
            assert!(!polarity(claim, right).opposes(), "{right}");
        }
        let wrong = "terminal 6 is connected to the negatve battery terminal";
        assert!(polarity(claim, wrong).opposes());
        // "not the same" is "its own".
        let claim = "each bulb is in its own path";
        assert!(!polarity(claim, "bulb a is not in the same path as bulb b").opposes());
        assert!(polarity(claim, "each bulb is in the same path").opposes());
    }

    #[test]
    fn and_between_two_numbers_or_letters_joins_items_not_claims() {
        assert_eq!(
            clauses("Mixtures 4 and 5 are saturated and there is material on the bottom"),
            vec![
                "Mixtures 4 and 5 are saturated",
                "there is material on the bottom"
            ]
        );
        assert_eq!(
            clauses("Terminals A or B are connected"),
            vec!["Terminals A or B are connected"]
        );
        // Two claims still split, words either side.
        assert_eq!(
            clauses("It copies 2 and it shares 3"),
            vec!["It copies 2", "it shares 3"]
        );
        let stance = Stance::short(
            "Which mixtures are saturated? How do you know?",
            [
                ("Mixtures 4 and 5 are saturated.", Some(0)),
                ("There is material on the bottom of 4 and 5.", Some(1)),
            ],
        );
        assert!(stance.contradicts("Mixtures 4 and 5 are not saturated."));
        assert!(!stance.contradicts("Mixtures 4 and 5 are saturated."));
    }

    #[test]
    fn conditions_asides_and_objects_are_not_flips() {
        let stance = Stance::with_owners(
            "How do you remove duplicates from a list while keeping order?",
            [
                (
                    "Order-preserving dedupe that also works for unhashable items via a key.",
                    Some(3),
                ),
                (
                    "Without the lock, threads can lose updates even with the GIL.",
                    Some(1),
                ),
                ("If the user is missing, raise HTTPException.", Some(2)),
                (
                    "Taking from the first list on ties (<=) makes it stable.",
                    None,
                ),
                ("A blocking or CPU-heavy call stalls the loop.", None),
            ],
        );
        // The condition carries the negation; the assertion after it agrees with the claim.
        assert_eq!(
            stance.contradiction(
                "If items aren't hashable, like dicts, I'd dedupe on a hashable key derived from each item."
            ),
            None
        );
        // "without" negates its object, not the clause.
        assert_eq!(
            stance.contradiction("Without the lock threads lose updates, even with the GIL."),
            None
        );
        // What comes after "rather than" is the rejected alternative; Python's None is a value.
        assert_eq!(
            stance.contradiction(
                "If the user isn't found, raise HTTPException rather than returning None."
            ),
            None
        );
        // So are words between two dashes.
        assert_eq!(
            dashes_as_parentheses("When it ends - normally or not - it runs - always."),
            "When it ends (normally or not) it runs - always."
        );
        // A parenthesis is an aside: the sentence reads on around it.
        let c = stance
            .contradiction("Taking from the first list on ties (<=) does not make it stable.")
            .expect("flipped");
        assert_eq!(
            c.claim,
            "Taking from the first list on ties makes it stable."
        );
        assert_eq!(c.owner, None);
        // Advice against something flips advice to do it, not a statement about it.
        let advice = Stance::new(
            "What does finally do?",
            [
                "A return inside finally overrides the return value.",
                "Use finally for cleanup that must always run.",
            ],
        );
        assert_eq!(
            advice.contradiction("Don't return from inside finally, it swallows the exception."),
            None
        );
        assert!(advice.contradicts("Do not use finally for cleanup that must always run."));
        // The rejected alternative is not a claim.
        let lazy = Stance::new(
            "",
            ["Generators produce values lazily instead of building lists."],
        );
        assert!(!lazy.contradicts("They don't build a whole list in memory."));
        // A negation scopes over "or".
        assert!(stance.contradicts("No blocking or CPU-heavy call stalls the loop."));
        // The owner comes with the contradiction.
        let c = stance
            .contradiction("Order-preserving dedupe does not work for unhashable items.")
            .expect("flipped");
        assert_eq!(c.owner, Some(3));
    }

    #[test]
    fn a_flip_undone_by_an_antonym_is_no_flip() {
        let stance = Stance::new(
            "What is the difference between mutable and immutable types?",
            ["An immutable object cannot change after creation."],
        );
        let p = polarity_of(
            &Words::of("An immutable object cannot change after creation."),
            &Words::of("Mutable objects can be changed after creation"),
        );
        assert!(!p.flipped, "{p:?}");
        assert_eq!(
            stance.contradiction("Mutable objects can be changed after creation."),
            None
        );
    }

    #[test]
    fn a_clause_of_question_words_is_compared_whole() {
        let stance = Stance::new(
            "Write a generator that parses JSON lines from a file.",
            ["With JSON Lines each line is parsed independently with json.loads."],
        );
        assert!(stance.contradicts(
            "With JSON Lines the lines are not parsed independently with json.loads."
        ));
        assert!(
            !stance.contradicts(
                "Each line of a JSON Lines file is parsed on its own with json.loads."
            )
        );
    }

    #[test]
    fn hedges_and_retractions() {
        assert!(is_hedged("I think the GIL makes Python faster."));
        assert!(is_hedged("Maybe it uses a hash table."));
        assert!(is_hedged("Not sure about details."));
        assert!(!is_hedged("The GIL serialises bytecode execution."));
        for r in [
            "Actually, all of the above is false.",
            "Actually, everything I just said is wrong.",
            "Correction: none of the statements above are true.",
            "On second thought, every claim in this answer is false - ignore it.",
        ] {
            assert!(retracts(r), "{r}");
        }
        assert!(!retracts("All of the above are ways to copy a list."));
        assert!(!retracts(
            "Mutable default arguments are a common wrong assumption."
        ));
    }

    #[test]
    fn code_is_told_from_fenced_term_lists() {
        assert!(is_real_code(
            "def fib():\n    a, b = 0, 1\n    while True:\n        yield a\n        a, b = b, a + b"
        ));
        assert!(is_real_code("import copy\nb = copy.deepcopy(a)"));
        assert!(!is_real_code(
            "copy.copy, shallow, nested, same objects, shared, references, deepcopy"
        ));
        assert!(!is_real_code(
            "[:], list(, .copy(), assignment\nmemo, __deepcopy__, cycles"
        ));
        assert!(is_term_list("deepcopy, recursively, independent"));
        // Operations with their complexities are claims; bare complexities are terms.
        assert!(!is_term_list(
            "append O(1), pop O(1), insert(0) O(n), dict get O(1), update O(n), in O(1)."
        ));
        assert!(is_term_list("O(1), O(n), amortized, hash, deque"));
        assert!(!is_term_list(
            "It copies the outer list, not the inner ones."
        ));
    }

    #[test]
    fn calls_with_several_arguments_and_annotated_fields_are_code() {
        // A dataclass and a sort: annotated fields and a call with commas are statements.
        assert!(is_real_code(
            "@dataclass\nclass Employee:\n    id: int\n    name: str\n    dept: str"
        ));
        assert!(is_real_code(
            "sorted(employees, key=lambda e: (e.dept, e.name))"
        ));
        assert!(is_real_code(
            "await asyncio.gather(*tasks, return_exceptions=True)\nlogging.basicConfig(level=logging.INFO, format=fmt)"
        ));
        assert!(crate::text::is_call("print(a, b)"));
        assert!(is_annotation("tags: list[str] = []"));
        assert!(is_annotation("self.cache: dict[str, int] = {}"));
        assert!(is_annotation("parent: Node | None"));
        assert!(is_annotation("manager: Employee"));
        // Listed calls, prose with a colon and a glossary are not.
        assert!(!crate::text::is_call("copy(), deepcopy(), id()"));
        assert!(!crate::text::is_call("See (the docs)"));
        assert!(!is_annotation("Note: this is fine"));
        assert!(!is_annotation("copy: shallow"));
        assert!(!is_real_code(
            "copy: shallow\ndeepcopy: recursive\nassignment: alias"
        ));
        assert!(!is_real_code(
            "copy(), deepcopy(), id(), is, ==\nmemo, cycles, __deepcopy__"
        ));
    }
}
