#!/usr/bin/env bash
# tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT (as mmdet). gloo on the CPU without CUDA.
set -e
if [[ -z "$1" || -z "$2" || -z "$3" ]]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py args]" >&2; exit 2
fi
source "$(dirname "$0")/launch_common.sh"
torch_distributed_run "$3" tools/test.py "$1" "$2" --launcher pytorch "${@:4}"
