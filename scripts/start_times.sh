#!/usr/bin/env bash
# Cold and warm start of the fused engine: the time from launch to the first answer of
# `wabot ask`, with an empty embedding cache (cold) and then with the cache the first run
# left (warm), on the shipped corpus and on a 10,000-entry FAQ made from the three FAQs
# under corpus/ and tests/data/ (each entry repeated with a site number in its text, so
# that every text is new to the cache).
#   scripts/start_times.sh            # both corpora
#   ENTRIES=2000 scripts/start_times.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${ENTRIES:-10000}
cargo build --release --bin wabot >&2
bin=$PWD/target/release/wabot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$ENTRIES" "$work/big.jsonl" <<'PY'
import json, sys, glob, itertools
want, out = int(sys.argv[1]), sys.argv[2]
base = []
for path in ["tests/data/itdesk/faq/kb.jsonl", "tests/data/holdout-hr/faq/kb.jsonl"]:
    base += [json.loads(l) for l in open(path) if l.strip()]
with open(out, "w") as f:
    for n in range(want):
        e = dict(base[n % len(base)])
        site = n // len(base)
        word = "site" if e["lang"] == "en" else "site n°"
        e["id"] = f'{e["id"]}-{site}'
        e["questions"] = [f"{q} ({word} {site})" for q in e["questions"]]
        e["answer"] = f'{e["answer"]} ({word} {site})'
        e.pop("topic", None)
        f.write(json.dumps(e, ensure_ascii=False) + "\n")
PY

run() { # label, data dir, then ask's arguments
    local label=$1 dir=$2; shift 2
    local t0 t1
    t0=$(date +%s.%N)
    WABOT_DB="$dir/wabot.db" "$bin" ask "$@" "how do I reset my password?" > /dev/null
    t1=$(date +%s.%N)
    printf '%-28s %8.2f s\n' "$label" "$(echo "$t1 - $t0" | bc)"
}

mkdir -p "$work/shipped" "$work/big"
WABOT_SEMANTIC=off run "shipped, lexical only" "$work/shipped"
run "shipped, cold" "$work/shipped"
run "shipped, warm" "$work/shipped"
WABOT_SEMANTIC=off run "$ENTRIES entries, lexical only" "$work/big" --corpus "$work/big.jsonl"
run "$ENTRIES entries, cold" "$work/big" --corpus "$work/big.jsonl"
run "$ENTRIES entries, warm" "$work/big" --corpus "$work/big.jsonl"
echo "cache for $ENTRIES entries: $(du -m "$work/big/embeddings.bin" | cut -f1) MiB"
