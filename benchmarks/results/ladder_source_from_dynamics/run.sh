#!/bin/bash
# the same small ladder (riding settings) with the previous and this revision, one after the other
cd /work/main
ARGS="src/yoco/assets/fashion-mnist-idc-ipc10.safetensors --dataset fashion-mnist --ipcs 1 --rules yoco --repeat 3 --epochs 100 --dynamics-epochs 100 --width 32 --lbpe-epochs 50 --lbpe-top-k 10 --workers 1 --device cpu --quiet"
for rev in old new; do
  src=/work/main/src; [ $rev = old ] && src=/tmp/oldrev/src  # /tmp/oldrev: git worktree add /tmp/oldrev 34cdb18~1
  rm -rf /tmp/ride_$rev
  s=$(date +%s.%N)
  PYTHONPATH=$src .venv/bin/python -m yoco.cli ladder $ARGS --out /tmp/ride_$rev > /tmp/ride_$rev.log 2>&1
  e=$(date +%s.%N)
  echo "$rev $(python3 -c "print(f'{$e-$s:.1f}')")" >> /tmp/ride_times.txt
done
