"""DSA/DC/DM: ``res_*.pt`` with a ``data`` list of ``(images, labels)`` pairs, stored standardised."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from yoco.data.formats.base import _hint, _torch_load, describe
from yoco.data.readers import Raw, Request, register
from yoco.errors import YocoError


@register(
    "dsa",
    factor=1,
    normalized=True,
    uses=("experiment",),
    summary="DC/DSA/DM res_*.pt: {'data': [(images, labels), ...]}, one pair per experiment",
)


def read_dsa(path: Path, req: Request) -> Raw:
    """The DC/DSA/DM results file: a dict whose ``data`` lists one ``(images, labels)`` pair per experiment."""
    obj = _torch_load(path)
    if not isinstance(obj, dict) or "data" not in obj:
        raise YocoError(f"{path}: expected a dict with key 'data', found {describe(obj)}{_hint(path, 'dsa')}")
    runs = obj["data"]
    if not isinstance(runs, (list, tuple)) or not runs:
        raise YocoError(
            f"{path}: expected 'data' to be a non-empty list of (images, labels), found {describe(runs)}"
        )
    if not 0 <= req.experiment < len(runs):
        raise YocoError(
            f"{path}: experiment {req.experiment} requested but the file holds "
            f"{len(runs)} (0..{len(runs) - 1})"
        )
    pair = runs[req.experiment]
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise YocoError(
            f"{path}: expected data[{req.experiment}] to be (images, labels), found {describe(pair)}"
        )
    extra: dict[str, Any] = {"experiment": req.experiment, "experiments_in_file": len(runs)}
    m = re.match(r"res_([A-Za-z]+)_", path.name)
    if m:
        extra["reference_method"] = m.group(1).lower()
    return Raw(pair[0], pair[1], extra)
