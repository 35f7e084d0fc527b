"""The CPU allocator's settings (``yoco.allocator``): the same work in processes with glibc's defaults
(``YOCO_MALLOC=0``) and with yoco's settings, interleaved, best of ``--rounds``.

Workloads, each in every process: training ConvNet-3 with the evaluation recipe (DSA + CutMix, batch 64) on 200
Fashion-MNIST-shaped images at widths 32 and 128; one test pass over 10,000 images at the old batch of 500 and
the current 16; one IDC inner step of the Fashion-MNIST preset (sequential engine, the CPU's). Minor page faults
are counted per workload; the trained weights and logits must come out bit-identical.

    python benchmarks/bench_allocator.py [--threads 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from yoco.files import write_json

OUT = Path(__file__).parent / "results"

WORK = """
import json, resource, sys, time, torch
from yoco import protocol
from yoco.allocator import tune_allocator
from yoco.condense import idc
from yoco.condense import config
from yoco.condense import init as idc_init
from yoco.condense import matching
from yoco.data.datasets import load_dataset
from yoco.models import create_model
from yoco.train import TrainConfig, train
from yoco.predict import predict
torch.set_num_threads(int(sys.argv[1]))
tuned = tune_allocator()
rows = {}
def timed(name, fn):
    f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    check = fn()
    rows[name] = {"seconds": time.perf_counter() - t0,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0, "check": check}
g = torch.Generator().manual_seed(0)
x, y = torch.randn(200, 1, 28, 28, generator=g), torch.arange(10).repeat_interleave(20)
cfg = TrainConfig(seed=0, dsa=protocol.EVAL_DSA, flip=True, mix_p=protocol.MIX_P, base_aug="none")
for width, epochs in ((32, 20), (128, 5)):
    def fit(width=width, epochs=epochs):
        torch.manual_seed(0)
        net = create_model("convnet3", 10, 1, (28, 28), width=width)
        train(net, x, y, TrainConfig(**{**cfg.to_dict(), "epochs": epochs}), progress=False)
        return float(sum(p.double().sum() for p in net.parameters()))
    fit(width, 1)  # warm-up
    timed(f"train width {width}, {epochs} epochs", fit)
torch.manual_seed(0)
net = create_model("convnet3", 10, 1, (28, 28), width=128).eval()
test = torch.randn(10000, 1, 28, 28, generator=g)
for batch in (500, 16):
    timed(f"test pass width 128, batch {batch}", lambda b=batch: float(predict(net, test, batch_size=b).double().sum()))
real = load_dataset("fashion-mnist")
pcfg = config.PRESETS["fashion-mnist"]
start = idc_init.init_synthetic(real, pcfg.ipc, pcfg.factor, pcfg.init).images
pool, dsa = matching._RealPool(real, torch.device("cpu")), idc.DSA(pcfg.match_dsa, flip=real.flip)
mnet = idc._build_net(pcfg, real, 0, torch.device("cpu"))
def step():
    syn = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=pcfg.effective_lr_img(real.name, 28), momentum=pcfg.mom_img)
    matching.inner_step_sequential(mnet, pool, syn, opt, pcfg, dsa, torch.Generator().manual_seed(0))
    return float(syn.detach().double().sum())
step()
timed("IDC matching step (Fashion-MNIST preset)", step)
print(json.dumps({"tuned": tuned, "rows": rows}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(OUT / "allocator.json"))
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"glibc defaults": [], "yoco's settings": []}
    for _ in range(args.rounds):
        for label, env in (("glibc defaults", {"YOCO_MALLOC": "0"}), ("yoco's settings", {})):
            out = subprocess.run([sys.executable, "-c", WORK, str(args.threads)], capture_output=True, text=True,
                                 check=True, env={**os.environ, **env}).stdout
            runs[label].append(json.loads(out.strip().splitlines()[-1]))
    names = list(runs["glibc defaults"][0]["rows"])
    table = []
    for name in names:
        best = {label: min(r["rows"][name]["seconds"] for r in rs) for label, rs in runs.items()}
        faults = {label: rs[-1]["rows"][name]["faults"] for label, rs in runs.items()}
        checks = {rs[-1]["rows"][name]["check"] for rs in runs.values()}
        table.append({"work": name, "seconds": best, "faults": faults, "identical": len(checks) == 1})
    write_json(args.out, {"threads": args.threads, "rounds": args.rounds, "table": table,
                          "tuned": [r["tuned"] for r in runs["yoco's settings"]]})
    print(f"{args.threads} thread(s), best of {args.rounds}; seconds (minor page faults)")
    print(f"{'work':<44}{'glibc defaults':>22}{'yoco settings':>22}{'speed-up':>10}  same numbers")
    for row in table:
        a, b = row["seconds"]["glibc defaults"], row["seconds"]["yoco's settings"]
        fa, fb = row["faults"]["glibc defaults"], row["faults"]["yoco's settings"]
        print(f"{row['work']:<44}{a:>9.2f} ({fa:>9})  {b:>9.2f} ({fb:>9}){a / b:>9.2f}x  {row['identical']}")


if __name__ == "__main__":
    main()
