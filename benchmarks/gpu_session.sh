#!/usr/bin/env bash
# What to run when a session is lent a GPU (about 15 minutes of device time in all; keep each call under 10).
# Call 1 (about 6 min): CUDA tests, engine and network timings side by side on the card.
#   bash benchmarks/gpu_session.sh measure
# Call 2 and later (each about 8 min): continue the Fashion-MNIST IPC-10 condensation budget run; its checkpoint
# is benchmarks/results/condense_budget_fm/run.safetensors.ckpt, to be committed after the call.
#   bash benchmarks/gpu_session.sh condense
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src
OUT="${OUT:-benchmarks/results}"
case "${1:-measure}" in
  measure)
    python -m pytest -q tests/test_train.py tests/test_condense.py tests/test_augment.py -k "cuda or batched"
    python benchmarks/bench_condense.py --device cuda --steps 5 --rounds 2 --out "$OUT/condense_cost_cuda.json"
    python benchmarks/bench_networks.py --device cuda --nets 8 --epochs 50 --rounds 2 --out "$OUT/networks_cuda.json"
    ;;
  condense)
    python benchmarks/condense_budget.py --dataset fashion-mnist --ipc 10 --points 25,50,100,200,500,1000,2000 \
      --minutes "${MINUTES:-7}" --device cuda --out "$OUT/condense_budget_fm"
    ;;
  *) echo "usage: $0 measure|condense" >&2; exit 2 ;;
esac
