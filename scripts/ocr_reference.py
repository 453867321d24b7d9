#!/usr/bin/env python3
"""Times Python RapidOCR 3.10 (onnxruntime) on badge photos, configured like wabot.

    python scripts/ocr_reference.py --threads 1 --max-side 640 --runs 5 tests/data/badges/*.jpg

Prints one JSON object per image (`image`, `ms` median, `lines`) and a summary line. Same
models and pipeline settings as wabot: detector input long side capped at --max-side, no
direction classifier, default thresholds.
"""

import argparse
import json
import statistics
import time

from rapidocr import RapidOCR


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    engine = RapidOCR(
        params={
            "Global.use_cls": False,
            "Global.log_level": "warning",
            "Det.limit_type": "max",
            "Det.limit_side_len": args.max_side,
            "EngineConfig.onnxruntime.intra_op_num_threads": args.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    medians = []
    for path in args.images:
        engine(path)  # warm-up
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = engine(path)
            times.append((time.perf_counter() - started) * 1000)
        ms = statistics.median(times)
        medians.append(ms)
        lines = list(result.txts or [])
        print(json.dumps({"image": path, "ms": round(ms, 1), "lines": lines}, ensure_ascii=False))
    print(json.dumps({"summary": "rapidocr-onnxruntime", "threads": args.threads, "max_side": args.max_side,
                      "median_ms": round(statistics.median(medians), 1), "images": len(medians)}))


if __name__ == "__main__":
    main()
