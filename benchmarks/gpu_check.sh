#!/usr/bin/env bash
# The GPU check of docs/deployment.md (issue 26), one command, meant to finish in under 10 minutes on one GPU:
#   1. a fresh venv with onnxruntime-gpu and never the CPU onnxruntime beside it (both are the `onnxruntime` module);
#   2. the CUDA execution provider present and actually used: the engine's session lists it first and on_gpu is
#      true (a silent fall-back to the CPU fails the check), and torch sees the GPU;
#   3. val boxes on onnxruntime-CUDA and on torch-CUDA against the same engine's CPU run (IoU per frame; the min is
#      reported; the two engines' CPU runs differ from each other, so each has its own reference);
#   4. ms per frame for 1 and 16 targets on onnxruntime-CUDA and torch-CUDA (`siamtrack bench --targets 1,16`);
#   5. `siamtrack batch` with several workers sharing the one GPU (frames/s, and its CSVs against the CPU run's).
# It writes $OUT/gpu_check.json and $OUT/gpu_check.md (a table) and exits 1 if a check fails.
#
#   benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root (needs pip access)
#   benchmarks/gpu_check.sh --dry-run       # anywhere: no venv, every step on the CPU with the current python,
#                                           # GPU-only checks reported as "skipped"; shows the script's shape
# Environment: OUT (default results/gpu_check), PYTHON (dry run: the interpreter with siamtrack's deps; default
# python3), VENV (GPU run: where to build the venv; default $OUT/venv), WORKERS (batch workers, default 4),
# ORT_GPU (pip spec, default 'onnxruntime-gpu>=1.20,<1.33', as docs/deployment.md), CUDA_OK=0 (= --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
[ "${CUDA_OK:-1}" = "0" ] && DRY=1
OUT=${OUT:-results/gpu_check}
WORKERS=${WORKERS:-4}
DATA=$(cd .. && pwd)/shared/data
VAL=$DATA/val VAL_HARD=$DATA/val-hard CLIP=$DATA/videos/bag.avi
for need in "$VAL" "$VAL_HARD" "$CLIP"; do
    [ -e "$need" ] || { echo "gpu_check: needs $need (the data pack beside the repository)" >&2; exit 2; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
step() { echo "== $(date -u +%T) $*"; }

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    PY=${PYTHON:-python3}
    step "dry run: no venv; would run: python3 -m venv --system-site-packages \$VENV; pip install -e '.[export]';" \
         "pip uninstall -y onnxruntime; pip install '${ORT_GPU:-onnxruntime-gpu>=1.20,<1.33}'"
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
else
    DEVICE=cuda
    VENV=${VENV:-$OUT/venv}
    step "venv $VENV (system site packages: the machine's CUDA torch is reused, not downloaded)"
    python3 -m venv --system-site-packages "$VENV"
    PY=$VENV/bin/python
    "$PY" -m pip install -q -e '.[export]'
    # The two builds are one module: remove the CPU build before the GPU build goes in, never keep both.
    "$PY" -m pip uninstall -q -y onnxruntime onnxruntime-gpu || true
    "$PY" -m pip install -q "${ORT_GPU:-onnxruntime-gpu>=1.20,<1.33}"
fi
SIAMTRACK=("$PY" -m tracker.cli)

step "1-2. builds and providers"
"$PY" - "$DEVICE" "$OUT/providers.json" <<'EOF'
import json, sys
from importlib import metadata
device, out = sys.argv[1], sys.argv[2]
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
import torch
from tracker.onnx_engine import OnnxEngine
from tracker.paths import weights_dir
engine = OnnxEngine.from_dir(weights_dir(), device)
report = {"device": device, "onnxruntime": version("onnxruntime"), "onnxruntime_gpu": version("onnxruntime-gpu"),
          "providers": engine.providers, "on_gpu": engine.on_gpu, "torch": torch.__version__,
          "torch_cuda": torch.cuda.is_available(),
          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
problems = []
if device == "cuda":
    if report["onnxruntime"]:
        problems.append(f"the CPU onnxruntime {report['onnxruntime']} is installed beside onnxruntime-gpu")
    if not report["onnxruntime_gpu"]:
        problems.append("onnxruntime-gpu is not installed")
    if not engine.on_gpu or engine.providers[0] != "CUDAExecutionProvider":
        problems.append(f"onnxruntime fell back to the CPU: providers {engine.providers}")
    if not report["torch_cuda"]:
        problems.append("torch sees no CUDA GPU")
report["problems"] = problems
json.dump(report, open(out, "w"), indent=2)
print(json.dumps(report))
sys.exit(1 if problems else 0)
EOF

step "3. val: each engine on the CPU (the reference), then on $DEVICE"
for engine in onnx torch; do
    weights=weights
    [ "$engine" = torch ] && weights=weights/siamtrack_default.pt
    "${SIAMTRACK[@]}" eval "$VAL" --engine "$engine" --weights "$weights" --device cpu --out "$OUT/val_cpu_$engine" \
        --no-progress | grep "^| siamtrack"
    if [ "$DEVICE" = cuda ]; then
        "${SIAMTRACK[@]}" eval "$VAL" --engine "$engine" --weights "$weights" --device cuda --out "$OUT/val_$engine" \
            --no-progress | grep "^| siamtrack"
    else  # dry run: the comparison runs on the CPU run against itself
        rm -rf "$OUT/val_$engine"
        ln -s "$OUT/val_cpu_$engine" "$OUT/val_$engine"
    fi
done

step "4. ms per frame, 1 and 16 targets"
for engine in onnx torch; do
    weights=weights
    [ "$engine" = torch ] && weights=weights/siamtrack_default.pt
    "${SIAMTRACK[@]}" bench "$CLIP" --targets 1,16 --engine "$engine" --weights "$weights" --device "$DEVICE" \
        --json "$OUT/bench_$engine.json" --no-progress | tail -4
done

step "5. batch on val-hard: 2 workers on the CPU (the reference), then $WORKERS workers on one GPU (not in a dry run)"
rm -rf "$OUT/batch_cpu" "$OUT/batch_$DEVICE"
"${SIAMTRACK[@]}" batch "$VAL_HARD" --out "$OUT/batch_cpu" --workers 2 --device cpu --no-progress 2>&1 \
    | grep "frames/s across" | tee "$OUT/batch_cpu.txt"
if [ "$DEVICE" = cuda ]; then
    "${SIAMTRACK[@]}" batch "$VAL_HARD" --out "$OUT/batch_cuda" --workers "$WORKERS" --device cuda --no-progress 2>&1 \
        | grep "frames/s across" | tee "$OUT/batch_cuda.txt"
fi

step "summary"
"$PY" benchmarks/gpu_check_summary.py "$OUT" "$DEVICE"
