#!/usr/bin/env bash
# Build the carry kit for the lent GPU machine (Python 3.12, its own torch 2.11 + torchvision 0.26, no
# package registry, at most 64 MiB of files per call): every wheel lwsl_ds needs there beyond what that
# machine's image already holds, the DALI wheel split into parts, optionally the ImageNet sample JPEGs,
# grouped into batch folders that each travel in one device call. See docs/gpu_check.md.
#
#   bash scripts/gpu_wheelhouse.sh                      # wheels only (the GPU check then generates JPEGs)
#   bash scripts/gpu_wheelhouse.sh --images DIR         # DIR: the sample JPEG folder (manifest.csv, images/)
#
# Output (git-ignored): .whl/wheels/ (the full wheel set), .whl/carry/b1 .. bN (one folder per device call,
# hard links into wheels/ plus DALI parts and SHA256SUMS), .whl/carry/plan.txt (the batch plan).
# Needs: this project's venv (torch, to build DeepSpeed; pip) and PyPI. About 1-2 minutes, ~0.3 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${LWSL_PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo "${LWSL_VENV:-.venv}/bin/python")}
OUT=.whl
IMAGES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --images) IMAGES=${2:?--images needs a folder}; shift 2 ;;
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
    *) echo "gpu_wheelhouse: unknown argument $1 (use --images DIR, --out DIR, --python PY)" >&2; exit 2 ;;
  esac
done
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "gpu_wheelhouse: $PY cannot import torch (needed to build the DeepSpeed wheel); make env, or --python" >&2
  exit 2
fi
if [ -n "$IMAGES" ] && [ ! -f "$IMAGES/manifest.csv" ]; then
  echo "gpu_wheelhouse: --images $IMAGES has no manifest.csv (expected the sample JPEG folder)" >&2; exit 2
fi
mkdir -p "$OUT/wheels"

# 1. Built here from sdists (PyPI has no wheel of these). DeepSpeed's setup.py imports torch: built without
#    build isolation and without ops (no DS_BUILD_*), so the wheel is pure Python (py3-none-any); an op it
#    might need is JIT-compiled there (nvcc and ninja are on that image). fvcore and iopath are pure Python.
if ! ls "$OUT"/wheels/deepspeed-0.19.8-*.whl >/dev/null 2>&1; then
  env -u DS_BUILD_OPS -u DS_BUILD_SHM_COMM "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir \
    -w "$OUT/wheels" deepspeed==0.19.8
fi
"$PY" -m pip wheel -q --no-deps -w "$OUT/wheels" fvcore==0.1.5.post20221221 iopath==0.1.10

# 2. Published wheels for CPython 3.12 manylinux x86_64, pinned to the versions this project's venv runs.
#    Not carried (the GPU image holds them, see docs/gpu_check.md): torch, torchvision, numpy, scipy,
#    matplotlib, pillow, pyyaml, pytest, psutil, ninja, msgpack, py-cpuinfo, einops, the CUDA runtime wheels.
#    Carried although the image lists them, because a pin below needs a bound the image may not meet
#    (packaging<=26.3 for DALI, typing-extensions>=4.16 for pydantic) or they are tiny: pip on that
#    machine takes a carried wheel only when the installed version does not satisfy the requirement.
PLATFORMS=()
for n in 17 24 27 28 31 34 35; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
PINS=(
  # DeepSpeed's requirements the image lacks
  hjson==3.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  # fvcore and its small requirements
  yacs==0.1.8 termcolor==3.3.0 tabulate==0.10.0 portalocker==4.4.2
  # DALI (mixed decoding needs nvimgcodec + nvjpeg) and its Python requirements
  nvidia-dali-cuda130==2.4.0 nvidia-nvimgcodec-cu13==0.9.0.20 nvidia-nvjpeg==13.3.2.43
  nvidia-nvjpeg2k-cu13==0.11.0.51 nvidia-nvtiff-cu13==0.8.0.82 nvidia-libnvcomp-cu13==5.3.0.16
  astunparse==1.6.3 gast==0.7.0 optree==0.20.0 nvtx==0.2.17 makefun==1.16.0 libcst==1.9.0
  packaging==26.3 six==1.17.0 wheel==0.48.0
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  "${PLATFORMS[@]}" -d "$OUT/wheels" "${PINS[@]}"

# 3. Pack into batches (< 64 MiB per call with the working tree), split DALI, print sizes and the plan.
"$PY" -m lwsl_ds.gpucheck.carry pack --wheels "$OUT/wheels" --out "$OUT/carry" ${IMAGES:+--images "$IMAGES"}

# 4. Does the set resolve for CPython 3.12 with the GPU image's packages? (pip --dry-run; installs nothing)
"$PY" -m lwsl_ds.gpucheck.carry verify --wheels "$OUT/wheels"
