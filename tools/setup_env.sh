#!/usr/bin/env bash
# Create .venv at the repo root with the pinned OpenMMLab stack and resvariants installed.
#
#   bash tools/setup_env.sh            # idempotent; a second run on the same machine takes < 2 min
#
# mmcv 2.1.0 has no wheel on PyPI, so it is built from its sdist with the compiled ops
# (MMCV_WITH_OPS=1). The build needs torch present and setuptools<82 (setup.py imports
# pkg_resources), hence --no-build-isolation; torch 2.14's headers need C++20 while mmcv's
# setup.py forces -std=c++17, so the unpacked sdist is patched. The built wheel is cached in
# $RESVARIANTS_CACHE (default ~/.cache/resvariants/wheels), keyed by mmcv, torch, python and
# device (cpu / cuda + arch list). With a CUDA GPU and nvcc present the CUDA ops are built too
# (FORCE_CUDA=1). The script ends by running mmcv.ops.nms and roi_align and fails loudly if not.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="$ROOT/.venv"
CACHE="${RESVARIANTS_CACHE:-$HOME/.cache/resvariants/wheels}"
MMCV_VERSION=2.1.0
TORCH_SPEC="torch==2.14.1"
TORCHVISION_SPEC="torchvision==0.29.1"

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

log "build tooling (setuptools<82 keeps pkg_resources for mmcv and mmengine)"
"${PIP[@]}" install -q --upgrade pip "setuptools<82" wheel ninja psutil

if ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
    log "installing $TORCH_SPEC $TORCHVISION_SPEC"
fi
"${PIP[@]}" install -q "$TORCH_SPEC" "$TORCHVISION_SPEC"

read -r TORCH_VER PY_TAG HAS_CUDA < <("$PY" - <<'EOF'
import sys, torch
print(torch.__version__.replace('+', '_'), f'cp{sys.version_info.major}{sys.version_info.minor}',
      int(torch.cuda.is_available()))
EOF
)
DEVICE_TAG=cpu
BUILD_ENV=(MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}")
if [[ "$HAS_CUDA" == 1 ]] && command -v nvcc >/dev/null 2>&1; then
    ARCHS="${TORCH_CUDA_ARCH_LIST:-$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}"
    DEVICE_TAG="cuda$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')-sm${ARCHS//[^0-9]/_}"
    BUILD_ENV+=(FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS")
fi
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_VER-$PY_TAG-$DEVICE_TAG"

have_mmcv_ops() {
    "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1
}

if ! have_mmcv_ops; then
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION with ops ($DEVICE_TAG); 20-40 min on 2 cores, once per machine"
        WORK="$(mktemp -d)"
        trap 'rm -rf "$WORK"' EXIT
        "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary mmcv \
            "mmcv==$MMCV_VERSION" -d "$WORK"
        tar -xzf "$WORK/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK"
        SRC="$WORK/mmcv-$MMCV_VERSION"
        # torch >= 2.10 headers use C++20; mmcv 2.1.0 hard-codes -std=c++17.
        sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
        grep -q -- '-std=c++20' "$SRC/setup.py" || { echo "mmcv setup.py patch failed" >&2; exit 1; }
        mkdir -p "$WHEEL_DIR"
        (cd "$SRC" && env "${BUILD_ENV[@]}" "${PIP[@]}" wheel -v --no-deps --no-build-isolation \
            . -w "$WORK/dist" 2>&1 | grep -E --line-buffered '^\[[0-9]+/[0-9]+\]|error|Error|Created wheel' || true)
        ls "$WORK"/dist/mmcv-*.whl >/dev/null 2>&1 || { echo "mmcv build failed (see output above)" >&2; exit 1; }
        # atomic publish into the cache
        cp "$WORK"/dist/mmcv-*.whl "$WHEEL_DIR/.tmp.whl"
        mv "$WHEEL_DIR/.tmp.whl" "$WHEEL_DIR/$(basename "$WORK"/dist/mmcv-*.whl)"
    else
        log "using cached mmcv wheel from $WHEEL_DIR"
    fi
    "${PIP[@]}" install -q --force-reinstall --no-deps "$WHEEL_DIR"/mmcv-*.whl
fi

log "installing requirements.txt and resvariants (editable)"
"${PIP[@]}" install -q -r requirements.txt
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

log "verifying mmcv compiled ops"
"$PY" - <<'EOF'
import torch
from mmcv.ops import nms, roi_align
import mmcv, mmdet, mmpretrain, mmengine
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
scores = torch.tensor([0.9, 0.8, 0.7])
_, keep = nms(boxes, scores, iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
feat = torch.arange(64.).view(1, 1, 8, 8)
out = roi_align(feat, torch.tensor([[0., 0., 0., 4., 4.]]), (2, 2), 1.0, 2, 'avg', True)
assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all(), out
devices = ['cpu']
if torch.cuda.is_available():
    _, keep = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    devices.append('cuda')
print(f'mmcv {mmcv.__version__} ops OK on {devices}; torch {torch.__version__}, '
      f'mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmpretrain {mmpretrain.__version__}')
EOF
log "done: $VENV"
