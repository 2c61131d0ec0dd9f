"""``python -m bench --scale-job N`` at a small N: the files (reused), the job, the outputs' sizes, apply."""
import json

from dedup.synth import base_image, encode, write


def test_scale_job_runs_the_whole_job_and_apply(ray_local, tmp_path):
    from bench.scale_job import build_files, scale_job

    photos = tmp_path / "photos"
    for i in range(4):
        write(photos / f"p{i}.jpg", encode(base_image(500 + i, (320, 240))))
    # canonical=largest: the kept-image policy is not what this bench measures (its own tests cover it)
    r = scale_job(400, tmp_path / "work", photos, tmp_path / "results", canonical="largest")
    planted = r["files"]["planted"]
    assert r["files"]["images"] == 400 and planted["exact"] > 0 and planted["near"] > 0
    assert r["counts"]["images"] == 400 and r["counts"]["duplicates"] >= planted["exact"]
    assert r["counts"]["kept"] + r["counts"]["duplicates"] == 400
    assert {"decode_embed", "search", "manifest"} <= set(r["stages"]) and r["peak_all_processes_mb"] >= r["peak_driver_mb"] > 0
    assert r["outputs"]["manifest.parquet"] > 0 and r["report"]["clusters_shown"] > 0
    assert r["apply"]["written"] == r["counts"]["kept"] == r["apply"]["actions"]
    md = (tmp_path / "results" / "scale-job-400.md").read_text()
    assert "| search |" in md and "dedup apply --link" in md
    assert json.loads((tmp_path / "results" / "scale-job-400.json").read_text())["n"] == 400
    _, again = build_files(photos, tmp_path / "work" / "job-files-400", 400)
    assert again["reused"]
