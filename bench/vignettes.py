"""``python -m bench --vignettes [N]``: the kept image against vignetted copies made otherwise than the corpora's.

The kept image's ``vignetted`` rule (:func:`dedup.ops.regions._vignetted`) was read off the edit-chain corpora's
vignette family (``bench/hard/make_lineage.py``: each pixel times ``1 - k r^2``, centred). Here, on ``N``
photos of ``--src``, other vignettes: the cos^4 falloff of a lens, an off-centre elliptical Gaussian, and a
feathered oval outside which the picture is darkened (as photo apps do), each at a random strength and saved
as JPEG 70-95; and, as controls the rule must leave alone, global tone edits (darker, more contrast, a gamma
curve) and a crop enlarged back to the photo's size. Each copy against its photo, the copy first in the largest
order, chosen by the default policy (:func:`dedup.ops.canonical.choose`) with the rule as it ships and, in the
same run, left out. Reported per edit: photos kept, and what decided for a copy.
Writes ``RESULTS/vignettes.md`` and ``.json``.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.made_edits import chosen_rows, counts, first_photos, kept_by, write

VIGNETTES = ("cos4 falloff", "off-centre Gaussian", "feathered oval")
CONTROLS = ("darker", "more contrast", "gamma 0.7", "crop enlarged back")


def edit(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` (RGB, uint8) with one edit of :data:`VIGNETTES` or :data:`CONTROLS`."""
    import cv2

    h, w = img.shape[:2]
    f = img.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "cos4 falloff":  # a lens of field angle theta at the corner: cos(angle)^4
        tan = np.hypot(xx - w / 2, yy - h / 2) / np.hypot(w / 2, h / 2) * np.tan(np.radians(rng.uniform(30, 45)))
        gain = np.cos(np.arctan(tan)) ** 4
    elif kind == "off-centre Gaussian":
        cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.6)
        sx, sy = w * rng.uniform(0.5, 0.8), h * rng.uniform(0.5, 0.8)
        gain = 1 - rng.uniform(0.4, 0.7) * (1 - np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)))
    elif kind == "feathered oval":
        outside = ((((xx - w / 2) / (w * 0.42)) ** 2 + ((yy - h / 2) / (h * 0.42)) ** 2) > 1).astype(np.float32)
        gain = 1 - rng.uniform(0.35, 0.6) * cv2.GaussianBlur(outside, (0, 0), max(w, h) / 12)
    elif kind == "darker":
        gain = np.full((h, w), rng.uniform(0.6, 0.8), np.float32)
    elif kind == "more contrast":
        return np.clip((f - 128) * rng.uniform(1.3, 1.6) + 128, 0, 255).astype(np.uint8)
    elif kind == "gamma 0.7":
        return np.clip(255 * (f / 255) ** 0.7, 0, 255).astype(np.uint8)
    else:  # a crop of 75-90 % enlarged back to the photo's size
        s = rng.uniform(0.75, 0.9)
        x0, y0 = int(w * (1 - s) * rng.uniform(0, 1)), int(h * (1 - s) * rng.uniform(0, 1))
        return cv2.resize(img[y0:y0 + int(h * s), x0:x0 + int(w * s)], (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(f * gain[..., None], 0, 255).astype(np.uint8)


@contextmanager
def _no_vignetted():
    """The ``vignetted`` rule turned off: a share over 1 of the tone fit's error is never reached."""
    from dedup.ops import regions

    fit, regions.VIGNETTE_FIT = regions.VIGNETTE_FIT, 2.0
    try:
        yield
    finally:
        regions.VIGNETTE_FIT = fit


def kept(photos: list[Path], seed: int = 11) -> list[dict]:
    """One row per (photo, edit): whether the photo was kept, and why the copy was, with the rule on and off."""
    return chosen_rows(photos, VIGNETTES + CONTROLS, _copy, _no_vignetted, "edit", seed)


def _copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> bytes:
    """The edited photo as a JPEG of quality 70-95 (drawn after the edit's own draws)."""
    from PIL import Image

    from dedup.synth import encode

    return encode(Image.fromarray(edit(img, kind, rng)), "JPEG", quality=int(rng.integers(70, 96)))


def summary(rows: list[dict]) -> list[dict]:
    """Per edit: photos, kept with the rule and without it, what kept a copy."""
    return [{"edit": kind, "control": kind in CONTROLS, **counts([r for r in rows if r["edit"] == kind])}
            for kind in VIGNETTES + CONTROLS]


def vignettes_bench(src: Path, results: Path, n: int = 100) -> dict:
    from dedup.ops.matching import single_threaded

    single_threaded()
    chosen_photos = first_photos(src, n)
    return write(results, "vignettes", len(chosen_photos), summary(kept(chosen_photos)), to_markdown)


def to_markdown(report: dict) -> str:
    lines = ["# The kept image against vignetted copies (`python -m bench --vignettes`)", "",
             f"{report['photos']} photos of --src; per photo one copy under each edit, JPEG 70-95, against its photo with the "
             "copy first in the largest order; the default policy with its `vignetted` rule and without it, in one run. The "
             "vignettes are made otherwise than the edit-chain corpora's the rule was read off; the controls are edits it "
             "must leave to the other evidence.", "",
             "| edit | pairs | photo kept | without the rule | what kept a copy |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        name = f"{r['edit']} (control)" if r["control"] else r["edit"]
        lines.append(f"| {name} | {r['photos']} | {r['kept']} | {r['kept_without']} | {kept_by(r)} |")
    return "\n".join(lines) + "\n"
