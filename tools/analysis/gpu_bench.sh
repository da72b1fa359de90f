#!/usr/bin/env bash
# The GPU benchmark and correctness pass, in one go (issue 18, item 5).
#
#   bash tools/analysis/gpu_bench.sh [--wheels DIR] [--out DIR]     # on a CUDA machine
#   bash tools/analysis/gpu_bench.sh --dry-run [--out DIR]           # the same steps on the CPU,
#                                                                    # tiny shapes (a test runs it)
#
# Steps (each writes under --out, default work_dirs/gpu_bench):
#   0. wheels: if --wheels DIR (or .whl/ in the repo) holds wheels, they are installed with
#      pip --no-index --no-deps into a private target folder put on PYTHONPATH (a machine that
#      reaches no registry: carry mmengine, mmcv without ops, mmdet, mmpretrain and their
#      pure-Python needs; torch comes with the machine);
#   1. correctness: tools/analysis/device_check.py, every attention module's fast path and
#      compiled graph against its plain formula, fp32 and autocast (float16, bfloat16);
#   2. the model table at batch 32 / 224, bfloat16 autocast, eager and compiled, with the
#      source-style reference rows (tools/analysis/benchmark.py --reference --compile);
#   3. the same eager with float16 autocast (GradScaler), plus an eager channels_last row per
#      config (ours only: the sources' .view() chains, e.g. SGE's, refuse channels_last);
#   4. the module decision table (--modules --compile) at batch 32.
# Budget: about 8 minutes on one H200 with 16 cores (compiling is the larger part); set
# GPU_BENCH_STEPS="1 2" to run a subset.
set -euo pipefail
cd "$(dirname "$0")/../.."

DRY_RUN=0
WHEELS=""
OUT="work_dirs/gpu_bench"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_bench.sh: unknown argument '$1' (--dry-run, --wheels DIR, --out DIR)" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python3}"
if [[ -z "$WHEELS" && -d .whl ]]; then WHEELS=.whl; fi
if [[ -n "$WHEELS" ]]; then
  compgen -G "$WHEELS/*.whl" > /dev/null || { echo "gpu_bench.sh: no wheels in $WHEELS" >&2; exit 2; }
  SITE="${TMPDIR:-/tmp}/resvariants-gpu-site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  if [[ -d "$SITE/mmcv" && ! -e "$SITE/mmcv/_ext.py" ]] && ! compgen -G "$SITE/mmcv/_ext*.so" > /dev/null; then
    # mmcv without compiled ops (mmcv_lite): mmdet.models imports mmcv.ops, whose modules look
    # up their kernels in mmcv._ext when imported. The backbones, the benchmark and the
    # correctness pass call none of them; this stand-in lets the imports succeed and makes
    # any op that is called fail with its name.
    cat > "$SITE/mmcv/_ext.py" <<'PY'
"""Stand-in for mmcv's compiled ops in a benchmark-only install (gpu_bench.sh): no op works."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise RuntimeError(f'mmcv op {name!r} called, but this mmcv was installed without its '
                           f'compiled ops (gpu_bench.sh, mmcv_lite)')
    return unavailable
PY
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

R50S=(configs/imagenet/resnet50_in1k.py configs/imagenet/se_resnet50_in1k.py
      configs/imagenet/sk_resnet50_in1k.py configs/imagenet/cbam_resnet50_in1k.py
      configs/imagenet/bam_resnet50_in1k.py configs/imagenet/gc_resnet50_in1k.py
      configs/imagenet/sge_resnet50_in1k.py configs/imagenet/srm_resnet50_in1k.py
      configs/imagenet/resnet101_in1k.py)
if [[ $DRY_RUN == 1 ]]; then
  DEVICE=(--device cpu)
  CHECK=(--backend eager --size 6 --batch 2 --channels 32 --modules SEModule SGE SKFusion)
  TABLE=(--configs configs/imagenet/resnet50_in1k.py configs/imagenet/sge_resnet50_in1k.py
         --size 32 --train-batch 2 --infer-batch 2 --runs 1 --warmup 0 --threads 1
         --compile-backend eager)
  MODULES=(--module-names sge se --size 32 --train-batch 2 --module-runs 1 --warmup 0
           --threads 1 --compile-backend eager)
else
  "$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())'
  DEVICE=(--device cuda)
  CHECK=()
  TABLE=(--configs "${R50S[@]}" --size 224 --train-batch 32 --infer-batch 32 --runs 20 --warmup 5)
  MODULES=(--train-batch 32 --module-runs 20 --warmup 5)
fi

STEPS="${GPU_BENCH_STEPS:-1 2 3 4}"
step() { [[ " $STEPS " == *" $1 "* ]]; }
start=$SECONDS
if step 1; then
  echo "== 1. correctness: fast paths and compiled graphs against the plain formulas"
  "$PYTHON" tools/analysis/device_check.py "${DEVICE[@]}" "${CHECK[@]}" | tee "$OUT/device_check.txt"
fi
if step 2; then
  echo "== 2. model table: bfloat16 autocast, eager and compiled, with references"
  "$PYTHON" tools/analysis/benchmark.py "${DEVICE[@]}" "${TABLE[@]}" --amp bfloat16 \
    --reference --compile --out-dir "$OUT/bf16"
fi
if step 3; then
  echo "== 3. model table: float16 autocast (GradScaler), eager, contiguous and channels_last"
  "$PYTHON" tools/analysis/benchmark.py "${DEVICE[@]}" "${TABLE[@]}" --amp float16 \
    --reference --channels-last-rows --out-dir "$OUT/fp16"
fi
if step 4; then
  echo "== 4. modules: plain, fast path, compiled"
  "$PYTHON" tools/analysis/benchmark.py "${DEVICE[@]}" --modules --compile "${MODULES[@]}" \
    --out-dir "$OUT/modules"
fi
echo "gpu_bench.sh: done in $((SECONDS - start)) s; tables under $OUT"
