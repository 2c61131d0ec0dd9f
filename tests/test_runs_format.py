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
