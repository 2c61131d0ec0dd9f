"""Ray: starting or joining it, the embedding actors' resources, and how work is cut into blocks.

A local run (no ``--ray-address`` and no ``RAY_ADDRESS``) starts Ray on loopback alone: every Ray service it
starts (the GCS server, the raylet and its object manager, the workers, the dashboard agent, the
runtime-env and metrics agents) binds 127.0.0.1, with Ray's token authentication as it comes (on by
default for a new local cluster in this Ray release) and no dashboard. On Linux Ray turns a node address
of 127.0.0.1 into the machine's own address and its gRPC servers then listen on every interface; its
single-machine mode (the one it uses on macOS and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps
the node on 127.0.0.1, and the servers bind the node address. A local run is a single machine, so that
mode is what :func:`init_ray` asks for. See docs/architecture.md ("Ports") for what a run opens.
"""
from __future__ import annotations

import os
import sys




def init_ray(address: str | None = None, logging_level: str = "WARNING") -> bool:
    """Start or join Ray. Returns True when this call started it (and should stop it)."""
    if not (address or os.environ.get("RAY_ADDRESS")):
        loopback_only()
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, logging_level=logging_level)
    ctx = ray.data.DataContext.get_current()
    # Progress bars (rows and rows/s per operator) on a terminal; in logs (CI, ray job logs) they are noise.
    ctx.enable_progress_bars = sys.stderr.isatty()
    ctx.print_on_execution_start = False
    from dedup.quiet import after_ray_init

    after_ray_init()  # `dedup run` without --verbose: Ray Data's console keeps its warnings only
    return True


def loopback_only() -> None:
    """Ray's single-machine mode for a local cluster started after this (module docstring): the variable
    for Ray imported later and for the processes it starts, and Ray's constant where it is imported already."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if "ray" in sys.modules and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def ray_info() -> dict:
    """Where this run's Ray listens and whether it asks for tokens (for summary.json)."""
    import ray

    info = {"gcs_address": ray.get_runtime_context().gcs_address}
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode

        info["token_auth"] = get_authentication_mode() == AuthenticationMode.TOKEN
    except ImportError:  # pragma: no cover - a Ray without token authentication
        info["token_auth"] = None
    return info


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def local_run(cfg) -> bool:
    """A run on a Ray that this process starts on this machine (no --ray-address, no RAY_ADDRESS)."""
    return not (cfg.ray_address or os.environ.get("RAY_ADDRESS"))


def gpu_question_needs_ray(cfg) -> bool:
    """Whether :func:`wants_gpu` must ask a running Ray (a cluster's GPUs), or can answer before it starts."""
    import ray

    return cfg.gpus_per_embed_actor is None and not ray.is_initialized() and not (local_run(cfg) and local_gpus() is not None)


def wants_gpu(cfg) -> bool:
    """Whether the embedding actors take GPUs: asked for, or by default where the cluster has some (a
    local Ray not started yet: the GPUs Ray will find on this machine, by its own detection)."""
    import ray

    if cfg.gpus_per_embed_actor is not None:
        return cfg.gpus_per_embed_actor > 0
    here = local_gpus() if not ray.is_initialized() and local_run(cfg) else None
    if here is not None:
        return here > 0
    return int(ray.cluster_resources().get("GPU", 0)) > 0


def local_gpus() -> int | None:
    """The GPUs a Ray started here will count (its own NVIDIA detection, CUDA_VISIBLE_DEVICES applied);
    None where that cannot be known without starting it."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        visible = manager.get_current_process_visible_accelerator_ids()
        found = int(manager.get_current_node_num_accelerators())
        return found if visible is None else min(found, len(visible))
    except Exception:  # noqa: BLE001 - Ray's private module moved: ask the running Ray instead
        return None


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


__all__ = ["init_ray", "loopback_only", "ray_info", "local_run", "local_gpus", "gpu_question_needs_ray", "wants_gpu", "embed_resources", "blocks", "one_operator", "cluster_cpus", "onnx_cuda"]
