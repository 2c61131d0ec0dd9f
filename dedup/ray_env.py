"""Ray: starting or joining it, the embedding actors' resources, and how work is cut into blocks.

A local run (no ``--ray-address`` and no ``RAY_ADDRESS``) starts Ray on loopback alone: every Ray service
this run starts (the GCS server, the raylet and its object manager, the workers, the dashboard agent, the
runtime-env and metrics agents) binds 127.0.0.1, with Ray's token authentication as it comes (on for local
clusters in this Ray release), and no dashboard. See the README ("Ports") for what a run opens.
"""
from __future__ import annotations

import os
import sys

LOOPBACK = "127.0.0.1"


def init_ray(address: str | None = None) -> bool:
    """Start or join Ray. Returns True when this call started it (and should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    local = not (address or os.environ.get("RAY_ADDRESS"))
    kwargs = {"_node_ip_address": LOOPBACK} if local else {}
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, logging_level="WARNING", **kwargs)
    ctx = ray.data.DataContext.get_current()
    # Progress bars (rows and rows/s per operator) on a terminal; in logs (CI, ray job logs) they are noise.
    ctx.enable_progress_bars = sys.stderr.isatty()
    ctx.print_on_execution_start = False
    return True


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def wants_gpu(cfg) -> bool:
    """Whether the embedding actors take GPUs: asked for, or by default where the cluster has some."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    return (cfg.gpus_per_embed_actor or 0) > 0 or (cfg.gpus_per_embed_actor is None and gpus > 0)


def onnx_cuda() -> bool:
    """Whether ONNX Runtime here has its CUDA provider (onnxruntime-gpu)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def embed_resources(cfg, model_format: str | None = None) -> dict:
    """Embedding actor resources: one GPU each where the cluster has GPUs, else CPU actors (as many as fit
    on each node). ``model_format``: the SSCD file's (onnx runs on ONNX Runtime, the others on torch)."""
    import ray

    from dedup.ops.models import resolve_cpu_backend

    gpus = int(ray.cluster_resources().get("GPU", 0))
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    use_gpu = wants_gpu(cfg)
    if use_gpu and model_format == "onnx" and not onnx_cuda():
        print("[dedup] the cluster has GPUs but the model is the ONNX file and onnxruntime has no CUDA provider "
              "(pip install onnxruntime-gpu, or provide the TorchScript file): embedding on CPU actors", file=sys.stderr, flush=True)
        use_gpu = False
    if use_gpu:
        per_gpu = cfg.gpus_per_embed_actor or 1.0
        actors = cfg.embed_actors or max(1, int(gpus / per_gpu))
        return {"actors": actors, "num_gpus": per_gpu, "num_cpus": cfg.cpus_per_embed_actor or 1, "device": "gpu", "backend": "torch"}
    # CPU-only: actors that decode and embed (DecodeEmbedder), each with as many model threads as the CPUs it
    # holds (default 1), as many as fit on each node (a CPU actor must fit on one node).
    per_actor = max(1, int(cfg.cpus_per_embed_actor or 1))
    actors = cfg.embed_actors or sum(max(1, c // per_actor) for c in (node_cpus or [1]))
    backend = resolve_cpu_backend(cfg.cpu_backend) if model_format is None else "onnx" if model_format == "onnx" else "torch"
    return {"actors": actors, "num_gpus": 0, "num_cpus": per_actor, "device": "cpu", "threads": per_actor,
            "backend": backend, "decode_in_actor": True}


def blocks(units: int, per_block: int, items: int | None = None, workers: int | None = None) -> int:
    """Input blocks for a list of work units holding ``items`` items (default: one each): about
    ``per_block`` items a block, at least two blocks per CPU (parallelism), a multiple of ``workers`` (the
    actors or CPUs that take them; default the CPUs) so that the last round keeps every worker busy, never
    more blocks than units. Ray Data's default (200 blocks) made a 2,000-file run spend 3 of its 4 s of
    hashing on task overhead; 63 blocks on 2 CPU actors left one idle for a block's time (~2 s) at the end."""
    cpus = cluster_cpus()
    workers = max(1, int(workers or cpus))
    items = units if items is None else items
    n = max(2 * cpus, -(-items // max(1, per_block)))
    return max(1, min(units, -(-n // workers) * workers))


def one_operator(ds):
    """Ray Data setting for a dataset that runs as one fused map (hashing; decode + a weight-free model +
    write); returns ``ds``.

    Ray Data reserves resources per operator by default, and with a single operator that reservation held
    it to one task until the first task had finished: on 2 CPUs the second CPU sat idle for the first
    0.7-1.1 s of a 3 s stage (measured, 2,014 images: decode + multihash 4.1-4.2 s with it, 3.0-3.1 s
    without). With one operator there is nothing to reserve for, so these datasets run without it (set on
    the dataset's own context, not Ray's global one); the pipelines with several operators (decode tasks
    feeding GPU actors, store, search) keep the default.
    """
    ds.context.op_resource_reservation_enabled = False
    return ds


__all__ = ["init_ray", "wants_gpu", "embed_resources", "blocks", "one_operator", "cluster_cpus", "onnx_cuda", "LOOPBACK"]
