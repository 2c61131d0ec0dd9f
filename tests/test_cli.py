"""The command line, as a user and `ray job submit` run it (separate processes, their own Ray)."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dedup.cli import build_parser, config_from_args
from dedup.synth import make_corpus

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_config_with_flag_overrides(tmp_path):
    cfg_file = tmp_path / "job.yaml"
    cfg_file.write_text(yaml.safe_dump({"inputs": ["a", "b"], "threshold": 0.8, "canonical": "bytes,path"}))
    args = build_parser().parse_args(["run", "--config", str(cfg_file), "--threshold", "0.95"])
    cfg = config_from_args(args).validate()
    assert cfg.inputs == ["a", "b"] and cfg.threshold == 0.95 and cfg.canonical_keys() == ["bytes", "path"]


@pytest.mark.parametrize("bad", [["--threshold", "1.5"], ["--canonical", "size"], ["--search-limit", "0"],
                                 ["--model", "multihash", "--hash-vectors", "binary"]])  # binary needs a server
def test_bad_options_are_refused_before_any_work(bad, tmp_path):
    r = subprocess.run([sys.executable, "-m", "jobs.dedup", "run", "--input", str(tmp_path), *bad], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "error" in r.stderr


def test_missing_weights_file_is_a_clear_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "jobs.dedup", "run", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--weights", str(tmp_path / "none.pth")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert r.returncode == 3 and "weights file not found" in r.stderr and "--weights" in r.stderr


@pytest.mark.slow
def test_python_m_jobs_dedup_runs_the_job(tmp_path):
    make_corpus(tmp_path / "imgs", groups=2)
    r = subprocess.run(
        [sys.executable, "-m", "jobs.dedup", "run", "--input", str(tmp_path / "imgs"), "--output", str(tmp_path / "o"), "--model", "thumb"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"manifest: {tmp_path / 'o' / 'manifest.csv'}" in r.stdout
    assert (tmp_path / "o" / "keep.txt").read_text().count("\n") == 4


def test_hash_vectors_are_binary_on_a_server_and_float_on_milvus_lite():
    from dedup.config import DedupConfig

    assert not DedupConfig(inputs=["x"], model="multihash").validate().binary_hashes
    assert DedupConfig(inputs=["x"], model="multihash", milvus_uri="http://h:19530").validate().binary_hashes
    assert not DedupConfig(inputs=["x"], model="multihash", milvus_uri="http://h:19530", hash_vectors="float").validate().binary_hashes
    assert DedupConfig(inputs=["x"], model="resnet50+multihash", weights="random", milvus_uri="http://h:19530").validate().binary_hashes
    assert not DedupConfig(inputs=["x"], model="thumb", milvus_uri="http://h:19530").validate().binary_hashes
