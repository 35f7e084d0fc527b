#!/usr/bin/env bash
# What to run when a session is lent a GPU (about 15 minutes of device time in all; keep each call under 10).
# The device machine reaches no network, so the data travels with the call: first, here,
#   bash benchmarks/gpu_session.sh prepare        (copies Fashion-MNIST, 30 MB, into the ignored data/ folder)
# then every device call carries it: run(command="bash benchmarks/gpu_session.sh measure", carry=["data"]).
# Call 1 (about 6 min): CUDA tests, engine and network timings side by side on the card.
#   bash benchmarks/gpu_session.sh measure
# Call 2 and later (each about 8 min): continue the Fashion-MNIST IPC-10 condensation budget run; its checkpoint
# is benchmarks/results/condense_budget_fm/run.safetensors.ckpt; the folder comes back as $OUT/condense_budget_fm.tar:
# untar it into benchmarks/results/ here and commit it, so the next GPU session continues the run.
#   bash benchmarks/gpu_session.sh condense
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src
export YOCO_DATA="${YOCO_DATA:-$PWD/data}"
OUT="${OUT:-benchmarks/results}"
case "${1:-measure}" in
  prepare)
    mkdir -p data/fashion-mnist
    cp /usr/share/datasets/fashion-mnist/*-ubyte.gz data/fashion-mnist/
    du -sh data
    ;;
  measure)
    python -m pytest -q tests/test_train.py tests/test_condense.py tests/test_augment.py -k "cuda or batched"
    python benchmarks/bench_condense.py --device cuda --steps 5 --rounds 2 --out "$OUT/condense_cost_cuda.json"
    python benchmarks/bench_networks.py --device cuda --nets 8 --epochs 50 --rounds 2 --out "$OUT/networks_cuda.json"
    ;;
  condense)
    python benchmarks/condense_budget.py --dataset fashion-mnist --ipc 10 --points 25,50,100,200,500,1000,2000 \
      --minutes "${MINUTES:-7}" --device cuda --data-root "$YOCO_DATA/fashion-mnist" \
      --out benchmarks/results/condense_budget_fm
    if [ "$OUT" != benchmarks/results ]; then  # on the device: bring the whole folder back as one file
      tar -cf "$OUT/condense_budget_fm.tar" -C benchmarks/results condense_budget_fm
    fi
    ;;
  *) echo "usage: $0 prepare|measure|condense" >&2; exit 2 ;;
esac
