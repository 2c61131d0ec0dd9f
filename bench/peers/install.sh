#!/usr/bin/env bash
# Install the three peer duplicate finders, each into its own virtual environment:
#
#   bench/work/venvs/imagededup   imagededup (PHash) + torch/torchvision (imported by imagededup even for hashing)
#   bench/work/venvs/fastdup      fastdup (ships its own compiled engine, ONNX runtime and model in the wheel)
#   bench/work/venvs/immaculate   immaculate 0.3.0 with its sscd extra (Rust core, PDQ; SSCD on ONNX Runtime);
#                                 it needs CPython >= 3.12: made from the first python3.12+ found (PYTHON312,
#                                 python3.13, python3.12, pyenv's versions), skipped with the reason where none is
#
# bench/work/ is git-ignored. Idempotent: a stamp file per venv records what was installed; a second run
# only checks the stamps (seconds). FORCE=1 reinstalls; PYTHON=... picks the interpreter (default python3.11).
#
# Versions that installed (2026, Python 3.11.x, Debian, x86_64, pip configured with the local wheel stores):
#   imagededup venv: imagededup 0.3.3.post2, torch 2.14.1, torchvision 0.29.1, numpy 2.4.6, scipy 1.17.1,
#                    PyWavelets 1.9.0, pillow 13.0.0, scikit-learn 1.9.1, matplotlib 3.11.2
#                    (torch 2.14.1 is the regular PyPI Linux build: it drags in the nvidia-* CUDA 13 wheels,
#                     the venv is 5.8 GB, but those wheels all come from the local store file:///opt/pypi-more/simple;
#                     only ~65 MB (nvidia-nvjitlink, cuda-bindings, small pure-Python packages) come from PyPI.)
#   fastdup venv:    fastdup 2.54, numpy 1.26.4, pillow 10.3.0, opencv-python-headless 4.11.0.86,
#                    pandas 3.0.6, scikit-learn 1.5.0, pillow_heif 0.22.0
#                    (fastdup 2.54 has wheels for CPython 3.9-3.12 only: Requires-Python <3.13.)
#   No apt package is needed on this machine: the fastdup wheel bundles its libraries (fastdup.libs/) and
#   only needs libc, libstdc++, libgcc, zlib and libexpat from the system; opencv is the headless build.
#   If `import fastdup` fails anyway (a slimmer image), the script installs the usual suspects with apt-get
#   (as root) and tries again; APT=1 does that up front.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENVS="$ROOT/bench/work/venvs"
PYTHON="${PYTHON:-python3.11}"
STAMP_VERSION="1"   # bump to force reinstall everywhere when this script's pins change

IMAGEDEDUP_PKGS=(torch==2.14.1 torchvision==0.29.1 imagededup==0.3.3.post2)
FASTDUP_PKGS=(fastdup==2.54)
IMMACULATE_PKGS=("immaculate[sscd]==0.3.0")

mkdir -p "$VENVS"

stamp_ok() {  # venv name, package list
    local venv="$1"; shift
    local stamp="$VENVS/.$venv.stamp"
    [[ "${FORCE:-0}" != 1 && -x "$VENVS/$venv/bin/python" && -f "$stamp" ]] &&
        [[ "$(head -n1 "$stamp")" == "v$STAMP_VERSION $*" ]]
}

write_stamp() {  # venv name, package list
    local venv="$1"; shift
    { echo "v$STAMP_VERSION $*"; "$VENVS/$venv/bin/python" -m pip freeze --quiet 2>/dev/null; } > "$VENVS/.$venv.stamp"
}

make_venv() {  # venv name [interpreter]
    local venv="$1" py="${2:-$PYTHON}"
    if [[ "${FORCE:-0}" == 1 ]]; then rm -rf "${VENVS:?}/$venv"; fi
    if [[ ! -x "$VENVS/$venv/bin/python" ]]; then "$py" -m venv "$VENVS/$venv"; fi
}

find_python312() {  # prints the first CPython >= 3.12 found, or nothing
    local c candidates=("${PYTHON312:-}" python3.13 python3.12)
    if command -v pyenv >/dev/null; then
        for c in "$(pyenv root)"/versions/3.1[2-9]*/bin/python; do candidates+=("$c"); done
    fi
    for c in "${candidates[@]}"; do
        [[ -n "$c" ]] && command -v "$c" >/dev/null || continue
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$c"; return 0
        fi
    done
}

pip_in() {  # venv name, pip args...
    local venv="$1"; shift
    # --prefer-binary: never build an sdist; nice: the machine is shared.
    nice -n 10 "$VENVS/$venv/bin/python" -m pip install -q --disable-pip-version-check --prefer-binary "$@" \
        2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }  # pipefail keeps pip's status
}

apt_libs() {  # system libraries fastdup / opencv may want on a slim Debian image (root only)
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "cannot apt-get here: install libgl1 libglib2.0-0 libgomp1 libexpat1 zlib1g by hand" >&2; return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libgl1 libglib2.0-0 libgomp1 libexpat1 zlib1g
}

# ---- imagededup ----------------------------------------------------------------------------------------
if stamp_ok imagededup "${IMAGEDEDUP_PKGS[*]}"; then
    echo "imagededup venv up to date ($VENVS/imagededup)"
else
    echo "installing imagededup into $VENVS/imagededup"
    make_venv imagededup
    # One resolve: torch/torchvision pinned to the builds in the local store, so pip never looks for another
    # (multi-GB) torch on PyPI. torch 2.13.0+cpu from /opt/wheels does NOT work: the PyPI torchvision wheels
    # link against libtorch_cuda.so, so `import torchvision` fails with "operator torchvision::nms does not exist".
    pip_in imagededup "${IMAGEDEDUP_PKGS[@]}"
    "$VENVS/imagededup/bin/python" -c "from imagededup.methods import PHash; PHash(verbose=False)"
    write_stamp imagededup "${IMAGEDEDUP_PKGS[*]}"
fi

# ---- fastdup -------------------------------------------------------------------------------------------
if stamp_ok fastdup "${FASTDUP_PKGS[*]}"; then
    echo "fastdup venv up to date ($VENVS/fastdup)"
else
    echo "installing fastdup into $VENVS/fastdup"
    [[ "${APT:-0}" == 1 ]] && apt_libs
    make_venv fastdup
    pip_in fastdup "${FASTDUP_PKGS[@]}"
    check="import fastdup; print('fastdup', fastdup.__version__)"
    if ! SENTRY_OPT_OUT=1 "$VENVS/fastdup/bin/python" -c "$check"; then
        echo "import fastdup failed: installing system libraries with apt-get and retrying" >&2
        apt_libs
        SENTRY_OPT_OUT=1 "$VENVS/fastdup/bin/python" -c "$check"
    fi
    write_stamp fastdup "${FASTDUP_PKGS[*]}"
fi

# ---- immaculate ----------------------------------------------------------------------------------------
if stamp_ok immaculate "${IMMACULATE_PKGS[*]}"; then
    echo "immaculate venv up to date ($VENVS/immaculate)"
elif PY312="$(find_python312)" && [[ -n "$PY312" ]]; then
    echo "installing immaculate into $VENVS/immaculate (with $PY312)"
    make_venv immaculate "$PY312"
    pip_in immaculate "${IMMACULATE_PKGS[@]}"
    "$VENVS/immaculate/bin/immaculate" --help >/dev/null
    write_stamp immaculate "${IMMACULATE_PKGS[*]}"
else
    echo "immaculate skipped: it needs CPython >= 3.12 and none was found (set PYTHON312=/path/to/python3.12)" >&2
    echo "no CPython >= 3.12 found" > "$VENVS/.immaculate.skipped"
fi

echo "peers installed:"
echo "  $VENVS/imagededup/bin/python $HERE/run_imagededup.py --images DIR --threshold 10 --out OUT.csv"
echo "  $VENVS/fastdup/bin/python    $HERE/run_fastdup.py    --images DIR --threshold 0.9 --out OUT.csv"
echo "  $VENVS/immaculate/bin/python $HERE/run_immaculate.py --images DIR --method pdq --out OUT.csv"
