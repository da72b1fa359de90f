#!/usr/bin/env bash
# tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Train on a Slurm cluster (mmdet's contract): one task per GPU, GPUS tasks in all,
# GPUS_PER_NODE per node; every task runs tools/train.py with --launcher slurm, and mmengine
# reads rank / world size / master node from SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST.
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
# PORT (master port; unset: MASTER_PORT from the environment, else 29500), PYTHON.
# Example: GPUS=16 tools/slurm_train.sh gpu faster-se configs/faster_rcnn_se_r50_fpn.py work_dirs/faster-se --sync-bn
set -e
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
if [[ -z "$PARTITION" || -z "$JOB_NAME" || -z "$CONFIG" || -z "$WORK_DIR" ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2; exit 2
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
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
