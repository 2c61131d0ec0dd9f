"""bench/reflected.py on photos made here: the three warps reflect their corners, and the report adds up."""
import numpy as np

from bench import reflected
from dedup.synth import encode, textured_image


def test_the_warps_fill_their_corners_by_reflection():
    img = np.asarray(textured_image(3).convert("RGB"))
    for kind in reflected.WARPS:
        out = reflected.warp(img, kind, np.random.default_rng(0))
        assert out.shape == img.shape
        assert (out[:8, :8].reshape(-1, 3).std(axis=0) > 2).any(), kind  # a corner of picture, not a plain fill


def test_each_copy_is_chosen_against_its_photo_with_and_without_the_evidence(tmp_path):
    for i in range(2):
        (tmp_path / f"p{i}.jpg").write_bytes(encode(textured_image(5 + i), "JPEG", quality=92))
    report = reflected.reflected_bench(tmp_path, tmp_path / "results", n=2)
    rows = report["rows"]
    assert [r["warp"] for r in rows] == list(reflected.WARPS) and all(r["part"] == "looked at" for r in rows)
    assert all(r["photos"] == 2 and 0 <= r["kept_without"] <= 2 for r in rows)
    assert all(r["kept"] + sum(r["copy_kept_by"].values()) == 2 for r in rows)
    assert (tmp_path / "results" / "reflected-borders.md").read_text().count("| looked at |") == 3
