"""One evaluation as a ladder cell runs it, timed with glibc's allocator defaults or with yoco's settings.

The first 20 decoded images per class of the shipped set, ConvNet-3 width 128, 30 epochs, one test pass, one thread.
Run it alternately with and without ``YOCO_MALLOC=0`` (the setting is per process):

    for i in 1 2; do YOCO_MALLOC=0 python benchmarks/allocator_cell.py; python benchmarks/allocator_cell.py; done
"""

from __future__ import annotations

import resource
import time

import torch

from yoco.data.condensed import decode, load
from yoco.data.datasets import load_dataset
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.ladder.config import DEMO_SET
from yoco.runtime import Runtime
from yoco.train import TrainConfig


def main() -> None:
    torch.set_num_threads(1)
    dec = decode(load(DEMO_SET))
    keep = torch.cat([torch.nonzero(dec.labels == c).flatten()[:20] for c in range(dec.num_classes)])
    sub = type(dec)(dec.images[keep], dec.labels[keep], dec.meta, source="first 20 decoded images per class")
    real = load_dataset("fashion-mnist")
    cfg = EvalConfig(width=128, repeat=1, test_points=1, train=TrainConfig(epochs=30))
    faults, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    res = evaluate_condensed(sub, real, cfg, runtime=Runtime.make("cpu", progress=False))
    print(f"{time.perf_counter() - t0:.2f} s, {resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults} page "
          f"faults, last accuracy {res['last_mean']:.4f}")


if __name__ == "__main__":
    main()
