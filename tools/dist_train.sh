#!/usr/bin/env bash
# tools/dist_train.sh CONFIG GPUS [train.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT (as mmdet). Without CUDA, GPUS processes run
# on the CPU with the gloo backend (e.g. `tools/dist_train.sh CONFIG 2` on a laptop).
set -e
if [[ -z "$1" || -z "$2" ]]; then
    echo "usage: $0 CONFIG GPUS [train.py args]" >&2; exit 2
fi
source "$(dirname "$0")/launch_common.sh"
torch_distributed_run "$2" tools/train.py "$1" --launcher pytorch "${@:3}"
