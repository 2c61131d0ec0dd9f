"""Synthetic photo-like images and edited copies: used by the tests and `make demo` (no data download)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def base_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct photo-like image: a smooth random colour field, a gradient and a few shapes."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(low, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(20, 80)), y0 + int(rng.integers(20, 80))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=color)
        else:
            draw.rectangle([x0, y0, x1, y1], fill=color)
    noise = rng.normal(0, 4, size=(h, w, 3))
    arr = np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG" and "quality" not in kw:
        kw["quality"] = 90
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_corpus(root: Path, groups: int = 5) -> dict[str, str]:
    """A corpus with known clusters. Returns {relative path: group name}.

    Each group: the original JPEG (largest), a byte-identical copy in another folder, a half-size PNG and a
    quality-40 JPEG re-encode. Plus two singletons with no copy at all.
    """
    truth = {}
    for g in range(groups):
        img = base_image(100 + g)
        original = encode(img, "JPEG", quality=92)
        name = f"g{g}"
        write(root / "a" / f"{name}.jpg", original)
        write(root / "b" / "nested" / f"{name}_copy.jpg", original)
        write(root / "a" / f"{name}_small.png", encode(img.resize((160, 120), Image.Resampling.LANCZOS), "PNG"))
        write(root / "c" / f"{name}_q40.jpg", encode(img, "JPEG", quality=40))
        for rel in (f"a/{name}.jpg", f"b/nested/{name}_copy.jpg", f"a/{name}_small.png", f"c/{name}_q40.jpg"):
            truth[rel] = name
    for s in range(2):
        write(root / "solo" / f"s{s}.jpg", encode(base_image(900 + s), "JPEG"))
        truth[f"solo/s{s}.jpg"] = f"s{s}"
    return truth


def textured_image(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo-like image with plenty of local detail (corners, edges, text at several sizes), as the
    content check's local features need; every seed gives different content."""
    rng = np.random.default_rng(seed)
    w, h = size
    low = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    img = Image.fromarray(low, "RGB").resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(8, 70)), y0 + int(rng.integers(8, 70))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=color)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], outline=color, width=3)
        elif kind == 2:
            draw.line([x0, y0, x1, y1], fill=color, width=int(rng.integers(1, 5)))
        else:
            draw.text((x0, y0), "".join(rng.choice(list("ABCDEFGHKMNPRSTWXYZ0123456789"), 6)), fill=color)
    noise = rng.normal(0, 3, size=(h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8), "RGB")


def grid_canvas(size=(1024, 768), seed=0) -> Image.Image:
    """A busy background: colour noise under a grid of thin light lines (as AugLy's canvases and many web pages)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(60, 200, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(low, "RGB").resize(size, Image.Resampling.BICUBIC)
    arr = np.clip(np.asarray(img, np.float32) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    for x in range(0, size[0], 64):
        draw.line([x, 0, x, size[1]], fill=(235, 235, 235), width=1)
    for y in range(0, size[1], 64):
        draw.line([0, y, size[0], y], fill=(235, 235, 235), width=1)
    return img
