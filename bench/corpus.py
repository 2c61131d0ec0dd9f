"""A labelled near-duplicate corpus built from a folder of distinct photos, in three parts.

* ``standard``: photos kept once (their bytes copied); a seeded ``fraction`` of them (default 40 %) also
  get 1 to 4 copies, each with one edit of :data:`EDITS` (downscale, JPEG quality, brightness, contrast,
  grey, a 80-95 % crop, a small rotation, PNG, a caption). The corpus the first benchmark tables used (docs/benchmarks.md).
* ``hard``: a seeded share of the photos (``hard``, default 20 % of those not in ``near_miss``) get 1 to 3
  copies with the heavier edits people make to copies (:data:`HARD_EDITS`): a crop to 35-65 % of the
  area, an off-centre re-framing, a quarter turn, a mirror image, a 8-20 degree rotation, a border or
  letterbox, a large overlay, blur, a colour shift, a stretched aspect, and two edits at once.
* ``near_miss``: hard negatives. A seeded share of the photos (``near_miss``, default 15 %) is never
  included itself; instead 2 or 3 images with *different* content from it are (:data:`NEAR_MISS`):
  disjoint halves, disjoint quadrants, or crops overlapping by at most a thin strip. Each is its own
  group: a tool that calls them copies of each other removes an image that had no copy.

``truth.csv`` (``path,group,part,edit``) says which files are copies of which photo: a group is the
original photo's name (a near-miss image's group is its own file name). Each edit is one line of a table:
a function (image, rng) -> (image, format, save options); a near-miss maker returns a list of images.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

Edit = Callable[[Image.Image, np.random.Generator], tuple[Image.Image, str, dict]]
Q90 = {"quality": 90}


def _downscale(img, rng):
    f = rng.uniform(0.3, 0.8)
    return img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.Resampling.LANCZOS), "JPEG", Q90


def _crop_box(img, rng, lo: float, hi: float, centred: bool = False):
    fw, fh = rng.uniform(lo, hi), rng.uniform(lo, hi)
    w, h = max(8, round(img.width * fw)), max(8, round(img.height * fh))
    if centred:
        return ((img.width - w) // 2, (img.height - h) // 2, (img.width - w) // 2 + w, (img.height - h) // 2 + h)
    x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
    return (x, y, x + w, y + h)


def _crop(img, rng):
    return img.crop(_crop_box(img, rng, 0.80, 0.95)), "JPEG", Q90


def _caption(img, rng):
    img = img.copy()
    draw = ImageDraw.Draw(img)
    words = ["holiday 2019", "copyright", "best photo", "sample", "do not share", "@user"]
    text = str(rng.choice(words))
    x, y = int(rng.integers(0, max(1, img.width // 2))), int(rng.integers(0, max(1, img.height - 20)))
    draw.rectangle([x - 2, y - 2, x + 8 * len(text) + 2, y + 14], fill=(0, 0, 0))
    draw.text((x, y), text, fill=(255, 255, 255))
    return img, "JPEG", Q90


EDITS: dict[str, Edit] = {
    "downscale": _downscale,
    "jpeg": lambda img, rng: (img, "JPEG", {"quality": int(rng.integers(20, 61))}),
    "brightness": lambda img, rng: (ImageEnhance.Brightness(img).enhance(rng.choice([0.7, 0.8, 1.2, 1.35])), "JPEG", Q90),
    "contrast": lambda img, rng: (ImageEnhance.Contrast(img).enhance(rng.choice([0.7, 0.8, 1.25, 1.4])), "JPEG", Q90),
    "grayscale": lambda img, rng: (ImageOps.grayscale(img), "JPEG", Q90),
    "crop": _crop,
    "rotate": lambda img, rng: (img.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BILINEAR, expand=False), "JPEG", Q90),
    "png": lambda img, rng: (img, "PNG", {}),
    "caption": _caption,
}


# ---- hard copies: what people do to an image they re-post -------------------------------------------------

def _heavy_crop(img, rng):
    """A crop keeping 35-65 % of the area, anywhere in the photo (a re-framed detail)."""
    return img.crop(_crop_box(img, rng, 0.6, 0.8)), "JPEG", Q90


def _reframe(img, rng):
    """An off-centre crop of 50-75 % per side, resized back to the original size (a zoomed re-framing)."""
    return img.crop(_crop_box(img, rng, 0.5, 0.75)).resize(img.size, Image.Resampling.BICUBIC), "JPEG", Q90


def _quarter_turn(img, rng):
    return img.transpose(rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270])), "JPEG", Q90


def _tilt(img, rng):
    """A 8-20 degree rotation, cropped to the largest upright rectangle-ish region (no black corners)."""
    angle = float(rng.uniform(8, 20) * rng.choice([-1, 1]))
    rot = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    m = 0.5 * abs(np.sin(np.radians(angle)))
    return rot.crop((round(img.width * m), round(img.height * m), round(img.width * (1 - m)), round(img.height * (1 - m)))), "JPEG", Q90


def _border(img, rng):
    """A uniform border or a letterbox of 8-25 % of the side, in a random colour."""
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    bx, by = (round(img.width * rng.uniform(0.08, 0.25)), round(img.height * rng.uniform(0.08, 0.25)))
    if rng.random() < 0.5:  # letterbox: bars on two sides only
        bx, by = (bx, 0) if rng.random() < 0.5 else (0, by)
    return ImageOps.expand(img, border=(bx, by, bx, by), fill=colour), "JPEG", Q90


def _overlay(img, rng):
    """A large overlay: a watermark line of text across the photo, or an opaque patch of 10-20 % of it."""
    img = img.copy()
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:
        w, h = round(img.width * rng.uniform(0.3, 0.45)), round(img.height * rng.uniform(0.3, 0.45))
        x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
        draw.rectangle([x, y, x + w, y + h], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    else:
        step = max(12, img.height // 8)
        for y in range(step // 2, img.height, step):
            draw.text((int(rng.integers(0, 20)), y), "WATERMARK  " * 12, fill=(255, 255, 255))
    return img, "JPEG", Q90


def _colour_shift(img, rng):
    """Hue rotation and saturation change (a filter)."""
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(25, 70))) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 255)
    return Image.fromarray(hsv, "HSV").convert("RGB"), "JPEG", Q90


def _stretch(img, rng):
    f = rng.uniform(1.25, 1.6)
    size = (round(img.width * f), img.height) if rng.random() < 0.5 else (img.width, round(img.height * f))
    return img.resize(size, Image.Resampling.BICUBIC), "JPEG", Q90


def _two_edits(img, rng):
    """A crop to 60-80 % per side, then one of: mirror, brightness, small rotation, low JPEG quality."""
    img = img.crop(_crop_box(img, rng, 0.6, 0.8))
    k = int(rng.integers(0, 4))
    if k == 0:
        img = ImageOps.mirror(img)
    elif k == 1:
        img = ImageEnhance.Brightness(img).enhance(rng.choice([0.7, 1.3]))
    elif k == 2:
        img = img.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC)
    return img, "JPEG", {"quality": 35 if k == 3 else 85}


HARD_EDITS: dict[str, Edit] = {
    "heavy_crop": _heavy_crop,
    "reframe": _reframe,
    "quarter_turn": _quarter_turn,
    "mirror": lambda img, rng: (ImageOps.mirror(img), "JPEG", Q90),
    "tilt": _tilt,
    "border": _border,
    "overlay": _overlay,
    "blur": lambda img, rng: (img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.0))), "JPEG", Q90),
    "colour_shift": _colour_shift,
    "stretch": _stretch,
    "two_edits": _two_edits,
}


# ---- near misses: different content from one photo -----------------------------------------------------

def _halves(img, rng):
    """The two halves (left/right or top/bottom), each its own image: no pixel in common."""
    w, h = img.size
    if w >= h:
        return [img.crop((0, 0, w // 2, h)), img.crop((w - w // 2, 0, w, h))]
    return [img.crop((0, 0, w, h // 2)), img.crop((0, h - h // 2, w, h))]


def _quadrants(img, rng):
    """Two or three of the four quadrants."""
    w, h = img.size
    boxes = [(0, 0, w // 2, h // 2), (w - w // 2, 0, w, h // 2), (0, h - h // 2, w // 2, h), (w - w // 2, h - h // 2, w, h)]
    pick = rng.choice(4, size=int(rng.integers(2, 4)), replace=False)
    return [img.crop(boxes[int(i)]) for i in sorted(pick)]


def _thin_overlap(img, rng):
    """Two crops of 52-56 % of the width (or height) from opposite ends: they share a strip of at most
    12 % of the photo, and the second is rescaled (two framings of one scene, not a copy of each other)."""
    w, h = img.size
    f = rng.uniform(0.52, 0.56)
    if w >= h:
        a, b = img.crop((0, 0, round(w * f), h)), img.crop((w - round(w * f), 0, w, h))
    else:
        a, b = img.crop((0, 0, w, round(h * f))), img.crop((0, h - round(h * f), w, h))
    s = rng.uniform(0.6, 0.9)
    return [a, b.resize((max(8, round(b.width * s)), max(8, round(b.height * s))), Image.Resampling.LANCZOS)]


NEAR_MISS: dict[str, Callable[[Image.Image, np.random.Generator], list[Image.Image]]] = {
    "halves": _halves,
    "quadrants": _quadrants,
    "thin_overlap": _thin_overlap,
}
EXT = {"JPEG": ".jpg", "PNG": ".png"}
PARTS = ("standard", "hard", "near_miss")


def _save(path: Path, img: Image.Image, fmt: str, opts: dict) -> None:
    buf = io.BytesIO()
    img.save(buf, fmt, **opts)
    path.write_bytes(buf.getvalue())


def _split(n: int, rng: np.random.Generator, fraction: float, hard: float, near_miss: float) -> tuple[set, set, set]:
    """Which photos get standard copies, hard copies, or become near-miss sources (disjoint sets)."""
    order = rng.permutation(n).tolist()
    k_near = round(near_miss * n)
    near, rest = set(order[:k_near]), order[k_near:]
    k_hard = round(hard * len(rest))
    hard_set = set(rest[:k_hard])
    others = rest[k_hard:]
    standard = set(others[: round(fraction * n)]) if others else set()
    return standard, hard_set, near


def build(src: Path, out: Path, fraction: float = 0.4, seed: int = 0, limit: int | None = None,
          hard: float = 0.2, near_miss: float = 0.15) -> Path:
    """Write OUT/images/{originals,copies,hard,near_miss}/... and OUT/truth.csv; returns the truth path.

    ``hard=0, near_miss=0`` builds the standard part alone (every photo once, ``fraction`` with copies)."""
    rng = np.random.default_rng(seed)
    photos = sorted(p for p in Path(src).iterdir() if p.is_file())
    if limit:
        photos = photos[:limit]
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    for d in ("originals", "copies", "hard", "near_miss"):
        (images / d).mkdir(parents=True)
    if hard or near_miss:
        standard, hard_set, near = _split(len(photos), rng, fraction, hard, near_miss)
    else:  # the original corpus, drawn exactly as before
        standard, hard_set, near = set(rng.choice(len(photos), size=round(fraction * len(photos)), replace=False).tolist()), set(), set()
    rows = []
    for i, photo in enumerate(photos):
        group = photo.stem
        if i in near:
            rows += _near_misses(photo, images / "near_miss", rng)
            continue
        dest = images / "originals" / photo.name
        shutil.copyfile(photo, dest)
        rows.append((str(dest.resolve()), group, "hard" if i in hard_set else "standard", "original"))
        if i in standard:
            rows += _copies(photo, images / "copies", EDITS, int(rng.integers(1, 5)), rng, "standard")
        elif i in hard_set:
            rows += _copies(photo, images / "hard", HARD_EDITS, int(rng.integers(1, 4)), rng, "hard")
    _same_mtime(images)
    truth = out / "truth.csv"
    with open(truth, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "group", "part", "edit"])
        w.writerows(rows)
    return truth


def _same_mtime(images: Path) -> None:
    """Every file gets one modification time: the corpus is written originals first, and a tool that kept
    the oldest file would score on that order, which says nothing about real copies."""
    for p in images.rglob("*"):
        if p.is_file():
            os.utime(p, (1_600_000_000, 1_600_000_000))


def _open(photo: Path) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(photo)).convert("RGB")


def _copies(photo: Path, folder: Path, edits: dict[str, Edit], k: int, rng, part: str) -> list[tuple]:
    img, group, rows = _open(photo), photo.stem, []
    for j, edit in enumerate(rng.choice(list(edits), size=min(k, len(edits)), replace=False)):
        edited, fmt, opts = edits[str(edit)](img, rng)
        path = folder / f"{group}__{j}_{edit}{EXT[fmt]}"
        _save(path, edited, fmt, opts)
        rows.append((str(path.resolve()), group, part, str(edit)))
    return rows


def _near_misses(photo: Path, folder: Path, rng) -> list[tuple]:
    kind = str(rng.choice(list(NEAR_MISS)))
    rows = []
    for j, part in enumerate(NEAR_MISS[kind](_open(photo), rng)):
        path = folder / f"{photo.stem}__{kind}{j}.jpg"
        _save(path, part, "JPEG", Q90)
        rows.append((str(path.resolve()), path.stem, "near_miss", kind))
    return rows
