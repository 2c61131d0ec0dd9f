"""bench/vignettes.py on photos made here: the edits darken where they should, and the report adds up."""
import numpy as np

from bench import vignettes
from dedup.synth import encode, textured_image


def test_the_vignettes_darken_the_corners_and_the_controls_do_not_vignette():
    img = np.full((120, 160, 3), 200, np.uint8)
    for kind in vignettes.VIGNETTES:
        out = vignettes.edit(img, kind, np.random.default_rng(0)).astype(float)
        assert out[:10, :10].mean() < out[55:65, 75:85].mean() - 20, kind
    for kind in ("darker", "more contrast", "gamma 0.7"):
        out = vignettes.edit(img, kind, np.random.default_rng(0)).astype(float)
        assert abs(out[:10, :10].mean() - out[55:65, 75:85].mean()) < 1, kind


def test_each_copy_is_chosen_against_its_photo_with_and_without_the_rule(tmp_path):
    (tmp_path / "p0.jpg").write_bytes(encode(textured_image(5), "JPEG", quality=92))
    report = vignettes.vignettes_bench(tmp_path, tmp_path / "results", n=1)
    rows = report["rows"]
    assert [r["edit"] for r in rows] == list(vignettes.VIGNETTES + vignettes.CONTROLS)
    assert all(r["photos"] == 1 and r["kept"] + sum(r["copy_kept_by"].values()) == 1 for r in rows)
    assert (tmp_path / "results" / "vignettes.md").read_text().count("(control)") == len(vignettes.CONTROLS)
