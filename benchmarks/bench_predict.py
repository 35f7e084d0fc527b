"""Test passes: seconds for one network's logits on 10,000 Fashion-MNIST-shaped images, by batch size.

Every evaluation cell tests its network on the 10,000 real test images at each test point; on a CPU that pass was
half of a small ladder cell. ConvNet-3 at each width, in eval mode, batch sizes side by side in one run (best of
``--rounds``), each checked for logits bit-identical to the 500-image batches the pass used before.

    python benchmarks/bench_predict.py [--widths 32,128] [--batches 8,16,32,64,128,500] [--threads 1,2]
        [--rounds 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from yoco.files import write_json
from yoco.models import create_model
from yoco.predict import predict
from yoco.runtime import resolve_device

OUT = Path(__file__).parent / "results"
IMAGES = 10_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="32,128")
    ap.add_argument("--batches", default="8,16,32,64,128,500")
    ap.add_argument("--threads", default="1,2", help="comma list of torch thread counts (CPU)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(OUT / "predict.json"))
    args = ap.parse_args()
    dev = resolve_device(args.device)
    x = torch.randn(IMAGES, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for width in [int(w) for w in args.widths.split(",")]:
            torch.manual_seed(0)
            model = create_model("convnet3", 10, 1, (28, 28), width=width).to(dev).eval()
            before = predict(model, x, batch_size=500)
            for b in batches:
                best = float("inf")
                for _ in range(args.rounds):
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t0 = time.perf_counter()
                    out = predict(model, x, batch_size=b)
                    best = min(best, time.perf_counter() - t0)
                rows.append({"threads": threads, "width": width, "batch": b, "seconds": best,
                             "identical": bool(torch.equal(out, before))})
    write_json(args.out, {"device": str(dev), "images": IMAGES, "rows": rows})
    print(f"device {dev}, {IMAGES} images, seconds per pass (x: speed-up over batch 500; ! logits differ)")
    print(f"{'threads':>7}{'width':>6}" + "".join(f"{b:>12}" for b in batches))
    for threads in sorted({r["threads"] for r in rows}):
        for width in sorted({r["width"] for r in rows}):
            cells = [r for r in rows if r["threads"] == threads and r["width"] == width]
            base = next(r["seconds"] for r in cells if r["batch"] == 500) if 500 in batches else None
            text = "".join(f"{r['seconds']:>6.2f}{'' if r['identical'] else '!'}" +
                           (f" {base / r['seconds']:>4.1f}x" if base else "") for r in cells)
            print(f"{threads:>7}{width:>6}{text}")


if __name__ == "__main__":
    main()
