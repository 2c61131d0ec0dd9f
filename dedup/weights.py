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
