"""The command line, as a user and `ray job submit` run it (separate processes, their own Ray)."""
import re
import os
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


def test_secrets_in_a_yaml_config_reach_the_job_unmasked(tmp_path):
    """to_dict() masks secrets for printing; the config a run gets from YAML must keep them (a
    bulk_secret_key once reached the job as '***')."""
    cfg_file = tmp_path / "job.yaml"
    cfg_file.write_text(yaml.safe_dump({"inputs": ["a"], "milvus_token": "user:pw", "bulk_secret_key": "s3cr3t",
                                        "bulk_access_key": "key"}))
    cfg = config_from_args(build_parser().parse_args(["run", "--config", str(cfg_file)]))
    assert cfg.milvus_token == "user:pw" and cfg.bulk_secret_key == "s3cr3t" and cfg.bulk_access_key == "key"
    assert cfg.to_dict()["bulk_secret_key"] == "***"


@pytest.mark.parametrize("bad", [["--threshold", "1.5"], ["--canonical", "size"], ["--search-limit", "0"],
                                 ["--model", "multihash", "--hash-vectors", "binary"]])  # binary needs a server
def test_bad_options_are_refused_before_any_work(bad, tmp_path):
    r = subprocess.run([sys.executable, "-m", "jobs.dedup", "run", "--input", str(tmp_path), *bad], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "error" in r.stderr


@pytest.mark.slow
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
    # as a user's shell: no RAY_AUTH_MODE that an in-process CLI test of this session set (quiet.quiet_ray_env)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    return subprocess.run([sys.executable, "-m", "jobs.dedup", "run", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("dedup: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.mark.slow
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


@pytest.mark.slow
def test_an_input_whose_files_all_fail_to_decode_is_exit_5_not_a_result(tmp_path):
    """Every file has an image extension but none is an image: not 0 with everything in errors.csv, but
    exit 5 with one line giving the reasons (errors.csv is still written, with every file's)."""
    (tmp_path / "broken").mkdir()
    for i in range(3):
        (tmp_path / "broken" / f"x{i}.jpg").write_bytes(b"not an image %d" % i)
    (tmp_path / "broken" / "y.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    r = _dedup("--input", tmp_path / "broken", "--output", tmp_path / "o", "--model", "thumb")
    assert r.returncode == 5, r.stderr[-3000:]
    line = _one_error_line(r.stderr)
    assert f"no images in {tmp_path / 'broken'}: none of its 4 files could be read as an image" in line, line
    assert str(tmp_path / "o" / "errors.csv") in line
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "o" / "errors.csv")) == 4
    assert not (tmp_path / "o" / "runs").exists()  # no result: no run kept


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


def test_run_help_is_short_and_help_all_lists_every_option():
    """`run --help` fits a screen (80 columns, at most 80 lines) with the options most runs need; the tuning
    options (Milvus bulk import, actors, search) are under --help-all only."""
    import os

    env = {**os.environ, "COLUMNS": "80"}
    short = subprocess.run([sys.executable, "-m", "jobs.dedup", "run", "--help"], cwd=ROOT, capture_output=True, text=True, env=env)
    full = subprocess.run([sys.executable, "-m", "jobs.dedup", "run", "--help-all"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert short.returncode == 0 and full.returncode == 0, short.stderr + full.stderr
    assert len(short.stdout.splitlines()) <= 80, short.stdout
    for needed in ["--input", "--output", "--model", "--threshold", "--verify", "--canonical", "--include", "--exclude",
                   "--fresh", "--no-report", "--ray-address", "--milvus-uri", "--debug", "--verbose", "--help-all"]:
        assert needed in short.stdout, needed
    for advanced in ["--bulk-bucket", "--embed-actors", "--search-limit", "--exact-below", "--reference", "--weights"]:
        listed = re.compile(rf"^\s+{advanced}[ ,\n]", re.M)
        assert not listed.search(short.stdout) and listed.search(full.stdout), advanced
    # every option the parser takes is in --help-all
    options = {o for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions for o in a.option_strings}
    assert not [o for o in options if o.startswith("--") and o not in full.stdout]


def test_ray_lines_a_quiet_run_leaves_out():
    from dedup.quiet import dropped

    assert dropped(b"[2026-12-06 06:46:30,168 E 4269 4269] core_worker.cc:2465: Actor with class name: 'MapWorker(MapBatches(DecodeEmbedder))' "
                   b"and ID: '4c2c' has constructor arguments in the object store and max_restarts > 0. If the arguments ...\n")
    assert dropped(b"(MapWorker pid=12) [2026-12-06 06:46:30,168 W 12 12] memory_monitor.cc:1: something\n")
    assert not dropped(b"[2026-12-06 06:46:30,168 E 4269 4269] raylet_client.cc:1: the raylet died\n")  # other errors pass
    assert not dropped(b"[2026-12-06 06:46:30,168 F 4269 4269] core_worker.cc:1: check failed\n")
    assert not dropped(b"[dedup] discover: 3 files, 0.0 MB in 0.1 s\n") and not dropped(b"dedup: error: x\n")


@pytest.mark.slow
def test_a_run_prints_no_ray_noise_unless_verbose(tmp_path, tiny_sscd_file):
    """Ray's own lines (the driver's core_worker.cc ERROR about actor restarts, the token-auth notice, Ray
    Data's 'Progress bars disabled' and INFO lines) are left off a run's stderr; --verbose shows them."""
    from dedup.synth import base_image, encode, write

    for i in range(3):
        write(tmp_path / "imgs" / f"{i}.jpg", encode(base_image(i)))
    noise = ["core_worker.cc", "max_restarts", "Token authentication", "Progress bars disabled", "\tINFO "]
    r = _dedup("--input", tmp_path / "imgs", "--output", tmp_path / "o", "--weights", tiny_sscd_file)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not [n for n in noise if n in r.stderr], r.stderr
    assert re.search(r"^\[dedup\] decode_embed: 3 images", r.stderr, re.M)
    r = _dedup("--input", tmp_path / "imgs", "--output", tmp_path / "o2", "--weights", tiny_sscd_file, "--verbose")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Token authentication is enabled" in r.stderr and "Progress bars disabled" in r.stderr
