"""bench/hard/make_tv.py (the torchvision hard-case corpus; the project's own venv, so tested here): every family
made from photos of its own, the truth consistent with the files, the corner crops of one photo disjoint."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "hard"))
import make_tv  # noqa: E402


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # blocks: each photo its own
        Image.fromarray(grid).resize((240, 200), Image.BILINEAR).save(folder / f"p{i:02d}.jpg", quality=90)
    Image.new("L", (240, 200)).save(folder / "grey.jpg")  # not RGB: never used
    return folder


def test_each_family_has_its_photos_and_the_truth_matches_the_files(tmp_path):
    src = _photos(tmp_path / "src", len(make_tv.COPY_FAMILIES) + 2)
    out = tmp_path / "tv"
    subprocess.run([sys.executable, str(ROOT / "bench/hard/make_tv.py"), "--src", str(src), "--out", str(out), "--seed", "3",
                    "--per-family", "1"], check=True, capture_output=True)
    truth = pd.read_csv(out / "truth.csv")
    assert all((out / p).is_file() for p in truth["path"])
    copies = truth[truth["part"] == "copies"]
    assert sorted(copies.loc[copies["edit"] != "original", "edit"]) == sorted(make_tv.COPY_FAMILIES)
    originals = truth[truth["edit"] == "original"]
    assert originals["group"].is_unique  # no photo in two families
    assert "grey" not in set(truth["group"])
    for _, row in originals.iterrows():  # the original is the source's bytes, unchanged
        assert (out / row["path"]).read_bytes() == (src / f"{row['group']}.jpg").read_bytes()
    corners = truth[truth["edit"] == "five_crop"]
    assert len(corners) == 4 and corners["group"].is_unique
    sizes = {Image.open(out / p).size for p in corners["path"]}
    assert sizes == {(120, 100)}  # half the width and height each: four crops that share no pixel
    assert set(truth.loc[truth["part"] == "control", "edit"]) == {"original", "jpeg_q60", "half_size"}
