#!/usr/bin/env python3
"""Generates the synthetic badge photos of tests/data/badges/ (the OCR golden tests).

Each badge is drawn, then photographed: placed on a desk-like background, rotated, lit
unevenly, blurred, given sensor noise and saved as a WhatsApp-like JPEG (1600 px long
side). Deterministic: the same fonts give the same files.

    python3 -m pip install Pillow==13.0.0
    apt-get install fonts-dejavu-core fonts-liberation fonts-freefont-ttf   # Debian/Ubuntu
    python3 scripts/make_badges.py            # writes tests/data/badges/ and the example directory

Beside every `NN-name.jpg` it writes `NN-name.expected.txt` (`id=` and `name=` lines), and it
writes `corpus/employees.example.csv`, the example employee directory these badges belong to.
"""

import csv
import io
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "badges"
FONTS = Path("/usr/share/fonts/truetype")
W, H = 1600, 1200  # a WhatsApp photo

# (file stem, id, first, last, email, department, label, font, regular font, angle, blur,
#  noise, jpeg quality, light)
BADGES = [
    ("01-elodie", "712056", "Élodie", "Garçon", "Finance", "Employee ID:", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSans.ttf", 0, 0.0, 4, 80, 1.0),
    ("02-loic", "21957-B", "Loïc", "Martin", "IT", "Matricule :", "liberation/LiberationSans-Bold.ttf", "liberation/LiberationSans-Regular.ttf", 6, 0.6, 6, 70, 0.9),
    ("03-francois", "Z48213", "François", "Dubois", "Legal", "Staff No.", "liberation/LiberationSerif-Bold.ttf", "liberation/LiberationSerif-Regular.ttf", -8, 0.8, 8, 65, 0.8),
    ("04-amelie", "583920", "Amélie", "Poulain", "Marketing", "Badge n°", "freefont/FreeSansBold.ttf", "freefont/FreeSans.ttf", 3, 1.2, 5, 60, 1.1),
    ("05-noel", "EMP-00417", "Noël", "Lefèvre", "Logistics", "N° employé :", "dejavu/DejaVuSerif-Bold.ttf", "dejavu/DejaVuSerif.ttf", -4, 0.5, 10, 75, 0.7),
    ("06-zoe", "40Z7731", "Zoé", "Moreau", "Human Resources", "ID:", "dejavu/DejaVuSansCondensed-Bold.ttf", "dejavu/DejaVuSansCondensed.ttf", 11, 0.7, 6, 70, 1.0),
    ("07-jerome", "662108", "Jérôme", "Côté", "Sales", "Employee ID", "freefont/FreeSerifBold.ttf", "freefont/FreeSerif.ttf", -12, 1.0, 7, 62, 0.85),
    ("08-helene", "A90314", "Hélène", "Mercier", "Facilities", "Staff ID:", "liberation/LiberationMono-Bold.ttf", "liberation/LiberationMono-Regular.ttf", 2, 0.4, 12, 80, 0.75),
    ("09-zacharie", "ZK-5521", "Zacharie", "Kowalski", "Engineering", "Badge No:", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSans-ExtraLight.ttf", -2, 1.5, 4, 55, 1.15),
    ("10-ines", "804466", "Inès", "Benali", "Customer Care", "Matricule", "liberation/LiberationSans-Bold.ttf", "liberation/LiberationSans-Regular.ttf", 7, 0.0, 9, 90, 0.65),
    ("11-gaetan", "Z00982", "Gaëtan", "Lemaître", "Procurement", "N° employé", "freefont/FreeSansBold.ttf", "freefont/FreeSans.ttf", -6, 0.9, 6, 68, 0.95),
    ("12-celine", "375014", "Céline", "Nguyen", "Finance", "Employee No.", "dejavu/DejaVuSerif-Bold.ttf", "dejavu/DejaVuSerif.ttf", 4, 0.6, 5, 72, 1.0),
    ("13-upside-down", "519283", "Anaïs", "Rousseau", "IT", "Employee ID:", "liberation/LiberationSans-Bold.ttf", "liberation/LiberationSans-Regular.ttf", 180, 0.5, 6, 70, 0.9),
    ("14-sideways", "ZX7702", "Benoît", "Faure", "Security", "Staff No:", "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSans.ttf", 90, 0.6, 5, 70, 0.95),
    ("15-dim", "260391", "Mélanie", "Girard", "Research", "Matricule :", "freefont/FreeSerifBold.ttf", "freefont/FreeSerif.ttf", -9, 0.8, 10, 60, 0.55),
    ("16-thomas", "118274", "Thomas", "Leroy", "Operations", "ID", "liberation/LiberationSerif-Bold.ttf", "liberation/LiberationSerif-Regular.ttf", 1, 1.1, 8, 58, 1.05),
]

# First names the model reads differently on a given photo, recorded so the golden test
# stays exact (the ID and the directory's name are right on every photo):
# - 02-loic: both wabot and Python RapidOCR 3.10 read "Loic" at any detector size (the
#   diaeresis is lost at that size in Liberation Sans Bold);
# - 13-upside-down: at wabot's default 640 px detector cap the turned photo's name box
#   reads "Anais"; from 800 px up it reads "Anaïs".
READ_AS = {"02-loic": "Loic", "13-upside-down": "Anais"}

# Employees in the example directory who have no badge photo here.
OTHERS = [
    ("330118", "Léa", "Fontaine", "Finance"),
    ("Z10001", "Hugo", "Petit", "IT"),
]


def font(path, size):
    return ImageFont.truetype(str(FONTS / path), size)


def email(first, last):
    import unicodedata

    def ascii_(s):
        return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii()).lower().replace(" ", "")

    return f"{ascii_(first)}.{ascii_(last)}@example.com"


def draw_badge(rng, badge):
    stem, emp_id, first, last, dept, label, bold, regular = badge[:8]
    bw, bh = 860, 540
    colours = [(20, 70, 140), (150, 30, 40), (20, 110, 80), (60, 60, 70), (200, 110, 20)]
    accent = colours[rng.randrange(len(colours))]
    card = Image.new("RGB", (bw, bh), (250, 250, 246))
    d = ImageDraw.Draw(card)
    d.rectangle([0, 0, bw, 92], fill=accent)
    d.text((28, 18), "ACME Corporation", font=font(bold, 46), fill=(255, 255, 255))
    # A logo-like icon in the header and a photo with a silhouette: things OCR must ignore.
    d.ellipse([bw - 84, 14, bw - 20, 78], fill=(255, 255, 255))
    d.polygon([(bw - 52, 22), (bw - 28, 66), (bw - 76, 66)], fill=accent)
    d.rectangle([28, 120, 228, 380], fill=(200, 205, 212))
    d.ellipse([88, 160, 168, 250], fill=(150, 155, 165))
    d.ellipse([58, 260, 198, 400], fill=(150, 155, 165))
    d.rectangle([28, 380, 228, 400], fill=(250, 250, 246))
    x = 262
    d.text((x, 128), first, font=font(bold, 54), fill=(20, 20, 25))
    d.text((x, 194), last.upper(), font=font(bold, 54), fill=(20, 20, 25))
    d.text((x, 272), dept, font=font(regular, 36), fill=(70, 70, 80))
    d.text((x, 340), f"{label} {emp_id}", font=font(bold, 40), fill=(20, 20, 25))
    d.text((28, 440), "Valid until 12/2027", font=font(regular, 30), fill=(90, 90, 100))
    d.rectangle([0, bh - 36, bw, bh], fill=accent)
    return card


def photograph(rng, card, angle, blur, noise, quality, light):
    # A desk: a smooth two-colour gradient.
    top = tuple(rng.randrange(90, 200) for _ in range(3))
    bottom = tuple(max(0, c - rng.randrange(30, 80)) for c in top)
    bg = Image.linear_gradient("L").resize((W, H)).convert("RGB")
    bg = Image.composite(Image.new("RGB", (W, H), bottom), Image.new("RGB", (W, H), top), bg.convert("L"))
    scale = rng.uniform(1.15, 1.4)
    card = card.resize((int(card.width * scale), int(card.height * scale)), Image.BICUBIC)
    mask = Image.new("L", card.size, 255)
    card = card.rotate(angle, resample=Image.BICUBIC, expand=True)
    mask = mask.rotate(angle, resample=Image.BICUBIC, expand=True)
    cx = (W - card.width) // 2 + rng.randrange(-60, 61)
    cy = (H - card.height) // 2 + rng.randrange(-50, 51)
    # A sideways photo is taller than wide: keep the whole badge in the frame.
    cx = min(max(cx, 0), max(W - card.width, 0))
    cy = min(max(cy, 0), max(H - card.height, 0))
    bg.paste(card, (cx, cy), mask)
    # Uneven lighting: a diagonal ramp around `light`.
    ramp = Image.linear_gradient("L").rotate(rng.choice([30, 120, 210, 300]), expand=False).resize((W, H))
    lo, hi = light * 0.75, min(light * 1.15, 1.25)
    lut = [int(255 * (lo + (hi - lo) * i / 255) / 1.25) for i in range(256)]
    ramp = ramp.point(lut)
    bg = Image.composite(bg, Image.new("RGB", (W, H), (0, 0, 0)), ramp.point(lambda v: min(255, int(v * 1.25))))
    if noise:
        grain = Image.effect_noise((W, H), noise).convert("RGB")
        bg = Image.blend(bg, grain, 0.08)
    if blur:
        bg = bg.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    bg.save(buf, "JPEG", quality=quality, optimize=True, progressive=False, subsampling=2)
    return buf.getvalue()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for badge in BADGES:
        stem, emp_id, first, last, dept = badge[:5]
        angle, blur, noise, quality, light = badge[8:]
        rng = random.Random(stem)
        jpeg = photograph(rng, draw_badge(rng, badge), angle, blur, noise, quality, light)
        (OUT / f"{stem}.jpg").write_bytes(jpeg)
        read_as = f"read_as={READ_AS[stem]}\n" if stem in READ_AS else ""
        (OUT / f"{stem}.expected.txt").write_text(f"id={emp_id}\nname={first} {last}\n{read_as}", encoding="utf-8")
        rows.append((emp_id, first, last, email(first, last), dept))
        print(f"{stem}.jpg {len(jpeg) // 1024} KiB")
    rows += [(i, f, l, email(f, l), d) for i, f, l, d in OTHERS]
    with open(ROOT / "corpus" / "employees.example.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "first_name", "last_name", "email", "department"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
