#!/usr/bin/env bash
# Wheels for tools/analysis/gpu_bench.sh on a CUDA machine that reaches no package registry.
#
#   bash tools/analysis/gpu_wheels.sh [--python-version 3.12] [--out .whl]
#
# Run it here, on a machine with PyPI and the project's .venv (mmcv is built from its sdist
# with that Python). It writes into --out (default .whl/ at the repo root, which gpu_bench.sh
# picks up):
#   * the OpenMMLab packages and their pure-Python needs that a CUDA image with torch,
#     torchvision, numpy, scipy, matplotlib, opencv, pyyaml, rich and einops lacks;
#   * pycocotools and shapely (compiled; mmdet imports them) for --python-version on
#     manylinux x86_64;
#   * mmcv 2.1.0 without compiled ops (MMCV_WITH_OPS=0: a pure-Python wheel named mmcv_lite
#     that imports as mmcv; the backbones, the benchmark and the correctness pass need no ops).
# Then carry the folder with the repo and run `bash tools/analysis/gpu_bench.sh` there.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYVER=3.12
OUT=.whl
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python-version) PYVER="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu_wheels.sh: unknown argument '$1' (--python-version X.Y, --out DIR)" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-.venv/bin/python}"
PY="$(command -v "$PY")" || { echo "gpu_wheels.sh: no .venv/bin/python (make it first: bash tools/setup_env.sh) and PYTHON unset" >&2; exit 2; }
[[ "$PY" == /* ]] || PY="$PWD/$PY"
mkdir -p "$OUT"

# the versions the project is tested with
PURE=(mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0 addict==2.4.0 yapf==0.43.0
      termcolor==3.3.0 terminaltables==3.1.10 mat4py==0.6.0 model-index==0.1.11
      ordered-set==4.1.0 platformdirs==4.14.9 importlib-metadata==10.2.0 lazy-importer==0.1.0
      setuptools==81.0.0)  # mmengine imports pkg_resources, which setuptools >= 82 dropped
COMPILED=(pycocotools==2.0.11 shapely==2.2.0)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done

"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$OUT" "${PURE[@]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp "${PLATFORMS[@]}" -d "$OUT" "${COMPILED[@]}"

if ! compgen -G "$OUT/mmcv_lite-2.1.0-*.whl" > /dev/null; then
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary mmcv mmcv==2.1.0 -d "$WORK"
  tar -xzf "$WORK/mmcv-2.1.0.tar.gz" -C "$WORK"
  (cd "$WORK/mmcv-2.1.0" && MMCV_WITH_OPS=0 "$PY" -m pip wheel -q --no-deps \
     --no-build-isolation -w "$WORK/dist" . > "$WORK/build.log" 2>&1) \
    || { tail -20 "$WORK/build.log" >&2; echo "gpu_wheels.sh: mmcv (no ops) wheel failed" >&2; exit 1; }
  cp "$WORK"/dist/mmcv_lite-*.whl "$OUT/"
fi
echo "gpu_wheels.sh: $(ls "$OUT"/*.whl | wc -l) wheels in $OUT ($(du -sh "$OUT" | cut -f1)) for Python $PYVER"
