"""yoco's own ``.safetensors`` set, read as a format so ``yoco import`` accepts it like any other."""

from __future__ import annotations

from pathlib import Path

from yoco.data import condensed
from yoco.data.condensed import CondensedSet
from yoco.data.readers import Request, register


@register("yoco", factor=1, normalized=False, summary="yoco's own .safetensors file")
def read_yoco(path: Path, req: Request) -> CondensedSet:
    """The project's own safetensors file (metadata included)."""
    return condensed.load(path)
