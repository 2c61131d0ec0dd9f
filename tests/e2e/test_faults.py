"""Faults, owned by the runner: the job process SIGKILLed inside each stage, an embedding actor killed in
the middle of the embedding, the Milvus Lite server killed as the store starts. Each time the run recovers
(Ray's retries) or stops with an error naming the stage, and the same command afterwards finishes with a
manifest byte-identical to an uninterrupted run's. (The README's fault table.)"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dedup.synth import encode, make_corpus, textured_image, write

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["weights", "discover", "decode_embed", "store", "search", "verify", "graph", "manifest"]


def _corpus(root: Path, extra: int = 0) -> Path:
    make_corpus(root, groups=4)
    photo = textured_image(7)
    write(root / "t" / "photo.jpg", encode(photo))
    write(root / "t" / "photo_crop.jpg", encode(photo.crop((40, 30, 400, 300))))
    for i in range(extra):
        write(root / "many" / f"m{i:03d}.jpg", encode(textured_image(100 + i, (160, 120))))
    return root


def _job(args: list[str], fault: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The job as a process of its own group: afterwards the group is killed, so that what a SIGKILLed
    driver leaves (Ray 2.60's dashboard and runtime-env agents outlive it) does not outlive the test."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("DEDUP_FAULT", None)
    if fault:
        env["DEDUP_FAULT"] = fault
    p = subprocess.Popen([sys.executable, "-m", "jobs.dedup", "run", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(p.args, p.returncode, out, "")


def _no_server_left(out: Path) -> bool:
    """No Milvus Lite server of this output folder outlived its job (it dies with the job's main thread)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in psutil.process_iter(["cmdline"]) if str(out / "milvus") in " ".join(p.info["cmdline"] or [])]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Images, the test's own SSCD-contract model, the job's arguments, and an uninterrupted run's manifest."""
    from helpers import tiny_sscd_onnx

    tmp = tmp_path_factory.mktemp("faults")
    root = _corpus(tmp / "imgs", extra=120)
    model = tmp / "tiny-sscd.onnx"
    model.write_bytes(tiny_sscd_onnx())
    # --verify all: the test's model has no calibrated band, and the check should run in these jobs too;
    # small decode and embed batches so that an actor can be caught in the middle of the embedding.
    args = ["--input", str(root), "--weights", str(model), "--threshold", "0.8", "--verify", "all", "--no-report",
            "--decode-batch", "2", "--embed-batch", "2"]
    clean = tmp / "clean"
    r = _job([*args, "--output", str(clean)])
    assert r.returncode == 0, r.stdout[-3000:]
    return tmp, args, (clean / "manifest.csv").read_bytes(), (clean / "manifest.parquet").read_bytes()


@pytest.mark.slow
def test_sigkill_inside_each_stage_and_milvus_killed_then_the_same_command_finishes(corpus):
    """One output folder, killed inside each stage in turn (each run resumes what the one before left, then
    dies in the next stage), then its Milvus Lite server killed as the store starts (the store fails with
    an error naming it, exit 4), then the same command without a fault: an uninterrupted run's manifest."""
    tmp, common, clean_csv, clean_parquet = corpus
    out = tmp / "killed"
    args = [*common, "--output", str(out)]
    for stage in STAGES:
        r = _job(args, fault=f"kill:{stage}")
        assert r.returncode == -signal.SIGKILL, f"{stage}: {r.stdout[-2000:]}"
        assert f"[dedup] {stage} ..." in r.stdout and "DEDUP_FAULT: killing" in r.stdout
        assert _no_server_left(out), stage
    (out / "state.json").unlink()  # every stage again: the store must create, fill and index the collection
    r = _job(args, fault="kill-milvus:store")
    assert r.returncode == 4, r.stdout[-3000:]
    assert "dedup: error: stage store failed" in r.stdout and "the same command resumes" in r.stdout
    r = _job(args)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "reused from an earlier run" in r.stdout  # what finished before the store was not done again
    assert (out / "manifest.csv").read_bytes() == clean_csv
    assert (out / "manifest.parquet").read_bytes() == clean_parquet


@pytest.mark.slow
def test_embedding_actor_killed_mid_run_is_retried(corpus):
    """SIGKILL of an embedding actor's process while it embeds: Ray restarts it and retries its batch; the
    run finishes with an uninterrupted run's manifest (only reported batches' files are kept)."""
    tmp, common, clean_csv, _ = corpus
    out = tmp / "actor"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("DEDUP_FAULT", None)
    p = subprocess.Popen([sys.executable, "-m", "jobs.dedup", "run", *common, "--output", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    killed = None
    try:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and p.poll() is None:
            partial = out / "vectors.partial"
            if partial.is_dir() and any(partial.glob("*.parquet")):
                for proc in psutil.Process(p.pid).children(recursive=True):
                    if "DecodeEmbedder" in " ".join(proc.cmdline()):
                        proc.kill()
                        killed = proc.pid
                        break
            time.sleep(0.02)
        log, _ = p.communicate(timeout=300)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert killed is not None, "no embedding actor was caught in the middle of the embedding"
    assert p.returncode == 0, log[-3000:]
    assert (out / "manifest.csv").read_bytes() == clean_csv
