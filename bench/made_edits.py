"""What the benches of made edits share (``--reflected-borders``, ``--vignettes``): a copy made here against its
photo, chosen by the default policy with a piece of evidence as it ships and, in the same run, turned off;
the counts per edit; the report written beside the others."""
from __future__ import annotations

import io
import json
import platform
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path


def first_photos(src: Path, n: int) -> list[Path]:
    """The first ``n`` photos of ``src`` in name order."""
    return sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]


def measured(data: bytes) -> tuple:
    """What a :class:`~dedup.ops.canonical.Version` is made of for one file: measured once, a version made of it
    for each choice (:func:`version`)."""
    from PIL import Image

    from dedup.ops.quality import measure

    f, *rest = measure(data)
    w, h = Image.open(io.BytesIO(data)).size
    return {**f, "pixels": w * h, "bytes": len(data)}, rest


def version(m: tuple, rank: int, vid: int):
    from dedup.ops.canonical import Version

    f, rest = m
    return Version(dict(f), rank, *rest, vid=vid)


def chosen(photo: tuple, copy: tuple, off: Callable[[], AbstractContextManager]) -> dict:
    """The photo against its copy (both :func:`measured`), the copy first in the largest order (only evidence keeps
    the photo), with the policy as it ships and inside ``off()`` (the evidence turned off): whether the photo was
    kept (``shipped``, ``without``) and why the copy was (``shipped_why``, ``without_why``; empty where it was not)."""
    from dedup.ops.canonical import choose

    row = {}
    for label, switch in (("shipped", nullcontext), ("without", off)):
        with switch():
            best, why = choose([version(photo, 1, 1), version(copy, 0, 2)])
        row[label], row[f"{label}_why"] = best == 0, (why if best == 1 else "")
    return row


def chosen_rows(photos: list[Path], kinds: tuple, copy_of: Callable, off: Callable[[], AbstractContextManager],
                column: str, seed: int) -> list[dict]:
    """One row per (photo, kind of copy) (:func:`chosen`): ``copy_of(img, kind, rng)`` makes the copy's file from the
    photo's pixels (RGB, uint8) with the bench's own random generator (seeded ``seed``: every run makes the same
    copies); ``column`` names the kind in the rows."""
    import numpy as np
    from PIL import Image

    rng, rows = np.random.default_rng(seed), []
    for i, path in enumerate(photos):
        data = path.read_bytes()
        img, photo = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), measured(data)
        for kind in kinds:
            rows.append({"photo": i, column: kind, **chosen(photo, measured(copy_of(img, kind, rng)), off)})
    return rows


def counts(rows: list[dict]) -> dict:
    """Of the rows of one edit (:func:`chosen`'s): pairs, photo kept with the evidence and without it, what kept a copy."""
    return {"photos": len(rows), "kept": sum(r["shipped"] for r in rows), "kept_without": sum(r["without"] for r in rows),
            "copy_kept_by": dict(Counter(r["shipped_why"] for r in rows if not r["shipped"]))}


def kept_by(row: dict) -> str:
    """A report row's ``copy_kept_by`` as a table cell, the commonest first."""
    return ", ".join(f"{k} {v}" for k, v in sorted(row["copy_kept_by"].items(), key=lambda kv: -kv[1])) or "-"


def write(results: Path, name: str, n_photos: int, rows: list[dict], to_markdown: Callable[[dict], str]) -> dict:
    """The report (machine, photos, rows) as ``RESULTS/name.json`` and ``.md``, printed too."""
    report = {"machine": platform.platform(), "photos": n_photos, "rows": rows}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(report, indent=1))
    (results / f"{name}.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return report
