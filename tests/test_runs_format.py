"""How `dedup report --compare` words what differs between two runs (dedup.runs.format_compare)."""
from dedup.runs import format_compare


def _compared(parameters: dict) -> dict:
    run = {"id": "x", "path": "/o", "describe": "model sscd"}
    return {"a": run, "b": {**run, "id": "y"}, "parameters": parameters, "images_in_both": 3, "same_result": True}


def test_a_dict_parameter_shows_only_its_keys_that_differ():
    check = {"size": 400, "version": 14}
    text = format_compare(_compared({"threshold": [0.3, 0.5],
                                     "verify_params": [{**check, "band": [0.3, 0.9]}, {**check, "band": [0.5, 0.9]}]}))
    assert "parameters that differ: threshold 0.3 -> 0.5; verify_params.band 0.3 0.9 -> 0.5 0.9" in text
    assert "size" not in text and "version" not in text
    assert "verify_params.band None -> 0.3" in format_compare(_compared({"verify_params": [check, {**check, "band": 0.3}]}))


def test_runs_started_in_one_second_are_ordered_as_they_ran(tmp_path, monkeypatch):
    """Run ids order the runs (``list_runs``, ``previous``): a re-run that reuses every stage can start in the
    second the run before it started, with another key that sorts before that run's."""
    import time

    from dedup import runs
    from dedup.layout import OutputLayout

    layout = OutputLayout.of(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261207-094255")
    ids = []
    for key in ("ffffffff", "00000000", "88888888"):
        ids.append(runs.next_id(layout, key))
        layout.run_dir(ids[-1]).mkdir(parents=True)
        (layout.run_dir(ids[-1]) / "manifest.parquet").write_bytes(b"")
    assert ids[0] == "20261207-094255-ffffffff" and len(set(ids)) == 3
    assert [r.id for r in runs.list_runs(layout)] == ids
