"""The registry of condensed-set readers: what a reader is asked (:class:`Request`), what it returns
(:class:`Raw`), :func:`register`, and yoco's own export metadata, which every reader of an export reads.

Apart from the readers (``formats.py`` for the published files, ``containers.py`` for image folders and Hugging
Face snapshots), so the two register into one registry without importing each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoco.errors import YocoError
from yoco.registry import Registry

if TYPE_CHECKING:
    from yoco.data.condensed import CondensedSet


@dataclass
class Raw:
    """What a reader found in a file: images, labels (ints, one-hot or soft) and notes for ``meta.extra``."""

    images: Any
    labels: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """Options that only some readers use."""

    experiment: int = 0
    labels_path: Path | None = None
    dataset: str | None = None
    image_column: str | None = None
    label_column: str | None = None


Reader = Callable[[Path, Request], "Raw | CondensedSet"]


@dataclass(frozen=True)
class Format:
    """A registered format: its reader and the defaults the reference code's files imply."""

    name: str
    read: Reader
    factor: int
    normalized: bool
    summary: str
    default_file: str | None = None
    uses: frozenset[str] = frozenset()
    folder: bool = False
    factor_by_dataset: tuple[tuple[str, int], ...] = ()

    def factor_for(self, dataset: str) -> int:
        """The factor this format's files have for ``dataset`` (IDC: 3 on ImageNet, 2 elsewhere)."""
        return dict(self.factor_by_dataset).get(dataset, self.factor)


FORMATS: Registry[Format] = Registry("condensed-set format")


def register(
    name: str,
    *,
    factor: int,
    normalized: bool,
    summary: str,
    default_file: str | None = None,
    uses: tuple[str, ...] = (),
    folder: bool = False,
    factor_by_dataset: dict[str, int] | None = None,
) -> Callable[[Reader], Reader]:
    """Decorator that adds a reader to :data:`FORMATS` under ``name`` (``folder``: it reads a folder, not a file;
    ``factor_by_dataset``: datasets whose files have another factor than ``factor``)."""

    def deco(read: Reader) -> Reader:
        FORMATS.add(name, Format(name, read, factor, normalized, summary, default_file, frozenset(uses), folder,
                                 tuple(sorted((factor_by_dataset or {}).items()))),
                    description=summary)
        return read

    return deco


def read_own_meta(file: Path) -> dict[str, Any]:
    """The JSON object yoco wrote beside an export (``condensed.json``); a one-line error when it is damaged."""
    try:
        saved = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError):
        raise YocoError(f"{file}: not valid JSON") from None
    if not isinstance(saved, dict):
        raise YocoError(f"{file}: expected a JSON object")
    return saved
