#!/usr/bin/env bash
# tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# Evaluate on a Slurm cluster (mmdet's contract): GPUS tasks, GPUS_PER_NODE per node, each
# running tools/test.py with --launcher slurm.
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""), PORT, PYTHON.
set -e
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
if [[ -z "$PARTITION" || -z "$JOB_NAME" || -z "$CONFIG" || -z "$CHECKPOINT" ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]" >&2; exit 2
fi
if (( GPUS < GPUS_PER_NODE )); then GPUS_PER_NODE=$GPUS; fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
if [[ -n "$PORT" ]]; then export MASTER_PORT=$PORT; fi
set -x
# SRUN_ARGS is split into words on purpose (e.g. SRUN_ARGS="--quotatype=auto --time=2-0")
PYTHONPATH="$ROOT:$PYTHONPATH" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher=slurm "${@:5}"
