"""``python -m bench --check-cost``: the bench run's checked pairs checked again on Ray tasks, as shipped and
without the one-frame pass, alternated; the same decisions, CPU per pair for each."""
import json

import pandas as pd
from PIL import ImageOps

from dedup.synth import encode, textured_image, write


def test_check_cost_replays_the_runs_pairs_with_and_without_the_one_frame_pass(ray_local, tmp_path):
    from bench.check_cost import check_cost_bench

    run, paths = tmp_path / "work" / "out-sscd", []
    for i in range(3):
        photo = textured_image(50 + i, (480, 360))
        for name, img, quality in (("photo", photo, 90), ("resave", photo, 50), ("crop", photo.crop((40, 30, 440, 330)), 90),
                                   ("mirror", ImageOps.mirror(photo), 90)):
            paths.append(write(tmp_path / "images" / f"{i}_{name}.jpg", encode(img, quality=quality)))
    files = pd.DataFrame({"path": [str(p) for p in paths], "kind": "file", "unit": [str(p) for p in paths],
                          "vid": range(len(paths))})
    run.mkdir(parents=True)
    files.to_parquet(run / "files.parquet")
    a = [4 * i for i in range(3) for _ in range(3)] + [0]
    b = [4 * i + k for i in range(3) for k in (1, 2, 3)] + [4]  # each photo with its copies; photo 0 with photo 1
    pd.DataFrame({"a": a, "b": b}).to_parquet(run / "verify.parquet")
    r = check_cost_bench(tmp_path / "work", tmp_path / "results", repeats=1)
    shipped, baseline = r["variants"]["as shipped"], r["variants"]["without the one-frame pass"]
    assert r["pairs"] == 10 and shipped["passed"] == baseline["passed"] == 9
    assert shipped["least"] > 0 and baseline["least"] > 0
    md = (tmp_path / "results" / "check-cost.md").read_text()
    assert "| as shipped |" in md and "| without the one-frame pass |" in md
    assert json.loads((tmp_path / "results" / "check-cost.json").read_text())["repeats"] == 1
