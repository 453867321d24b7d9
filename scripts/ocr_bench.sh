#!/usr/bin/env bash
# Per-image OCR latency: wabot (rten) with 1 and 2 threads against Python RapidOCR 3.10
# (onnxruntime) with 1 and 2 threads, same models, same photos, same settings, same run.
#
#   scripts/ocr_bench.sh [RUNS] [MAX_SIDE]     # defaults: 5 runs, 640 px (wabot's default)
#
# Sets up the reference in target/ocr-reference-venv (rapidocr==3.10.0, onnxruntime) once.
# Prints the median per-image latency of each configuration; report `uptime` beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
MAX_SIDE=${2:-640}
IMAGES=(tests/data/badges/*.jpg)

VENV=target/ocr-reference-venv
if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet rapidocr==3.10.0 onnxruntime
fi

cargo build --release --locked --quiet
echo "== $(uptime)"
for threads in 1 2; do
    # A warm-up pass, then RUNS passes; the median of each image's runs, then of the images.
    args=()
    for _ in $(seq 0 "$RUNS"); do args+=("${IMAGES[@]}"); done
    target/release/wabot ocr --json --threads "$threads" --max-side "$MAX_SIDE" "${args[@]}" |
        python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
n = int(sys.argv[1]); rows = rows[n:]  # drop the warm-up pass
by = {}
for r in rows: by.setdefault(r["image"], []).append(r["ms"])
medians = [statistics.median(v) for v in by.values()]
ids = sum(1 for r in rows[:n] if r["employee_id"])
print(json.dumps({"summary": "wabot-rten", "threads": int(sys.argv[2]), "max_side": int(sys.argv[3]),
                  "median_ms": round(statistics.median(medians), 1), "max_ms": round(max(medians), 1),
                  "images": len(medians), "ids_found": ids}))
' "${#IMAGES[@]}" "$threads" "$MAX_SIDE"
    "$VENV/bin/python" scripts/ocr_reference.py --threads "$threads" --max-side "$MAX_SIDE" --runs "$RUNS" "${IMAGES[@]}" | tail -1
done
echo "== $(uptime)"
