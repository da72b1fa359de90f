#!/usr/bin/env bash
# tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# Evaluate on a Slurm cluster (mmdet's contract): GPUS tasks, GPUS_PER_NODE per node, each
# running tools/test.py with --launcher slurm.
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""), PORT, PYTHON.
set -e
if [[ -z "$1" || -z "$2" || -z "$3" || -z "$4" ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]" >&2; exit 2
fi
source "$(dirname "$0")/launch_common.sh"
slurm_run "$1" "$2" tools/test.py "$3" "$4" --launcher=slurm "${@:5}"
