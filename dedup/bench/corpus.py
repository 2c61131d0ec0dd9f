"""A labelled near-duplicate corpus built from a folder of distinct photos.

Every photo is kept once (its bytes copied). A seeded random subset (``fraction``, default 40 %) also gets
1 to 4 edited copies, each edit drawn from :data:`EDITS`. ``truth.csv`` (``path,group``) says which files
are copies of which photo: a group is the original photo's name.

Each edit is one line of :data:`EDITS`: a function (image, rng) -> (image, format, save options).
"""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

Edit = Callable[[Image.Image, np.random.Generator], tuple[Image.Image, str, dict]]


def _downscale(img, rng):
    f = rng.uniform(0.3, 0.8)
    return img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.LANCZOS), "JPEG", {"quality": 90}


def _crop(img, rng):
    fw, fh = rng.uniform(0.80, 0.95), rng.uniform(0.80, 0.95)
    w, h = round(img.width * fw), round(img.height * fh)
    x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
    return img.crop((x, y, x + w, y + h)), "JPEG", {"quality": 90}


def _caption(img, rng):
    img = img.copy()
    draw = ImageDraw.Draw(img)
    words = ["holiday 2019", "copyright", "best photo", "sample", "do not share", "@user"]
    text = str(rng.choice(words))
    x, y = int(rng.integers(0, max(1, img.width // 2))), int(rng.integers(0, max(1, img.height - 20)))
    draw.rectangle([x - 2, y - 2, x + 8 * len(text) + 2, y + 14], fill=(0, 0, 0))
    draw.text((x, y), text, fill=(255, 255, 255))
    return img, "JPEG", {"quality": 90}


EDITS: dict[str, Edit] = {
    "downscale": _downscale,
    "jpeg": lambda img, rng: (img, "JPEG", {"quality": int(rng.integers(20, 61))}),
    "brightness": lambda img, rng: (ImageEnhance.Brightness(img).enhance(rng.choice([0.7, 0.8, 1.2, 1.35])), "JPEG", {"quality": 90}),
    "contrast": lambda img, rng: (ImageEnhance.Contrast(img).enhance(rng.choice([0.7, 0.8, 1.25, 1.4])), "JPEG", {"quality": 90}),
    "grayscale": lambda img, rng: (ImageOps.grayscale(img), "JPEG", {"quality": 90}),
    "crop": _crop,
    "rotate": lambda img, rng: (img.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BILINEAR, expand=False), "JPEG", {"quality": 90}),
    "png": lambda img, rng: (img, "PNG", {}),
    "caption": _caption,
}
EXT = {"JPEG": ".jpg", "PNG": ".png"}


def build(src: Path, out: Path, fraction: float = 0.4, seed: int = 0, limit: int | None = None) -> Path:
    """Write OUT/images/... and OUT/truth.csv; returns the truth path."""
    rng = np.random.default_rng(seed)
    photos = sorted(p for p in Path(src).iterdir() if p.is_file())
    if limit:
        photos = photos[:limit]
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    (images / "originals").mkdir(parents=True)
    (images / "copies").mkdir(parents=True)
    rows = []
    chosen = set(rng.choice(len(photos), size=round(fraction * len(photos)), replace=False).tolist())
    names = list(EDITS)
    for i, photo in enumerate(photos):
        group = photo.stem
        dest = images / "originals" / photo.name
        shutil.copyfile(photo, dest)
        rows.append((str(dest.resolve()), group))
        if i not in chosen:
            continue
        img = Image.open(photo)
        img = ImageOps.exif_transpose(img).convert("RGB")
        for k, edit in enumerate(rng.choice(names, size=int(rng.integers(1, 5)), replace=False)):
            edited, fmt, opts = EDITS[str(edit)](img, rng)
            path = images / "copies" / f"{group}__{k}_{edit}{EXT[fmt]}"
            buf = io.BytesIO()
            edited.save(buf, fmt, **opts)
            path.write_bytes(buf.getvalue())
            rows.append((str(path.resolve()), group))
    truth = out / "truth.csv"
    with open(truth, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "group"])
        w.writerows(rows)
    return truth
