"""The CPU model backends: the ONNX Runtime export gives the same features as torch, and is cached."""
import numpy as np
import pytest
import torch

from dedup.stages.embed import ResNet50Features, onnx_available, onnx_model_bytes


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
