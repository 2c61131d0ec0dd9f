"""Stage `weights`: the learned model's file or weights, found and checked before any image is read.

In:  the config (``--model``, ``--weights``, ``--weights-sha256``, ``--cpu-backend``) and whether the
     embedding actors take GPUs.
Out: a :class:`dedup.sscd_weights.ModelFile` (SSCD: format and bytes), a :class:`dedup.weights.Weights`
     (ResNet-50) or None (the weight-free models); ``parameters.weights_info`` in the summary, and
     ``parameters.embedding``: what two runs' vectors must share to be compared (the model, its file's
     SHA-256, the input's size and resize, the decoder's version), checked for ``--reference``.

It runs every time (it is what makes a wrong file fail fast) and writes nothing: `decode_embed`'s
fingerprint holds what it found (the file's SHA-256), so other weights rerun the embedding.
"""
from __future__ import annotations

from pathlib import Path

from dedup.stages.base import Stage, StageContext, StageResult


class WeightsStage(Stage):
    name = "weights"

    def needs_ray(self, ctx: StageContext) -> bool:
        """Files and checksums: beside Ray's start-up, unless which file depends on a cluster's GPUs."""
        from dedup.ray_env import gpu_question_needs_ray

        return ctx.cfg.uses_model and gpu_question_needs_ray(ctx.cfg)

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.cfg
        if not cfg.uses_model:
            ctx.params["weights_info"] = {"weights": None, "meaningful": True, "model": cfg.model}
            ctx.params["embedding"] = embedding_key(cfg, ctx.params["weights_info"])
            return StageResult(None)
        found, metrics = (_sscd(cfg) if cfg.learned_model != "resnet50" else _resnet50(cfg))
        ctx.params["weights_info"] = found.info
        ctx.params["embedding"] = embedding_key(cfg, found.info)
        return StageResult(found, metrics)


def embedding_key(cfg, info: dict) -> dict:
    from dedup.stages.common import EMBED_VERSION

    return {"model": cfg.model, "weights": info.get("sha256") or info.get("weights"), "preprocess": cfg.preprocess,
            "image_size": cfg.image_size, "max_pixels": cfg.max_pixels, "version": EMBED_VERSION}


def _sscd(cfg):
    from dedup import sscd_weights as sscd_wts
    from dedup import weights as wts
    from dedup.ray_env import wants_gpu

    gpu = wants_gpu(cfg)
    spec = "torchscript" if cfg.weights == "auto" and cfg.cpu_backend == "torch" and not gpu else cfg.weights
    found = sscd_wts.resolve_sscd(cfg.learned_model, spec, cfg.weights_sha256, gpu=gpu)
    if found.format == "torchscript" and cfg.cpu_backend == "onnx" and not gpu:
        raise wts.WeightsError("--cpu-backend onnx needs the ONNX file: " + sscd_wts.install_hint(cfg.learned_model))
    return found, {"format": found.format}


def _resnet50(cfg):
    """The state dict is loaded and checked now, unless an ONNX export of these exact weights is cached
    (they were checked when it was made) for the CPU backend: then neither the driver nor the CPU actors
    import torch."""
    from dedup import weights as wts
    from dedup.ops import models

    found = wts.resolve(cfg.weights, cfg.weights_sha256, load=False)
    if cfg.cpu_backend != "torch" and models.onnx_available() and Path(models.onnx_cache_path(found)).exists():
        return found, {"onnx_cached": True}
    found.state_dict()
    return found, {}
