#!/usr/bin/env python
"""Hard-case corpus generator for the content check (template negatives, warped positives).

Run with the AugLy venv made by bench/hard/install.sh (NOT the project venv; this script never
imports the `dedup` package):

    bench/work/augly-venv/bin/python bench/hard/make_corpus.py \
        --src /work/shared/data/imagenet-samples --out bench/work/hard-seed0 --seed 0 [--limit N]

Writes images under OUT plus OUT/truth.csv (path,group,part,edit), OUT/edits.csv (path,params)
and OUT/README.txt.  group = the source photo's file stem: every file of one group is a copy of
every other; files of different groups are NOT copies, even when they share a template/frame.

Layout:
    originals/<family>/<stem>.jpg      the source photo itself (its bytes, or q=95 if not RGB JPEG)
    <part>/<family>/<stem>.jpg         the edited copy (JPEG quality 85-95, seeded)

Photos are split by a seeded shuffle into 70% "tune" and 30% "heldout" photos (disjoint); each
photo is used by exactly one family.  Families of part `heldout` only ever use heldout photos.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import pickle
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

import augly.image as imaugs
import augly.utils as autils

# ---------------------------------------------------------------------------------------------
# Families.  (part, family, kind) where kind "template" = the same overlay/frame on different
# photos (negatives between copies of different photos), "warp" = geometric positives.
TEMPLATE_FAMILIES = ["screenshot", "meme", "watermark"]
WARP_FAMILIES = ["letterbox", "perspective", "aspect", "rotate20", "canvas", "mirror_chain"]
HELDOUT_FAMILIES = ["emoji_template", "shear_pad", "caption_bar"]
CONTROL_FAMILY = "standard_control"  # two copies per photo: jpeg_q70 and downscale_0.5
# Added later, after the others' photos (so theirs stay the same): a second screenshot template and a photo
# on a plain canvas (one whose outline may have no edge in grey).
LATER_FAMILIES = [("template", "mobile_screenshot"), ("warp", "plain_canvas")]

# Fixed template parameters: the SAME for every photo of a family.
SCREENSHOT_TEMPLATE = os.path.join(autils.SCREENSHOT_TEMPLATES_DIR, "web.png")
MOBILE_TEMPLATE = os.path.join(autils.SCREENSHOT_TEMPLATES_DIR, "mobile.png")
MEME_TEXT = "WHEN THE BUILD IS GREEN"
WATERMARK_TEXT = "(c) STOCKPIX.COM"
WATERMARK_FONT = os.path.join(autils.FONTS_DIR, "Raleway-ExtraBold.ttf")
EMOJI_FILE = os.path.join(autils.EMOJI_DIR, "smileys", "smiling_face_with_sunglasses.png")
CAPTION_TEXT = "BREAKING NEWS  |  CHANNEL 7"
CAPTION_FONT = os.path.join(autils.FONTS_DIR, "Raleway-ExtraBold.ttf")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def save_jpeg(img: Image.Image, path: Path, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(path, "JPEG", quality=quality)


def save_original(src: Path, dst: Path) -> str:
    """Copy the source bytes when it already is an RGB or greyscale JPEG, else re-save RGB q=95."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        fmt, mode = im.format, im.mode
    if fmt == "JPEG" and mode in ("RGB", "L"):
        shutil.copyfile(src, dst)
        return "copied bytes"
    save_jpeg(load_rgb(src), dst, 95)
    return f"re-saved q=95 (was {fmt}/{mode})"


def text_indices(font_file: str, text: str) -> list[int]:
    """AugLy's overlay_text takes indices into the font's .pkl code-point list."""
    with open(os.path.splitext(font_file)[0] + ".pkl", "rb") as f:
        chars = pickle.load(f)
    pos = {c: i for i, c in enumerate(chars)}
    missing = [ch for ch in text if ord(ch) not in pos]
    if missing:
        raise ValueError(f"font {font_file} lacks {missing}")
    return [pos[ord(ch)] for ch in text]


def make_canvas_background(seed: int, size=(1024, 768)) -> Image.Image:
    """A fixed synthetic textured background (gradient + soft noise + grid), same for all copies."""
    rs = np.random.RandomState(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        90 + 80 * xx / w,
        110 + 60 * yy / h,
        150 - 50 * (xx + yy) / (w + h),
    ], axis=-1)
    noise = rs.normal(0, 1, (h // 16 + 1, w // 16 + 1, 3)).astype(np.float32)
    noise = np.kron(noise, np.ones((16, 16, 1), np.float32))[:h, :w]
    arr = np.clip(base + 18 * noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB").filter(ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(img)
    for x in range(0, w, 64):
        draw.line([(x, 0), (x, h)], fill=(235, 235, 235), width=1)
    for y in range(0, h, 64):
        draw.line([(0, y), (w, y)], fill=(235, 235, 235), width=1)
    return img


# ---------------------------------------------------------------------------------------------
# Edits.  Each takes (img, rng, ctx) and returns (new_img, params_str).

def e_screenshot(img, rng, ctx):
    out = imaugs.overlay_onto_screenshot(img, template_filepath=SCREENSHOT_TEMPLATE)
    return out, f"overlay_onto_screenshot(template={os.path.basename(SCREENSHOT_TEMPLATE)})"


def e_mobile_screenshot(img, rng, ctx):
    out = imaugs.overlay_onto_screenshot(img, template_filepath=MOBILE_TEMPLATE)
    return out, f"overlay_onto_screenshot(template={os.path.basename(MOBILE_TEMPLATE)})"


def e_plain_canvas(img, rng, ctx):
    size = rng.uniform(0.30, 0.50)
    colour = tuple(rng.randrange(256) for _ in range(3))
    bg = Image.new("RGB", (900, 700), colour)
    ow = size * bg.height * img.width / img.height
    x = rng.uniform(0.02, max(0.02, 0.98 - ow / bg.width))
    y = rng.uniform(0.02, 0.98 - size)
    out = imaugs.overlay_onto_background_image(img, background_image=bg, overlay_size=size, x_pos=x, y_pos=y)
    return out, f"overlay_onto_background_image(plain{colour},size={size:.2f},x={x:.2f},y={y:.2f})"


def e_meme(img, rng, ctx):
    out = imaugs.meme_format(img, text=MEME_TEXT, caption_height=150)
    return out, f"meme_format(text={MEME_TEXT!r},caption_height=150)"


def e_watermark(img, rng, ctx):
    out = imaugs.overlay_text(img, text=ctx["wm_idx"], font_file=WATERMARK_FONT, font_size=0.09,
                              opacity=0.7, color=(255, 255, 255), x_pos=0.04, y_pos=0.42)
    return out, f"overlay_text(text={WATERMARK_TEXT!r},font_size=0.09,opacity=0.7,x=0.04,y=0.42,white)"


def e_letterbox(img, rng, ctx):
    w, h = img.size
    if ctx["index"] % 2 == 0:  # pad to 16:9 with black (pillarbox for 4:3, letterbox if wider)
        tw, th = max(w, math.ceil(h * 16 / 9)), max(h, math.ceil(w * 9 / 16))
        canvas = Image.new("RGB", (tw, th), (0, 0, 0))
        canvas.paste(img, ((tw - w) // 2, (th - h) // 2))
        return canvas, f"pad_to_16x9_black({tw}x{th})"
    out = imaugs.pad_square(img, color=(0, 0, 0))
    return out, "pad_square(black)"


def e_perspective(img, rng, ctx):
    sigma = rng.uniform(20, 35)
    s = rng.randrange(1 << 30)
    out = imaugs.perspective_transform(img, sigma=sigma, seed=s)
    return out, f"perspective_transform(sigma={sigma:.1f},seed={s})"


def e_aspect(img, rng, ctx):
    ratio = rng.choice([rng.uniform(0.55, 0.75), rng.uniform(1.6, 2.2)])
    out = imaugs.change_aspect_ratio(img, ratio=ratio)
    return out, f"change_aspect_ratio(ratio={ratio:.2f})"


def e_rotate20(img, rng, ctx):
    deg = rng.uniform(15, 25) * rng.choice([-1, 1])
    fill = rng.choice([(0, 0, 0), (255, 255, 255), (128, 128, 128)])
    out = img.rotate(deg, resample=Image.BICUBIC, expand=False, fillcolor=fill)
    return out, f"PIL.rotate(deg={deg:.1f},expand=False,fill={fill})"


def e_canvas(img, rng, ctx):
    size = rng.uniform(0.30, 0.50)
    bg = ctx["canvas_bg"]
    # overlay height = size * bg height; keep the photo fully inside the canvas
    ow = size * bg.height * img.width / img.height
    x = rng.uniform(0.02, max(0.02, 0.98 - ow / bg.width))
    y = rng.uniform(0.02, 0.98 - size)
    out = imaugs.overlay_onto_background_image(img, background_image=bg, overlay_size=size,
                                               x_pos=x, y_pos=y)
    return out, f"overlay_onto_background_image(fixed_synthetic_bg,size={size:.2f},x={x:.2f},y={y:.2f})"


def e_mirror_chain(img, rng, ctx):
    out = imaugs.hflip(img)
    second = rng.choice(["crop", "brightness", "saturation", "blur", "scale"])
    if second == "crop":
        out = imaugs.crop(out, x1=0.08, y1=0.08, x2=0.92, y2=0.92)
        p = "crop(0.08..0.92)"
    elif second == "brightness":
        f = rng.uniform(1.25, 1.45)
        out = imaugs.brightness(out, factor=f)
        p = f"brightness({f:.2f})"
    elif second == "saturation":
        f = rng.uniform(1.5, 2.0)
        out = imaugs.saturation(out, factor=f)
        p = f"saturation({f:.2f})"
    elif second == "blur":
        r = rng.uniform(1.0, 2.0)
        out = imaugs.blur(out, radius=r)
        p = f"blur({r:.2f})"
    else:
        f = rng.uniform(0.5, 0.75)
        out = imaugs.scale(out, factor=f)
        p = f"scale({f:.2f})"
    return out, f"hflip+{p}"


def e_emoji_template(img, rng, ctx):
    out = imaugs.overlay_emoji(img, emoji_path=EMOJI_FILE, emoji_size=0.45, opacity=1.0,
                               x_pos=0.3, y_pos=0.25)
    return out, f"overlay_emoji({os.path.basename(EMOJI_FILE)},size=0.45,x=0.3,y=0.25)"


def _shear(img, shear, fill):
    w, h = img.size
    extra = int(math.ceil(abs(shear) * h))
    nw = w + extra
    # output (x, y) samples input (x + shear*y - off, y)
    off = extra if shear > 0 else 0
    return img.transform((nw, h), Image.AFFINE, (1, shear, -off, 0, 1, 0),
                         resample=Image.BICUBIC, fillcolor=fill)


def e_shear_pad(img, rng, ctx):
    color = tuple(rng.randrange(40, 240) for _ in range(3))
    wf, hf = rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2)
    out = imaugs.pad(img, w_factor=wf, h_factor=hf, color=color)
    if ctx["index"] % 2 == 0:
        sh = rng.uniform(0.15, 0.3) * rng.choice([-1, 1])
        out = _shear(out, sh, color)
        p = f"shear({sh:.2f})"
    else:
        sigma = rng.uniform(20, 35)
        s = rng.randrange(1 << 30)
        out = imaugs.perspective_transform(out, sigma=sigma, seed=s)
        p = f"perspective_transform(sigma={sigma:.1f},seed={s})"
    return out, f"pad(w={wf:.2f},h={hf:.2f},color={color})+{p}"


def e_caption_bar(img, rng, ctx):
    w, h = img.size
    bar_h = max(40, int(round(0.22 * h)))
    out = Image.new("RGB", (w, h + bar_h), (180, 20, 30))
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, h, w, h + max(4, bar_h // 10)], fill=(250, 200, 0))
    size = max(10, int(bar_h * 0.45))
    font = ImageFont.truetype(CAPTION_FONT, size)
    while font.getsize(CAPTION_TEXT)[0] > 0.92 * w and size > 8:
        size -= 1
        font = ImageFont.truetype(CAPTION_FONT, size)
    tw, th = font.getsize(CAPTION_TEXT)
    draw.text(((w - tw) // 2, h + (bar_h - th) // 2 + bar_h // 20), CAPTION_TEXT, font=font,
              fill=(255, 255, 255))
    return out, f"PIL caption bar(red,{bar_h}px,text={CAPTION_TEXT!r})"


def e_jpeg_q70(img, rng, ctx):
    return img, "jpeg_q70"


def e_downscale(img, rng, ctx):
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS), "resize(0.5,LANCZOS)"


EDITS = {
    "screenshot": e_screenshot, "meme": e_meme, "watermark": e_watermark,
    "letterbox": e_letterbox, "perspective": e_perspective, "aspect": e_aspect,
    "rotate20": e_rotate20, "canvas": e_canvas, "mirror_chain": e_mirror_chain,
    "emoji_template": e_emoji_template, "shear_pad": e_shear_pad, "caption_bar": e_caption_bar,
    "mobile_screenshot": e_mobile_screenshot, "plain_canvas": e_plain_canvas,
}

README = """Hard-case corpus for the content check (generated by bench/hard/make_corpus.py, seed {seed}).

truth.csv: path,group,part,edit.  group = source photo stem; all files of one group are copies of
each other, files of different groups are never copies (even when they share a template/frame).
edit = "original" for the source photo itself (under originals/<family>/), else the family name.
edits.csv: path,params with the exact edit parameters of each copy.

Photos: {n_src} source photos, split by a seeded shuffle into {n_tune} "tune" and {n_held} "heldout"
(disjoint).  Each photo is used by exactly one family; up to {per_family} photos per family.

part template (tune photos): template NEGATIVES + their true copies; the SAME template for every
  photo of a family, so copy(A) must match A but never copy(B).
  screenshot   overlay_onto_screenshot, AugLy's web.png template
  meme         meme_format, fixed caption {meme!r}
  watermark    overlay_text {wm!r}, same font/size/position/opacity
part warp (tune photos): geometric POSITIVES.
  letterbox    black pad to 16:9 (even) or pad_square black (odd)
  perspective  perspective_transform, sigma 20-35
  aspect       change_aspect_ratio 0.55-0.75 or 1.6-2.2
  rotate20     PIL rotate 15-25 deg, same frame (expand=False), corners filled black/white/grey
  canvas       photo at 30-50% height on one fixed synthetic textured canvas (overlay_onto_background_image)
  mirror_chain hflip + one of crop/brightness/saturation/blur/scale
  (added later, after the other families' photos)
  mobile_screenshot  overlay_onto_screenshot, AugLy's mobile.png template (part template)
  plain_canvas       photo at 30-50% height on a plain canvas of a random colour (part warp)
part heldout (HELDOUT photos only - never tune thresholds on these):
  emoji_template  the same large emoji, same place, on every photo (negatives like part template)
  shear_pad       coloured pad + shear or perspective warp (positives)
  caption_bar     the same red news bar with fixed text under every photo (negatives)
part standard_control (tune photos): easy positives, copies jpeg_q70 (q=70 re-save) and
  downscale_0.5 (half size).

Counts ({n_files} image files):
{counts}
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="use at most N source photos")
    ap.add_argument("--per-family", type=int, default=20, help="photos per family (default 20)")
    args = ap.parse_args(argv)

    photos = sorted(p for p in args.src.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not photos:
        print(f"no images in {args.src}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    rng.shuffle(photos)
    if args.limit is not None:
        photos = photos[: args.limit]
    n_tune = int(round(0.7 * len(photos)))
    tune, held = photos[:n_tune], photos[n_tune:]

    tune_fams = [("template", f) for f in TEMPLATE_FAMILIES] + [("warp", f) for f in WARP_FAMILIES] \
        + [("standard_control", CONTROL_FAMILY)] + LATER_FAMILIES
    held_fams = [("heldout", f) for f in HELDOUT_FAMILIES]
    k_tune = min(args.per_family, len(tune) // len(tune_fams))
    k_held = min(args.per_family, len(held) // len(held_fams))
    assign = []  # (part, family, [photos])
    for i, (part, fam) in enumerate(tune_fams):
        assign.append((part, fam, tune[i * k_tune:(i + 1) * k_tune]))
    for i, (part, fam) in enumerate(held_fams):
        assign.append((part, fam, held[i * k_held:(i + 1) * k_held]))

    out = args.out
    if out.exists():
        # deterministic: always rebuild from scratch, but only ever delete a previous corpus
        if any(out.iterdir()) and not (out / "truth.csv").exists():
            print(f"{out} exists, is not empty and holds no truth.csv: refusing to overwrite",
                  file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)

    ctx = {
        "wm_idx": text_indices(WATERMARK_FONT, WATERMARK_TEXT),
        "canvas_bg": make_canvas_background(args.seed),
    }
    truth, params, counts = [], [], {}

    def add(path: Path, group: str, part: str, edit: str, param: str):
        rel = path.relative_to(out).as_posix()
        truth.append((rel, group, part, edit))
        params.append((rel, param))
        counts[(part, edit)] = counts.get((part, edit), 0) + 1

    for part, fam, plist in assign:
        frng = random.Random(f"{args.seed}:{fam}")
        for idx, src in enumerate(plist):
            stem = src.stem
            orig = out / "originals" / fam / f"{stem}.jpg"
            add(orig, stem, part, "original", save_original(src, orig))
            img = load_rgb(src)
            c = dict(ctx, index=idx)
            if fam == CONTROL_FAMILY:
                for sub, fn, q in (("jpeg_q70", e_jpeg_q70, 70), ("downscale_0.5", e_downscale, None)):
                    res, p = fn(img, frng, c)
                    q = q if q is not None else frng.randint(85, 95)
                    dst = out / part / sub / f"{stem}.jpg"
                    save_jpeg(res, dst, q)
                    add(dst, stem, part, sub, f"{p};q={q}")
                continue
            res, p = EDITS[fam](img, frng, c)
            q = frng.randint(85, 95)
            dst = out / part / fam / f"{stem}.jpg"
            save_jpeg(res, dst, q)
            add(dst, stem, part, fam, f"{p};q={q}")

    with open(out / "truth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "group", "part", "edit"])
        w.writerows(truth)
    with open(out / "edits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "params"])
        w.writerows(params)
    count_lines = "\n".join(f"  {part:17s} {edit:15s} {n}" for (part, edit), n in
                            sorted(counts.items()))
    # originals per family
    fam_lines = "\n".join(f"  {part:17s} {fam:15s} {len(pl)} photos (+{len(pl)} originals)"
                          for part, fam, pl in assign)
    (out / "README.txt").write_text(README.format(
        seed=args.seed, n_src=len(photos), n_tune=len(tune), n_held=len(held),
        per_family=args.per_family, meme=MEME_TEXT, wm=WATERMARK_TEXT, n_files=len(truth),
        counts=fam_lines + "\n\n  by (part, edit):\n" + count_lines))
    print(f"wrote {len(truth)} images to {out} ({len(tune)} tune / {len(held)} heldout photos)")
    print(fam_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
