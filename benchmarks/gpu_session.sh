#!/usr/bin/env bash
# What to run when a session is lent a GPU (about 15 minutes of device time in all, a machine start included;
# each call at most 10 minutes). The device machine reaches no network, so the data travels with the call:
# first, here,
#   bash benchmarks/gpu_session.sh prepare     (copies Fashion-MNIST, 30 MB, into the ignored data/ folder)
# then every device call carries it: run(command="bash benchmarks/gpu_session.sh all", carry=["data"], timeout_s=600).
#   all      CUDA tests, the IDC inner-step cost (both engines, the network update eager and compiled), networks
#            per second (one by one and batched, eager and torch.compile-d, then compiled with CUDA graphs via
#            YOCO_COMPILE_MODE=reduce-overhead), about 5-8 minutes, then the Fashion-MNIST IPC-10 condensation budget
#            run continued until BUDGET_S (default 550) seconds after the start; each step is time-boxed and a
#            failing step does not stop the next. The first H100 session's call: 68 s of measurements, then 55
#            outer iterations; a second call in a row (`condense`, CONDENSE_S=335) added 40 more.
#   condense only the budget run, for CONDENSE_S seconds (default 480).
#   ladder   the full-protocol ladder on the shipped set, stopped after LADDER_S seconds (default 150); its table
#            (`yoco report`: the cells finished so far) and cells' seconds come back in $OUT/ladder_gpu.tar.
# Next session's order: `all` (the one-pass batched step, compiled steps and CUDA graphs measured on the card; the
# CUDA tests of this CPU session's changes), then, in a row while the machine is warm, LADDER_S=300 `ladder`: the
# full-protocol ladder on the shipped set, timed with the one-pass batched step (issues 12 and 13).
# The budget run lives in /tmp/condense_budget_fm on the device (kept while the machine stays warm, so calls in a
# row continue it) and starts from benchmarks/results/condense_budget_fm when that is committed. After every chunk
# of outer iterations the folder is packed into $OUT/condense_budget_fm.tar: untar it into benchmarks/results/
# here, evaluate the saved sets on the CPU
#   python benchmarks/condense_budget.py --minutes 0 --out benchmarks/results/condense_budget_fm
# and commit the folder (checkpoint included), so the next GPU session continues the run.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
export YOCO_DATA="${YOCO_DATA:-$PWD/data}"
OUT="${OUT:-/tmp/yoco_out}"
mkdir -p "$OUT"
RUN=/tmp/condense_budget_fm
T0=$SECONDS

condense_until() {  # $1: seconds after the call's start by which the run must have stopped
  if [ ! -d "$RUN" ] && [ -d benchmarks/results/condense_budget_fm ]; then cp -r benchmarks/results/condense_budget_fm "$RUN"; fi
  local left=$(( $1 - (SECONDS - T0) - 20 ))
  [ "$left" -gt 30 ] || { echo "no time left to condense"; return; }
  local args=(--dataset fashion-mnist --ipc 10 --points 25,50,100,200,500,1000,2000 --data-root "$YOCO_DATA/fashion-mnist"
              --device cuda --no-eval --snapshot "$OUT/condense_budget_fm.tar" --out "$RUN")
  python benchmarks/condense_budget.py "${args[@]}" --minutes "$(python -c "print($left / 60)")" && return
  echo "batched engine failed; continuing with the sequential engine"
  left=$(( $1 - (SECONDS - T0) - 20 ))
  python benchmarks/condense_budget.py "${args[@]}" --engine sequential --minutes "$(python -c "print($left / 60)")"
}

case "${1:-all}" in
  prepare)
    mkdir -p data/fashion-mnist
    cp /usr/share/datasets/fashion-mnist/*-ubyte.gz data/fashion-mnist/
    du -sh data
    ;;
  measure|all)
    nvidia-smi -L
    timeout 120 python -m pytest -q tests/test_train.py tests/test_condense.py tests/test_augment.py \
      tests/test_dynamics.py -k "cuda or batched or one_pass" 2>&1 | tail -5
    timeout 150 python benchmarks/bench_condense.py --device cuda --steps 3 --rounds 2 --net eager,compiled \
      --out "$OUT/condense_cost_cuda.json"
    timeout 150 python benchmarks/bench_networks.py --device cuda --nets 16 --epochs 50 --rounds 2 --compile \
      --out "$OUT/networks_cuda.json"
    YOCO_COMPILE_MODE=reduce-overhead timeout 120 python benchmarks/bench_networks.py --device cuda --nets 16 \
      --epochs 50 --rounds 1 --compile --out "$OUT/networks_cuda_cudagraphs.json"
    echo "measurements took $(( SECONDS - T0 )) s"
    [ "$1" = all ] && condense_until "${BUDGET_S:-550}"
    ;;
  condense)
    condense_until "${CONDENSE_S:-480}"
    ;;
  ladder)
    timeout "${LADDER_S:-150}" python -m yoco.cli ladder src/yoco/assets/fashion-mnist-idc-ipc10.safetensors --dataset fashion-mnist \
      --data-root "$YOCO_DATA/fashion-mnist" --device cuda --out /tmp/ladder_gpu
    echo "ladder stopped after $(( SECONDS - T0 )) s"
    python -m yoco.cli report /tmp/ladder_gpu | head -30  # the cells finished so far, if it was stopped
    tar -cf "$OUT/ladder_gpu.tar" -C /tmp --exclude='*.safetensors' ladder_gpu
    ;;
  *) echo "usage: $0 prepare|all|measure|condense|ladder" >&2; exit 2 ;;
esac
