"""Stage attach: a lone image is placed under a kept image it is a copy of only where the quality policy,
asked about the two (real images made here, measured on Ray tasks), keeps the kept image over it."""
import io

from PIL import Image, ImageEnhance, ImageFilter

from dedup.stages.attach import run_verdicts
from dedup.synth import encode, textured_image, write


def _file(path, data):
    write(path, data)
    size = Image.open(io.BytesIO(data)).size
    return ("file", str(path), str(path), size[0] * size[1], len(data))


def test_the_policy_decides_which_of_the_two_is_kept(ray_local, tmp_path):
    photo = encode(textured_image(7), "JPEG", quality=92)
    decoded = Image.open(io.BytesIO(photo)).convert("RGB")
    brighter = encode(ImageEnhance.Brightness(decoded).enhance(1.35), "JPEG", quality=90)
    blurred = encode(decoded.filter(ImageFilter.GaussianBlur(3)), "JPEG", quality=92)
    info = {0: _file(tmp_path / "photo.jpg", photo), 1: _file(tmp_path / "brighter.jpg", brighter),
            2: _file(tmp_path / "blurred.jpg", blurred), 3: _file(tmp_path / "photo_too.jpg", photo)}
    info[4] = ("file", str(tmp_path / "gone.jpg"), str(tmp_path / "gone.jpg"), 100, 100)  # not there to read
    pairs = [(0, 1, 0.8), (2, 3, 0.8), (0, 4, 0.8)]  # (kept, lone, similarity)
    verdicts, cpu = run_verdicts(pairs, info, None, {})
    assert verdicts[(0, 1)] == 0  # the photo over its brighter copy: the copy joins it
    assert verdicts[(2, 3)] == 3  # a blurred copy was kept; the photo alone is the better version: it stays apart
    assert verdicts[(0, 4)] is None and cpu > 0  # what cannot be read is never placed


def test_pair_links_are_the_checks_transforms_of_those_pairs_either_way():
    import numpy as np
    import pyarrow as pa

    from dedup.ops.verify import TRANSFORM
    from dedup.stages.attach import pair_links

    t = [float(x) for x in np.eye(3).ravel()]
    checks = pa.table({"a": [5, 1, 2, 7], "b": [1, 9, 5, 8], "verified": pa.array([1, 1, 1, 0], pa.int8()),
                       "transform": pa.array([t, t, None, t], TRANSFORM)})
    links = pair_links([(1, 5, 0.8), (2, 5, 0.7), (7, 8, 0.9), (3, 4, 0.5)], checks)
    assert list(links) == [(1, 5)] and list(links[(1, 5)]) == [(5, 1)]  # as the check recorded it: 5 -> 1
    np.testing.assert_array_equal(links[(1, 5)][(5, 1)], np.eye(3))  # none without a transform, none failed


def test_the_summary_says_how_many_lone_images_were_placed():
    import io as _io

    from dedup.summary import print_summary

    counts = {"inputs": 9, "images": 9, "errors": 0, "clusters": 3, "duplicate_clusters": 2, "kept": 3, "duplicates": 6,
              "exact_duplicates": 0, "near_duplicates": 6, "split_off_by_chaining_guard": 2}
    summary = {"counts": counts, "parameters": {"model": "sscd", "threshold": 0.3}, "total_seconds": 1.0,
               "images_per_second": 9.0, "stages": {"attach": {"seconds": 0.1, "lone": 2, "attached": 2}},
               "outputs": {"manifest_csv": "m.csv", "errors_csv": "e.csv", "summary": "s.json"}}
    out = _io.StringIO()
    print_summary(summary, out)
    assert "split off by the chaining guard: 2; 2 lone images placed under a kept image they copy (attach)" in out.getvalue()
    summary["stages"]["attach"]["attached"] = 0
    out = _io.StringIO()
    print_summary(summary, out)
    assert "split off by the chaining guard: 2\n" in out.getvalue()
