"""The models: uint8 image batches -> L2-normalised float32 vectors (no Ray; the actors that run them
are in :mod:`dedup.stages.decode_embed`).

Models (each takes uint8 NHWC batches and gives L2-normalised float32 vectors):
* ``sscd`` (the default) and ``sscd-mobile``: SSCD copy-detection descriptors (512-d), from the model file
  :func:`dedup.sscd_weights.resolve_sscd` found: the int8 ONNX file on ONNX Runtime (:class:`OnnxFeatures`), or
  Meta's TorchScript on torch (:class:`TorchFeatures`: bf16 weights and CUDA graphs on GPU).
* ``resnet50``: torchvision ResNet-50 up to global average pooling (2048-d). One GPU per actor where the
  cluster has GPUs (bf16 weights, or fp16 where bf16 is not supported; BatchNorm folded; channels_last; CUDA
  graphs); CPU actors
  otherwise, using every CPU the actor was given. The weights are resolved once by the driver
  (:mod:`dedup.weights`) and shared through the object store, so all actors run the same model.
* Batches whose images have different shapes (``--preprocess short-side``) run one model call per shape.
* perceptual hashes (``multihash``, ``phash``, ... see :mod:`dedup.ops.hashes`): computed by the decode
  workers; here the +1/-1 bits are scaled to unit length, so cosine = 1 - 2 * Hamming / bits.
* ``thumb``: a weight-free 8x8 colour thumbnail (192-d, mean-removed). Not a semantic model: it is the
  controlled, deterministic embedding the tests use, and a smoke-test model for machines without weights.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pyarrow as pa

from dedup.ops.hashes import HASHES

MODEL_DIMS = {"sscd": 512, "sscd-mobile": 512, "resnet50": 2048, "thumb": 192, **{name: spec.bits for name, spec in HASHES.items()}}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def embedding_dim(model: str) -> int:
    """Dimension of the ``embedding`` column (for resnet50+HASH: ResNet-50's; the hash has its own column)."""
    return MODEL_DIMS[model.split("+", 1)[0]]


def thumb_embed(pixels: np.ndarray, grid: int = 8) -> np.ndarray:
    n, h, w, c = pixels.shape
    x = pixels.astype(np.float32).reshape(n, grid, h // grid, grid, w // grid, c).mean(axis=(2, 4))
    x = x.reshape(n, -1)
    x -= x.mean(axis=1, keepdims=True)
    return _l2(x)


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def fuse_conv_bn(model):
    """Fold each eval-mode BatchNorm into the convolution before it (torch.fx): the same function, fewer
    layers. Used on the torch paths (the ONNX export gets the same folding from ONNX Runtime)."""
    from torch.fx.experimental.optimization import fuse

    return fuse(model.eval())


def build_resnet50(state_dict: dict):
    import torch
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    model.fc = torch.nn.Identity()
    backbone = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    model.load_state_dict(backbone, strict=True)
    return model.eval()


CPU_BACKENDS = ("auto", "onnx", "torch")
ONNX_FORMAT_VERSION = 1  # bump when the exported graph changes, so cached exports are redone


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_cpu_backend(requested: str) -> str:
    """auto: ONNX Runtime where it is installed (about 3x torch eager on the CPUs measured), else torch."""
    if requested == "onnx" and not onnx_available():
        raise RuntimeError("--cpu-backend onnx needs the onnxruntime package (pip install onnxruntime)")
    if requested == "auto":
        return "onnx" if onnx_available() else "torch"
    return requested


def _u8_features_module(state_dict: dict):
    """uint8 NHWC batch -> ImageNet normalisation -> ResNet-50 pooled features -> L2: one module to export."""
    import torch

    class U8Features(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

        def forward(self, x):
            x = x.permute(0, 3, 1, 2).float().sub(self.mean).div(self.std)
            return torch.nn.functional.normalize(self.model(x), dim=1)

    return U8Features(build_resnet50(state_dict)).eval()


def _cache_root(cache_dir: str | None = None) -> str:
    import os

    return cache_dir or os.environ.get("DEDUP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ray-image-dedup")


def onnx_cache_path(weights, cache_dir: str | None = None) -> str:
    """Where the ONNX export of these weights is cached: by :class:`dedup.weights.Weights` key (the file's
    SHA-256 or the random seed; no torch needed), or for a bare state dict by a hash of its tensors."""
    import hashlib
    import os

    if hasattr(weights, "key"):
        digest = hashlib.sha256(f"{ONNX_FORMAT_VERSION}:{weights.key}".encode()).hexdigest()[:24]
    else:
        import torch

        h = hashlib.sha256(f"{torch.__version__}:{ONNX_FORMAT_VERSION}".encode())
        for key in sorted(weights):
            t = weights[key]
            h.update(key.encode())
            if hasattr(t, "numpy"):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        digest = "sd-" + h.hexdigest()[:24]
    return os.path.join(_cache_root(cache_dir), "onnx", f"resnet50-u8-{digest}.onnx")


def onnx_model_bytes(weights, cache_dir: str | None = None) -> tuple[bytes, dict]:
    """The ONNX export of the feature extractor for these weights (a :class:`dedup.weights.Weights` or a
    state dict), cached (:func:`onnx_cache_path`).

    Returns (model bytes, info). Exported once per weights (15-30 s on 2 cores) into
    ``$DEDUP_CACHE`` (default ``~/.cache/ray-image-dedup``)/onnx/, then read back in well under a second.
    """
    import os
    import tempfile

    path = onnx_cache_path(weights, cache_dir)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read(), {"onnx_cache": path, "exported": False}
    import torch

    os.makedirs(os.path.dirname(path), exist_ok=True)
    module = _u8_features_module(weights if isinstance(weights, dict) else weights.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "model.onnx")
        torch.onnx.export(
            module, (torch.zeros(2, 224, 224, 3, dtype=torch.uint8),), out, opset_version=18,
            input_names=["pixels"], output_names=["features"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}}, dynamo=True, external_data=False,
        )
        with open(out, "rb") as f:
            data = f.read()
    tmp_path = path + f".{os.getpid()}.tmp"
    with open(tmp_path, "wb") as f:
        f.write(data)
    os.replace(tmp_path, path)
    return data, {"onnx_cache": path, "exported": True}


class OnnxFeatures:
    """ONNX Runtime on a model with the job's contract: one uint8 NHWC image batch in, float features out
    (L2-normalised here). The CUDA execution provider is used on ``device`` cuda where it is installed."""

    def __init__(self, onnx_bytes: bytes, threads: int | None = None, device: str = "cpu"):
        import os

        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(onnx_bytes, so, providers=providers)
        self.providers = self.session.get_providers()
        self.input = self.session.get_inputs()[0].name
        self.backend = "onnx"

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input: np.ascontiguousarray(pixels, dtype=np.uint8)})[0]
        return _l2(np.asarray(out, np.float32))


class TorchFeatures:
    """A torch module (ImageNet-normalised float NCHW in, features out) on uint8 NHWC batches, L2-normalised.

    On GPU: bf16 (or fp16) weights, channels_last, one CUDA graph replayed per batch and input shape
    (``cuda_graphs``), the batch staged through page-locked memory. On CPU: eager, channels_last, fp32.
    """

    def __init__(self, module, device: str = "cpu", threads: int | None = None, cuda_graphs: bool = True,
                 batch: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.backend = "torch"
        self.session = None
        self.device = torch.device(device)
        self.dtype = torch.float32
        if self.device.type == "cuda":
            # bf16 weights (fp16 where bf16 is not supported): no per-batch weight casts as under autocast.
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            torch.backends.cudnn.benchmark = True  # batches have one shape (padded, see _gpu): let cuDNN pick
        self.model = module.eval().to(self.device, dtype=self.dtype, memory_format=torch.channels_last)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255.0
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self.graphs = {}  # input shape -> (batch size, graph, static input, static output), captured on first use
        self.graph_batch = batch  # the batch size graphs are captured for (default: the first batch's)
        self.pinned = None


    def _forward(self, x):
        """uint8 NHWC on the device -> L2-normalised float32 features."""
        torch = self.torch
        x = x.permute(0, 3, 1, 2).float().sub_(self.mean).div_(self.std)
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return torch.nn.functional.normalize(self.model(x).float(), dim=1)

    def _capture(self, batch: int, shape: tuple):
        """One CUDA graph of the whole forward pass for ``batch`` images: a batch is then one launch instead
        of ~200, so the GPU does not wait on a Python thread that shares its CPUs with the decoders."""
        torch = self.torch
        static_in = torch.zeros((batch, *shape), dtype=torch.uint8, device=self.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # cuDNN's benchmark and the allocator settle before capture
                self._forward(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        self.graphs[shape] = (batch, graph, static_in, static_out)

    def _gpu(self, pixels: np.ndarray) -> np.ndarray:
        torch = self.torch
        n = len(pixels)
        if self.pinned is None or self.pinned.shape[0] < n:  # page-locked staging: an asynchronous copy in
            self.pinned = torch.empty((n, *pixels.shape[1:]), dtype=torch.uint8, pin_memory=True)
        host = self.pinned[:n]
        with warnings.catch_warnings():  # Ray hands read-only arrays over; they are only read here
            warnings.simplefilter("ignore", UserWarning)
            src = torch.from_numpy(np.ascontiguousarray(pixels))
        host.copy_(src)
        if not self.cuda_graphs:
            return self._forward(host.to(self.device, non_blocking=True)).cpu().numpy()
        shape = tuple(pixels.shape[1:])
        if shape not in self.graphs:
            import sys

            t0 = time.perf_counter()
            self._capture(max(n, int(self.graph_batch or 0)), shape)
            print(f"[dedup] CUDA graph for batches of {self.graphs[shape][0]} x {shape} captured in {time.perf_counter() - t0:.1f} s "
                  "(cuDNN's kernel choice included)", file=sys.stderr, flush=True)
        batch, graph, static_in, static_out = self.graphs[shape]
        out = np.empty((n, static_out.shape[1]), np.float32)
        for i in range(0, n, batch):  # a smaller (last) batch runs padded: rows are independent in eval mode
            m = min(batch, n - i)
            static_in[:m].copy_(host[i : i + m], non_blocking=True)
            graph.replay()
            out[i : i + m] = static_out[:m].cpu().numpy()
        return out

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            if self.device.type == "cuda":
                return self._gpu(pixels)
            return self._forward(torch.from_numpy(np.ascontiguousarray(pixels))).numpy().astype(np.float32)



class ResNet50Features(TorchFeatures):
    """The bare ResNet-50 on already-preprocessed uint8 batches: used by the actor and by the benchmark.

    On GPU: torch (:class:`TorchFeatures`) with BatchNorm folded into the convolutions in fp32 first (53
    fewer layers to launch). On CPU: ONNX Runtime on the exported graph (``backend`` onnx, the default
    where onnxruntime is installed: about 3x torch eager here, features equal to fp32 torch within 1e-7
    cosine) or torch eager channels_last (``backend`` torch). With ``onnx_bytes`` on CPU the state dict is
    not needed (pass None) and torch is never imported.
    """

    def __init__(self, state_dict: dict | None, device: str = "cpu", threads: int | None = None, backend: str = "auto",
                 onnx_bytes: bytes | None = None, cuda_graphs: bool = True, batch: int | None = None):
        self.backend = "torch" if device != "cpu" else resolve_cpu_backend(backend)
        self.session = None
        if self.backend == "onnx":
            if onnx_bytes is None:
                onnx_bytes, _ = onnx_model_bytes(state_dict)
            self.onnx = OnnxFeatures(onnx_bytes, threads)
            self.session = self.onnx.session
            return
        super().__init__(fuse_conv_bn(build_resnet50(state_dict)), device, threads, cuda_graphs, batch)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.onnx(pixels) if self.session is not None else super().__call__(pixels)

def sscd_features(fmt: str, data: bytes | None, device: str = "cpu", threads: int | None = None,
                  batch: int | None = None):
    """The SSCD model of a resolved file (:class:`dedup.sscd_weights.ModelFile`'s ``format`` and ``data``):
    ``onnx`` on ONNX Runtime (the CUDA provider on GPU where installed), ``torchscript`` on torch, ``random``
    an SSCD-shaped random network on torch (throughput runs)."""
    if fmt == "onnx":
        return OnnxFeatures(data, threads, device)
    import io

    import torch

    if fmt == "torchscript":
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; Meta's model ships as one
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    else:
        from dedup.ops.sscd_net import random_sscd

        module = random_sscd()
    return TorchFeatures(module, device, threads, batch=batch)


def run_by_shape(features, pixels) -> np.ndarray:
    """``features`` over a batch whose images may differ in shape (an object array of arrays): one call per
    shape, rows back in order."""
    if isinstance(pixels, np.ndarray) and pixels.dtype != object:
        return features(pixels)
    shapes: dict[tuple, list[int]] = {}
    for i, p in enumerate(pixels):
        shapes.setdefault(tuple(np.shape(p)), []).append(i)
    out = None
    for idx in shapes.values():
        part = features(np.stack([pixels[i] for i in idx]))
        if out is None:
            out = np.zeros((len(pixels), part.shape[1]), np.float32)
        out[idx] = part
    return out if out is not None else np.zeros((0, 0), np.float32)


def embeddings_to_numpy(col) -> np.ndarray:
    """A (chunked) fixed-size-list column -> (n, dim) float32 array without Python objects."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if isinstance(col, np.ndarray):  # Ray may hand tensor columns over as arrays already
        return np.asarray(np.stack(col) if col.dtype == object else col, np.float32)
    dim = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
