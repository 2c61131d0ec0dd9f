"""The bare model's forward throughput on already-preprocessed batches: the baseline the job is compared to."""
from __future__ import annotations

import os
import time

import numpy as np


def bare_model(model: str = "resnet50", device: str = "cpu", threads: int | None = None, backend: str = "auto",
               weights: str | None = None):
    """The model the job's actors run, alone: ResNet-50 with random weights (its speed does not depend on
    them) on ``backend``; SSCD from the file the job would resolve (``weights``, default auto)."""
    if model == "resnet50":
        from dedup.ops.models import ResNet50Features
        from dedup.weights import load_state_dict

        sd, _ = load_state_dict("random")
        return ResNet50Features(sd, device, threads=threads if device == "cpu" else None, backend=backend)
    from dedup.ops.models import sscd_features
    from dedup.sscd_weights import resolve_sscd

    found = resolve_sscd(model, weights or "auto", gpu=device != "cpu")
    return sscd_features(found.format, found.data, device, threads if device == "cpu" else None)


def bare_model_throughput(batch: int = 64, batches: int = 6, threads: int | None = None, warmup: int = 1,
                          backend: str = "auto", device: str = "cpu", min_seconds: float = 0.0,
                          model: str = "resnet50", shape: tuple[int, int] = (224, 224), weights: str | None = None) -> dict:
    """Images per second of the bare model (:func:`bare_model`) on uint8 ``shape`` batches already in memory,
    as the job runs it: on CPU the same backend (ONNX Runtime where installed); on ``device`` cuda torch with
    bf16 weights and CUDA graphs, the batch copied in and the features copied out, as in the job's actors.

    At least ``batches`` batches and ``min_seconds`` seconds are timed (a GPU does a CPU's six batches in a
    fraction of a second), after ``warmup`` batches (on GPU, cuDNN picks its kernels then)."""
    threads = threads or os.cpu_count() or 1
    net = bare_model(model, device, threads, backend, weights)
    rng = np.random.default_rng(0)
    # Two different batches in turn, so that nothing is answered from a cache of the last input.
    inputs = [rng.integers(0, 256, size=(batch, *shape, 3), dtype=np.uint8) for _ in range(2)]
    for i in range(warmup):
        net(inputs[i % 2])
    done = 0
    t0 = time.perf_counter()
    while done < batches or time.perf_counter() - t0 < min_seconds:
        net(inputs[done % 2])  # returns host arrays, so every batch has finished on the device when it returns
        done += 1
    seconds = time.perf_counter() - t0
    return {"model": model, "shape": list(shape), "batch": batch, "batches": done, "threads": threads if device == "cpu" else None,
            "device": device, "backend": net.backend, "dtype": str(getattr(net, "dtype", "as in the model file")).replace("torch.", ""),
            "seconds": round(seconds, 3), "images_per_second": round(batch * done / seconds, 2)}


def bracketed(job, **bare_kw) -> tuple[object, dict, dict, float]:
    """``job()`` between two timings of the bare model (``bare_kw`` as for :func:`bare_model_throughput`):
    on a shared VM the speed of the same code drifts by several % within minutes, and timing the baseline
    just before and just after the job keeps a drift from landing on one side of the ratio only.
    Returns (the job's result, the timing before, the timing after, their mean images per second)."""
    before = bare_model_throughput(**bare_kw)
    result = job()
    after = bare_model_throughput(**bare_kw)
    return result, before, after, round((before["images_per_second"] + after["images_per_second"]) / 2, 2)
