"""``make demo``: the job on a small generated image set, Milvus Lite and Ray local, offline.

Uses the ImageNet ResNet-50 weights when the torch hub cache has them (or they can be downloaded). Where
they cannot be had it says so and runs the clearly labelled weight-free variant (``--model thumb``)
instead of failing, or of pretending that random weights give clusters.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dedup.config import DedupConfig
from dedup.pipeline import print_summary, run
from dedup.synth import base_image, encode, make_corpus, write
from dedup.weights import WeightsError, load_state_dict


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
        load_state_dict("imagenet")
        print("demo: using ResNet-50 with ImageNet weights")
    except WeightsError as e:
        print(f"demo: the ImageNet weights are not available on this machine:\n  {e}")
        print(
            "demo: running the LABELLED WEIGHT-FREE VARIANT instead: --model thumb (an 8x8 colour thumbnail, "
            "not ResNet-50). It finds resized and re-encoded copies in this demo; it is not semantic."
        )
        cfg.model = "thumb"
    summary = run(cfg)
    print_summary(summary)
    print(f"\ndemo: manifest at {summary['outputs']['manifest_csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
