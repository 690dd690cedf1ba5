#!/usr/bin/env bash
# netc against the PyTorch peer (../shared/bench/torch_lenet.py), side by side on this
# machine: Caffe's LeNet on the full MNIST, batch 64, one epoch each, alternating netc and
# PyTorch so both see the same load; then inference (one-image latency and batch
# throughput). Prints a table with the ratios.
#
#   scripts/bench-vs-torch.sh [ROUNDS] [THREADS...]     # defaults: 2 rounds, threads 1 and 2
#
# PyTorch comes from $TORCH_PYTHON, or a virtual environment in target/torch-venv that the
# script makes on first use (pip install torch numpy: a few GB, as the peer's README says).
# Needs ../shared/datasets/mnist and ../shared/bench/torch_lenet.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
shift || true
THREADS=("$@")
[ ${#THREADS[@]} -gt 0 ] || THREADS=(1 2)
MNIST=../shared/datasets/mnist
PEER=../shared/bench/torch_lenet.py
[ -d "$MNIST" ] && [ -f "$PEER" ] || { echo "needs $MNIST and $PEER" >&2; exit 2; }
PY="${TORCH_PYTHON:-target/torch-venv/bin/python}"
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "making target/torch-venv (pip install torch numpy) ..." >&2
    python3 -m venv target/torch-venv
    target/torch-venv/bin/pip install -q torch numpy
    PY=target/torch-venv/bin/python
fi
cargo build --release -q
NETC=target/release/netc
OUT=target/bench-vs-torch
rm -rf "$OUT"
mkdir -p "$OUT"

# Inference inputs: 1000 validation digits of the shipped small MNIST as PNG files.
"$NETC" data export specs/data/mnist-small --out "$OUT/png" >/dev/null
(cd "$OUT" && find png/val -name "*.png" | sort | head -1000) >"$OUT/list.txt"

for r in $(seq 1 "$ROUNDS"); do
    for t in "${THREADS[@]}"; do
        echo "round $r, $t thread(s): netc" >&2
        RAYON_NUM_THREADS=$t "$NETC" train specs/lenet.net --data "$MNIST" --epochs 1 \
            --out "$OUT/netc-r$r-t$t" >"$OUT/netc-r$r-t$t.log" 2>&1
        RAYON_NUM_THREADS=$t "$NETC" classify "$OUT/netc-r$r-t$t" --list "$OUT/list.txt" \
            --bench --format json >"$OUT/netc-infer-r$r-t$t.json" 2>/dev/null
        echo "round $r, $t thread(s): PyTorch" >&2
        "$PY" "$PEER" --data "$MNIST" --epochs 1 --threads "$t" >"$OUT/torch-r$r-t$t.log" 2>&1
    done
done

python3 - "$OUT" "$ROUNDS" "${THREADS[@]}" <<'PY'
import json, sys, statistics as st
out, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def netc_train(r, t):
    rec = [json.loads(l) for l in open(f"{out}/netc-r{r}-t{t}/metrics.jsonl")]
    return rec[-1]["images_per_second"], rec[-1]["val_accuracy"]
def netc_infer(r, t):
    j = json.load(open(f"{out}/netc-infer-r{r}-t{t}.json"))
    j = j[0] if isinstance(j, list) else j
    return j["forward_latency_batch1"]["median_ms"], j["forward_images_per_second"]
def torch(r, t):
    for line in open(f"{out}/torch-r{r}-t{t}.log"):
        if line.startswith("RESULT "):
            j = json.loads(line[7:])
            e = j["epochs"][-1]
            return e["train_img_per_s"], 100 * e["test_acc"], j["infer_batch1"]["median_ms"], j["infer_batch1000"]["img_per_s"]
    raise SystemExit(f"no RESULT line in {out}/torch-r{r}-t{t}.log")
print(f"{'threads':>7} {'round':>5} | {'netc img/s':>10} {'torch img/s':>11} {'ratio':>6} | "
      f"{'acc netc':>8} {'acc torch':>9} | {'1-img ms netc':>13} {'torch':>6} | {'batch img/s netc':>16} {'torch':>6}")
for t in threads:
    ratios = []
    for r in range(1, rounds + 1):
        ni, na = netc_train(r, t)
        tl_ms, tput = netc_infer(r, t)
        ti, ta, tlat, ttput = torch(r, t)
        ratios.append(ni / ti)
        print(f"{t:>7} {r:>5} | {ni:>10.0f} {ti:>11.0f} {ni/ti:>6.2f} | {na:>7.2f}% {ta:>8.2f}% | "
              f"{tl_ms:>13.3f} {tlat:>6.3f} | {tput:>16.0f} {ttput:>6.0f}")
    print(f"{t:>7} {'all':>5} | training images/s, netc over PyTorch: median {st.median(ratios):.2f}x")
PY
