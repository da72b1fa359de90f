#!/usr/bin/env bash
# Mutation testing of the fidelity-critical files with mutmut 2.x (pinned in pyproject.toml,
# `pip install -e .[dev]`). NOT part of CI: it runs the covering tests once per mutant, which
# takes minutes per file on two cores.
#
#   bash tools/mutation_test.sh                    # every target of the table below
#   bash tools/mutation_test.sh FILE [FILE ...]    # only these targets (paths as in the table)
#   bash tools/mutation_test.sh --report [FILE..]  # only print the score table from the caches
#   bash tools/mutation_test.sh --survivors FILE   # diffs of FILE's surviving mutants
#   bash tools/mutation_test.sh --list             # the table: target -> its tests
#
# Each target is mutated on its own, with only the fast tests that cover it (the table), and
# keeps its own mutmut cache in .mutmut/ (so the baseline time and the results are per file; a
# re-run only re-tests mutants whose file or tests changed). The source file is mutated in
# place and restored after each mutant (also when the script is interrupted).
# The tests run in children forked from a server that has imported torch and the OpenMMLab
# packages once (tools/mutation_runner.py; ~10 s saved per mutant).
# Environment: PYTHON (default .venv/bin/python, else python3), MUTMUT_PYTEST_ARGS (extra
# pytest arguments for every test run), MUTMUT_SERVER=0 (a fresh pytest process per mutant).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHON
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
CACHE_DIR="$ROOT/.mutmut"

# target file -> the tests that cover it (shell globs; a glob that matches nothing is skipped,
# so a fidelity test file added later as e.g. tests/test_models/test_attention_<x>.py is
# picked up). Optional ` -- pytest args` after the tests, without spaces inside an argument
# (e.g. `--deselect=NODEID` to leave out a slow test that adds nothing for that file).
TABLE='
resvariants/models/backbones/strict_identity.py : tests/test_models/test_epsilon_resnet.py tests/test_engine/test_epsilon_hooks.py -- --deselect=tests/test_models/test_epsilon_resnet.py::test_gated_backbone_in_faster_rcnn
resvariants/engine/eshift_l2.py                 : tests/test_engine/test_eshift_l2.py -- --deselect=tests/test_engine/test_eshift_l2.py::test_ws_eshift_configs
resvariants/engine/epsilon_hooks.py             : tests/test_engine/test_epsilon_hooks.py
resvariants/models/attention/_fused.py          : tests/test_models/test_attention_autograd.py tests/test_models/test_attention_module_api.py tests/test_models/test_attention_formulas.py
resvariants/models/attention/_norm.py           : tests/test_models/test_attention*.py
resvariants/models/attention/bam.py             : tests/test_models/test_attention*.py
resvariants/models/attention/cbam.py            : tests/test_models/test_attention*.py
resvariants/models/attention/factory.py         : tests/test_models/test_attention*.py
resvariants/models/attention/gc.py              : tests/test_models/test_attention*.py
resvariants/models/attention/se.py              : tests/test_models/test_attention*.py
resvariants/models/attention/sge.py             : tests/test_models/test_attention*.py
resvariants/models/attention/sk.py              : tests/test_models/test_attention*.py
resvariants/models/attention/srm.py             : tests/test_models/test_attention*.py
resvariants/converters/ednet.py                 : tests/test_converters/test_ednet*.py
resvariants/converters/epsilon_compact.py       : tests/test_tools/test_epsilon_compact*.py
resvariants/converters/mmpretrain.py            : tests/test_converters/test_mmpretrain*.py
resvariants/converters/pytorchinsight.py        : tests/test_converters/test_pytorchinsight_keys.py tests/test_converters/test_pytorchinsight_logits.py tests/test_converters/test_pytorchinsight.py -- -knot(round_trip)and(not(mismatch))and(not(logits)or(not(101)))
resvariants/converters/remove_residual.py       : tests/test_converters/test_remove_residual*.py
resvariants/converters/resnet_layout.py         : tests/test_converters/test_resnet_layout*.py tests/test_converters/test_torchvision*.py tests/test_converters/test_timm*.py tests/test_converters/test_mmpretrain*.py
resvariants/converters/timm.py                  : tests/test_converters/test_timm*.py
resvariants/converters/torchvision.py           : tests/test_converters/test_torchvision*.py
resvariants/models/distill.py                   : tests/test_models/test_distill*.py
resvariants/models/backbones/merges.py          : tests/test_models/test_merges.py tests/test_models/test_plain_resnet.py tests/test_models/test_epsilon_resnet.py -- --deselect=tests/test_models/test_epsilon_resnet.py::test_gated_backbone_in_faster_rcnn
'

# --- the test command mutmut runs for every mutant -------------------------------------------
# mutmut 2.x counts a mutant as killed only when the command exits with 1; pytest exits 2 when
# a mutant breaks the import (collection error) and 5 when nothing ran, so any failure is
# mapped to 1 here. No bytecode is written: two mutants of the same size written within one
# second would otherwise be able to reuse each other's stale .pyc.
PYTEST_ARGS=(-x -q -p no:cacheprovider)
if [[ "${1:-}" == "--pytest" ]]; then
    shift
    # shellcheck disable=SC2206
    extra=(${MUTMUT_PYTEST_ARGS:-})
    if [[ -n "${MUTMUT_SOCKET:-}" && -S "$MUTMUT_SOCKET" ]]; then
        exec "$PYTHON" tools/mutation_runner.py run "$MUTMUT_SOCKET" "${PYTEST_ARGS[@]}" \
            "${extra[@]}" "$@"
    fi
    PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -m pytest "${PYTEST_ARGS[@]}" "${extra[@]}" "$@" \
        >/dev/null 2>&1 && exit 0
    exit 1
fi

table_rows() { printf '%s\n' "$TABLE" | sed '/^[[:space:]]*$/d'; }

tests_of() {  # the expanded test files (and pytest args) of one target
    local target="$1" row tests out=() args=() pattern
    row="$(table_rows | while read -r t _ rest; do [[ "$t" == "$target" ]] && echo "$rest"; done)"
    [[ -n "$row" ]] || return 1
    tests="${row%% -- *}"
    [[ "$row" == *" -- "* ]] && read -r -a args <<<"${row#* -- }"
    for pattern in $tests; do
        # shellcheck disable=SC2206
        local matches=($pattern)
        [[ -e "${matches[0]}" ]] && out+=("${matches[@]}")
    done
    ((${#out[@]})) || return 1
    printf '%s\n' "${out[@]}" "${args[@]}"
}

slug() { printf '%s' "$1" | tr '/.' '__'; }

ACTIVE=""
SERVER_PID=""
restore() {  # put a target's cache back and undo a mutation left by an interrupted run
    if [[ -n "$ACTIVE" ]]; then
        [[ -f "$ACTIVE.bak" ]] && mv -f "$ACTIVE.bak" "$ACTIVE"
        [[ -f .mutmut-cache ]] && mv -f .mutmut-cache "$CACHE_DIR/$(slug "$ACTIVE").sqlite"
        ACTIVE=""
    fi
}
cleanup() {
    restore
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    SERVER_PID=""
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

start_server() {  # the fork server (tools/mutation_runner.py); MUTMUT_SERVER=0 runs without it
    [[ "${MUTMUT_SERVER:-1}" == 0 ]] && return 0
    mkdir -p "$CACHE_DIR"
    export MUTMUT_SOCKET="$CACHE_DIR/runner.$$.sock"
    "$PYTHON" tools/mutation_runner.py serve "$MUTMUT_SOCKET" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        [[ -S "$MUTMUT_SOCKET" ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "the test server did not start; running without it" >&2
    unset MUTMUT_SOCKET
}

with_cache() {  # with_cache TARGET CMD...: run CMD with TARGET's cache as ./.mutmut-cache
    local target="$1"; shift
    mkdir -p "$CACHE_DIR"
    [[ -e .mutmut-cache ]] && { echo "a stray .mutmut-cache is in the way; remove it" >&2; exit 1; }
    local cache="$CACHE_DIR/$(slug "$target").sqlite"
    [[ -f "$cache" ]] && mv "$cache" .mutmut-cache
    ACTIVE="$target"
    "$@"
    local rc=$?
    restore
    return $rc
}

run_target() {
    local target="$1" items tests=() args=() item dirs
    mapfile -t items < <(tests_of "$target") || true
    if ((${#items[@]} == 0)); then echo "no tests found for $target" >&2; return 1; fi
    for item in "${items[@]}"; do
        if [[ "$item" == -* || ${#args[@]} -gt 0 ]]; then args+=("$item"); else tests+=("$item"); fi
    done
    dirs="$(for t in "${tests[@]}"; do dirname "$t"; done | sort -u | paste -sd, -)"
    echo "=== $target  <-  ${tests[*]} ${args[*]}"
    with_cache "$target" "$PYTHON" -m mutmut run --paths-to-mutate "$target" \
        --tests-dir "$dirs" --runner "bash tools/mutation_test.sh --pytest ${tests[*]} ${args[*]}" \
        --no-progress --simple-output
    local rc=$?
    # exit codes 2/4/8 only report survivors/timeouts/suspicious mutants
    if ((rc & 1)); then echo "mutmut failed on $target (exit $rc)" >&2; return 1; fi
}

report() {  # the per-file score table, from the caches
    "$PYTHON" - "$CACHE_DIR" "$@" <<'EOF'
import os, sqlite3, sys
cache_dir, targets = sys.argv[1], sys.argv[2:]
print(f'| {"file":<48} | killed | timeout | survived | untested | total | score |')
print(f'|{"-" * 50}|-------:|--------:|---------:|---------:|------:|------:|')
for target in targets:
    path = os.path.join(cache_dir, target.replace('/', '_').replace('.', '_') + '.sqlite')
    if not os.path.exists(path):
        print(f'| {target:<48} | (not run) |')
        continue
    db = sqlite3.connect(path)
    rows = dict(db.execute(
        'SELECT m.status, count(*) FROM Mutant m JOIN Line l ON m.line = l.id '
        'JOIN SourceFile s ON l.sourcefile = s.id WHERE s.filename = ? GROUP BY m.status',
        (target, )).fetchall())
    killed = rows.get('ok_killed', 0) + rows.get('ok_suspicious', 0)
    timeout, survived = rows.get('bad_timeout', 0), rows.get('bad_survived', 0)
    untested = rows.get('untested', 0) + rows.get('skipped', 0)
    total = killed + timeout + survived + untested
    # a mutant that makes the tests hang past mutmut's limit (10 x baseline) is detected too
    score = f'{100 * (killed + timeout) / total:.1f}' if total else '-'
    print(f'| {target:<48} | {killed:6} | {timeout:7} | {survived:8} | {untested:8} '
          f'| {total:5} | {score:>5} |')
EOF
}

all_targets() { table_rows | while read -r t _; do echo "$t"; done; }

case "${1:-}" in
    --list) table_rows; exit 0 ;;
    --report)
        shift
        if (($#)); then report "$@"; else mapfile -t T < <(all_targets); report "${T[@]}"; fi
        exit 0 ;;
    --survivors)
        [[ -n "${2:-}" ]] || { echo "usage: $0 --survivors FILE" >&2; exit 2; }
        with_cache "$2" "$PYTHON" -m mutmut show "$2"
        exit $? ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
esac

"$PYTHON" -c 'import mutmut' 2>/dev/null || {
    echo "mutmut is not installed in $PYTHON: pip install -e '.[dev]'" >&2; exit 1; }
if (($#)); then TARGETS=("$@"); else mapfile -t TARGETS < <(all_targets); fi
failed=0
for target in "${TARGETS[@]}"; do
    tests_of "$target" >/dev/null || { echo "$target is not in the table (--list)" >&2; exit 2; }
done
start_server
for target in "${TARGETS[@]}"; do
    run_target "$target" || failed=1
done
echo
report "${TARGETS[@]}"
exit $failed
