#!/usr/bin/env python3
"""SemEval-2013 Task 7 (SciEntsBank, Beetle) as `grader eval` JSONL.

    python3 scripts/semeval.py              # (re)write tests/data/semeval/
    python3 scripts/semeval.py --check      # fail if tests/data/semeval/ differs from that
    python3 scripts/semeval.py --full DIR   # every split of each corpus, in full, into DIR

Reads `sciEntsBank.jsonl` and `beetle.jsonl` from `--src` (default ../shared/data/semeval2013
next to the checkout, or $SEMEVAL_DIR). Deterministic: the input is sorted by item id and every
sample is drawn with a fixed seed, so the same source gives byte-identical files.

The committed samples are stratified by label (each label keeps its share of the split, largest
remainder) and spread over questions (answers are taken one per question in turn, so many
questions get a few answers each). Items carry only `grader eval`'s fields: question,
reference_answer, reference_answers (the other references, when there are any), answer, score,
scale_max. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "semeval"
CORPORA = ("sciEntsBank", "beetle")
LABELS = ("correct", "incorrect", "contradictory")
SEED = 2013
# grader's default `limits.max_question_chars`: a longer question is rejected, so the committed
# samples leave it out (one SciEntsBank training question, SE_16b2, has 1,061 characters).
MAX_QUESTION_CHARS = 1000
SAMPLES = (
    # file, corpus, split, size
    ("train-600.jsonl", "sciEntsBank", "train", 300),
    ("train-600.jsonl", "beetle", "train", 300),
    ("sciEntsBank-unseen-questions-300.jsonl", "sciEntsBank", "test-unseen-questions", 300),
    ("beetle-unseen-questions-300.jsonl", "beetle", "test-unseen-questions", 300),
)
COMMAND = "python3 scripts/semeval.py"


def default_src() -> Path:
    env = os.environ.get("SEMEVAL_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "semeval2013"


def load(src: Path, corpus: str) -> list[dict]:
    rows = [
        json.loads(line)
        for line in (src / f"{corpus}.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    rows.sort(key=lambda r: r["item_id"])
    ids = [r["item_id"] for r in rows]
    if len(set(ids)) != len(ids):
        sys.exit(f"{corpus}: duplicate item_id")
    return rows


def eval_item(r: dict) -> dict:
    """The row in `grader eval`'s fields (EvalItem), in a fixed key order."""
    ref = r["reference_answer"]
    others = [a for a in r.get("reference_answers", []) if a.strip() != ref.strip()]
    item = {"question": r["question"], "reference_answer": ref}
    if others:
        item["reference_answers"] = others
    item.update(answer=r["answer"], score=r["score"], scale_max=r["scale_max"])
    return item


def quotas(rows: list[dict], size: int) -> dict[str, int]:
    """Each label's share of `size`, proportional to its count (largest remainder)."""
    counts = Counter(r["label"] for r in rows)
    total = sum(counts.values())
    exact = {lab: size * counts[lab] / total for lab in LABELS if counts[lab]}
    q = {lab: int(x) for lab, x in exact.items()}
    rest = size - sum(q.values())
    for lab in sorted(exact, key=lambda lab: (-(exact[lab] - q[lab]), LABELS.index(lab)))[:rest]:
        q[lab] += 1
    return q


def sample(rows: list[dict], size: int, rng: random.Random) -> list[dict]:
    """`size` rows stratified by label; within a label, one answer per question in turn."""
    rows = [r for r in rows if len(r["question"]) <= MAX_QUESTION_CHARS]
    picked = []
    for lab, n in quotas(rows, size).items():
        by_q: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if r["label"] == lab:
                by_q[r["source_question_id"]].append(r)
        qs = sorted(by_q)
        rng.shuffle(qs)
        for q in qs:
            rng.shuffle(by_q[q])
        taken = 0
        while taken < n:
            if not any(by_q.values()):
                sys.exit(f"label {lab}: {taken} rows, wanted {n}")
            for q in qs:
                if by_q[q] and taken < n:
                    picked.append(by_q[q].pop())
                    taken += 1
    # File order: by item id (answers to one question together).
    picked.sort(key=lambda r: r["item_id"])
    return picked


def jsonl(items: list[dict]) -> str:
    return "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def readme(src: Path, stats: dict[str, list[tuple[str, str, list[dict]]]]) -> str:
    def line(name: str) -> str:
        parts = []
        for corpus, split, rows in stats[name]:
            c = Counter(r["label"] for r in rows)
            qs = len({r["source_question_id"] for r in rows})
            parts.append(
                f"{len(rows)} from {corpus} `{split}` ({qs} questions; correct / incorrect / "
                f"contradictory {c['correct']} / {c['incorrect']} / {c['contradictory']})"
            )
        return "; ".join(parts)

    hashes = "\n".join(
        f"    {sha256(src / f'{c}.jsonl')}  {c}.jsonl" for c in CORPORA
    )
    return f"""# SemEval-2013 Task 7 samples (SciEntsBank, Beetle)

Real student answers with human labels, for `grader eval`: development data that nobody on this
project wrote. Every line is an eval item (`question`, `reference_answer`, `reference_answers`
— the question's other references, when it has any —, `answer`, `score`, `scale_max`); the
official 3-way label is the score on a 0–2 scale: `correct` = 2, `incorrect` = 1 (partially
correct, incomplete, irrelevant or off-domain), `contradictory` = 0.

| file | what |
|---|---|
| `train-600.jsonl` | {line("train-600.jsonl")} |
| `sciEntsBank-unseen-questions-300.jsonl` | {line("sciEntsBank-unseen-questions-300.jsonl")} |
| `beetle-unseen-questions-300.jsonl` | {line("beetle-unseen-questions-300.jsonl")} |
| `LICENSE` | the Creative Commons Attribution-ShareAlike 3.0 Unported license |

Fit on train only: thresholds, weights or anything learned come from `train-600.jsonl` (or the
full `train` split); the `unseen-questions` files are for measuring, never for fitting.

Each sample is stratified by label (each label keeps its share of the split) and spread over
questions (a few answers per question); lines are in the source's item-id order. Questions
longer than grader's default `limits.max_question_chars` (1000) are left out. Beetle asks
several questions with one text (“Explain your reasoning.” after different tasks, each with its
own references); `grader eval` groups its per-question report by question text, so those share
a row. Made by

    {COMMAND}

from `sciEntsBank.jsonl` and `beetle.jsonl` in `../shared/data/semeval2013/` (seed {SEED}):

{hashes}

`{COMMAND} --check` fails when these files differ from what it would write. The full splits
(every answer of train, test-unseen-answers, test-unseen-questions and, for SciEntsBank,
test-unseen-domains) are not committed: `{COMMAND} --full DIR` writes them, and
`scripts/semeval.sh` grades them and prints one table.

## Source, attribution and license

Converted from the organisers' public release (GitHub `myrosia/semeval-2013-task7`, commit
5157c69f914e8c581045c03e98f96398d40a91b8, `semeval-3way.zip`). The data is licensed under the
Creative Commons Attribution-ShareAlike 3.0 Unported license (`LICENSE` here,
https://creativecommons.org/licenses/by-sa/3.0/). These files are an adaptation (a sample,
reduced to grader's fields) under the same license; anything derived from them that is
distributed (test fixtures, fitted weights) must credit the authors and carry the same license.

Cite: Dzikovska, M.O., Nielsen, R., Brew, C., Leacock, C., Giampiccolo, D., Bentivogli, L.,
Clark, P., Dagan, I. and Dang, H.T. (2013). SemEval-2013 Task 7: The Joint Student Response
Analysis and 8th Recognizing Textual Entailment Challenge. Proceedings of SemEval 2013, Atlanta.
https://aclanthology.org/S13-2045/ — corpora collected by Myroslava Dzikovska (University of
Edinburgh) and Rodney Nielsen (University of North Texas).
"""


def committed(src: Path) -> dict[str, str]:
    """Every committed file's text, by name."""
    rng = random.Random(SEED)
    corpora = {c: load(src, c) for c in CORPORA}
    files: dict[str, list[dict]] = defaultdict(list)
    stats: dict[str, list[tuple[str, str, list[dict]]]] = defaultdict(list)
    for name, corpus, split, size in SAMPLES:
        rows = [r for r in corpora[corpus] if r["split"] == split]
        picked = sample(rows, size, rng)
        if len(picked) != size:
            sys.exit(f"{corpus} {split}: {len(picked)} items, wanted {size}")
        files[name].extend(picked)
        stats[name].append((corpus, split, picked))
    out = {name: jsonl([eval_item(r) for r in rows]) for name, rows in files.items()}
    out["LICENSE"] = (src / "LICENSE").read_text(encoding="utf-8")
    out["README.md"] = readme(src, stats)
    return out


def full(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for corpus in CORPORA:
        by_split: dict[str, list[dict]] = defaultdict(list)
        for r in load(src, corpus):
            by_split[r["split"]].append(r)
        for split, rows in sorted(by_split.items()):
            path = dest / f"{corpus}-{split}.jsonl"
            path.write_text(jsonl([eval_item(r) for r in rows]), encoding="utf-8")
            print(f"{path}: {len(rows)} items", file=sys.stderr)
    shutil.copyfile(src / "LICENSE", dest / "LICENSE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=default_src(), help="the semeval2013 folder")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if tests/data/semeval differs")
    mode.add_argument("--full", type=Path, metavar="DIR", help="write every split in full to DIR")
    args = ap.parse_args()
    if args.full:
        full(args.src, args.full)
        return 0
    want = committed(args.src)
    if args.check:
        stale = [
            name
            for name, text in sorted(want.items())
            if not (OUT / name).is_file() or (OUT / name).read_text(encoding="utf-8") != text
        ]
        extra = sorted(p.name for p in OUT.glob("*") if p.name not in want) if OUT.is_dir() else []
        for name in stale:
            print(f"{OUT / name}: differs from what `{COMMAND}` writes", file=sys.stderr)
        for name in extra:
            print(f"{OUT / name}: not written by `{COMMAND}`", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(want.items()):
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
