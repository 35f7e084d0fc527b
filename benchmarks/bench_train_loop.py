"""Speed of the shared training loop against plain PyTorch, measured side by side in one run.

Rows (ConvNet-3, width 128, batch 64, on 28x28x1 and 32x32x3 inputs):
  bare       forward/backward/SGD step on fixed tensors, no augmentation: the floor
  yoco       yoco.train.train (on-device data, batched DSA + CutMix p=0.5)
  plain      a typical research loop: per-image Python augmentation (random crop + flip + colour jitter)
             in a Dataset/DataLoader on the CPU, each batch copied to the device, then the same step
Each loop is timed in interleaved rounds (median reported). Reports images/s, each row's time relative to `bare`, and achieved GFLOP/s (forward+backward FLOPs from
torch's FlopCounterMode) as a fraction of this machine's measured float32 matrix-multiply rate (on CUDA
the matmul runs with TF32 off, PyTorch's default, while cuDNN convolutions keep their default TF32).

    python benchmarks/bench_train_loop.py [--steps 30] [--width 128] [--rounds 5] [--device auto]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from measure import matmul_tflops, step_flops, sync
from torch.utils.data import DataLoader, Dataset

from yoco.models import create_model
from yoco.runtime import resolve_device, seeded
from yoco.train import TrainConfig, train


class PerImageAug(Dataset):
    """What most research code does: augment one image at a time in Python inside the Dataset."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.x[i]
        pad = img.shape[-1] // 8
        img = F.pad(img, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2,)).tolist()
        img = img[:, dy : dy + self.x.shape[-2], dx : dx + self.x.shape[-1]]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        img = (img - img.mean()) * (torch.rand(()) + 0.5) + img.mean() + (torch.rand(()) - 0.5)
        return img, self.y[i]


def bench(channels: int, size: int, width: int, steps: int, device: torch.device, rounds: int = 5,
          n: int = 640) -> list[tuple[str, float, float]]:
    x_cpu, y_cpu = torch.randn(n, channels, size, size), torch.arange(n) % 10
    x, y = x_cpu.to(device), y_cpu.to(device)
    with seeded(0):
        model = create_model("convnet3", 10, channels, size, width=width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    flops_per_image = step_flops(model, x[:64], y[:64]) / 64
    batches = n // 64

    def bare() -> None:
        for i in range(batches):
            xb, yb = x[i * 64 : (i + 1) * 64], y[i * 64 : (i + 1) * 64]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def yoco() -> None:
        train(model, x, y, TrainConfig(epochs=1, dsa="color_crop_flip_scale_rotate", mix="cutmix"), progress=False)

    loader = DataLoader(PerImageAug(x_cpu, y_cpu), batch_size=64, shuffle=True)

    def plain() -> None:
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    loops = {"bare": bare, "yoco": yoco, "plain": plain}
    epochs = max(1, steps // batches)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for fn in loops.values():
        fn()  # warm-up
    sync(device)
    for r in range(rounds):  # interleaved rounds, order rotated, so drift and order effects hit every loop alike
        names = list(loops)[r % 3:] + list(loops)[: r % 3]
        for name in names:
            t = time.perf_counter()
            for _ in range(epochs):
                loops[name]()
            sync(device)
            times[name].append(time.perf_counter() - t)
    rows = []
    for name, ts in times.items():
        rate = epochs * batches * 64 / statistics.median(ts)
        rows.append((name, rate, rate * flops_per_image / 1e9))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds; the median is reported")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = ap.parse_args()
    device = resolve_device(args.device)
    peak = 1e3 * matmul_tflops(device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"device: {where}, torch {torch.__version__}; fp32 matmul: {peak:.1f} GFLOP/s")
    print(f"{'input':<10} {'loop':<6} {'img/s':>8} {'time vs bare':>13} {'GFLOP/s':>8} {'of matmul':>10}")
    for c, s in ((1, 28), (3, 32)):
        rows = bench(c, s, args.width, args.steps, device, args.rounds)
        base = rows[0][1]
        for name, rate, gf in rows:
            print(f"{f'{s}x{s}x{c}':<10} {name:<6} {rate:8.1f} {base / rate:12.2f}x {gf:8.1f} {gf / peak:9.0%}")


if __name__ == "__main__":
    main()
