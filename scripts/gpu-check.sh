#!/usr/bin/env bash
# The GPU acceptance check, for a machine with an NVIDIA GPU (an H200 here) and a netc built
# beforehand with scripts/build-cuda.sh (the build does not fit the GPU time box).
#
#   scripts/gpu-check.sh [MNIST_DIR]     # default ../shared/datasets/mnist
#
# 1. LeNet on the full MNIST for 10 epochs with --device cuda: seconds per epoch and test
#    accuracy (targets: under one second an epoch, 99%);
# 2. classification of the validation images on the GPU and on the CPU, which must agree.
# Everything it prints is also written to gpu-check.log.
set -euo pipefail
cd "$(dirname "$0")/.."
NETC=target/cuda/release/netc
MNIST="${1:-../shared/datasets/mnist}"
[ -x "$NETC" ] || { echo "build first: scripts/build-cuda.sh" >&2; exit 2; }
if [ -z "${NETC_CUDA_LIB:-}" ]; then
    NETC_CUDA_LIB="$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)"
fi
export LD_LIBRARY_PATH="${NETC_CUDA_LIB:+$NETC_CUDA_LIB:}${LD_LIBRARY_PATH:-}"
exec > >(tee gpu-check.log) 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
echo "== 1. LeNet, full MNIST, 10 epochs, --device cuda"
rm -rf runs/gpu-check
time "$NETC" train specs/lenet.net --data "$MNIST" --device cuda --epochs 10 --out runs/gpu-check
echo "== 2. classify on the GPU and the CPU"
"$NETC" data export "$MNIST" --out runs/gpu-check-val >/dev/null
# Paths in a list are relative to the list's folder.
(cd runs/gpu-check-val && find val -name '*.png' | sort | head -1000) > runs/gpu-check-val/list.txt
"$NETC" classify runs/gpu-check --list runs/gpu-check-val/list.txt --device cuda --format json > runs/gpu-check/classify-cuda.json
"$NETC" classify runs/gpu-check --list runs/gpu-check-val/list.txt --device cpu --format json > runs/gpu-check/classify-cpu.json
python3 - <<'PY'
import json
a = json.load(open("runs/gpu-check/classify-cuda.json"))
b = json.load(open("runs/gpu-check/classify-cpu.json"))
def probs(r):
    return [[p["probability"] for p in model] for img in r["images"] for model in img["predictions"]]
pa, pb = probs(a), probs(b)
worst = max((abs(x - y) for u, v in zip(pa, pb) for x, y in zip(u, v)), default=0.0)
print(f"images compared: {len(pa)}; largest probability difference GPU vs CPU: {worst:.2e}")
PY
