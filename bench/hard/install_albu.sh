#!/usr/bin/env bash
# Creates the albumentations virtualenv used by bench/hard/make_albu.py, at bench/work/albu-venv
# (git-ignored; separate from the project's .venv and from the AugLy venv).  Idempotent: does
# nothing when the venv already imports the packages and passes `make_albu.py --check`, which runs
# every transform the generator uses on a synthetic image.  Needs PyPI only.
#
# Python 3.11 (python3.11 on PATH, else pyenv's).  First the versions the corpus was built with
# (pinned, so a rebuild is byte-identical); if those fail to install, the newest albumentations 2.x
# with whatever opencv/numpy/Pillow pip picks (make_albu.py is written for the 2.x API).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${ALBU_VENV:-$ROOT/bench/work/albu-venv}"
GEN="$ROOT/bench/hard/make_albu.py"
PIPQ=(--quiet --disable-pip-version-check)
PINNED=('albumentations==2.0.8' 'albucore==0.0.24' 'opencv-python-headless==5.1.0.95' 'numpy==2.4.6' 'Pillow==13.0.0')
LOOSE=('albumentations>=2,<3' 'opencv-python-headless' 'numpy' 'Pillow')

imports() {
  "$VENV/bin/python" -c "import albumentations, cv2, numpy, PIL" 2>/dev/null
}

check() {
  "$VENV/bin/python" "$GEN" --check
}

if [ -x "$VENV/bin/python" ] && imports && check >/dev/null 2>&1; then
  echo "albumentations venv already works: $VENV"
  check
  exit 0
fi

find_py311() {
  if command -v python3.11 >/dev/null && python3.11 -V >/dev/null 2>&1; then
    command -v python3.11
    return 0
  fi
  if command -v pyenv >/dev/null; then
    local r d
    r="$(pyenv root)"
    for d in "$r"/versions/3.11*; do
      [ -x "$d/bin/python3.11" ] && { echo "$d/bin/python3.11"; return 0; }
    done
  fi
  return 1
}

PY="$(find_py311)" || { echo "no Python 3.11 found (python3.11 or pyenv)" >&2; exit 1; }
echo "using $PY ($("$PY" -V 2>&1))"

fresh_venv() {
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install "${PIPQ[@]}" --upgrade pip
}

ok=0
for spec in PINNED LOOSE; do
  declare -n pkgs="$spec"
  echo "[$spec] ${pkgs[*]}"
  fresh_venv
  if "$VENV/bin/pip" install "${PIPQ[@]}" "${pkgs[@]}" && imports && check; then
    ok=1
    break
  fi
done

if [ "$ok" = 0 ]; then
  echo "FAILED to build a working albumentations venv at $VENV" >&2
  exit 1
fi
echo "albumentations venv ready: $VENV"
"$VENV/bin/pip" list 2>/dev/null | grep -iE '^(albumentations|albucore|opencv-python-headless|numpy|pillow) '
echo "run: $VENV/bin/python $GEN --src DIR --out $ROOT/bench/work/albu-seed0 --seed 0"
