"""Resize a condensed set: score its decoded images, keep what a rule selects, write the smaller set."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from yoco.data.condensed import CondensedSet, decode
from yoco.errors import YocoError
from yoco.protocol import ccs_hard_cut
from yoco.select import class_counts, parse_rule, select


def prune_condensed(
    cs: CondensedSet,
    scores: Mapping[str, torch.Tensor],
    rule: str,
    ipc: int,
    *,
    embeddings: torch.Tensor | None = None,
    hard_cut: float | None = None,
    seed: int = 0,
) -> tuple[CondensedSet, dict[str, Any]]:
    """Keep ``ipc`` stored images' worth of decoded images per class (``ipc * factor**2``) by ``rule``.

    Returns the pruned set (decoded, factor 1) and a JSON-ready record of the kept indices (into the
    decoded set) and per-class counts. Target IPC counts *stored* images, as in the paper's tables.
    """
    f = cs.meta.factor
    if ipc < 1 or (cs.meta.ipc and ipc >= cs.meta.ipc):
        raise YocoError(f"{cs.source}: target IPC must be at least 1 and below the source IPC {cs.meta.ipc}, got {ipc}")
    parsed = parse_rule(rule)
    dec = decode(cs)
    if parsed.score == "ccs" and hard_cut is None:
        hard_cut = ccs_hard_cut(cs.meta.dataset, cs.meta.ipc, ipc)
    n = ipc * f * f
    idx = select(scores, dec.labels, parsed, n, num_classes=cs.num_classes, embeddings=embeddings,
                 hard_cut=hard_cut, seed=seed)
    counts = class_counts(dec.labels, idx, cs.num_classes)
    meta = dataclasses.replace(
        dec.meta, method=f"{cs.meta.method}+{parsed.name}", ipc=ipc, factor=1,
        # an imbalanced rule may legitimately keep nothing of a class; that is part of what it is compared on
        allow_empty_classes=parsed.balance == "imbalance",
        extra={**dec.meta.extra, "pruned_from_ipc": cs.meta.ipc, "rule": parsed.name, "hard_cut": hard_cut,
               "seed": seed},
    )
    pruned = CondensedSet(dec.images[idx], dec.labels[idx], meta, source=f"{cs.source}[{parsed.name}@ipc{ipc}]")
    record = {"rule": parsed.name, "ipc": ipc, "factor": f, "kept_decoded_per_class_target": n,
              "indices": idx.tolist(), "class_counts": counts, "hard_cut": hard_cut, "seed": seed}
    return pruned, record
