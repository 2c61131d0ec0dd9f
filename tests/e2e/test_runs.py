"""Runs that keep history (dedup.runs): a re-run with other parameters keeps the earlier run's results under
OUTPUT/runs/<run id>/, the top-level files are the latest run's, `dedup report --runs / --compare` shows two
runs' differences and `dedup apply --run` applies an earlier one."""
import json
from pathlib import Path

import pandas as pd
import pytest

from dedup import run
from dedup.cli import main
from dedup.config import DedupConfig
from dedup.layout import OutputLayout
from dedup.runs import RUN_FILES, compare, list_runs, resolve
from dedup.synth import make_corpus

# thumb on make_corpus: byte-identical copies at 1.0, the PNG and quality-40 copies at 0.9999-0.99996;
# 0.99995 leaves some of them out of their cluster
LOOSE, STRICT = 0.9, 0.99995


@pytest.fixture(scope="module")
def history(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    root, out = tmp / "corpus", tmp / "out"
    make_corpus(root)
    cfg = dict(inputs=[str(root)], output=str(out), model="thumb")
    first = run(DedupConfig(**cfg, threshold=LOOSE))
    first_manifest = pd.read_parquet(out / "manifest.parquet")
    second = run(DedupConfig(**cfg, threshold=STRICT))
    return {"root": root, "out": out, "first": first, "second": second, "first_manifest": first_manifest, "cfg": cfg}


def test_a_rerun_with_another_threshold_keeps_the_earlier_run(history):
    out, first, second = history["out"], history["first"], history["second"]
    layout = OutputLayout.of(out)
    assert first["run_id"] != second["run_id"]
    assert [r.id for r in list_runs(layout)] == [first["run_id"], second["run_id"]]
    assert layout.latest_run.read_text().strip() == second["run_id"]
    a, b = layout.run_dir(first["run_id"]), layout.run_dir(second["run_id"])
    for name in RUN_FILES:
        assert (a / name).exists() and (b / name).exists(), name
    # the first run's files are still the first run's; the top-level ones are the latest run's
    pd.testing.assert_frame_equal(pd.read_parquet(a / "manifest.parquet"), history["first_manifest"])
    assert (b / "manifest.parquet").read_bytes() == (out / "manifest.parquet").read_bytes()
    assert (b / "keep.txt").read_text() == (out / "keep.txt").read_text()
    assert json.loads((a / "summary.json").read_text())["parameters"]["threshold"] == LOOSE
    assert json.loads((out / "summary.json").read_text())["run_id"] == second["run_id"]
    assert len((b / "keep.txt").read_text().splitlines()) > len((a / "keep.txt").read_text().splitlines())


def test_the_same_command_again_refreshes_the_latest_run_instead_of_adding_one(history, tmp_path):
    again = run(DedupConfig(**history["cfg"], threshold=STRICT))
    assert again["run_id"] == history["second"]["run_id"]
    assert len(list_runs(OutputLayout.of(history["out"]))) == 2


def test_compare_says_what_one_run_removes_and_the_other_keeps(history):
    out, first, second = history["out"], history["first"], history["second"]
    a, b = resolve(out, first["run_id"]), resolve(out, "latest")
    assert b.id == second["run_id"] and resolve(out, first["run_id"].rsplit("-", 1)[1]).id == first["run_id"]
    assert resolve(out, "previous").id == first["run_id"]
    d = compare(a, b)
    keep_a = set((a.path / "keep.txt").read_text().splitlines())
    keep_b = set((b.path / "keep.txt").read_text().splitlines())
    assert d["parameters"]["threshold"] == [LOOSE, STRICT]
    assert d["removed_in_a_kept_in_b"]["count"] == len(keep_b - keep_a) > 0
    assert set(d["removed_in_a_kept_in_b"]["examples"]) <= keep_b - keep_a
    assert d["kept_in_a_removed_in_b"]["count"] == len(keep_a - keep_b)
    assert d["clusters_split_in_b"]["count"] > 0 and d["clusters_merged_in_b"]["count"] == 0
    assert not d["same_result"] and d["only_in_a"]["count"] == d["only_in_b"]["count"] == 0
    back = compare(b, a)  # the other way round, the splits are merges
    assert back["clusters_merged_in_b"]["count"] == d["clusters_split_in_b"]["count"] and back["clusters_split_in_b"]["count"] == 0
    assert compare(a, a)["same_result"]


def test_report_runs_and_compare_on_the_command_line(history, capsys):
    out, first, second = history["out"], history["first"], history["second"]
    assert main(["report", str(out), "--runs"]) == 0
    listing = capsys.readouterr().out
    assert first["run_id"] in listing and f"* {second['run_id']}" in listing and f"threshold {LOOSE:g}" in listing
    assert main(["report", str(out), "--compare", first["run_id"]]) == 0  # one run: against the latest
    text = capsys.readouterr().out
    assert f"parameters that differ: threshold {LOOSE:g} -> {STRICT:g}" in text
    assert "removed by A, kept by B:" in text and "clusters split in B:" in text
    assert main(["report", str(out), "--compare", first["run_id"], second["run_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["b"]["id"] == second["run_id"]
    assert main(["report", str(out), "--compare", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    # the report of the latest run names the runs kept, each linked to its own report
    page = (out / "report.html").read_text()
    assert f'href="runs/{first["run_id"]}/report.html"' in page
    kept_page = (OutputLayout.of(out).run_dir(second["run_id"]) / "report.html").read_text()  # the same page, kept
    assert f'href="../{first["run_id"]}/report.html"' in kept_page and 'href="runs/' not in kept_page
    assert "against the run before it" in page and "threshold 0.9 -&gt; 0.99995" in page


def test_apply_takes_the_latest_run_or_an_earlier_one(history, tmp_path, capsys):
    out, first, second = history["out"], history["first"], history["second"]
    assert main(["apply", str(out), "--to", str(tmp_path / "latest"), "--execute"]) == 0
    assert main(["apply", str(out), "--to", str(tmp_path / "first"), "--run", first["run_id"], "--execute"]) == 0
    capsys.readouterr()

    def written(dest: Path) -> int:
        return sum(1 for p in dest.rglob("*") if p.is_file() and not p.name.startswith("."))

    layout = OutputLayout.of(out)
    assert written(tmp_path / "latest") == len((layout.run_dir(second["run_id"]) / "keep.txt").read_text().splitlines())
    assert written(tmp_path / "first") == len((layout.run_dir(first["run_id"]) / "keep.txt").read_text().splitlines())
    log = json.loads((tmp_path / "first" / ".dedup-apply.json").read_text())
    assert log["runs"][-1]["run"] == first["run_id"]
    assert main(["apply", str(out), "--to", str(tmp_path / "x"), "--run", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
