#!/usr/bin/env bash
# Start one lwsl_ds launcher on every rank of the current Slurm allocation (called by the *.sbatch
# scripts; usable inside any `salloc` too). Usage:
#
#   bash launchers/slurm/lwsl_launch.sh <launcher.py> [launcher args...]
#
# Environment (all optional):
#   LWSL_LAUNCH_STYLE  task (default): `srun` starts one task per GPU (or per CPU rank); each maps
#                        SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID to RANK/WORLD_SIZE/LOCAL_RANK
#                        (lwsl_ds/common/launch_env.py).
#                      deepspeed: `srun --ntasks-per-node=1` starts one `deepspeed --no_ssh
#                        --node_rank=$SLURM_NODEID --hostfile <nodes> ...` per node, which forks
#                        LWSL_PROCS_PER_NODE ranks.
#   LWSL_REPO          repository root (default: the directory sbatch was called from)
#   LWSL_PYTHON        python of the environment (default: $LWSL_REPO/.venv/bin/python if present, else python3)
#   LWSL_PROCS_PER_NODE ranks per node (default: SLURM_NTASKS_PER_NODE, else GPUs per node, else 1)
#   MASTER_PORT        rendezvous port (default: 15000 + job id % 15000, identical on every node)
#   LWSL_KILL_WAIT     seconds srun lets the other tasks run once one task has exited (default 120):
#                        a dead rank ends the step within this bound even if its peers hang.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: lwsl_launch.sh <launcher.py> [args...]" >&2; exit 2
fi
if [ -z "${SLURM_JOB_ID:-}" ]; then
  echo "lwsl_launch.sh: not inside a Slurm allocation (SLURM_JOB_ID is unset); use sbatch or salloc" >&2; exit 2
fi
SCRIPT=$1; shift
STYLE=${LWSL_LAUNCH_STYLE:-task}
REPO=${LWSL_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$REPO"
if [ ! -f "$SCRIPT" ]; then
  echo "lwsl_launch.sh: launcher '$SCRIPT' not found under $REPO (set LWSL_REPO or submit from the repo root)" >&2
  exit 2
fi
if [ -z "${LWSL_PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then LWSL_PYTHON=$REPO/.venv/bin/python; else LWSL_PYTHON=python3; fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

# Rendezvous: the first node of the allocation. Its NodeAddr is what the other nodes can reach (on
# most clusters it equals the node name; on a test cluster several names share 127.0.0.1).
FIRST_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
ADDR=$(scontrol show node "$FIRST_NODE" 2>/dev/null | grep -o 'NodeAddr=[^ ]*' | head -n1 | cut -d= -f2 || true)
export MASTER_ADDR=${MASTER_ADDR:-${ADDR:-$FIRST_NODE}}
export MASTER_PORT=${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 15000))}
# One thread per rank unless the job asked for more CPUs per task: ranks sharing cores thrash.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
KILL_WAIT=${LWSL_KILL_WAIT:-120}

NNODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
if [ -n "${LWSL_PROCS_PER_NODE:-}" ]; then
  PER_NODE=$LWSL_PROCS_PER_NODE
elif [ -n "${SLURM_NTASKS_PER_NODE:-}" ]; then
  PER_NODE=${SLURM_NTASKS_PER_NODE%%(*}
elif [ -n "${SLURM_GPUS_PER_NODE:-}" ]; then
  PER_NODE=${SLURM_GPUS_PER_NODE##*:}
else
  PER_NODE=1
fi
echo "[lwsl_launch] job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} style=$STYLE nodes=$NNODES" \
     "per_node=$PER_NODE master=$MASTER_ADDR:$MASTER_PORT script=$SCRIPT" >&2

case "$STYLE" in
  task)
    # --kill-on-bad-exit: one failed rank ends the step at once; --wait: a rank that exited 0 early
    # (or was killed) does not leave the others waiting longer than KILL_WAIT seconds.
    # The task layout comes from the allocation unless LWSL_PROCS_PER_NODE overrides it.
    TASK_OPTS=()
    if [ -n "${LWSL_PROCS_PER_NODE:-}" ]; then TASK_OPTS=(--ntasks-per-node="$PER_NODE"); fi
    exec srun --kill-on-bad-exit=1 --wait="$KILL_WAIT" "${TASK_OPTS[@]}" "$LWSL_PYTHON" -u "$SCRIPT" "$@"
    ;;
  deepspeed)
    # Each node writes its own hostfile (no shared /tmp needed). `trap '' USR1` makes the deepspeed
    # runner and launcher ignore the preemption signal (its default action would kill them and
    # orphan the ranks); the ranks install their own handler (lwsl_ds/common/preemption.py).
    exec srun --kill-on-bad-exit=1 --wait="$KILL_WAIT" --ntasks-per-node=1 --ntasks="$NNODES" \
      bash -c '
        trap "" USR1
        set -euo pipefail
        hf=$(mktemp "${TMPDIR:-/tmp}/lwsl-hostfile.XXXXXX")
        trap "rm -f $hf" EXIT
        scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/\$/ slots='"$PER_NODE"'/" > "$hf"
        "$0" -u -m deepspeed.launcher.runner --no_ssh --node_rank="$SLURM_NODEID" --hostfile "$hf" \
          --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" "$@"
      ' "$LWSL_PYTHON" "$SCRIPT" "$@"
    ;;
  *)
    echo "lwsl_launch.sh: LWSL_LAUNCH_STYLE=$STYLE is not one of: task, deepspeed" >&2; exit 2
    ;;
esac
