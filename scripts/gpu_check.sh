#!/usr/bin/env bash
# Device side of the GPU check (docs/gpu_check.md), run from the repository root by the last device call:
#
#   bash scripts/gpu_check.sh                 # install the carried kit, run the check, copy the report to $OUT
#   GPU_CHECK_ARGS="--checks memory" bash scripts/gpu_check.sh      # a rerun of one check
#
# 1. unless deepspeed, DALI and fvcore import already: join the carried batches (.whl/carry/b*), verify their
#    sha256 and `pip install --no-index --find-links .whl/kit/wheels deepspeed fvcore nvidia-dali-cuda130`
#    into the machine's own python3 (its torch 2.11 stays; pip takes a carried wheel only for a requirement
#    the image does not meet). lwsl_ds itself is not installed: it runs from this checkout. Batches that
#    have not all arrived stop here with the missing ones named.
# 2. python3 -m lwsl_ds.gpucheck --out runs/gpu-check --mirror $OUT [--images .whl/kit/images/<folder>] (<= 8 min);
# 3. report.md, report.json, this script's log and the check logs (tar) into $OUT (the device tool's folder).
# Env: PY (python3), KIT (.whl/carry), OUT (default runs/gpu-check-out), GPU_CHECK_ARGS (extra arguments).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
KIT=${KIT:-.whl/carry}
DEST=${OUT:-runs/gpu-check-out}
mkdir -p "$DEST"

main() {
t0=$SECONDS
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n1)
echo "== $(date -u '+%F %T UTC') $(hostname) | $($PY -V 2>&1) | $gpu"
if ! $PY -c "import deepspeed, nvidia.dali, fvcore" >/dev/null 2>&1; then
  $PY -m lwsl_ds.gpucheck.carry install --carry "$KIT" --dest .whl/kit || { echo "== install failed"; return 3; }
fi
$PY -c "import torch, deepspeed, nvidia.dali as d, fvcore; print('== torch', torch.__version__, 'cuda', \
torch.cuda.is_available(), '| deepspeed', deepspeed.__version__, '| dali', d.__version__)" 2>&1 | grep -v Warning
echo "== ready after $((SECONDS - t0)) s"
ARGS=(--out runs/gpu-check --mirror "$DEST")  # the reports reach $OUT after every check
img=$(ls -d .whl/kit/images/*/ 2>/dev/null | head -n1)  # the carried sample folder, if any
[ -n "$img" ] && ARGS+=(--images "${img%/}")
export PYTHONUNBUFFERED=1  # (the train check sets DS_ACCELERATOR=cuda for its runs when CUDA is there)
# shellcheck disable=SC2086  # GPU_CHECK_ARGS is a list of words
$PY -m lwsl_ds.gpucheck "${ARGS[@]}" ${GPU_CHECK_ARGS:-}
rc=$?
(cd runs/gpu-check && tar -czf - logs */logs */result.json 2>/dev/null) > "$DEST/logs.tar.gz"
echo "== done after $((SECONDS - t0)) s, exit $rc; files in $DEST"
return $rc
}

main 2>&1 | tee "$DEST/gpu_check.log"  # tee ends before the script does: the log in $OUT is complete
exit "${PIPESTATUS[0]}"
