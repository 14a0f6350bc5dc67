#!/usr/bin/env bash
# Every run of bench/ranking_nasbench_macro.py that docs/benchmarks.md reports for issue 15 (search regret,
# band tau, seeds, cpu-long), one after the other on ONE core, niced; each finished unit (strategy x seed) is
# copied to docs/bench/ranking_nasbench_macro/<budget>/<unit>/ and is skipped by the next run (commit that
# folder between sessions). Re-running this script resumes where it stopped (finished trainings, score-table
# chunks and searches are reused).
#
#   mkdir -p runs && nice -n 19 nohup bench/ranking_nasbench_macro_all.sh > runs/bench_all.log 2>&1 &
#   (PY=<venv>/bin/python selects the interpreter; default .venv/bin/python)
#   JOBS=2: two processes, one core each: cpu-long in one, the cpu seeds in the other (logs in runs/)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "error: no python at $PY (set PY=<venv>/bin/python)" >&2; exit 2; }
export OMP_NUM_THREADS=1
if [ "${JOBS:-1}" = 2 ]; then
  mkdir -p runs
  $PY bench/ranking_nasbench_macro.py --budget cpu-long --strategies non_greedy spos greedy --seeds 0 \
    > runs/bench_long.log 2>&1 &
  $PY bench/ranking_nasbench_macro.py --budget cpu --strategies non_greedy spos greedy --seeds 0 1 2 \
    > runs/bench_seeds.log 2>&1 &
  wait
  exit
fi
# 1. cpu budget, seed 0, all three strategies (non_greedy and spos first)
$PY bench/ranking_nasbench_macro.py --budget cpu --strategies non_greedy spos greedy --seeds 0
# 2. cpu-long (about 2-3 h per strategy on one niced core): non_greedy and spos first, then greedy
$PY bench/ranking_nasbench_macro.py --budget cpu-long --strategies non_greedy spos greedy --seeds 0
# 3. seed spread at the cpu budget: seeds 1 and 2 (seed 0 is reused from step 1)
$PY bench/ranking_nasbench_macro.py --budget cpu --strategies non_greedy spos greedy --seeds 0 1 2
