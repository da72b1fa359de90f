# Sourced by dist_{train,test}.sh and slurm_{train,test}.sh (mmdet's launcher contract).
# Defines ROOT, PYTHON (the repo's .venv if there, else python) and the two launchers.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

# torch_distributed_run NPROC SCRIPT ARGS...: one node's share of a torchrun job.
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500).
torch_distributed_run() {
    local nproc=$1; shift
    PYTHONPATH="$ROOT:$PYTHONPATH" \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$nproc" \
        --master_port="${PORT:-29500}" \
        "$ROOT/$1" "${@:2}"
}

# slurm_run PARTITION JOB_NAME SCRIPT ARGS...: GPUS tasks, GPUS_PER_NODE per node.
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
# PORT (master port; unset: MASTER_PORT from the environment, else 29500).
slurm_run() {
    local partition=$1 job_name=$2; shift 2
    local gpus=${GPUS:-8} per_node=${GPUS_PER_NODE:-8}
    if (( gpus < per_node )); then per_node=$gpus; fi
    if [[ -n "$PORT" ]]; then export MASTER_PORT=$PORT; fi
    set -x
    # SRUN_ARGS is split into words on purpose (e.g. SRUN_ARGS="--quotatype=auto --time=2-0")
    PYTHONPATH="$ROOT:$PYTHONPATH" \
    srun -p "$partition" \
        --job-name="$job_name" \
        --gres=gpu:"$per_node" \
        --ntasks="$gpus" \
        --ntasks-per-node="$per_node" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$ROOT/$1" "${@:2}"
}
