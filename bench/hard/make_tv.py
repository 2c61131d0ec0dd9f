#!/usr/bin/env python
"""Third, independent hard-case corpus, made with torchvision's augmentations (HELD OUT: never tune on it).

torchvision (``torchvision.transforms.v2``: RandAugment, TrivialAugment, AugMix, AutoAugment, and the single
transforms they are made of) is in the project's own venv; this script never imports the ``dedup`` package:

    .venv/bin/python bench/hard/make_tv.py --src ../shared/data/imagenet-samples --out bench/work/tv-seed0 --seed 0

Writes images under OUT plus OUT/truth.csv (path,group,part,edit) and OUT/edits.csv (path,what was drawn),
with make_albu.py's conventions: group = the source photo's stem; every file of one group is a copy of every
other; files of different groups are never copies.

    originals/<family>/<stem>.jpg   the source photo itself (its bytes, unchanged)
    copies/<family>/<stem>.jpg      a torchvision edit a person would call a copy (JPEG, quality 85-95)
    negatives/five_crop/<stem>__<corner>.jpg  the four corner crops of one photo (half its width and height:
                                    they share no pixel), each its own group, the photo itself not in the corpus
    control/{jpeg_q60,half_size}/<stem>.jpg   easy positives (two copies per photo, of originals/control)

Only RGB JPEG photos with a short side of at least 200 px are used; after a seeded shuffle each family takes
the next --per-family photos, so no photo is in two families.
"""
from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2

MIN_SIDE = 200
PHOTOMETRIC = ["solarize", "posterize", "color_jitter", "hue_shift", "sharpen", "grey_blur", "autocontrast_gamma"]
GEOMETRIC = ["perspective", "elastic", "rotate_expand", "affine", "resized_crop", "reflect_pad"]
POLICIES = ["randaugment", "trivialaugment", "augmix", "autoaugment"]
COPY_FAMILIES = POLICIES + PHOTOMETRIC + GEOMETRIC + ["erasing", "jpeg_low", "chain3"]
CORNERS = ("tl", "tr", "bl", "br")


def builders(rng: random.Random, w: int, h: int) -> dict:
    """family -> (a callable on a PIL image, what was drawn); the draws made here, explicitly."""
    fill = [rng.randrange(256) for _ in range(3)]
    sol, bits = rng.randint(150, 200), rng.choice([2, 3])
    deg, shear = rng.uniform(12, 35) * rng.choice([-1, 1]), rng.uniform(8, 18)
    alpha, dist = rng.uniform(40, 90), rng.uniform(0.25, 0.45)
    gamma, hue = rng.uniform(0.5, 1.8), rng.uniform(0.2, 0.45) * rng.choice([-1, 1])
    pad = [round(rng.uniform(0.08, 0.2) * s) for s in (w, h, w, h)]
    crop_area, sigma = rng.uniform(0.4, 0.7), rng.uniform(1.5, 3.0)
    return {
        "randaugment": (v2.RandAugment(num_ops=2, magnitude=rng.randint(9, 14)), "RandAugment(2, 9-14)"),
        "trivialaugment": (v2.TrivialAugmentWide(), "TrivialAugmentWide"),
        "augmix": (v2.AugMix(severity=rng.randint(3, 5)), "AugMix(3-5)"),
        "autoaugment": (v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET), "AutoAugment(imagenet)"),
        "solarize": (v2.RandomSolarize(threshold=sol, p=1.0), f"RandomSolarize({sol})"),
        "posterize": (v2.RandomPosterize(bits=bits, p=1.0), f"RandomPosterize({bits})"),
        "color_jitter": (v2.ColorJitter(0.4, 0.4, 0.5, 0.1), "ColorJitter(0.4,0.4,0.5,0.1)"),
        "hue_shift": (lambda im: v2.functional.adjust_hue(im, hue), f"adjust_hue({hue:.2f})"),
        "sharpen": (v2.RandomAdjustSharpness(sharpness_factor=rng.uniform(3, 6), p=1.0), "RandomAdjustSharpness(3-6)"),
        "grey_blur": (v2.Compose([v2.Grayscale(3), v2.GaussianBlur(9, sigma=sigma)]), f"Grayscale+GaussianBlur({sigma:.1f})"),
        "autocontrast_gamma": (v2.Compose([v2.RandomAutocontrast(p=1.0), lambda im: v2.functional.adjust_gamma(im, gamma)]),
                               f"RandomAutocontrast+adjust_gamma({gamma:.2f})"),
        "perspective": (v2.RandomPerspective(distortion_scale=dist, p=1.0, fill=fill), f"RandomPerspective({dist:.2f})"),
        "elastic": (v2.ElasticTransform(alpha=alpha, sigma=rng.uniform(5, 7)), f"ElasticTransform({alpha:.0f})"),
        "rotate_expand": (v2.RandomRotation((deg, deg), expand=True, fill=fill), f"RandomRotation({deg:.0f}, expand)"),
        "affine": (v2.RandomAffine(degrees=8, translate=(0.08, 0.08), scale=(0.85, 1.15), shear=shear, fill=fill),
                   f"RandomAffine(8, 0.08, 0.85-1.15, shear {shear:.0f})"),
        "resized_crop": (v2.RandomResizedCrop((h, w), scale=(crop_area, crop_area), antialias=True),
                         f"RandomResizedCrop(area {crop_area:.2f})"),
        "reflect_pad": (v2.Pad(pad, padding_mode=rng.choice(["reflect", "edge"])), f"Pad({pad})"),
        "erasing": (v2.Compose([v2.PILToTensor(), v2.RandomErasing(p=1.0, scale=(0.08, 0.2), value="random"), v2.ToPILImage()]),
                    "RandomErasing(0.08-0.2, random)"),
        "jpeg_low": (v2.Compose([v2.PILToTensor(), v2.JPEG(quality=(8, 25)), v2.ToPILImage()]), "JPEG(8-25)"),
    }


def make_copy(family: str, img: Image.Image, rng: random.Random) -> tuple[Image.Image, str]:
    seed = rng.randrange(1 << 31)
    torch.manual_seed(seed)
    made = builders(rng, *img.size)
    if family == "chain3":
        fams = rng.sample(PHOTOMETRIC + ["erasing", "jpeg_low"], 2) + [rng.choice(GEOMETRIC)]
        out, descs = img, []
        for f in fams:
            fn, desc = made[f]
            out = fn(out)
            descs.append(desc)
        return out.convert("RGB"), " > ".join(descs) + f";seed={seed}"
    fn, desc = made[family]
    return fn(img).convert("RGB"), f"{desc};seed={seed}"


def photos(src: Path, seed: int) -> list[Path]:
    out = []
    for p in sorted(src.iterdir()):
        if p.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        with Image.open(p) as im:
            if im.mode == "RGB" and min(im.size) >= MIN_SIDE:
                out.append(p)
    random.Random(seed).shuffle(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-family", type=int, default=20)
    args = ap.parse_args()
    rng, pool = random.Random(args.seed), iter(photos(args.src, args.seed))
    truth, edits = [], []

    def save(img: Image.Image, rel: str, group: str, part: str, edit: str, what: str, quality: int | None = None):
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=quality or rng.randint(85, 95))
        truth.append((rel, group, part, edit))
        edits.append((rel, what))

    def original(p: Path, family: str, part: str) -> Image.Image:
        rel = f"originals/{family}/{p.stem}.jpg"
        (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, args.out / rel)
        truth.append((rel, p.stem, part, "original"))
        return Image.open(p).convert("RGB")

    for family in COPY_FAMILIES:
        for _ in range(args.per_family):
            p = next(pool)
            img = original(p, family, "copies")
            copy, what = make_copy(family, img, rng)
            save(copy, f"copies/{family}/{p.stem}.jpg", p.stem, "copies", family, what)
    for _ in range(args.per_family):
        p = next(pool)
        img = original(p, "control", "control")
        save(img, f"control/jpeg_q60/{p.stem}.jpg", p.stem, "control", "jpeg_q60", "quality 60", quality=60)
        save(img.resize((img.width // 2, img.height // 2), Image.LANCZOS), f"control/half_size/{p.stem}.jpg", p.stem,
             "control", "half_size", "half size")
    for _ in range(args.per_family):
        p = next(pool)
        img = Image.open(p).convert("RGB")
        w, h = img.size
        boxes = dict(zip(CORNERS, ((0, 0), (w - w // 2, 0), (0, h - h // 2), (w - w // 2, h - h // 2))))
        for corner, (x, y) in boxes.items():
            save(img.crop((x, y, x + w // 2, y + h // 2)), f"negatives/five_crop/{p.stem}__{corner}.jpg", f"{p.stem}__{corner}",
                 "negatives", "five_crop", f"FiveCrop corner {corner}")
    for name, rows, head in (("truth.csv", truth, ("path", "group", "part", "edit")), ("edits.csv", edits, ("path", "what"))):
        with open(args.out / name, "w", newline="") as f:
            csv.writer(f).writerows([head, *rows])
    print(f"{len(truth)} files in {args.out}")


if __name__ == "__main__":
    main()
