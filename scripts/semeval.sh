#!/usr/bin/env bash
# Grade the full SemEval-2013 Task 7 test splits with `grader eval` and print one table:
# SciEntsBank test-unseen-answers / -questions / -domains, Beetle test-unseen-answers /
# -questions (n, Pearson r, QWK, RMSE, accuracy and macro-F1 on the 0–2 scale).
#
#   bash scripts/semeval.sh                      # default judge
#   bash scripts/semeval.sh --judge coverage     # passed on to `grader eval --judge`
#   bash scripts/semeval.sh --limit 100 --out reports/   # first 100 items per split; keep the JSON
#
# The splits come from `python3 scripts/semeval.py --full` (source: ../shared/data/semeval2013,
# or $SEMEVAL_DIR; see tests/data/semeval/README.md for attribution and license). It builds
# grader in release first; set GRADER_BIN to use a grader already built. Fit nothing on these
# splits: they are for measuring (fit on train only).
set -euo pipefail
cd "$(dirname "$0")/.."

judge=()
limit=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --judge) judge=(--judge "$2"); shift 2 ;;
    --judge=*) judge=(--judge "${1#--judge=}"); shift ;;
    --limit) limit=(--limit "$2"); shift 2 ;;
    --limit=*) limit=(--limit "${1#--limit=}"); shift ;;
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "semeval.sh: unknown argument $1 (--judge KIND, --limit N, --out DIR)" >&2; exit 2 ;;
  esac
done

if [ -n "${GRADER_BIN:-}" ]; then
  grader="$GRADER_BIN"
else
  cargo build --release --quiet
  grader="${CARGO_TARGET_DIR:-target}/release/grader"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 scripts/semeval.py --full "$tmp/data"
reports="${out:-$tmp/reports}"
mkdir -p "$reports"

# One SciEntsBank question (SE_16b2, in train and test-unseen-answers) is longer than the
# default limits.max_question_chars; raise it so every item is graded.
export GRADER__LIMITS__MAX_QUESTION_CHARS="${GRADER__LIMITS__MAX_QUESTION_CHARS:-2000}"

splits="sciEntsBank-test-unseen-answers sciEntsBank-test-unseen-questions
sciEntsBank-test-unseen-domains beetle-test-unseen-answers beetle-test-unseen-questions"
for s in $splits; do
  echo "grading $s ..." >&2
  "$grader" eval "$tmp/data/$s.jsonl" --json ${judge[@]+"${judge[@]}"} ${limit[@]+"${limit[@]}"} \
    > "$reports/$s.json"
done

python3 - "$reports" $splits <<'PY'
import json, sys
from pathlib import Path

reports, splits = Path(sys.argv[1]), sys.argv[2:]
rows = []
for s in splits:
    r = json.loads((reports / f"{s}.json").read_text())
    c = r.get("classification") or {}
    fmt = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"
    scale = r.get("scale_max")
    rows.append([
        s, str(r["n"]), fmt(r["pearson"]), fmt(r["qwk"]), fmt(r["rmse"], 2),
        fmt(c.get("accuracy")), fmt(c.get("macro_f1")),
        "0–10" if scale is None else f"0–{scale:g}", str(len(r["failed"])), r["judge"],
    ])
head = ["split", "n", "pearson", "qwk", "rmse", "accuracy", "macro-F1", "scale", "failed", "judge"]
widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for row in rows:
    print(line(row))
PY
if [ -n "$out" ]; then
  echo "reports (grader eval --json) in $out" >&2
fi
