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

import io
import json
import platform
from collections import Counter
from pathlib import Path

import numpy as np

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


def _version(data: bytes, rank: int, vid: int):
    from PIL import Image

    from dedup.ops.canonical import Version
    from dedup.ops.quality import measure

    f, *rest = measure(data)
    w, h = Image.open(io.BytesIO(data)).size
    return Version({**f, "pixels": w * h, "bytes": len(data)}, rank, *rest, vid=vid)


def kept(photos: list[Path], seed: int = 7) -> list[dict]:
    """One row per (photo, warp): whether the photo was kept, and why the copy was, with the fills on and off."""
    from PIL import Image

    from dedup.ops import lineage
    from dedup.ops.canonical import choose
    from dedup.synth import encode

    rng, rows, real = np.random.default_rng(seed), [], lineage.fills
    for i, path in enumerate(photos):
        data = path.read_bytes()
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        for kind in WARPS:
            copy = encode(Image.fromarray(warp(img, kind, rng)), "JPEG", quality=95)
            row = {"photo": i, "warp": kind}
            for label, fills in (("shipped", real), ("without", lambda x, y: (False, False))):
                lineage.fills = fills
                try:
                    best, why = choose([_version(data, 1, 1), _version(copy, 0, 2)])
                finally:
                    lineage.fills = real
                row[label], row[f"{label}_why"] = best == 0, (why if best == 1 else "")
            rows.append(row)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per part (looked at, held out) and warp: photos, kept with the evidence and without it, what kept a copy."""
    out = []
    for part, mine in (("looked at", lambda r: r["photo"] < LOOKED_AT), ("held out", lambda r: r["photo"] >= LOOKED_AT)):
        for kind in WARPS:
            rs = [r for r in rows if mine(r) and r["warp"] == kind]
            if rs:
                out.append({"part": part, "warp": kind, "photos": len(rs), "kept": sum(r["shipped"] for r in rs),
                            "kept_without": sum(r["without"] for r in rs),
                            "copy_kept_by": dict(Counter(r["shipped_why"] for r in rs if not r["shipped"]))})
    return out


def reflected_bench(src: Path, results: Path, n: int = 120) -> dict:
    from dedup.ops.matching import single_threaded

    single_threaded()
    photos = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    report = {"machine": platform.platform(), "photos": len(photos), "rows": summary(kept(photos))}
    results.mkdir(parents=True, exist_ok=True)
    (results / "reflected-borders.json").write_text(json.dumps(report, indent=1))
    (results / "reflected-borders.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return report


def to_markdown(report: dict) -> str:
    lines = ["# The kept image where a copy's corners are reflected (`python -m bench --reflected-borders`)", "",
             f"{report['photos']} photos of --src, three copies each warped in the photo's frame by OpenCV with its reflected "
             "border (BORDER_REFLECT_101), JPEG 95, each against its photo with the copy first in the largest order; the "
             "default policy as it ships and without the evidence of pads that repeat the picture, in one run. "
             f"The first {LOOKED_AT} photos were looked at while that evidence was written.", "",
             "| photos | warp | pairs | photo kept | without the evidence | what kept a copy |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        why = ", ".join(f"{k} {v}" for k, v in sorted(r["copy_kept_by"].items(), key=lambda kv: -kv[1])) or "-"
        lines.append(f"| {r['part']} | {r['warp']} | {r['photos']} | {r['kept']} | {r['kept_without']} | {why} |")
    return "\n".join(lines) + "\n"
