"""``python -m bench --default-run N`` at a small N: the default job in its own process, each stage's share
of the run and the CPU per unit of the check and the kept image."""
import json

import pytest

from dedup.synth import encode, textured_image, write


@pytest.mark.slow
def test_default_run_times_every_stage(tmp_path):
    from bench.default_run import default_run_bench

    photos = tmp_path / "photos"
    for i in range(3):
        write(photos / f"p{i}.jpg", encode(textured_image(40 + i, (480, 360))))
    r = default_run_bench(photos, tmp_path / "work", tmp_path / "results", 24)  # 8 versions of each photo
    rows = {row["stage"]: row for row in r["stages"]}
    assert {"decode_embed", "verify", "canonical", "manifest"} <= set(rows) and r["counts"]["images"] == 24
    assert rows["verify"]["units"] > 0 and rows["verify"]["cpu_ms_per_unit"] > 0
    assert rows["canonical"]["units"] > 0 and rows["canonical"]["cpu_ms_per_unit"] > 0
    assert 0 < sum(row["share"] for row in rows.values() if not row["background"]) <= 1
    md = (tmp_path / "results" / "default-run-24.md").read_text()
    assert "| canonical |" in md and "candidates" in md
    assert json.loads((tmp_path / "results" / "default-run-24.json").read_text())["corpus"]["n"] == 24
