#!/usr/bin/env python
"""Second, independent hard-case corpus, made with albumentations (HELD OUT: never tune on it).

Run with the venv made by bench/hard/install_albu.sh (NOT the project venv; this script never
imports the `dedup` package):

    bench/work/albu-venv/bin/python bench/hard/make_albu.py \
        --src /work/shared/data/imagenet-samples --out bench/work/albu-seed0 --seed 0 [--per-family 20]
    bench/work/albu-venv/bin/python bench/hard/make_albu.py --check   # every transform, synthetic image

Writes images under OUT plus OUT/truth.csv (path,group,part,edit), OUT/edits.csv (path,params)
and OUT/README.txt, with the same conventions as make_corpus.py: group = the source photo's stem;
every file of one group is a copy of every other; files of different groups are never copies.

Layout:
    originals/<family>/<stem>.jpg        the source photo itself (its JPEG bytes, unchanged)
    copies/<family>/<stem>.jpg|.webp|.png albumentations edits that a person would call copies
    negatives/<family>/<stem>.jpg        the same template/frame/tile on different photos
    control/{jpeg_q60,half_size}/<stem>.jpg  easy positives (two copies per photo)

Only RGB JPEG photos with a short side of at least 200 px are used.  After a seeded shuffle, the
first two are reserved (the pip_tile stock tile and the collage_frame background) and never used
elsewhere; then every family takes the next --per-family photos, so no photo is in two families.
"""
from __future__ import annotations

import argparse
import csv
import math
import random
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

IMAGE_EXTS = {".jpg", ".jpeg"}
MIN_SIDE = 200
JPEG_Q = (80, 95)

# photometric families that chain3 draws from (geometric ones and dropout are left out)
PHOTOMETRIC = ["clahe", "fog", "rain", "shadow", "sun_flare", "iso_noise", "tone_curve", "channel_shuffle",
               "rgb_shift", "motion_blur", "defocus", "equalize"]
COPY_FAMILIES = ["elastic", "grid_distort", "barrel", "clahe", "fog", "rain", "shadow", "sun_flare", "dropout",
                 "iso_noise", "tone_curve", "channel_shuffle", "rgb_shift", "motion_blur", "defocus", "affine_shear",
                 "resized_crop", "equalize", "webp_low", "chain3", "png_resave"]
NEGATIVE_FAMILIES = ["polaroid", "pip_tile", "split_crops", "collage_frame"]
CONTROL = "control"  # two copies per photo: jpeg_q60 and half_size

# fixed templates: the SAME for every photo of a family
CARD_SIZE = (500, 500)  # polaroid card (w, h); the photo window is 60% of its area
CARD_MARGIN = 30
CARD_COLOUR = (244, 240, 228)
WINDOW_COLOUR = (40, 40, 40)
CAPTION = "SUMMER 2024 - WISH YOU WERE HERE"
FRAME_SIZE = (500, 500)  # collage_frame background; the photo sits in its centre 50% (of the area)
FRAME_BORDER = 6
PIP_BORDER = 4

FALLBACKS: dict[str, str] = {}  # family -> the fallback used because a transform is missing


class MissingTransform(Exception):
    pass


def tr(name: str, **kw):
    """albumentations.<name>(p=1, **kw), or MissingTransform when this version lacks it."""
    cls = getattr(A, name, None)
    if cls is None:
        raise MissingTransform(name)
    return cls(p=1.0, **kw)


def fmt(kw: dict) -> str:
    def one(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, (tuple, list)):
            return "(" + ",".join(one(x) for x in v) + ")"
        if isinstance(v, dict):
            return "{" + ",".join(f"{k}:{one(x)}" for k, x in v.items()) + "}"
        return str(v)
    return ",".join(f"{k}={one(v)}" for k, v in kw.items())


def call(name: str, **kw):
    """(transforms, description) for one transform with fixed parameters."""
    return [tr(name, **kw)], f"{name}({fmt(kw)})"


def odd(n: int) -> int:
    return n if n % 2 else n + 1


# ---------------------------------------------------------------------------------------------
# Copy families: each builder takes (rng, w, h) and returns ([transforms], description); the
# random choices are made here, explicitly, so edits.csv holds them; the Compose seed drives
# whatever the transform draws inside itself (noise fields, hole places, rain drops).

def b_elastic(rng, w, h):
    return call("ElasticTransform", alpha=round(rng.uniform(250, 450)), sigma=round(rng.uniform(10, 12), 1),
                border_mode=cv2.BORDER_REFLECT_101)


def b_grid_distort(rng, w, h):
    d = round(rng.uniform(0.3, 0.45), 2)
    return call("GridDistortion", num_steps=rng.choice([4, 5, 6]), distort_limit=(-d, d),
                border_mode=cv2.BORDER_REFLECT_101)


def b_barrel(rng, w, h):
    k = round(rng.uniform(0.45, 0.7), 2) * rng.choice([-1, 1])  # < 0: barrel, > 0: pincushion
    return call("OpticalDistortion", distort_limit=(k, k), border_mode=cv2.BORDER_REFLECT_101)


def b_clahe(rng, w, h):
    c = round(rng.uniform(4, 8), 1)
    return call("CLAHE", clip_limit=(c, c), tile_grid_size=(8, 8))


def b_fog(rng, w, h):
    f = round(rng.uniform(0.25, 0.4), 2)
    return call("RandomFog", fog_coef_range=(f, f), alpha_coef=round(rng.uniform(0.08, 0.12), 2))


def b_rain(rng, w, h):
    s = round(rng.uniform(-15, 15), 1)
    return call("RandomRain", rain_type=rng.choice(["drizzle", "heavy"]), slant_range=(s, s),
                brightness_coefficient=round(rng.uniform(0.75, 0.9), 2), blur_value=rng.choice([3, 5]))


def b_shadow(rng, w, h):
    n = rng.randint(1, 3)
    i = round(rng.uniform(0.45, 0.7), 2)
    return call("RandomShadow", shadow_roi=(0, 0, 1, 1), num_shadows_limit=(n, n), shadow_dimension=rng.choice([4, 5, 6]),
                shadow_intensity_range=(i, i))


def b_sun_flare(rng, w, h):
    return call("RandomSunFlare", flare_roi=(0, 0, 1, 0.5), src_radius=int(max(w, h) * rng.uniform(0.4, 0.6)),
                num_flare_circles_range=(6, 10), method="overlay")


def b_dropout(rng, w, h):
    n = rng.randint(4, 8)
    total = rng.uniform(0.12, 0.25)  # before overlaps; the real share is in edits.csv
    side = round(math.sqrt(total / n), 3)
    fill = rng.choice([0, 128, 255, "random_uniform"])
    return call("CoarseDropout", num_holes_range=(n, n), hole_height_range=(side, side),
                hole_width_range=(side, side), fill=fill)


def b_iso_noise(rng, w, h):
    c, i = round(rng.uniform(0.03, 0.06), 3), round(rng.uniform(0.4, 0.8), 2)
    return call("ISONoise", color_shift=(c, c), intensity=(i, i))


def b_tone_curve(rng, w, h):
    return call("RandomToneCurve", scale=round(rng.uniform(0.2, 0.3), 2), per_channel=rng.random() < 0.5)


def b_channel_shuffle(rng, w, h):
    return call("ChannelShuffle")


def b_rgb_shift(rng, w, h):
    shifts = [round(rng.uniform(40, 80)) * rng.choice([-1, 1]) for _ in range(3)]
    r, g, b = ((s, s) for s in shifts)
    return call("RGBShift", r_shift_limit=r, g_shift_limit=g, b_shift_limit=b)


def b_motion_blur(rng, w, h):
    k = odd(rng.randint(9, 17))
    return call("MotionBlur", blur_limit=(k, k), allow_shifted=False)


def b_defocus(rng, w, h):
    r = rng.randint(3, 6)
    if hasattr(A, "Defocus"):
        return call("Defocus", radius=(r, r), alias_blur=(0.1, 0.3))
    FALLBACKS["defocus"] = "GaussianBlur (Defocus missing)"
    return call("GaussianBlur", blur_limit=(0, 0), sigma_limit=(r / 1.5, r / 1.5))


def b_affine_shear(rng, w, h):
    rot, s = round(rng.uniform(-10, 10), 1), round(rng.uniform(0.9, 1.1), 3)
    sh = round(rng.uniform(5, 15), 1) * rng.choice([-1, 1])
    shear = {"x": (sh, sh), "y": (0, 0)} if rng.random() < 0.5 else {"x": (0, 0), "y": (sh, sh)}
    border = rng.choice([("reflect", cv2.BORDER_REFLECT_101, 0), ("constant", cv2.BORDER_CONSTANT, rng.randrange(256))])
    ts, desc = call("Affine", rotate=(rot, rot), shear=shear, scale=(s, s), fit_output=False,
                    border_mode=border[1], fill=border[2])
    return ts, desc + f";border={border[0]}"


def b_resized_crop(rng, w, h):
    f = rng.uniform(0.6, 1.0)
    size = (max(32, round(h * f)), max(32, round(w * f)))
    return call("RandomResizedCrop", size=size, scale=(0.4, 0.8), ratio=(0.75, 1.333),
                interpolation=cv2.INTER_AREA)


def b_equalize(rng, w, h):
    return call("Equalize", mode=rng.choice(["cv", "pil"]), by_channels=True)


def b_webp_low(rng, w, h):
    q = rng.randint(20, 40)
    return call("ImageCompression", compression_type="webp", quality_range=(q, q))


def b_chain3(rng, w, h):
    fams = rng.sample(PHOTOMETRIC, 3)
    ts, descs = [], []
    for fam in fams:
        t, d = BUILDERS[fam](rng, w, h)
        ts += t
        descs.append(d)
    area = rng.uniform(0.6, 0.9)
    cw, ch = round(w * math.sqrt(area)), round(h * math.sqrt(area))
    t, d = call("RandomCrop", height=ch, width=cw)
    return ts + t, "+".join(descs + [d + f";area={area:.2f}"])


def b_png_resave(rng, w, h):
    f = rng.uniform(0.5, 0.8)
    return call("Resize", height=max(16, round(h * f)), width=max(16, round(w * f)), interpolation=cv2.INTER_AREA)


BUILDERS = {name: globals()[f"b_{name}"] for name in COPY_FAMILIES}
COPY_FORMAT = {"webp_low": "webp", "png_resave": "png"}  # else JPEG


def apply(transforms, img: Image.Image, seed: int) -> tuple[Image.Image, list]:
    out = A.Compose(transforms, seed=seed, save_applied_params=True)(image=np.asarray(img))
    return Image.fromarray(np.ascontiguousarray(out["image"]).astype(np.uint8), "RGB"), out["applied_transforms"]


def dropout_area(p: dict) -> float:
    mask = np.zeros(p["shape"][:2], bool)
    for x1, y1, x2, y2 in p["holes"]:
        mask[y1:y2, x1:x2] = True
    return float(mask.mean())


def applied_note(applied) -> str:
    """What the transforms drew that matters to a reader: dropout's real area, the shuffle."""
    notes = []
    for name, p in applied:
        if name == "CoarseDropout":
            notes.append(f"dropout_area={dropout_area(p):.3f}")
        if name == "ChannelShuffle":
            notes.append(f"channels={list(p['channels_shuffled'])}")
    return ";".join(notes)


def redraw(applied) -> bool:
    """True when a draw missed its family's intent: an identity shuffle, or holes outside 10-25% of the area."""
    for name, p in applied:
        if name == "ChannelShuffle" and list(p["channels_shuffled"]) == [0, 1, 2]:
            return True
        if name == "CoarseDropout" and not 0.10 <= dropout_area(p) <= 0.25:
            return True
    return False


def make_copy(fam: str, img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, list]:
    transforms, desc = BUILDERS[fam](rng, *img.size)
    seed = rng.randrange(1 << 31)
    out, applied = apply(transforms, img, seed)
    for _ in range(50):  # draw again with the next seed (deterministic) until the edit is what the family means
        if not redraw(applied):
            break
        seed += 1
        out, applied = apply(transforms, img, seed)
    note = applied_note(applied)
    return out, f"{desc};seed={seed}" + (f";{note}" if note else ""), transforms


# ---------------------------------------------------------------------------------------------
# Negative families: fixed templates, built once per run (ctx), then the photo goes in.

def find_font() -> str | None:
    try:
        path = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans:bold"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        if path.endswith((".ttf", ".otf")) and Path(path).is_file():
            return path
    except (OSError, subprocess.SubprocessError):
        pass
    p = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    return str(p) if p.is_file() else None


def load_font(path: str | None, size: int):
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def fit(img: Image.Image, box: tuple[int, int]) -> Image.Image:
    """Resize to fit inside box (w, h), keeping the aspect ratio."""
    s = min(box[0] / img.width, box[1] / img.height)
    return img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.LANCZOS)


def cover(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre-crop to the aspect of size, then resize to exactly size."""
    s = max(size[0] / img.width, size[1] / img.height)
    cw, ch = round(size[0] / s), round(size[1] / s)
    x, y = (img.width - cw) // 2, (img.height - ch) // 2
    return img.crop((x, y, x + cw, y + ch)).resize(size, Image.LANCZOS)


def make_card(font_path: str | None) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The polaroid card: off-white frame, a dark window of 60% of the card's area, a caption."""
    cw, ch = CARD_SIZE
    ww = cw - 2 * CARD_MARGIN
    wh = round(0.6 * cw * ch / ww)
    window = (CARD_MARGIN, CARD_MARGIN, CARD_MARGIN + ww, CARD_MARGIN + wh)
    card = Image.new("RGB", CARD_SIZE, CARD_COLOUR)
    draw = ImageDraw.Draw(card)
    draw.rectangle((window[0], window[1], window[2] - 1, window[3] - 1), fill=WINDOW_COLOUR)
    lines = [CAPTION[: CAPTION.index(" - ") + 2], CAPTION[CAPTION.index(" - ") + 3:]]
    size = 60
    while size > 10:
        font = load_font(font_path, size)
        if max(draw.textlength(line, font=font) for line in lines) <= 0.9 * cw:
            break
        size -= 1
    text = "\n".join(lines)
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center", spacing=8)
    tx = (cw - (box[2] - box[0])) // 2 - box[0]
    ty = window[3] + (ch - window[3] - (box[3] - box[1])) // 2 - box[1]
    draw.multiline_text((tx, ty), text, font=font, fill=(30, 30, 60), align="center", spacing=8)
    return card, window


def make_frame_background(photo: Image.Image) -> Image.Image:
    return cover(photo, FRAME_SIZE).filter(ImageFilter.GaussianBlur(12))


def make_context(tile_photo: Image.Image, bg_photo: Image.Image, seed: int) -> dict:
    rng = random.Random(f"{seed}:templates")
    font_path = find_font()
    card, window = make_card(font_path)
    return {"card": card, "window": window, "font": font_path or "Pillow default",
            "tile_photo": tile_photo, "pip_area": round(rng.uniform(0.35, 0.40), 3),
            "pip_corner": rng.choice(["top_left", "top_right", "bottom_left", "bottom_right"]),
            "frame_bg": make_frame_background(bg_photo)}


def n_polaroid(img, ctx):
    card, (x0, y0, x1, y1) = ctx["card"].copy(), ctx["window"]
    photo = fit(img, (x1 - x0, y1 - y0))
    card.paste(photo, (x0 + (x1 - x0 - photo.width) // 2, y0 + (y1 - y0 - photo.height) // 2))
    return card, f"polaroid(card={CARD_SIZE},window={ctx['window']},caption={CAPTION!r},font={ctx['font']})"


def n_pip_tile(img, ctx):
    w, h = img.size
    side = math.sqrt(ctx["pip_area"])
    tw, th = round(w * side), round(h * side)
    x = 0 if ctx["pip_corner"].endswith("left") else w - tw
    y = 0 if ctx["pip_corner"].startswith("top") else h - th
    tile = Image.new("RGB", (tw, th), (255, 255, 255))
    tile.paste(cover(ctx["tile_photo"], (tw - 2 * PIP_BORDER, th - 2 * PIP_BORDER)), (PIP_BORDER, PIP_BORDER))
    out = img.copy()
    out.paste(tile, (x, y))
    return out, f"pip_tile(area={ctx['pip_area']},corner={ctx['pip_corner']},tile={tw}x{th},border={PIP_BORDER})"


def n_collage_frame(img, ctx):
    bg = ctx["frame_bg"].copy()
    side = math.sqrt(0.5)
    ww, wh = round(bg.width * side), round(bg.height * side)
    photo = fit(img, (ww - 2 * FRAME_BORDER, wh - 2 * FRAME_BORDER))
    framed = Image.new("RGB", (photo.width + 2 * FRAME_BORDER, photo.height + 2 * FRAME_BORDER), (255, 255, 255))
    framed.paste(photo, (FRAME_BORDER, FRAME_BORDER))
    bg.paste(framed, ((bg.width - framed.width) // 2, (bg.height - framed.height) // 2))
    return bg, f"collage_frame(bg={FRAME_SIZE},window={ww}x{wh},border={FRAME_BORDER}px white,blur=12)"


def split_crops(img):
    """The left and right 45% of the photo, a 10% gap between them."""
    w, h = img.size
    cw = round(0.45 * w)
    return {"left": img.crop((0, 0, cw, h)), "right": img.crop((w - cw, 0, w, h))}, f"width={cw},gap={w - 2 * cw}"


NEGATIVES = {"polaroid": n_polaroid, "pip_tile": n_pip_tile, "collage_frame": n_collage_frame}


def half_size(img, rng):
    out, _ = apply([tr("Resize", height=max(1, img.height // 2), width=max(1, img.width // 2),
                       interpolation=cv2.INTER_AREA)], img, 0)
    return out, "Resize(0.5,INTER_AREA)"


# ---------------------------------------------------------------------------------------------
# Writing

def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def usable(path: Path) -> bool:
    with Image.open(path) as im:
        return im.format == "JPEG" and im.mode == "RGB" and min(im.size) >= MIN_SIDE


def save(img: Image.Image, path: Path, kind: str, quality: int | None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = img.convert("RGB")
    if kind == "png":
        img.save(path, "PNG", optimize=False, compress_level=6)
        return "png"
    if kind == "webp":
        img.save(path, "WEBP", quality=quality, method=4)
        return f"webp_q={quality}"
    img.save(path, "JPEG", quality=quality)
    return f"q={quality}"


class Corpus:
    def __init__(self, out: Path):
        self.out, self.truth, self.params, self.counts = out, [], [], {}

    def add(self, path: Path, group: str, part: str, edit: str, param: str) -> None:
        rel = path.relative_to(self.out).as_posix()
        self.truth.append((rel, group, part, edit))
        self.params.append((rel, param))
        self.counts[(part, edit)] = self.counts.get((part, edit), 0) + 1

    def original(self, src: Path, fam: str, part: str) -> None:
        dst = self.out / "originals" / fam / f"{src.stem}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        self.add(dst, src.stem, part, "original", "copied bytes")

    def image(self, img, part: str, fam: str, name: str, group: str, edit: str, desc: str, rng, kind="jpg",
              quality: int | None = None) -> None:
        q = quality if quality is not None or kind == "png" else rng.randint(*JPEG_Q)
        dst = self.out / part / fam / f"{name}.{kind}"
        self.add(dst, group, part, edit, f"{desc};{save(img, dst, kind, q)}")

    def write_csvs(self) -> None:
        for name, header, rows in (("truth.csv", ["path", "group", "part", "edit"], self.truth),
                                   ("edits.csv", ["path", "params"], self.params)):
            with open(self.out / name, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(rows)


def build_copies(c: Corpus, fam: str, photos: list[Path], seed: int) -> None:
    rng = random.Random(f"{seed}:{fam}")
    for src in photos:
        c.original(src, fam, "copies")
        img, desc, transforms = make_copy(fam, load_rgb(src), rng)
        q = transforms[0].quality_range[0] if fam == "webp_low" else None  # saved at the quality it was compressed at
        c.image(img, "copies", fam, src.stem, src.stem, fam, desc, rng, COPY_FORMAT.get(fam, "jpg"), q)


def build_negatives(c: Corpus, fam: str, photos: list[Path], seed: int, ctx: dict) -> None:
    rng = random.Random(f"{seed}:{fam}")
    for src in photos:
        img = load_rgb(src)
        if fam == "split_crops":  # no original; two groups that share no pixel
            halves, desc = split_crops(img)
            for side, part_img in halves.items():
                name = f"{src.stem}__{side}"
                c.image(part_img, "negatives", fam, name, name, fam, f"split_crops({side},{desc})", rng)
            continue
        c.original(src, fam, "negatives")
        out, desc = NEGATIVES[fam](img, ctx)
        c.image(out, "negatives", fam, src.stem, src.stem, fam, desc, rng)


def build_control(c: Corpus, photos: list[Path], seed: int) -> None:
    rng = random.Random(f"{seed}:{CONTROL}")
    for src in photos:
        c.original(src, CONTROL, CONTROL)
        img = load_rgb(src)
        dst = c.out / CONTROL / "jpeg_q60" / f"{src.stem}.jpg"
        c.add(dst, src.stem, CONTROL, "jpeg_q60", f"re-save;{save(img, dst, 'jpg', 60)}")
        out, desc = half_size(img, rng)
        c.image(out, CONTROL, "half_size", src.stem, src.stem, "half_size", desc, rng)


README = """Albumentations hard-case corpus (bench/hard/make_albu.py, seed {seed}).

*** HELD OUT: nothing in the project is to be tuned on this corpus (thresholds, features, models,
    family choices).  Use it only to report how the duplicate finder does on edits and hard
    negatives it was never tuned on. ***

truth.csv: path,group,part,edit.  group = the source photo's stem (split_crops: <stem>__left and
<stem>__right); all files of one group are copies of each other, files of different groups never
are, even when they share a template, tile or frame.  edit = "original" for the photo itself
(under originals/<family>/, its JPEG bytes unchanged), else the family name.
edits.csv: path,params with the exact parameters (and the albumentations Compose seed) of each file.

Versions: albumentations {albu}, opencv {cv2}, numpy {np}, Pillow {pil}.  Font: {font}.
Photos: {n_src} usable (RGB JPEG, short side >= {min_side}); 2 reserved for templates
({tile} = pip_tile's stock tile, {bg} = collage_frame's background); {per_family} photos per family,
each photo in one family only.

part copies (positives; one copy per photo; JPEG q {q0}-{q1} unless said):
  elastic ElasticTransform alpha 250-450 sigma 10-12 | grid_distort GridDistortion +-0.30-0.45
  barrel OpticalDistortion k +-0.45-0.70 | clahe CLAHE clip 4-8 | fog RandomFog 0.25-0.4
  rain RandomRain drizzle/heavy | shadow RandomShadow 1-3 | sun_flare RandomSunFlare radius 40-60% of the long side
  dropout CoarseDropout 4-8 holes covering 10-25% of the area (redrawn otherwise; real share in edits.csv)
  iso_noise ISONoise | tone_curve RandomToneCurve 0.2-0.3 | channel_shuffle ChannelShuffle (never identity, also in chain3)
  rgb_shift RGBShift 40-80 per channel | motion_blur MotionBlur 9-17 px | defocus Defocus radius 3-6
  affine_shear Affine rotate +-10, shear 5-15 deg (x or y), scale 0.9-1.1, same size, reflect or constant
  resized_crop RandomResizedCrop 40-80% of the area, to 60-100% of the photo's size
  equalize Equalize (cv or pil) | webp_low ImageCompression webp q 20-40, saved .webp at that quality
  chain3 3 of the photometric families + RandomCrop of 60-90% of the area
  png_resave Resize to 50-80% (INTER_AREA), saved .png
part negatives (each file in its photo's group only; different photos must not match):
  polaroid       photo fitted into the 60%-area window of one fixed {card} card, caption {caption!r}
  pip_tile       the same stock tile over the same {pip_area:.1%} {pip_corner} corner of each photo
  split_crops    left 45% and right 45% of one photo (10% gap), groups <stem>__left / <stem>__right,
                 no original
  collage_frame  photo in the centre 50% of one fixed blurred background, 6-px white border
part control (easy positives, two copies per photo): jpeg_q60 (re-save q=60), half_size (JPEG q {q0}-{q1})

Fallbacks / skipped in this build: {fallbacks}
  (policy: defocus uses GaussianBlur, sigma = radius / 1.5, when Defocus is missing; a family whose
  other transform is missing is skipped and named here; bench/hard/install_albu.sh installs 2.0.8)

Counts ({n_files} image files):
{counts}
"""


def write_readme(c: Corpus, args, n_src: int, reserved: list[Path], ctx: dict, skipped: dict) -> None:
    notes = [f"{f}: {why}" for f, why in {**FALLBACKS, **skipped}.items()] or ["none"]
    counts = "\n".join(f"  {part:10s} {edit:16s} {n}" for (part, edit), n in sorted(c.counts.items()))
    (c.out / "README.txt").write_text(README.format(
        seed=args.seed, albu=A.__version__, cv2=cv2.__version__, np=np.__version__, pil=version("Pillow"),
        font=ctx["font"], n_src=n_src, min_side=MIN_SIDE, tile=reserved[0].stem, bg=reserved[1].stem,
        per_family=args.per_family, q0=JPEG_Q[0], q1=JPEG_Q[1], card=f"{CARD_SIZE[0]}x{CARD_SIZE[1]}",
        caption=CAPTION, pip_area=ctx["pip_area"], pip_corner=ctx["pip_corner"], fallbacks="; ".join(notes),
        n_files=len(c.truth), counts=counts))


def assign(photos: list[Path], per_family: int) -> list[tuple[str, str, list[Path]]]:
    fams = [("copies", f) for f in COPY_FAMILIES] + [("negatives", f) for f in NEGATIVE_FAMILIES] + [(CONTROL, CONTROL)]
    k = min(per_family, len(photos) // len(fams))
    return [(part, fam, photos[i * k:(i + 1) * k]) for i, (part, fam) in enumerate(fams)]


def prepare_out(out: Path) -> bool:
    if out.exists():
        if any(out.iterdir()) and not (out / "truth.csv").exists():
            print(f"{out} exists, is not empty and holds no truth.csv: refusing to overwrite", file=sys.stderr)
            return False
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return True


def build(args) -> int:
    photos = sorted(p for p in args.src.iterdir() if p.suffix.lower() in IMAGE_EXTS and usable(p))
    if len(photos) < 3:
        print(f"too few usable photos in {args.src}", file=sys.stderr)
        return 2
    random.Random(args.seed).shuffle(photos)
    reserved, photos = photos[:2], photos[2:]
    if not prepare_out(args.out):
        return 2
    ctx = make_context(load_rgb(reserved[0]), load_rgb(reserved[1]), args.seed)
    c, skipped = Corpus(args.out), {}
    for part, fam, plist in assign(photos, args.per_family):
        try:
            if part == "copies":
                build_copies(c, fam, plist, args.seed)
            elif part == "negatives":
                build_negatives(c, fam, plist, args.seed, ctx)
            else:
                build_control(c, plist, args.seed)
        except MissingTransform as e:
            skipped[fam] = f"skipped, albumentations {A.__version__} lacks {e}"
            print(f"SKIPPED {fam}: {skipped[fam]}", file=sys.stderr)
    c.write_csvs()
    write_readme(c, args, len(photos) + 2, reserved, ctx, skipped)
    print(f"wrote {len(c.truth)} images to {args.out} (albumentations {A.__version__})")
    for (part, edit), n in sorted(c.counts.items()):
        print(f"  {part:10s} {edit:16s} {n}")
    return 0


def check() -> int:
    """Every family on a synthetic image: transforms present, output an RGB image no larger."""
    rs = np.random.RandomState(0)
    yy, xx = np.mgrid[0:240, 0:320]
    base = np.stack([xx * 255 // 320, yy * 255 // 240, (xx + yy) * 255 // 560], -1)
    img = Image.fromarray(np.clip(base + rs.randint(-30, 30, base.shape), 0, 255).astype(np.uint8), "RGB")
    ctx = make_context(img.rotate(90, expand=True), img.transpose(Image.FLIP_LEFT_RIGHT), 0)
    bad = 0
    for fam in COPY_FAMILIES + list(NEGATIVES) + ["split_crops", "half_size"]:
        rng = random.Random(fam)
        try:
            if fam in BUILDERS:
                out, desc, _ = make_copy(fam, img, rng)
            elif fam in NEGATIVES:
                out, desc = NEGATIVES[fam](img, ctx)
            elif fam == "split_crops":
                halves, desc = split_crops(img)
                out = halves["left"]
            else:
                out, desc = half_size(img, rng)
            assert out.mode == "RGB" and out.width * out.height > 0, "empty"
            limit = CARD_SIZE if fam in NEGATIVES and fam != "pip_tile" else img.size
            assert out.width <= limit[0] and out.height <= limit[1], f"{out.size} > {limit}"
            tag = f"fallback {FALLBACKS[fam]}" if fam in FALLBACKS else "ok"
            print(f"  {tag:4s} {fam:16s} {out.size} {desc[:90]}")
        except Exception as e:  # report every family, then fail
            bad += 1
            print(f"  FAIL {fam:16s} {type(e).__name__}: {e}")
    print(f"  albumentations {A.__version__}, opencv {cv2.__version__}, numpy {np.__version__}, Pillow {version('Pillow')}")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-family", type=int, default=20, help="photos per family (default 20)")
    ap.add_argument("--check", action="store_true", help="run every transform on a synthetic image and exit")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    if args.src is None or args.out is None:
        ap.error("--src and --out are required (or --check)")
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
