#!/usr/bin/env bash
# Side-by-side benchmark: grader's LLM judge vs promptfoo llm-rubric vs DeepEval G-Eval on the
# same items, against one fake OpenAI-compatible server (50 ms per call) on 127.0.0.1.
# See README.md beside this file. Not part of `cargo test`.
#
#   bash benches/peers/run.sh [--items 100] [--concurrency 4] [--repeat 3] [--delay-ms 50]
#
# Installs what is missing (Node 22 + promptfoo from npm into benches/peers/node_modules,
# DeepEval from PyPI into benches/peers/.venv; versions pinned in package.json and
# requirements.txt), uses target/release/grader (built with `cargo build --release` if absent;
# GRADER_BIN overrides), then runs bench.py. A tool that cannot be installed is reported as
# "skipped: <why>" and the others still run.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$here/.work"
mkdir -p "$work"
py="${PYTHON:-python3}"
skip=()
versions=()

want() { # want FILE KEY: the pinned version of KEY in package.json / requirements.txt
  case "$1" in
    *.json) "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"][sys.argv[2]])' "$1" "$2" ;;
    *) sed -n "s/^$2==\\(.*\\)\$/\\1/p" "$1" ;;
  esac
}

# --- grader -----------------------------------------------------------------------------------
bin="${GRADER_BIN:-$root/target/release/grader}"
if [ ! -x "$bin" ]; then
  echo "== building grader (cargo build --release)"
  (cd "$root" && cargo build --release --locked) || true
fi
if [ -x "$bin" ]; then
  # A copy, so a rebuild during the run cannot swap the binary under the benchmark.
  cp "$bin" "$work/grader.bin"
  gv="$("$work/grader.bin" --version 2>/dev/null | head -1)"
  rev="$(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
  dirty="$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' + uncommitted changes')"
  versions+=("$gv (commit $rev$dirty, binary built $(date -r "$bin" '+%Y-%m-%d %H:%M'))")
else
  skip+=(--skip "grader=no binary at $bin and cargo build --release failed")
fi

# --- promptfoo (Node >= 22 from the npm package `node`) ---------------------------------------
pf_want="$(want "$here/package.json" promptfoo)"
node_want="$(want "$here/package.json" node)"
node_bin="$here/node_modules/node/bin/node"
pf_entry="$here/node_modules/promptfoo/dist/src/entrypoint.js"
installed() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$1" 2>/dev/null; }
if [ "$(installed "$here/node_modules/promptfoo/package.json")" != "$pf_want" ] ||
   [ "$("$node_bin" --version 2>/dev/null)" != "v$node_want" ]; then
  echo "== installing node@$node_want and promptfoo@$pf_want from npm into benches/peers/node_modules (~2 GB, a minute or two)"
  if ! command -v npm >/dev/null; then
    skip+=(--skip "promptfoo=npm not found")
  elif ! (cd "$here" && timeout 900 npm install --no-audit --no-fund --no-package-lock --loglevel=error \
            >"$work/npm-install.log" 2>&1); then
    skip+=(--skip "promptfoo=npm install failed: $(grep -m1 -i 'err' "$work/npm-install.log" | cut -c1-160)")
  fi
fi
if [ -x "$node_bin" ] && [ -f "$pf_entry" ]; then
  versions+=("promptfoo $(installed "$here/node_modules/promptfoo/package.json") on Node $("$node_bin" --version)")
elif ! printf '%s\n' "${skip[@]}" | grep -q '^promptfoo='; then
  skip+=(--skip "promptfoo=not installed (see $work/npm-install.log)")
fi

# --- DeepEval ---------------------------------------------------------------------------------
de_want="$(want "$here/requirements.txt" deepeval)"
vpy="$here/.venv/bin/python"
de_have() { "$vpy" -c 'import importlib.metadata as m; print(m.version("deepeval"))' 2>/dev/null; }
if [ "$(de_have)" != "$de_want" ]; then
  echo "== installing deepeval==$de_want from PyPI into benches/peers/.venv (a minute)"
  { [ -x "$vpy" ] || "$py" -m venv "$here/.venv"; } >"$work/pip-install.log" 2>&1
  timeout 900 "$vpy" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" \
    >>"$work/pip-install.log" 2>&1 || true
fi
if [ "$(de_have)" = "$de_want" ]; then
  versions+=("deepeval $de_want on Python $("$vpy" -c 'import platform; print(platform.python_version())')")
else
  skip+=(--skip "deepeval=pip install failed: $(grep -m1 -i 'error' "$work/pip-install.log" | cut -c1-160)")
fi

args=(--work "$work" "${skip[@]}")
[ "${#versions[@]}" -gt 0 ] && args+=(--versions "$(IFS=';'; echo "${versions[*]}" | sed 's/;/; /g').")
[ -x "$work/grader.bin" ] && args+=(--grader "$work/grader.bin")
[ -x "$node_bin" ] && [ -f "$pf_entry" ] && args+=(--node "$node_bin" --promptfoo "$pf_entry")
[ -x "$vpy" ] && args+=(--python "$vpy")
echo "== benchmark"
exec "$py" "$here/bench.py" "${args[@]}" "$@"
