"""The Python API: dedup.find_duplicates on a folder returns the clusters, keep/remove lists and the
summary; it resumes on the same output; options are DedupConfig's, typed, and an unknown one is a TypeError."""
import gc
import inspect
import os
import pydoc

import pytest

import dedup
from dedup.synth import make_corpus


def test_find_duplicates_on_a_folder_returns_the_clusters_and_resumes(ray_local, tmp_path):
    root = tmp_path / "photos"
    truth = make_corpus(root)
    out = tmp_path / "out"
    r = dedup.find_duplicates(root, output=out, model="thumb", threshold=0.9)

    assert list(r.clusters.columns) == ["path", "cluster", "kept", "similarity", "reason", "canonical_path"]
    assert len(r.clusters) == len(truth) == 22 and len(r.errors) == 0
    rel = r.clusters["path"].map(lambda p: os.path.relpath(p, root))
    groups = sorted(sorted(truth[x] for x in g) for _, g in rel.groupby(r.clusters["cluster"]))
    assert groups == sorted(sorted([g] * list(truth.values()).count(g)) for g in set(truth.values()))
    assert sorted(r.keep) == sorted(r.clusters.loc[r.clusters["kept"], "path"]) and len(r.keep) == 7
    assert sorted(r.keep + r.remove) == sorted(r.clusters["path"]) and len(r.remove) == 15
    assert {os.path.relpath(p, root) for p in r.keep} == {f"a/g{g}.jpg" for g in range(5)} | {"solo/s0.jpg", "solo/s1.jpg"}
    by = r.clusters.set_index(rel)
    assert by.loc["b/nested/g0_copy.jpg", "reason"] == f"byte-identical copy of {root / 'a/g0.jpg'}"
    assert by.loc["a/g0_small.png", "reason"].startswith(f"near copy of {root / 'a/g0.jpg'} (similarity 0.99")
    assert by.loc["solo/s0.jpg", "reason"] == "unique" and by.loc["a/g0.jpg", "reason"].startswith("kept: ")
    assert r.duplicates[str(root / "a/g0.jpg")] == sorted(str(root / p) for p in ("a/g0_small.png", "b/nested/g0_copy.jpg", "c/g0_q40.jpg"))
    assert r.summary["counts"]["clusters"] == 7 and r.report == out / "report.html" and r.report.exists()
    assert r.output == out and not r.temporary and "keep 7, remove 15" in repr(r)
    assert set(r.manifest.columns) >= {"cluster_id", "is_canonical", "match", "kept_because"}

    again = dedup.find_duplicates([str(root)], output=str(out), model="thumb", threshold=0.9)  # resumes
    assert {"discover", "decode_embed", "store", "search"} <= set(again.summary["reused_stages"])
    assert again.clusters.equals(r.clusters)
    assert dedup.Result.load(out).clusters.equals(r.clusters)  # a finished run's folder, e.g. a CLI run's


def test_without_an_output_the_run_lives_in_a_temporary_folder(ray_local, tmp_path):
    root = tmp_path / "photos"
    make_corpus(root, groups=1)
    r = dedup.find_duplicates(root, model="multihash", report=False)
    folder = r.output
    assert r.temporary and (folder / "manifest.parquet").exists() and r.report is None
    assert len(r.keep) == 3 and len(r.remove) == 3
    kept = r.save(tmp_path / "kept")
    assert not kept.temporary and kept.clusters.equals(r.clusters)
    del r
    gc.collect()
    assert not folder.exists()


def test_options_are_the_configs_typed_and_an_unknown_one_is_a_type_error(tmp_path):
    from dedup.config import DedupConfig

    params = inspect.signature(dedup.find_duplicates).parameters
    fields = [f for f in DedupConfig.__dataclass_fields__ if f not in ("inputs", "output")]
    assert list(params)[:2] == ["inputs", "output"] and list(params)[2:] == fields
    assert params["threshold"].annotation == (float | None) and params["model"].default == "sscd"
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[2:])
    with pytest.raises(TypeError, match=r"'treshold'.*valid options: .*threshold"):
        dedup.find_duplicates(tmp_path, output=tmp_path / "o", treshold=0.5)
    with pytest.raises(dedup.ConfigError, match="--model must be one of"):
        dedup.find_duplicates(tmp_path, output=tmp_path / "o", model="nope")


def test_help_shows_the_public_api_with_typed_signatures():
    text = pydoc.render_doc(dedup, renderer=pydoc.plaintext)
    assert "find_duplicates(inputs: 'str | os.PathLike | list[str | os.PathLike]', output: 'str | os.PathLike | None' = None, *, " in text
    assert "model: str = 'sscd'" in text and "-> 'Result'" in text
    assert "class Result" in text and "dedup.ray.deduplicate(ds, *, image_column, id_column, output" in text
    ray_text = pydoc.render_doc(dedup.ray, renderer=pydoc.plaintext)
    assert "deduplicate(ds: 'ray.data.Dataset', *, image_column: 'str', id_column: 'str', output: 'str | os.PathLike', keep_only: 'bool' = False" in ray_text


def test_dedup_ray_is_importable_every_way_and_shadows_no_ray_package():
    import subprocess
    import sys
    from pathlib import Path

    import dedup.ray
    from dedup.ray import deduplicate

    assert dedup.ray.deduplicate is deduplicate and dedup.ray.__name__ == "dedup.raydata"
    assert "ray" not in dedup.__all__  # `from dedup import *` must not bind the name ray
    package = Path(dedup.__file__).parent  # a Python started in dedup/ has it first on sys.path
    code = "import ray, sys; print(ray.__file__); sys.exit(0 if hasattr(ray, 'init') else 1)"
    done = subprocess.run([sys.executable, "-c", code], cwd=package, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "site-packages" in done.stdout, done.stdout + done.stderr


def readme_python_blocks(*headings):
    """The ```python blocks of README.md under the given '## ' headings, as written there."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = []
    for heading in headings:
        section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", text, re.S | re.M)
        assert section, f"README has no section '## {heading}'"
        blocks += re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    return blocks


@pytest.mark.slow
def test_the_readme_python_examples_run_as_written(tmp_path):
    """README's 'From Python' and 'In a Ray Data pipeline' examples, verbatim (default model: SSCD), in a
    Python of their own started in a folder holding ./photos and ./shards (made here): Ray resolves
    relative paths in its workers' folder, which is the one Ray was started in."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    truth = make_corpus(tmp_path / "photos", groups=2)
    rel = sorted(truth)
    (tmp_path / "shards").mkdir()
    pq.write_table(pa.table({"key": rel, "jpg": [(tmp_path / "photos" / p).read_bytes() for p in rel]}), tmp_path / "shards" / "part-0.parquet")
    blocks = readme_python_blocks("From Python", "In a Ray Data pipeline")
    assert len(blocks) == 2
    (tmp_path / "examples.py").write_text("\n".join(blocks))
    done = subprocess.run([sys.executable, "examples.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 kept, 6 to remove; report:" in done.stdout
    kept = pq.read_table(tmp_path / "shards-deduplicated").column("key").to_pylist()
    assert len(kept) == 4 and {truth[k] for k in kept} == {"g0", "g1", "s0", "s1"}
