"""Re-runs and resume: stored stages are reused, a changed parameter reruns only what it affects, and a
run killed in the middle of embedding finishes on a re-run with the same manifest as an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dedup.config import DedupConfig
from dedup import run
from dedup.synth import base_image, encode, make_corpus, write

ROOT = Path(__file__).resolve().parents[2]
COMPARE = ["path", "cluster_id", "canonical_path", "is_canonical", "similarity_to_canonical", "sha"]


def manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv")[COMPARE].sort_values("path").reset_index(drop=True)


def test_rerun_reuses_stages_and_rethreshold_reruns_only_search(ray_local, tmp_path):
    root = tmp_path / "corpus"
    make_corpus(root)
    out = tmp_path / "out"
    cfg = dict(inputs=[str(root)], output=str(out), model="thumb")
    first = run(DedupConfig(**cfg, threshold=0.9))
    assert first["reused_stages"] == []
    before = manifest(out)

    again = run(DedupConfig(**cfg, threshold=0.9))
    assert set(again["reused_stages"]) == {"discover", "decode_embed", "store", "search"}
    pd.testing.assert_frame_equal(manifest(out), before)

    # a higher threshold filters the stored edges: no search, same result as a fresh run at that threshold
    higher = run(DedupConfig(**cfg, threshold=0.97))
    assert set(higher["reused_stages"]) == {"discover", "decode_embed", "store", "search"}
    assert higher["stages"]["search"]["filtered_from_threshold"] == 0.9
    fresh_out = tmp_path / "fresh"
    run(DedupConfig(inputs=[str(root)], output=str(fresh_out), model="thumb", threshold=0.97))
    pd.testing.assert_frame_equal(manifest(out), manifest(fresh_out))

    # a lower one searches again, with the stored vectors and the stored Milvus collection
    lower = run(DedupConfig(**cfg, threshold=0.8))
    assert set(lower["reused_stages"]) == {"discover", "decode_embed", "store"}
    assert lower["search"]["queries"] == 17

    # a changed model reruns decode+embed and everything after it; --fresh recomputes all
    assert set(run(DedupConfig(**cfg, threshold=0.8, image_size=192))["reused_stages"]) == {"discover"}
    assert run(DedupConfig(**cfg, threshold=0.8, fresh=True))["reused_stages"] == []


def _job(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "jobs.dedup", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def test_resume_after_the_job_is_killed_in_the_middle_of_embedding(tmp_path, tiny_resnet_weights):
    root = tmp_path / "photos"
    for i in range(24):
        img = base_image(500 + i)
        write(root / f"p{i:02d}.jpg", encode(img))
        if i % 4 == 0:
            write(root / "copies" / f"p{i:02d}_small.jpg", encode(img.resize((160, 120))))
    common = ["--input", str(root), "--model", "resnet50", "--weights", str(tiny_resnet_weights), "--threshold", "0.999",
              "--embed-batch", "4", "--decode-batch", "2"]

    # Killed: once the first vectors are on disk, kill the whole process group (driver, Ray, Milvus Lite).
    out = tmp_path / "out"
    proc = _job(common + ["--output", str(out)])
    partial = out / "vectors.partial"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if partial.is_dir() and any(partial.glob("*.parquet")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the job ended before it could be killed:\n" + proc.stdout.read()
        assert partial.is_dir() and any(partial.glob("*.parquet")), "no vectors were written in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    state = json.loads((out / "state.json").read_text())
    assert "discover" in state and "decode_embed" not in state  # killed in the middle of embedding
    assert not (out / "vectors").exists() and not (out / "manifest.csv").exists()

    resumed = _job(common + ["--output", str(out)])
    log = resumed.communicate(timeout=400)[0]
    assert resumed.returncode == 0, log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reused_stages"] == ["discover"]

    clean = tmp_path / "clean"
    once = _job(common + ["--output", str(clean)])
    log = once.communicate(timeout=400)[0]
    assert once.returncode == 0, log
    pd.testing.assert_frame_equal(manifest(out), manifest(clean))
    assert len(manifest(out)) == 30
