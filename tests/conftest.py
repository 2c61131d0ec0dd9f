import os
import sys

import pytest

# The tests' own Ray, like a local run's, on loopback alone (see dedup.ray_env).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
sys.path.insert(0, os.path.dirname(__file__))  # tests import helpers.py (model files the tests make)
# The ONNX exports of test weights go to a cache of the test session's own, not the user's ~/.cache.
os.environ.setdefault("DEDUP_CACHE", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dedup-test-cache-{os.getuid()}"))


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole session (starting Ray costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", ignore_reinit_error=True)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_resnet_weights(tmp_path):
    """A real ResNet-50 state dict saved by the test (random values, seeded): stands in for downloaded weights."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(1234)
    path = tmp_path / "resnet50-test.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    return path


@pytest.fixture
def tiny_sscd_file(tmp_path):
    """A tiny SSCD-contract ONNX file written by the test (see :func:`tiny_sscd_onnx`)."""
    from helpers import tiny_sscd_onnx

    path = tmp_path / "tiny-sscd.onnx"
    path.write_bytes(tiny_sscd_onnx())
    return path


@pytest.fixture
def small_tiles(monkeypatch):
    """The exact search's tiles made small (dedup.ops.search.TILE): several tiles, diagonal and off-diagonal, on a small set."""
    from dedup.ops import search

    monkeypatch.setattr(search, "TILE", 128)
