"""The cost of one IDC inner step, taken apart: the matching (with the config's engine), the network pass (per
outer iteration when several iterations' networks train side by side) and, for scale, one plain forward/backward
of the same batches. What ``bench_condense.py`` times; not part of the library (it reaches into IDC's internals).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from yoco.augment import DSA
from yoco.condense.config import IDCConfig, _hw, check_config
from yoco.condense.idc import _build_net, _ImageStepper, _net_draw, _net_optimizer, _train_nets, net_group
from yoco.condense.init import init_synthetic
from yoco.condense.matching import _draw, _RealPool
from yoco.data.condensed import decode_images, normalize
from yoco.data.datasets import RealDataset
from yoco.runtime import precision_scope, resolve_device


def matching_cost_breakdown(real: RealDataset, cfg: IDCConfig, device: str | torch.device = "auto",
                            steps: int = 3, compile: bool = False, net_batch: int = 1) -> dict[str, Any]:
    """Seconds per inner step of the matching (with ``cfg.engine``) and the network pass, beside a plain one.

    ``match`` is step 1 of an inner step (every class drawn, augmented, matched, the images updated);
    ``net_train`` the real-data pass, per outer iteration when ``net_batch`` iterations' networks train side by
    side (their pass timed together and divided by ``net_batch``, as :func:`condense` amortises it); ``plain`` one
    ordinary forward/backward (w.r.t. the weights) of the same network on one class's real and decoded synthetic
    batches, times the number of classes, so ``match / plain`` is the price of gradient matching itself. One
    untimed warm-up step comes first; ``outer_iteration`` is ``inner`` times an inner step (the network build is
    negligible). ``compile`` as in :func:`condense`.
    """
    check_config(cfg, real)
    cfg = cfg.resolved(real.name)
    dev = resolve_device(device)
    g = torch.Generator().manual_seed(cfg.seed)
    start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, random=cfg.init_random, generator=g)
    lr = cfg.effective_lr_img(real.name, _hw(real)[0])
    images = _ImageStepper(start.images.to(dev), None, lr, cfg)
    pool = _RealPool(real, dev)
    dsa = DSA(cfg.match_dsa, flip=real.flip)
    net_batch = net_group(cfg, real, dev, net_batch)
    nets = [_build_net(cfg, real, cfg.seed + i, dev) for i in range(net_batch)]
    opts = [_net_optimizer(net, cfg) for net in nets]
    net = nets[0]
    parts = {"match": 0.0, "net_train": 0.0, "plain": 0.0}

    def clock() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    for step in range(steps + 1):
        t0 = clock()
        with precision_scope(cfg.precision, dev):
            images.step(net, pool, dsa, g)
        t1 = clock()
        draws = [_net_draw(pool.labels.shape[0], cfg, g, cfg.net_images) for _ in nets]
        _train_nets(nets, pool, cfg, real.flip, draws, cfg.net_epochs, opts, compile)
        t2 = clock()
        for c in range(real.num_classes):
            draw = _draw(pool, c, cfg, g)
            x = pool.batch(draw.real_idx)
            syn_c = images.state()[0][c * cfg.ipc:(c + 1) * cfg.ipc].detach()
            dec = decode_images(syn_c, cfg.factor)[: cfg.batch_syn]
            both = torch.cat([x, normalize(dec, pool.mean, pool.std)])
            F.cross_entropy(net(both), torch.full((both.shape[0],), c, device=dev)).backward()
        net.zero_grad(set_to_none=True)
        t3 = clock()
        if step:
            parts["match"] += (t1 - t0) / steps
            parts["net_train"] += (t2 - t1) / steps / net_batch
            parts["plain"] += (t3 - t2) / steps
    inner = parts["match"] + parts["net_train"]
    return {"device": str(dev), "engine": cfg.engine, "net_batch": net_batch, "steps": steps,
            "classes": real.num_classes, **{f"{k}_s": v for k, v in parts.items()}, "inner_step_s": inner,
            "outer_iteration_s": inner * cfg.inner, "match_over_plain": parts["match"] / max(parts["plain"], 1e-12)}
