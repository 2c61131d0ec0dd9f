#!/usr/bin/env bash
# Creates the AugLy virtualenv used by bench/hard/make_corpus.py, at bench/work/augly-venv
# (git-ignored; separate from the project's .venv).  Idempotent: does nothing when the venv
# already passes the check below.  Offline apart from PyPI (and Debian for build headers).
#
# AugLy 1.0.0's [image] extra pins Pillow<9 and also pulls torch (only needed by AugLy's
# torchvision-style transforms, not by augly.image's functions), so we install plain `augly`
# (deps: iopath, python-magic, regex) plus Pillow 8.4.0 and numpy<1.24 ourselves.  Pillow 8.4.0
# has no Python 3.11 wheel: pip builds it from source (needs libjpeg/zlib/png/freetype headers).
# Fallbacks, in order: pyenv's Python 3.10 (has Pillow 8.4 wheels); then Python 3.11 with
# `--no-deps` augly and the newest Pillow that still has the pre-10 APIs AugLy uses (9.5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${AUGLY_VENV:-$ROOT/bench/work/augly-venv}"
PIPQ=(--quiet --disable-pip-version-check)

check() {  # every augly.image function the corpus uses, on a synthetic image, offline
  "$VENV/bin/python" - <<'EOF' 2>/dev/null
import os, warnings
warnings.filterwarnings("ignore")
import numpy as np, PIL
from PIL import Image
import augly.image as A, augly.utils as U
rs = np.random.RandomState(0)
im = Image.fromarray(rs.randint(0, 255, (240, 320, 3), dtype=np.uint8))
bg = Image.fromarray(rs.randint(0, 255, (480, 640, 3), dtype=np.uint8))
ops = {
    "overlay_onto_screenshot": lambda: A.overlay_onto_screenshot(im, template_filepath=os.path.join(U.SCREENSHOT_TEMPLATES_DIR, "web.png")),
    "overlay_onto_screenshot(mobile)": lambda: A.overlay_onto_screenshot(im, template_filepath=os.path.join(U.SCREENSHOT_TEMPLATES_DIR, "mobile.png")),
    "meme_format": lambda: A.meme_format(im, text="TEST"),
    "overlay_text": lambda: A.overlay_text(im),
    "overlay_emoji": lambda: A.overlay_emoji(im),
    "perspective_transform": lambda: A.perspective_transform(im, sigma=30, seed=1),
    "change_aspect_ratio": lambda: A.change_aspect_ratio(im, ratio=1.6),
    "pad": lambda: A.pad(im),
    "pad_square": lambda: A.pad_square(im),
    "rotate": lambda: A.rotate(im, degrees=20),
    "overlay_onto_background_image": lambda: A.overlay_onto_background_image(im, background_image=bg, overlay_size=0.4),
    "hflip+crop+brightness+saturation+blur+scale": lambda: A.scale(A.blur(A.saturation(A.brightness(A.crop(A.hflip(im)), factor=1.3), factor=1.5)), factor=0.6),
}
for name, fn in ops.items():
    out = fn()
    assert isinstance(out, Image.Image) and out.size[0] > 0, name
    print(f"  ok  {name} -> {out.size}")
print(f"  Pillow {PIL.__version__}, numpy {np.__version__}")
EOF
}

if [ -x "$VENV/bin/python" ] && check >/dev/null && "$VENV/bin/python" -c "import cv2" 2>/dev/null; then
  echo "AugLy venv already works: $VENV"
  check
  exit 0
fi

ensure_headers() {
  local missing=()
  for p in libjpeg-dev zlib1g-dev libpng-dev libfreetype6-dev libmagic1; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
    echo "installing build headers: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

fresh_venv() {  # $1 = python interpreter
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$1" -m venv "$VENV"
  "$VENV/bin/pip" install "${PIPQ[@]}" --upgrade pip
}

find_py310() {
  command -v python3.10 2>/dev/null && return 0
  if command -v pyenv >/dev/null; then
    local r; r="$(pyenv root)"
    for d in "$r"/versions/3.10*; do
      [ -x "$d/bin/python3.10" ] && { echo "$d/bin/python3.10"; return 0; }
    done
  fi
  return 1
}

ok=0
# 1) Python 3.11, Pillow 8.4.0 built from source
if [ "$ok" = 0 ] && command -v python3.11 >/dev/null; then
  echo "[1] python3.11 + augly 1.0.0 + Pillow 8.4.0 (source build) + numpy<1.24"
  ensure_headers
  fresh_venv python3.11
  if "$VENV/bin/pip" install "${PIPQ[@]}" 'augly==1.0.0' 'Pillow==8.4.0' 'numpy<1.24' && check >/dev/null; then
    ok=1
  fi
fi
# 2) pyenv's Python 3.10: wheels for Pillow 8.4.0 and numpy 1.23
if [ "$ok" = 0 ] && PY310="$(find_py310)"; then
  echo "[2] $PY310 + augly 1.0.0 + Pillow 8.4.0 + numpy<1.24"
  fresh_venv "$PY310"
  if "$VENV/bin/pip" install "${PIPQ[@]}" 'augly==1.0.0' 'Pillow==8.4.0' 'numpy<1.24' && check >/dev/null; then
    ok=1
  fi
fi
# 3) Python 3.11, augly --no-deps + its runtime deps with Pillow 9.5 (wheel; last with ANTIALIAS/textsize)
if [ "$ok" = 0 ] && command -v python3.11 >/dev/null; then
  echo "[3] python3.11 + augly 1.0.0 --no-deps + Pillow 9.5.0 + numpy<1.24"
  fresh_venv python3.11
  if "$VENV/bin/pip" install "${PIPQ[@]}" 'Pillow==9.5.0' 'numpy<1.24' 'iopath>=0.1.8' \
       'python-magic>=0.4.22' 'regex>=2021.4.4' \
     && "$VENV/bin/pip" install "${PIPQ[@]}" --no-deps 'augly==1.0.0' && check >/dev/null; then
    ok=1
  fi
fi

# make_lineage.py writes WebP copies with OpenCV (this Pillow build may lack WebP); 4.8 still takes numpy 1.23
if [ "$ok" = 1 ]; then
  "$VENV/bin/pip" install "${PIPQ[@]}" 'opencv-python-headless==4.8.1.78' || ok=0
fi

if [ "$ok" = 0 ]; then
  echo "FAILED to build a working AugLy venv at $VENV" >&2
  exit 1
fi
echo "AugLy venv ready: $VENV"
check
echo "run: $VENV/bin/python $ROOT/bench/hard/make_corpus.py --src DIR --out $ROOT/bench/work/hard-seed0 --seed 0"
