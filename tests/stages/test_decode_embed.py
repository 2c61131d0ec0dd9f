"""Stage `decode_embed` with SSCD, the default model: the job with the test's own ONNX file and with a
TorchScript file on CPU (torch), with mixed input shapes."""
import io
import os

import pandas as pd
import pytest
from helpers import tiny_sscd_torchscript

from dedup import run
from dedup.config import DedupConfig
from dedup.synth import base_image, encode, make_corpus, write


def _torchscript_bytes(seed: int = 0) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.jit.save(tiny_sscd_torchscript(seed), buf)
    return buf.getvalue()


@pytest.mark.slow
def test_job_runs_sscd_by_default(ray_local, tmp_path, tiny_sscd_file):
    """No --model: SSCD (here from the test's own ONNX file), square 288 input, its threshold; copies found."""
    root = tmp_path / "imgs"
    truth = make_corpus(root, groups=3)
    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), weights=str(tiny_sscd_file)))
    p = summary["parameters"]
    assert p["model"] == "sscd" and p["weights_info"]["format"] == "onnx" and p["embed_resources"]["backend"] == "onnx"
    assert p["preprocess"] == "square" and p["image_size"] == 288 and p["threshold"] == 0.30 and p["verify"] == "band"
    man = pd.read_csv(out / "manifest.csv")
    man["group"] = man["path"].map(lambda x: truth[os.path.relpath(x, root)])
    assert man.groupby("group")["cluster_id"].nunique().max() == 1  # every group in one cluster
    assert man["cluster_id"].nunique() == len(set(truth.values()))  # and no two groups together
    assert (out / "nearest.parquet").exists()


@pytest.mark.slow
def test_job_with_a_torchscript_file_on_cpu(ray_local, tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        write(root / f"p{i}.jpg", encode(base_image(40 + i)))
    write(root / "p0-copy.png", encode(base_image(40).resize((200, 150)), "PNG"))
    model = tmp_path / "sscd.torchscript.pt"
    model.write_bytes(_torchscript_bytes())
    summary = run(DedupConfig(inputs=[str(root)], output=str(tmp_path / "out"), weights=str(model), preprocess="short-side",
                              image_size=96))
    assert summary["parameters"]["weights_info"]["format"] == "torchscript"
    assert summary["parameters"]["embed_resources"]["backend"] == "torch"
    assert summary["counts"]["images"] == 4


@pytest.mark.slow
def test_pictures_inside_images_reach_the_model_in_either_topology(ray_local, tmp_path, tiny_sscd_file):
    """The picture found inside an image is embedded beside it (``inner_embedding``, ``inner_box``), by the
    CPU actors that decode and embed and, through Ray Data's Arrow blocks, by the decode tasks feeding
    embedding actors (the GPU topology, run here on CPU): the same vectors and boxes either way."""
    import numpy as np
    import pyarrow.dataset as pads
    import ray

    from dedup.layout import OutputLayout
    from dedup.ops.plan import representatives
    from dedup.stages.decode_embed import _decode_embed
    from dedup.synth import grid_canvas, textured_image

    root = tmp_path / "imgs"
    canvas = grid_canvas(seed=2)
    canvas.paste(textured_image(8).resize((384, 288)), (300, 200))
    write(root / "canvas.jpg", encode(canvas))
    write(root / "photo.jpg", encode(textured_image(9)))
    out = tmp_path / "out"
    run(DedupConfig(inputs=[str(root)], output=str(out), weights=str(tiny_sscd_file), report=False))
    cfg = DedupConfig(inputs=[str(root)], output=str(tmp_path / "tasks"), weights=str(tiny_sscd_file)).validate()
    layout = OutputLayout.of(tmp_path / "tasks")
    layout.root.mkdir(parents=True, exist_ok=True)
    res = {"actors": 1, "num_gpus": 0, "num_cpus": 1, "threads": 1, "backend": "onnx", "device": "cpu"}
    _decode_embed(cfg, representatives(pd.read_parquet(out / "files.parquet")), layout, res,
                  {"sscd_ref": [ray.put(("onnx", tiny_sscd_file.read_bytes()))]})
    tables = [pads.dataset(str(p), format="parquet").to_table().to_pandas().sort_values("vid") for p in (out / "vectors", layout.vectors)]
    for t in tables:
        assert t["inner_embedding"].notna().sum() == 1 and t["inner_box"].notna().sum() == 1  # the canvas, not the photo
    a, b = (np.stack(t["inner_embedding"].dropna().to_numpy()) for t in tables)
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(np.stack(tables[0]["inner_box"].dropna().to_numpy()), np.stack(tables[1]["inner_box"].dropna().to_numpy()))
