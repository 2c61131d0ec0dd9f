"""The command line, as a user and `ray job submit` run it (separate processes, their own Ray)."""
import re
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
    from dedup.synth import base_image, encode, write

    write(tmp_path / "a.jpg", encode(base_image(1)))  # an input with an image: the weights are what is wrong
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


def _dedup(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "jobs.dedup", "run", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("dedup: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_missing_input_and_unwritable_output_fail_fast_with_one_line(tmp_path):
    """Checked before Ray or Milvus start: a one-line error naming the path, a distinct exit code, no traceback."""
    import time

    (tmp_path / "imgs").mkdir()
    cases = [(["--input", tmp_path / "nope", "--output", tmp_path / "o"], 2, str(tmp_path / "nope")),
             (["--input", tmp_path / "imgs", "--output", "/proc/x"], 6, "/proc/x"),
             (["--input", tmp_path / "imgs", "--output", ROOT / "README.md"], 6, str(ROOT / "README.md"))]
    for args, code, named in cases:
        t0 = time.perf_counter()
        r = _dedup(*args, "--model", "thumb")
        assert r.returncode == code, r.stderr[-3000:]
        assert named in _one_error_line(r.stderr)
        assert "ray start" not in r.stderr and time.perf_counter() - t0 < 15
    assert not (tmp_path / "o").exists()
    r = _dedup("--input", tmp_path / "nope", "--output", tmp_path / "o", "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr and "InputNotFound" in r.stderr


@pytest.mark.slow
def test_an_input_with_no_image_is_an_error_that_says_what_was_skipped(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("text")
    (tmp_path / "notes" / "b.json").write_text("{}")
    r = _dedup("--input", tmp_path / "notes", "--output", tmp_path / "o", "--model", "thumb")
    assert r.returncode == 5, r.stderr[-3000:]
    line = _one_error_line(r.stderr)
    assert f"no images in {tmp_path / 'notes'}" in line and "2 files were skipped" in line and ".txt" in line


def test_run_help_gives_the_threshold_runs_use():
    from dedup.config import DedupConfig

    text = " ".join(subprocess.run([sys.executable, "-m", "jobs.dedup", "run", "--help"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    assert DedupConfig(inputs=["x"]).validate().threshold == 0.30
    assert "Default: sscd 0.30 (checked below 0.90)" in text and "sscd 0.8," not in text
    assert "turns the content check off (the run warns)" in text


@pytest.mark.slow
def test_a_threshold_above_the_band_warns_that_the_content_check_is_off(tmp_path, tiny_sscd_file):
    import json

    from dedup.synth import base_image, encode, write

    for i in range(3):
        write(tmp_path / "imgs" / f"{i}.jpg", encode(base_image(i)))
    r = _dedup("--input", tmp_path / "imgs", "--output", tmp_path / "o", "--weights", tiny_sscd_file, "--threshold", "0.92")
    assert r.returncode == 0, r.stderr[-3000:]
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("dedup: warning:")]
    assert len(warnings) == 1 and "--threshold 0.92" in warnings[0] and "content check is off" in warnings[0]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["parameters"]["verify"] == "off" and "content check is off" in summary["warnings"][0]
    assert "warning: --threshold 0.92" in r.stdout  # and again under the run's summary
    # the stage lines are for a person (no raw dicts), and Ray Data has tqdm for its progress bars
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[dedup]")]
    assert not [ln for ln in lines if "{" in ln], lines
    assert re.search(r"^\[dedup\] discover: 3 files, [0-9.]+ MB in [0-9.]+ s$", r.stderr, re.M) and "tqdm is not installed" not in r.stderr
