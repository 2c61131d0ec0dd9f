"""``python -m bench --reflected-borders [N]``: the kept image where a copy's corners are filled by reflection.

OpenCV's warps (and albumentations', which call them) fill what a turn, a scale or a shear leaves outside the
picture with the picture mirrored past its edge (``BORDER_REFLECT_101``, their default for many transforms):
the fill continues the picture, so a step at the edge does not show it. On ``N`` photos of ``--src`` (the first
``N`` in name order), three copies each, in the photo's own frame, saved as JPEG 95: turned 8-20 degrees;
turned and scaled 0.85-0.95; turned up to 8 degrees and sheared 8-15. Each copy against its photo, the copy
first in the largest order (so that nothing but evidence keeps the photo), chosen by the default policy
(:func:`dedup.ops.canonical.choose`, the model) as it ships and, in the same run, with the evidence of pads
that repeat the picture left out (:func:`dedup.ops.lineage.fills` answering no). The pairs register by
keypoints, as where the content check did not match them. Reported per warp: photos kept, and which evidence
kept a copy. The first 40 photos were looked at while :func:`~dedup.ops.lineage.self_fill` was written (its
bounds come from other corpora, ``docs/how-it-decides.md``); the rest are reported apart, held out.
Writes ``RESULTS/reflected-borders.md`` and ``.json``.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.made_edits import chosen_rows, counts, first_photos, kept_by, write

WARPS = ("turned", "turned and scaled", "sheared")
LOOKED_AT = 40  # the photos seen while the evidence was written


def warp(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` (RGB) warped in its own frame, the corners reflected (one of :data:`WARPS`)."""
    import cv2

    h, w = img.shape[:2]
    turn = rng.uniform(8, 20) * rng.choice([-1, 1])
    if kind == "turned":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), turn, 1.0)
    elif kind == "turned and scaled":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), turn, rng.uniform(0.85, 0.95))
    else:
        k = np.tan(np.radians(rng.uniform(8, 15)))
        shear = np.array([[1, k, -k * h / 2], [0, 1, 0], [0, 0, 1]])
        m = (np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-8, 8), rng.uniform(0.85, 0.95)), [0, 0, 1]]) @ shear)[:2]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


@contextmanager
def _no_fills():
    """The evidence of pads that repeat the picture turned off: :func:`dedup.ops.lineage.fills` answers no."""
    from dedup.ops import lineage

    real, lineage.fills = lineage.fills, lambda x, y: (False, False)
    try:
        yield
    finally:
        lineage.fills = real


def kept(photos: list[Path], seed: int = 7) -> list[dict]:
    """One row per (photo, warp): whether the photo was kept, and why the copy was, with the fills on and off."""
    return chosen_rows(photos, WARPS, _copy, _no_fills, "warp", seed)


def _copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> bytes:
    from PIL import Image

    from dedup.synth import encode

    return encode(Image.fromarray(warp(img, kind, rng)), "JPEG", quality=95)


def summary(rows: list[dict]) -> list[dict]:
    """Per part (looked at, held out) and warp: photos, kept with the evidence and without it, what kept a copy."""
    out = []
    for part, mine in (("looked at", lambda r: r["photo"] < LOOKED_AT), ("held out", lambda r: r["photo"] >= LOOKED_AT)):
        for kind in WARPS:
            rs = [r for r in rows if mine(r) and r["warp"] == kind]
            if rs:
                out.append({"part": part, "warp": kind, **counts(rs)})
    return out


def reflected_bench(src: Path, results: Path, n: int = 120) -> dict:
    from dedup.ops.matching import single_threaded

    single_threaded()
    chosen_photos = first_photos(src, n)
    return write(results, "reflected-borders", len(chosen_photos), summary(kept(chosen_photos)), to_markdown)


def to_markdown(report: dict) -> str:
    lines = ["# The kept image where a copy's corners are reflected (`python -m bench --reflected-borders`)", "",
             f"{report['photos']} photos of --src, three copies each warped in the photo's frame by OpenCV with its reflected "
             "border (BORDER_REFLECT_101), JPEG 95, each against its photo with the copy first in the largest order; the "
             "default policy as it ships and without the evidence of pads that repeat the picture, in one run. "
             f"The first {LOOKED_AT} photos were looked at while that evidence was written.", "",
             "| photos | warp | pairs | photo kept | without the evidence | what kept a copy |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['part']} | {r['warp']} | {r['photos']} | {r['kept']} | {r['kept_without']} | {kept_by(r)} |")
    return "\n".join(lines) + "\n"
