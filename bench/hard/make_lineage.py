#!/usr/bin/env python
"""Kept-image corpus generator: each photo with copies made from it by chains of AugLy edits.

Run with the AugLy venv made by bench/hard/install.sh (NOT the project venv; this script never
imports the `dedup` package):

    bench/work/augly-venv/bin/python bench/hard/make_lineage.py \
        --src /work/shared/data/imagenet-samples --out bench/work/lineage-seed0 --seed 0 [--photos 500]

Writes OUT/truth.csv (path,group,part,edit,family,parent,chain) and the images. ``group`` is the
photo's stem; every file of a group is a copy of the photo, which is the one with edit ``original``
(its bytes, untouched). ``parent`` is the file a copy was made from (the original or an earlier copy
of the group: chains of copies), ``chain`` the edits that made it from its parent.

Protocol (issue 25): photos are split by a seeded shuffle into 70 % "tune" and 30 % "heldout" photos.
Each group has one lead family; every copy of the group carries the lead family's edit, with 0-2
other edits drawn from the tune families around it. Groups of tune photos use only tune families
(part ``tune``); heldout photos are spread over the tune families (part ``heldout_photos``: the same
edits on photos never looked at) and the held-out families (part ``heldout_family``: edits never
used while choosing; ``--heldout second``, for seeds 2 and later, another set of them). A family name says
the evidence it removes or adds, not how it is scored.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

import augly.image as imaugs
import augly.utils as autils

FONT = os.path.join(autils.FONTS_DIR, "Raleway-ExtraBold.ttf")
SCREENSHOTS = [os.path.join(autils.SCREENSHOT_TEMPLATES_DIR, n) for n in ("web.png", "mobile.png")]
EMOJI = sorted(str(p) for p in Path(autils.EMOJI_DIR).rglob("*.png"))
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CAPTIONS = ["SO TRUE", "MONDAY MOOD", "WHEN THE BUILD IS GREEN", "NOBODY:", "ME EVERY MORNING", "BREAKING"]


def _text(img, rng, size):
    import pickle
    with open(os.path.splitext(FONT)[0] + ".pkl", "rb") as f:
        chars = pickle.load(f)
    pos = {c: i for i, c in enumerate(chars)}
    words = rng.choice(CAPTIONS)
    idx = [pos[ord(ch)] for ch in words if ord(ch) in pos]
    colour = rng.choice([(255, 255, 255), (0, 0, 0), (255, 230, 0)])
    out = imaugs.overlay_text(img, text=idx, font_file=FONT, font_size=size, opacity=1.0, color=colour,
                              x_pos=rng.uniform(0.02, 0.3), y_pos=rng.choice([rng.uniform(0.02, 0.1), rng.uniform(0.75, 0.85)]))
    return out, f"overlay_text({words!r},size={size:.2f})"


# ---- edits: (img, rng) -> (img, params) ------------------------------------------------------
def downscale(img, rng):
    f = rng.uniform(0.3, 0.7)
    return imaugs.scale(img, factor=f), f"scale({f:.2f})"


def upscale(img, rng):
    f = rng.uniform(1.3, 2.0)
    return imaugs.scale(img, factor=f), f"scale({f:.2f})"


def squeeze(img, rng):
    r = rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.3, 1.8)])
    return imaugs.change_aspect_ratio(img, ratio=r * img.width / img.height), f"change_aspect_ratio(x{r:.2f})"


def crop(img, rng):
    s = rng.uniform(0.5, 0.85)
    x, y = rng.uniform(0, 1 - s), rng.uniform(0, 1 - s)
    return imaugs.crop(img, x1=x, y1=y, x2=x + s, y2=y + s), f"crop({s:.2f})"


def border(img, rng):
    c = rng.choice([(0, 0, 0), (255, 255, 255), (200, 30, 30), (128, 128, 128)])
    f = rng.uniform(0.05, 0.2)
    return imaugs.pad(img, w_factor=f, h_factor=f, color=c), f"pad({f:.2f},{c})"


def pad_square(img, rng):
    c = rng.choice([(0, 0, 0), (255, 255, 255)])
    return imaugs.pad_square(img, color=c), f"pad_square({c})"


def canvas(img, rng):
    bg = Image.new("RGB", (1024, 768), tuple(int(v) for v in rng.choice([(240, 240, 235), (30, 30, 40), (90, 140, 200)])))
    s = rng.uniform(0.4, 0.7)
    return imaugs.overlay_onto_background_image(img, background_image=bg, overlay_size=s, x_pos=rng.uniform(0.05, 0.2),
                                                y_pos=rng.uniform(0.05, 0.25)), f"overlay_onto_background_image({s:.2f})"


def blur(img, rng):
    r = rng.uniform(1.5, 4.0)
    return imaugs.blur(img, radius=r), f"blur({r:.1f})"


def sharpen(img, rng):
    f = rng.uniform(2.0, 5.0)
    return imaugs.sharpen(img, factor=f), f"sharpen({f:.1f})"


def brightness(img, rng):
    f = rng.choice([rng.uniform(0.5, 0.75), rng.uniform(1.3, 1.7)])
    return imaugs.brightness(img, factor=f), f"brightness({f:.2f})"


def contrast(img, rng):
    f = rng.choice([rng.uniform(0.5, 0.7), rng.uniform(1.4, 2.0)])
    return imaugs.contrast(img, factor=f), f"contrast({f:.2f})"


def saturation(img, rng):
    f = rng.choice([rng.uniform(0.2, 0.5), rng.uniform(1.6, 2.5)])
    return imaugs.saturation(img, factor=f), f"saturation({f:.2f})"


def grayscale(img, rng):
    return imaugs.grayscale(img), "grayscale"


def jitter(img, rng):
    b, c, s = (rng.uniform(0.7, 1.3) for _ in range(3))
    return imaugs.color_jitter(img, brightness_factor=b, contrast_factor=c, saturation_factor=s), f"color_jitter({b:.2f},{c:.2f},{s:.2f})"


def jpeg_low(img, rng):
    q = rng.randint(10, 40)
    return imaugs.encoding_quality(img, quality=q), f"encoding_quality({q})"


def hflip(img, rng):
    return imaugs.hflip(img), "hflip"


def rot90(img, rng):
    a = rng.choice([90, 270])
    return img.rotate(a, expand=True), f"rotate({a})"


def tilt(img, rng):
    d = rng.uniform(8, 25) * rng.choice([-1, 1])
    return imaugs.rotate(img, degrees=d), f"augly.rotate({d:.1f})"


def perspective(img, rng):
    s = rng.uniform(15, 35)
    return imaugs.perspective_transform(img, sigma=s, seed=rng.randrange(1 << 30)), f"perspective({s:.0f})"


def caption(img, rng):
    return _text(img, rng, rng.uniform(0.08, 0.14))


def meme(img, rng):
    t = rng.choice(CAPTIONS)
    h = rng.randint(80, 200)
    return imaugs.meme_format(img, text=t, caption_height=h), f"meme_format({t!r},{h})"


def screenshot(img, rng):
    t = rng.choice(SCREENSHOTS)
    return imaugs.overlay_onto_screenshot(img, template_filepath=t), f"overlay_onto_screenshot({os.path.basename(t)})"


def watermark(img, rng):
    return _text(img, rng, rng.uniform(0.05, 0.08))


def pixelate(img, rng):
    r = rng.uniform(0.3, 0.6)
    return imaugs.pixelization(img, ratio=r), f"pixelization({r:.2f})"


def sepia(img, rng):
    g = np.asarray(img.convert("RGB"), np.float32)
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    return Image.fromarray(np.clip(g @ m.T, 0, 255).astype(np.uint8)), "sepia"


def sticker(img, rng):
    e = rng.choice(EMOJI)
    s = rng.uniform(0.15, 0.3)
    return imaugs.overlay_emoji(img, emoji_path=e, emoji_size=s, x_pos=rng.uniform(0.05, 0.6), y_pos=rng.uniform(0.05, 0.6)), \
        f"overlay_emoji({Path(e).name},{s:.2f})"


def skew(img, rng):
    f = rng.uniform(0.2, 0.5) * rng.choice([-1, 1])
    return imaugs.skew(img, skew_factor=f, axis=rng.choice([0, 1])), f"skew({f:.2f})"


def noise(img, rng):
    v = rng.uniform(0.005, 0.03)
    return imaugs.random_noise(img, var=v, seed=rng.randrange(1 << 30)), f"random_noise({v:.3f})"


def stripes(img, rng):
    return imaugs.overlay_stripes(img, line_width=0.3, line_density=rng.uniform(0.3, 0.6), line_opacity=rng.uniform(0.4, 0.7),
                                  line_angle=rng.uniform(-45, 45)), "overlay_stripes"


# held-out families: never used while choosing (made before any result on them was seen)
def zoom(img, rng):
    s = rng.uniform(0.6, 0.85)
    x, y = rng.uniform(0, 1 - s), rng.uniform(0, 1 - s)
    w, h = img.size
    out = imaugs.crop(img, x1=x, y1=y, x2=x + s, y2=y + s)
    return out.resize((w, h), Image.BICUBIC), f"crop({s:.2f})+resize_back"


def vignette(img, rng):
    w, h = img.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) / np.sqrt(2)
    k = rng.uniform(0.5, 0.9)
    mask = np.clip(1 - k * r ** 2, 0, 1)[..., None]
    return Image.fromarray((np.asarray(img, np.float32) * mask).astype(np.uint8)), f"vignette({k:.2f})"


def posterize(img, rng):
    b = rng.choice([3, 4])
    return ImageOps.posterize(img, b), f"posterize({b})"


def logo(img, rng):
    w, h = img.size
    side = max(16, int(min(w, h) * rng.uniform(0.15, 0.25)))
    mark = Image.new("RGB", (side, side), tuple(rng.randint(0, 255) for _ in range(3)))
    inner = Image.new("RGB", (side // 2, side // 2), tuple(rng.randint(0, 255) for _ in range(3)))
    mark.paste(inner, (side // 4, side // 4))
    out = img.copy()
    out.paste(mark, (rng.choice([8, w - side - 8]), rng.choice([8, h - side - 8])))
    return out, f"logo({side}px)"


def warm(img, rng):
    a = np.asarray(img, np.float32) / 255.0
    lift = rng.uniform(0.05, 0.15)
    r = np.clip(a[..., 0] ** 0.85 * 1.05, 0, 1)
    g = a[..., 1]
    b = np.clip(a[..., 2] * 0.8 + lift, 0, 1)
    return Image.fromarray((np.stack([r, g, b], -1) * 255).astype(np.uint8)), f"warm_filter(lift={lift:.2f})"


# a second set of held-out families, for seeds 2 and later: made (issue 25, 2026-12-07) before any result on
# them was seen, after the first set had been looked at; never used while choosing anything
def gamma(img, rng):
    g = rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.25, 1.6)])
    return img.point([int(round(255 * (i / 255) ** g)) for i in range(256)] * 3), f"gamma({g:.2f})"


def autocontrast(img, rng):
    c = rng.uniform(0.5, 3.0)
    return ImageOps.autocontrast(img, cutoff=c), f"autocontrast(cutoff={c:.1f})"


def fade(img, rng):
    a = rng.uniform(0.15, 0.35)
    tint = Image.new("RGB", img.size, rng.choice([(255, 255, 255), (250, 240, 220), (20, 20, 30)]))
    return Image.blend(img, tint, a), f"fade({a:.2f})"


def blur_pad(img, rng):
    w, h = img.size
    side = max(w, h)
    back = img.resize((side, side), Image.BILINEAR).filter(ImageFilter.GaussianBlur(side / 30))
    back.paste(img, ((side - w) // 2, (side - h) // 2))
    return back, "blur_pad(square)"


def gif(img, rng):
    n = rng.choice([64, 128, 256])
    return img.quantize(colors=n, dither=Image.FLOYDSTEINBERG).convert("RGB"), f"gif_palette({n})"


TUNE = {f.__name__: f for f in (downscale, upscale, squeeze, crop, border, pad_square, canvas, blur, sharpen, brightness,
                                contrast, saturation, grayscale, jitter, jpeg_low, hflip, rot90, tilt, perspective,
                                caption, meme, screenshot, watermark, pixelate, sepia, sticker, skew, noise,
                                stripes)}
HELDOUT_SETS = {"first": (zoom, vignette, posterize, logo, warm), "second": (gamma, autocontrast, fade, blur_pad, gif)}
# Extra edits chained around the lead one: the common, mild ones (a re-post is resized and re-encoded).
MILD = ["downscale", "crop", "brightness", "contrast", "saturation", "jitter", "hflip", "border", "caption"]


def save(img: Image.Image, path: Path, rng: random.Random) -> str:
    """A copy as a user finds it: mostly JPEG (quality 65-98), some PNG and WebP re-saves."""
    kind = rng.choices(["jpg", "png", "webp"], [0.75, 0.12, 0.13])[0]
    path = path.with_suffix("." + kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = img.convert("RGB")
    if kind == "jpg":
        q = rng.randint(65, 98)
        img.save(path, "JPEG", quality=q)
        return path, f"jpeg(q={q})"
    if kind == "png":
        img.save(path, "PNG")
        return path, "png"
    q = rng.randint(70, 90)
    import cv2  # this Pillow build may lack WebP (install.sh adds OpenCV to the venv)
    cv2.imwrite(str(path), np.asarray(img)[:, :, ::-1], [cv2.IMWRITE_WEBP_QUALITY, q])
    return path, f"webp(q={q})"


def _read(path: Path) -> Image.Image:
    if path.suffix == ".webp":
        import cv2
        return Image.fromarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].copy())
    with Image.open(path) as im:
        return im.convert("RGB")


def make_group(src: Path, out: Path, part: str, family: str, edit, rng: random.Random, copies: int) -> list[dict]:
    stem = src.stem
    orig = out / part / family / stem / f"{stem}{src.suffix.lower()}"
    orig.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, orig)
    with Image.open(src) as im:
        base = ImageOps.exif_transpose(im).convert("RGB")
    made = [(orig, base)]
    rows = [dict(path=str(orig.relative_to(out)), group=stem, part=part, edit="original", family=family, parent="", chain="")]
    for k in range(copies):
        parent_path, parent = made[0] if k == 0 or rng.random() < 0.5 else rng.choice(made[1:])
        names = [family] + rng.sample(MILD, rng.choice([0, 1, 1, 2]))
        rng.shuffle(names)
        img, steps = parent, []
        for name in names:
            fn = edit if name == family else TUNE[name]
            img, p = fn(img, rng)
            img = img.convert("RGB")
            steps.append(p)
        path, enc = save(img, out / part / family / stem / f"copy{k}", rng)
        steps.append(enc)
        made.append((path, _read(path)))
        rows.append(dict(path=str(path.relative_to(out)), group=stem, part=part, edit=family, family=family,
                         parent=str(parent_path.relative_to(out)), chain=" > ".join(steps)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--copies", type=int, default=3, help="copies per photo (default 3)")
    ap.add_argument("--heldout", choices=sorted(HELDOUT_SETS), default="first",
                    help="the held-out families (default: first; seeds 2 and later use the second)")
    args = ap.parse_args(argv)
    if args.out.exists():
        if not (args.out / "truth.csv").exists() and any(args.out.iterdir()):
            sys.exit(f"{args.out} is not empty and holds no truth.csv: not deleting it")
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    rng = random.Random(args.seed)
    heldout = {f.__name__: f for f in HELDOUT_SETS[args.heldout]}
    photos = sorted(p for p in args.src.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    rng.shuffle(photos)
    photos = photos[:args.photos]
    cut = int(round(0.7 * len(photos)))
    plan = [(p, "tune", list(TUNE)[i % len(TUNE)]) for i, p in enumerate(photos[:cut])]
    held = photos[cut:]
    half = len(held) // 2
    plan += [(p, "heldout_photos", list(TUNE)[i % len(TUNE)]) for i, p in enumerate(held[:half])]
    plan += [(p, "heldout_family", list(heldout)[i % len(heldout)]) for i, p in enumerate(held[half:])]
    rows = []
    for i, (p, part, family) in enumerate(plan):
        g_rng = random.Random(f"{args.seed}-{p.name}")
        np.random.seed(g_rng.randrange(1 << 31))  # AugLy's few unseeded draws
        fn = TUNE.get(family) or heldout[family]
        try:
            rows += make_group(p, args.out, part, family, fn, g_rng, args.copies)
        except Exception as e:  # noqa: BLE001 - a photo an edit cannot take is left out, and said
            print(f"skipped {p.name} ({family}): {type(e).__name__}: {e}", file=sys.stderr)
        if i % 50 == 0:
            print(f"{i}/{len(plan)}", file=sys.stderr)
    with open(args.out / "truth.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} files, {len(plan)} groups -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
