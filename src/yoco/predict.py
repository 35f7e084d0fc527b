"""Test passes: a trained network's (or many networks') logits on a set, in batches sized for the device."""

from __future__ import annotations

import torch
from torch import nn

from yoco.models.stacked import batchable, stacked_forward

TEST_BATCH = 500  # images per forward pass when only predicting, on a GPU
CPU_TEST_BATCH = 16  # on a CPU: activations that stay in the caches (faster than 500, the same logits)


def test_batch(device: torch.device) -> int:
    """Images per forward pass when only predicting on ``device``. On a CPU a batch of 16 keeps a ConvNet's
    activations in the caches: 1.5-1.8x faster than 500 at width 128 with bit-identical logits (2.1-2.9x with
    glibc's allocator defaults; BENCHMARKS.md, "Test passes"); a GPU wants large batches."""
    return CPU_TEST_BATCH if device.type == "cpu" else TEST_BATCH


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int | None = None, device: torch.device | None = None,
            features: bool = False) -> torch.Tensor:
    """Logits (or penultimate features) of ``model`` on ``images`` in eval mode, batched (default:
    :func:`test_batch`), returned on CPU."""
    device = device or next(model.parameters()).device
    batch_size = batch_size or test_batch(device)
    was_training = model.training
    model.eval()
    fn = model.features if features else model
    outs = [fn(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outs)


@torch.no_grad()
def predict_many(models: list[nn.Module], images: torch.Tensor, batch_size: int | None = None,
                 pairs: int | None = None) -> torch.Tensor:
    """Logits ``[N, n, C]`` of N networks of one architecture on the same images, in eval mode, returned on CPU.

    Networks without buffers (:func:`batchable`) go through the images together, one stacked computation
    (:func:`~yoco.models.stacked.stacked_forward`) per chunk of ``pairs // N`` images (``pairs`` bounds the
    image-network pairs in flight, i.e. the memory; default 2048 on a GPU, :func:`test_batch` on a CPU), so N
    networks cost one pass over the data with N times larger kernels (on a GPU, fewer launches); others, or a
    single network, are run one by one with :func:`predict` in chunks of ``batch_size``.
    """
    if len(models) == 1 or not all(batchable(m) for m in models):
        return torch.stack([predict(m, images, batch_size) for m in models])
    from torch.func import stack_module_state

    device = next(models[0].parameters()).device
    pairs = pairs or (test_batch(device) if device.type == "cpu" else 2048)
    chunk = max(1, pairs // len(models))
    params, _ = stack_module_state(models)
    run = stacked_forward(models[0], training=False, shared_input=True)
    outs = [run(params, images[i : i + chunk].to(device)).float().cpu() for i in range(0, images.shape[0], chunk)]
    return torch.cat(outs, dim=1)


def accuracies(models: list[nn.Module], images: torch.Tensor, labels: torch.Tensor, batch_size: int | None = None
               ) -> list[float]:
    """Top-1 accuracy of each of ``models`` on a labelled set (images normalised), in one pass where they batch
    (:func:`predict_many`)."""
    pred = predict_many(models, images, batch_size).argmax(-1)
    return (pred == labels.cpu()).float().mean(-1).tolist()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int | None = None) -> float:
    """Top-1 accuracy of ``model`` on a labelled set (images normalised)."""
    return accuracies([model], images, labels, batch_size)[0]
