#!/usr/bin/env bash
# tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Train on a Slurm cluster (mmdet's contract): one task per GPU, GPUS tasks in all,
# GPUS_PER_NODE per node; every task runs tools/train.py with --launcher slurm, and mmengine
# reads rank / world size / master node from SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST.
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
# PORT (master port; unset: MASTER_PORT from the environment, else 29500), PYTHON.
# Example: GPUS=16 tools/slurm_train.sh gpu faster-se configs/faster_rcnn_se_r50_fpn.py work_dirs/faster-se --sync-bn
set -e
if [[ -z "$1" || -z "$2" || -z "$3" || -z "$4" ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2; exit 2
fi
source "$(dirname "$0")/launch_common.sh"
slurm_run "$1" "$2" tools/train.py "$3" --work-dir="$4" --launcher=slurm "${@:5}"
