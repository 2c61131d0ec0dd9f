"""Faults, owned by the runner: the job process SIGKILLed inside each stage and in the middle of the
embedding, an embedding actor killed while it embeds, the Milvus Lite server killed as the store starts.
Each time the run recovers (Ray's retries) or stops with an error naming the stage, and the same command
afterwards finishes with a manifest byte-identical to an uninterrupted run's. (The fault table of docs/faults.md.)

The jobs run as processes of their own group (killed whole afterwards) against one Ray of this module's,
started once (`ray start --head`, single-machine mode, a token of its own): a job's own local Ray would
cost seconds to start each time.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from dedup.synth import encode, make_corpus, textured_image, write

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
STAGES = ["weights", "discover", "decode_embed", "store", "search", "verify", "graph", "canonical", "attach", "manifest"]


def _corpus(root: Path, extra: int = 0) -> Path:
    make_corpus(root, groups=4)
    photo = textured_image(7)
    write(root / "t" / "photo.jpg", encode(photo))
    write(root / "t" / "photo_crop.jpg", encode(photo.crop((40, 30, 400, 300))))
    for i in range(extra):
        write(root / "many" / f"m{i:03d}.jpg", encode(textured_image(100 + i, (160, 120))))
    return root


@pytest.fixture(scope="module")
def cluster():
    """A Ray head of this module's own (its temp dir, ports and token), stopped by process group."""
    tmp = Path(tempfile.mkdtemp(prefix="rayft-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex * 2,
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([str(RAY), "start", "--head", "--port", str(port), "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false",
                          "--object-store-memory", str(256 * 2**20), "--temp-dir", str(tmp), "--disable-usage-stats"],
                         env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    env["RAY_ADDRESS"] = f"127.0.0.1:{port}"
    try:
        yield env
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _start(env: dict, args: list[str], fault: str | None = None) -> subprocess.Popen:
    env = dict(env)
    if fault:
        env["DEDUP_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "jobs.dedup", "run", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(p: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        out, _ = p.communicate(timeout=timeout)
    finally:
        _kill_group(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, "")


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _no_server_left(out: Path) -> bool:
    """No Milvus Lite server of this output folder outlived its job (it dies with the job's main thread)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in psutil.process_iter(["cmdline"]) if str(out / "milvus") in " ".join(p.info["cmdline"] or [])]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def _when_embedding(out: Path, p: subprocess.Popen, deadline_s: float = 120) -> bool:
    """Wait until the first vectors of a running job are on disk (False: it ended first)."""
    deadline = time.monotonic() + deadline_s
    partial = out / "vectors.partial"
    while time.monotonic() < deadline and p.poll() is None:
        if partial.is_dir() and any(partial.glob("*.parquet")):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def corpus(cluster, tmp_path_factory):
    """Images, the test's own SSCD-contract model, the job's arguments, and an uninterrupted run's manifest."""
    from helpers import tiny_sscd_onnx

    tmp = tmp_path_factory.mktemp("faults")
    root = _corpus(tmp / "imgs", extra=120)
    model = tmp / "tiny-sscd.onnx"
    model.write_bytes(tiny_sscd_onnx())
    # --verify all: the test's model has no calibrated band, and the check should run in these jobs too;
    # small decode and embed batches, so that the embedding lasts long enough to be interrupted.
    args = ["--input", str(root), "--weights", str(model), "--threshold", "0.8", "--verify", "all", "--no-report",
            "--decode-batch", "2", "--embed-batch", "2"]
    clean = tmp / "clean"
    r = _finish(_start(cluster, [*args, "--output", str(clean)]))
    assert r.returncode == 0, r.stdout[-3000:]
    return tmp, args, (clean / "manifest.csv").read_bytes(), (clean / "manifest.parquet").read_bytes()


@pytest.mark.slow
def test_sigkill_inside_each_stage_and_milvus_killed_then_the_same_command_finishes(cluster, corpus):
    """One output folder, killed inside each stage in turn (each run resumes what the one before left, then
    dies in the next stage), then its Milvus Lite server killed as the store starts (the store fails with
    an error naming it, exit 4), then the same command without a fault: an uninterrupted run's manifest."""
    tmp, common, clean_csv, clean_parquet = corpus
    out = tmp / "killed"
    args = [*common, "--output", str(out)]
    for stage in STAGES:
        r = _finish(_start(cluster, args, fault=f"kill:{stage}"))
        assert r.returncode == -signal.SIGKILL, f"{stage}: {r.stdout[-2000:]}"
        assert f"[dedup] {stage} ..." in r.stdout and "DEDUP_FAULT: killing" in r.stdout
        assert _no_server_left(out), stage
    (out / "state.json").unlink()  # every stage again: the store must create, fill and index the collection
    r = _finish(_start(cluster, args, fault="kill-milvus:store"))
    assert r.returncode == 4, r.stdout[-3000:]
    assert "dedup: error: stage store failed" in r.stdout and "the same command resumes" in r.stdout
    r = _finish(_start(cluster, args))
    assert r.returncode == 0, r.stdout[-3000:]
    assert "reused from an earlier run" in r.stdout  # what finished before the store was not done again
    assert (out / "manifest.csv").read_bytes() == clean_csv
    assert (out / "manifest.parquet").read_bytes() == clean_parquet


@pytest.mark.slow
def test_killed_in_the_middle_of_the_embedding_then_the_same_command_finishes(cluster, corpus):
    """The whole job (driver, Milvus Lite) killed once the first vectors are on disk: nothing looks
    finished (vectors.partial/ only, decode_embed not in state.json); the same command embeds again."""
    import json

    tmp, common, clean_csv, _ = corpus
    out = tmp / "mid-embedding"
    args = [*common, "--output", str(out)]
    p = _start(cluster, args)
    try:
        assert _when_embedding(out, p), "the job ended before it could be killed"
    finally:
        _kill_group(p)
        p.wait()
    state = json.loads((out / "state.json").read_text())
    assert "discover" in state and "decode_embed" not in state
    assert not (out / "vectors").exists() and not (out / "manifest.csv").exists()
    r = _finish(_start(cluster, args))
    assert r.returncode == 0, r.stdout[-3000:]
    assert json.loads((out / "summary.json").read_text())["reused_stages"] == ["discover"]
    assert (out / "manifest.csv").read_bytes() == clean_csv


@pytest.mark.slow
def test_embedding_actor_killed_mid_run_is_retried(cluster, corpus):
    """SIGKILL of an embedding actor's process while it embeds: Ray restarts it and retries its batch; the
    run finishes with an uninterrupted run's manifest (only reported batches' files are kept)."""
    tmp, common, clean_csv, _ = corpus
    out = tmp / "actor"
    p = _start(cluster, [*common, "--output", str(out)])
    killed = None
    try:
        if _when_embedding(out, p):
            actors = [q for q in psutil.process_iter(["cmdline"]) if "DecodeEmbedder" in " ".join(q.info["cmdline"] or [])]
            if actors:
                actors[0].kill()
                killed = actors[0].pid
        r = _finish(p)
    finally:
        _kill_group(p)
    assert killed is not None, "no embedding actor was caught in the middle of the embedding"
    assert r.returncode == 0, r.stdout[-3000:]
    assert (out / "manifest.csv").read_bytes() == clean_csv
