"""Rule-based claim negation for the adversarial corpus (imported by gen-adversarial.py).

Every prose clause of a text gets its claim flipped: an existing negation is removed ("does not
run" -> "runs", "never" -> "always", "cannot" -> "can"), otherwise the first auxiliary, copula or
modal gets "not" ("is" -> "is not", "can" -> "cannot", "must" -> "must not"), otherwise the main
verb is negated with do-support ("shares" -> "does not share", "rewrote" -> "did not rewrite", an
imperative "Use" -> "Do not use"); verbs coordinated with "and"/"or" after it are negated too.
Fenced code blocks are code and stay as they are. Sentences the rules get wrong have hand-written
negations in scripts/adversarial-negations.toml, keyed by the original sentence.

Standard library only; deterministic.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------
# Lexicon

AUX_NOT = {
    # form -> negated form
    "is": "is not",
    "are": "are not",
    "was": "was not",
    "were": "were not",
    "can": "cannot",
    "could": "could not",
    "will": "will not",
    "would": "would not",
    "should": "should not",
    "must": "must not",
    "may": "may not",
    "might": "might not",
    "shall": "shall not",
}
# has/have/had are auxiliaries before a participle, main verbs otherwise.
HAVE = {"has": ("does", "have"), "have": ("do", "have"), "had": ("did", "have")}
DO = {"does", "do", "did"}

CONTRACTIONS_NEG = {
    "isn't": "is",
    "aren't": "are",
    "wasn't": "was",
    "weren't": "were",
    "doesn't": "does",
    "don't": "do",
    "didn't": "did",
    "can't": "can",
    "cannot": "can",
    "couldn't": "could",
    "won't": "will",
    "wouldn't": "would",
    "shouldn't": "should",
    "mustn't": "must",
    "hasn't": "has",
    "haven't": "have",
}
CONTRACTIONS_POS = {
    "it's": "it is not",
    "that's": "that is not",
    "there's": "there is not",
    "what's": "what is not",
    "here's": "here is not",
    "i'm": "I am not",
    "i've": "I have not",
    "we're": "we are not",
    "they're": "they are not",
    "you're": "you are not",
    "i'd": "I would not",
    "we'd": "we would not",
    "i'll": "I will not",
}

# Base forms of verbs that appear as main verbs in the rubric prose.
VERBS = """
absorb accept access accumulate acquire add aggregate alert allocate allow alter append appear
apply assert assign attach attempt avoid await become belong benefit bind block bound branch
break bridge bring build cache call cancel cap carve catch cause chain change check chunk clean
close coerce collect combine come compare compile complete compute consume contain continue
convert copy cost count cover create cut deallocate decide declare decouple define delegate
delete deploy depend derive describe detect die discard discover discuss dispatch document
dominate double download drop emit enable end enforce enqueue ensure evaluate evict exclude
execute exist exit expect experiment expose extend fail fall fetch find finish fit fix flatten
fold follow force forward free freeze generate get give go grow guarantee guard handle hand help
hold implement import increment inherit insert install intern iterate join keep learn leak let
limit lock log look lose make manage map mark mask match matter mean merge mix modify move
mutate narrow need occur offer own pack parse pass patch perform pick pin poll pop preallocate
preserve prevent print probe process produce promote propagate protect provide publish pull
push put raise reach read rebind receive record recreate recurse reduce refer refresh register
reject release remove repeat replace replay report require reraise resize resolve restore resume happen
retry return reuse rewrite rotate run save scale scan schedule see send serialise serialize
serve set share shift show shrink skip slow sort spawn split spread stall start stay stop store
stream subclass succeed suffer supply support suppress suspend swallow switch take talk tell
test throw time track translate trigger trust try turn undo update upsert use validate vary
vectorise visit wait walk want warn waste win work wrap write yield own rest sit drive pay
introduce adopt enforce read skim follow share plan surface publish track check add replay log
cut validate drop rewrite downcast switch measure replace push fix enable catch migrate expose
talk accept propagate recurse hash
""".split()

IRREGULAR_PAST = {
    "became": "become", "began": "begin", "bound": "bind", "broke": "break", "brought": "bring",
    "built": "build", "caught": "catch", "chose": "choose", "came": "come", "cut": "cut",
    "did": "do", "drew": "draw", "drove": "drive", "fell": "fall", "felt": "feel", "found": "find",
    "forgot": "forget", "froze": "freeze", "gave": "give", "got": "get", "went": "go",
    "grew": "grow", "had": "have", "held": "hold", "kept": "keep", "knew": "know", "led": "lead",
    "learnt": "learn", "left": "leave", "let": "let", "lost": "lose", "made": "make",
    "meant": "mean", "met": "meet", "paid": "pay", "put": "put", "ran": "run",
    "rewrote": "rewrite", "saw": "see", "sent": "send", "set": "set", "showed": "show",
    "shrank": "shrink", "sat": "sit", "spent": "spend", "split": "split", "spread": "spread",
    "stood": "stand", "stuck": "stick", "took": "take", "taught": "teach", "told": "tell",
    "thought": "think", "threw": "throw", "understood": "understand", "wrote": "write",
    "won": "win", "read": "read", "owned": "own",
}
PARTICIPLES = {
    "been", "done", "made", "seen", "given", "taken", "written", "gone", "become", "grown",
    "shown", "known", "built", "kept", "held", "found", "got", "gotten", "run", "set", "put",
    "chosen", "broken", "frozen", "thrown", "spent", "sent", "lost", "left", "brought", "caught",
    "read", "cut", "split", "spread", "bound", "stolen", "fallen",
}
DOUBLED = {"stop": "stopped", "drop": "dropped", "ship": "shipped", "skip": "skipped",
           "map": "mapped", "wrap": "wrapped", "swap": "swapped", "cap": "capped",
           "pin": "pinned", "plan": "planned", "admit": "admitted", "commit": "committed",
           "submit": "submitted", "log": "logged", "tag": "tagged", "scan": "scanned",
           "spawn": "spawned", "prefer": "preferred", "occur": "occurred", "refer": "referred"}


def inflect(lemma: str, do: str) -> str:
    """The affirmative form that replaces "<do> not <lemma>"."""
    if do == "does":
        return third_person(lemma)
    if do == "did":
        return past(lemma)
    return lemma


def third_person(base: str) -> str:
    if base in ("have",):
        return "has"
    if base in ("do", "go"):
        return base + "es"
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ies"
    if re.search(r"(s|sh|ch|x|z)$", base):
        return base + "es"
    return base + "s"


def past(base: str) -> str:
    for p, b in IRREGULAR_PAST.items():
        if b == base and p not in ("read", "cut", "put", "set", "let", "split", "spread"):
            return p
    if base in DOUBLED:
        return DOUBLED[base]
    if base.endswith("e"):
        return base + "d"
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ied"
    return base + "ed"


FORMS: dict[str, tuple[str, str]] = {}  # form -> (lemma, tense: base|s|past)
for _b in VERBS:
    FORMS.setdefault(_b, (_b, "base"))
    FORMS.setdefault(third_person(_b), (_b, "s"))
    FORMS.setdefault(past(_b), (_b, "past"))
for _p, _b in IRREGULAR_PAST.items():
    FORMS.setdefault(_p, (_b, "past"))

# Words after which a verb-looking word is a noun or an infinitive, not a finite verb.
NOT_BEFORE_VERB = set(
    """the a an its their his her our my your this these those some many all every each no any
    of to for with in on by at from per as into onto than via about over under between
    and or but nor one two three several few more most less least much own same other another
    such what which whose""".split()
)
ADVERBS = set(
    """also then still just only usually normally often always typically simply first already
    immediately automatically really actually never even mostly generally effectively rarely
    naturally explicitly lazily implicitly directly quickly roughly alone""".split()
)
SUBJECT_PRONOUNS = {"i", "we", "they", "you", "it", "he", "she", "that", "this", "which", "who"}

# ---------------------------------------------------------------------------------------------
# Tokens

TOKEN = re.compile(r"\S+")
STRIP = "()[]{},.;:!?\"'“”‘’`"


def core(tok: str) -> str:
    return tok.strip(STRIP).lower()


def lead_trail(tok: str) -> tuple[str, str, str]:
    """Split a token into leading punctuation, the word, and trailing punctuation."""
    m = re.match(r"^([(\[\"'“‘`]*)(.*?)([)\]\"'”’`,.;:!?]*)$", tok)
    assert m
    return m.group(1), m.group(2), m.group(3)


def cap_like(src: str, out: str) -> str:
    return out[:1].upper() + out[1:] if src[:1].isupper() else out


class Clause:
    def __init__(self, text: str):
        self.text = text
        self.toks = [m.group(0) for m in TOKEN.finditer(text)]
        # Parenthesis depth before each token.
        self.depth = []
        d = 0
        for t in self.toks:
            self.depth.append(d)
            d += t.count("(") + t.count("[") - t.count(")") - t.count("]")
            d = max(d, 0)

    def outside(self, i: int) -> bool:
        t = self.toks[i]
        return self.depth[i] == 0 and not t.startswith("(")

    def render(self) -> str:
        lead = re.match(r"^\s*", self.text).group(0)
        trail = re.search(r"\s*$", self.text).group(0)
        out = ""
        for t in self.toks:
            if not t:
                continue
            if out and re.fullmatch(r"[,.;:!?)\]]+", t):
                out += t  # a removed word left only its punctuation
            else:
                out += (" " if out else "") + t
        return lead + out + trail

    def word(self, i: int) -> str:
        return core(self.toks[i]) if 0 <= i < len(self.toks) else ""

    def replace_word(self, i: int, new: str) -> None:
        lead, w, trail = lead_trail(self.toks[i])
        self.toks[i] = lead + cap_like(w, new) + trail if new else (lead + trail if lead + trail else "")


def is_codeish(tok: str) -> bool:
    w = tok.strip(STRIP)
    return bool(re.search(r"[._=()\[\]<>*/@]", w)) and not re.fullmatch(r"[A-Za-z'-]+", w)


def finite_verb_at(c: Clause, i: int, clause_start: bool) -> tuple[str, str] | None:
    """(lemma, tense) when token i looks like a finite main verb."""
    tok = c.toks[i]
    if is_codeish(tok):
        return None
    _, w, _ = lead_trail(tok)
    lw = w.lower()
    if lw not in FORMS or w[:1].isupper() and not clause_start:
        return None
    lemma, tense = FORMS[lw]
    if clause_start and tense != "base":
        return None
    prev = c.word(i - 1)
    if prev in NOT_BEFORE_VERB:
        return None
    if tense == "base" and not clause_start and prev not in SUBJECT_PRONOUNS and not (
        prev.endswith("s") or prev in ADVERBS
    ):
        # "we use", "workers long-poll", "they serve" -- otherwise a base form is likely a noun.
        return None
    if tense == "past" and prev in ("is", "are", "was", "were", "be", "been", "being"):
        return None
    return lemma, tense


def negate_clause(text: str) -> tuple[str, bool]:
    """Negate one clause. Returns (text, changed)."""
    if not text.strip():
        return text, False
    c = Clause(text)
    n = len(c.toks)
    first = next((i for i in range(n) if core(c.toks[i])), 0)
    target = None  # index of the token that got negated
    lexical_target = False
    target_tense = None

    # 1. Remove an existing verbal negation (anywhere in the clause, leftmost first).
    for i in range(n):
        if not c.outside(i) or is_codeish(c.toks[i]):
            continue
        w = c.word(i)
        if w in CONTRACTIONS_NEG:
            base = CONTRACTIONS_NEG[w]
            nxt = c.word(i + 1)
            if base in DO and nxt in FORMS and FORMS[nxt][1] == "base":
                lemma = FORMS[nxt][0]
                c.replace_word(i, "")
                c.replace_word(i + 1, inflect(lemma, base))
            else:
                c.replace_word(i, base)
            target = i
            break
        if w == "not":
            prev = c.word(i - 1)
            if prev in AUX_NOT or prev in HAVE or prev in DO or prev in ("be", "been"):
                nxt = c.word(i + 1)
                if prev in DO and nxt in FORMS and FORMS[nxt][1] == "base":
                    c.replace_word(i - 1, "")
                    c.replace_word(i, "")
                    c.replace_word(i + 1, inflect(FORMS[nxt][0], prev))
                else:
                    c.replace_word(i, "")
                target = i
                break
            if i == first or (i == first + 1 and c.word(first) in ("but", "and", "so")):
                c.replace_word(i, "")
                target = i
                break
            continue
        if w == "never":
            c.replace_word(i, "always")
            target = i
            break
        if w == "no" and c.word(i + 1) == "longer":
            c.replace_word(i, "still")
            c.replace_word(i + 1, "")
            target = i
            break
        if w == "nothing":
            c.replace_word(i, "something")
            target = i
            break
        if w == "no":
            c.replace_word(i, "")
            target = i
            break
    # 2. Auxiliary, copula, modal.
    if target is None:
        for i in range(n):
            if not c.outside(i) or is_codeish(c.toks[i]):
                continue
            _, w, _ = lead_trail(c.toks[i])
            lw = w.lower().replace("’", "'")
            if lw in CONTRACTIONS_POS and (w[:1].islower() or i == first):
                c.replace_word(i, CONTRACTIONS_POS[lw])
                target = i
                break
            if lw in AUX_NOT:
                nxt = c.word(i + 1)
                if nxt == "always":
                    c.replace_word(i + 1, "never")
                else:
                    c.replace_word(i, AUX_NOT[lw])
                target = i
                break
            if lw in HAVE:
                nxt = c.word(i + 1)
                if nxt in PARTICIPLES or nxt.endswith("ed") or nxt.endswith("en") or nxt == "to":
                    if nxt == "to":
                        c.replace_word(i, {"has": "does not have", "have": "do not have", "had": "did not have"}[lw])
                    else:
                        c.replace_word(i, lw + " not")
                else:
                    do, lemma = HAVE[lw]
                    c.replace_word(i, f"{do} not {lemma}")
                target = i
                break
            if lw in DO:
                nxt = c.word(i + 1)
                if nxt in FORMS and FORMS[nxt][1] == "base":
                    c.replace_word(i, lw + " not")
                else:
                    c.replace_word(i, f"{lw} not do")
                target = i
                break
            if lw == "always":
                c.replace_word(i, "never")
                target = i
                break
    # 3. Main verb with do-support.
    if target is None:
        for i in range(n):
            if not c.outside(i):
                continue
            fv = finite_verb_at(c, i, i == first)
            if fv is None:
                continue
            lemma, tense = fv
            lexical_target = tense != "base"
            target_tense = tense
            do = {"s": "does", "base": "do", "past": "did"}[tense]
            lead, w, trail = lead_trail(c.toks[i])
            c.toks[i] = lead + cap_like(w, f"{do} not {lemma}") + trail
            target = i
            break
    if target is None:
        return text, False
    lexical = lexical_target
    # 4. Verbs coordinated after the target: "... and yields" -> "... and does not yield".
    i = target + 1
    while i < n - 1:
        if (
            lexical
            and c.toks[i - 1].endswith(",")
            and c.outside(i)
            and c.word(i) in FORMS
            and FORMS[c.word(i)][1] in ("s", "past")
            and not c.toks[i].endswith(",")
            and not is_codeish(c.toks[i])
        ):
            lemma, tense = FORMS[c.word(i)]
            do = {"s": "does", "past": "did"}[tense]
            lead, ww, trail = lead_trail(c.toks[i])
            c.toks[i] = lead + f"{do} not {lemma}" + trail
        elif c.word(i) in ("and", "or") and c.outside(i):
            j = i + 1
            if c.word(j) in ADVERBS and c.word(j) not in ("never", "always"):
                j += 1
            if j < n:
                w = c.word(j)
                if w == "always":
                    c.replace_word(j, "never")
                elif w == "never":
                    c.replace_word(j, "always")
                elif w in AUX_NOT and c.word(j + 1) != "not":
                    c.replace_word(j, AUX_NOT[w])
                elif (
                    w in FORMS
                    and (FORMS[w][1] in ("s", "past") or FORMS[w][1] == target_tense)
                    and not is_codeish(c.toks[j])
                ):
                    lemma, tense = FORMS[w]
                    do = {"s": "does", "past": "did", "base": "do"}[tense]
                    lead, ww, trail = lead_trail(c.toks[j])
                    c.toks[j] = lead + f"{do} not {lemma}" + trail
        i += 1
    return c.render(), True


# Clause boundaries inside a sentence; the separator stays with the following clause.
CLAUSE_SEP = re.compile(
    r"(;\s+|:\s+(?=[a-z])|,\s+(?=(?:so|but|which|while|because|whereas|although|though|then|where|"
    r"and\b|since (?!\d)|unlike|instead)\b)|"
    r"\s+-\s+|\s+—\s+|\s+because\s+|\s+so that\s+|\s+(?:but|whereas|while)\s+(?=\S))"
)


def split_clauses(sentence: str) -> list[str]:
    """Alternating [clause, separator, clause, ...]; never splits inside brackets."""
    depth_at = []
    d = 0
    for ch in sentence:
        depth_at.append(d)
        if ch in "([{":
            d += 1
        elif ch in ")]}":
            d = max(d - 1, 0)
    parts = []
    start = 0
    for m in CLAUSE_SEP.finditer(sentence):
        if depth_at[m.start()] != 0 or m.start() == 0:
            continue
        parts.append(sentence[start : m.start()])
        parts.append(m.group(0))
        start = m.end()
    parts.append(sentence[start:])
    return parts


def negate_sentence(sentence: str) -> str:
    parts = split_clauses(sentence)
    out = []
    changed_any = False
    for k, part in enumerate(parts):
        if k % 2 == 1:
            out.append(part)
            continue
        after_colon = k > 0 and parts[k - 1].startswith(":")
        before_colon = k + 1 < len(parts) and parts[k + 1].startswith(":")
        if before_colon and len(part.split()) <= 4 and not changed_any:
            # a label ("Benefits:", "In practice:") is not a claim
            neg, changed = negate_clause(part)
            if not changed or part.split()[0][:1].isupper() and len(part.split()) <= 2:
                out.append(part)
                continue
        else:
            neg, changed = negate_clause(part)
        if not changed and after_colon:
            neg, changed = "not " + part.lstrip(), True
        changed_any |= changed
        out.append(neg)
    s = "".join(out)
    if sentence[:1].isupper() and s[:1].islower():
        s = s[0].upper() + s[1:]
    if not changed_any:
        # A verbless sentence: deny it outright.
        s = "Not true: " + sentence
    return s


ABBREV = re.compile(r"(?:e\.g|i\.e|etc|vs|cf|approx)\.$", re.I)


def split_sentences(paragraph: str) -> list[str]:
    out = []
    start = 0
    for m in re.finditer(r"[.!?](?=\s+\S)", paragraph):
        chunk = paragraph[start : m.end()]
        if ABBREV.search(chunk):
            continue
        out.append(chunk.strip())
        start = m.end()
    rest = paragraph[start:].strip()
    if rest:
        out.append(rest)
    return out


def blocks(text: str) -> list[tuple[str, str]]:
    """(kind, text) with kind in code|prose|bullet; prose paragraphs reflowed to one line."""
    out: list[tuple[str, str]] = []
    lines = text.strip("\n").split("\n")
    i = 0
    para: list[str] = []

    def flush():
        if para:
            joined = " ".join(l.strip() for l in para)
            kind = "bullet" if re.match(r"^(- |\* |\d+\. )", para[0]) else "prose"
            out.append((kind, joined))
            para.clear()

    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            out.append(("code", "\n".join(lines[i : j + 1])))
            i = j + 1
            continue
        if not line.strip():
            flush()
        elif re.match(r"^(- |\* |\d+\. )", line):
            flush()
            para.append(line)
        else:
            para.append(line)
        i += 1
    flush()
    return out


def negate_text(text: str, fixes: dict[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """Negate every prose claim; returns the text and (original, negated) sentence pairs."""
    pairs = []
    out = []
    for kind, body in blocks(text):
        if kind == "code":
            out.append(body)
            continue
        prefix = ""
        if kind == "bullet":
            m = re.match(r"^(- |\* |\d+\. )", body)
            prefix, body = m.group(1), body[m.end() :]
        sents = []
        for s in split_sentences(body):
            neg = fixes.get(s)
            if neg is None:
                neg = negate_sentence(s)
            pairs.append((s, neg))
            sents.append(neg)
        out.append(prefix + " ".join(sents))
    return "\n\n".join(out) + "\n", pairs
