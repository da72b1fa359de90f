#!/usr/bin/env bash
# README command (b): set up .venv (tools/setup_env.sh) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k attention`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
export RESVARIANTS_DATA="${RESVARIANTS_DATA:-$ROOT/tests/data}"  # the small real datasets ship in the repo
exec .venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 "$@"
