"""The bare model's forward throughput on already-preprocessed batches: the baseline the job is compared to."""
from __future__ import annotations

import os
import time

import numpy as np


def bare_model_throughput(batch: int = 64, batches: int = 6, threads: int | None = None, warmup: int = 1,
                          backend: str = "auto") -> dict:
    """Images per second of ResNet50Features alone (random weights, uint8 224x224 batches already in memory),
    on the same CPU backend as the job (ONNX Runtime where installed)."""
    from dedup.stages.embed import ResNet50Features
    from dedup.weights import load_state_dict

    sd, _ = load_state_dict("random")
    threads = threads or os.cpu_count() or 1
    model = ResNet50Features(sd, "cpu", threads=threads, backend=backend)
    pixels = np.random.default_rng(0).integers(0, 256, size=(batch, 224, 224, 3), dtype=np.uint8)
    for _ in range(warmup):
        model(pixels)
    t0 = time.perf_counter()
    for _ in range(batches):
        model(pixels)
    seconds = time.perf_counter() - t0
    return {"batch": batch, "batches": batches, "threads": threads, "backend": model.backend, "seconds": round(seconds, 3),
            "images_per_second": round(batch * batches / seconds, 2)}
