"""The ladder folder: one caching rule for every stage, a lock, and the folder's claim.

The rule: every stage output is stored under a name that carries its key (a hash of everything it was made
from), the key is also written *inside* the file, and a cached file is used only when it reads back whole and
its inner key matches. Anything else (missing, truncated, corrupt, or made by other settings) is made again.
So two ladders with different settings can never read each other's files, and a killed run resumes with what
was finished.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from yoco.errors import YocoError
from yoco.files import check_outputs, write_json

log = logging.getLogger(__name__)
T = TypeVar("T")


def key(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts: the cache key of a stage."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(path: Path, want: str, make: Callable[[], T], save: Callable[[T, Path], Any],
           load: Callable[[Path], T], key_of: Callable[[T], str | None]) -> T:
    """The object at ``path`` if it loads and its inner key is ``want``; else ``make()`` it and ``save`` it.

    ``make`` must put ``want`` where ``key_of`` reads it. A file that fails to load (a :class:`YocoError`, or
    the JSON of a truncated write) is logged and made again.
    """
    if path.exists():
        try:
            obj = load(path)
        except (YocoError, json.JSONDecodeError, OSError) as exc:
            log.warning("%s is unreadable (%s); making it again", path, str(exc).splitlines()[0])
        else:
            if key_of(obj) == want:
                return obj
            log.warning("%s was made by other settings; making it again", path)
    obj = make()
    save(obj, path)
    return obj


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing, truncated or not an object."""
    try:
        obj = json.loads(path.read_text(), parse_constant=_no_constant)
    except (OSError, ValueError, RecursionError):  # missing, truncated, not UTF-8, absurdly nested, NaN
        return None
    return obj if isinstance(obj, dict) else None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number yoco writes")


class FolderLock:
    """An exclusive lock on a ladder folder, held while a ladder runs in it.

    A second ladder on the same folder is refused at once with the holder's pid. The lock is the operating
    system's (``flock``), so it is released even when the holder is killed with ``kill -9``.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".ladder.lock"
        self._fd: int | None = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise YocoError(f"{self.path.parent}: another yoco ladder is running in this folder ({holder}); "
                                "wait for it to finish or choose another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# What a ladder writes at the top of its folder, and the folders it fills; anything else there is not a ladder's.
REPORTS = ("results.csv", "results.json", "results.md", "ladder.png", "plan.json", "ladder.json")
STAGES = ("cache", "pruned", "cells")
# What a ladder's folder may hold before the ladder claims it (ladder.json): its lock and the set --condense makes.
UNCLAIMED = {".ladder.lock", "condensed.safetensors", "condensed.safetensors.ckpt"}


def check_folder(folder: str | Path, inputs: Sequence[Path] = (), outputs: Sequence[Path] = ()) -> None:
    """Refuse, before any work, a ladder folder that is a file, holds files that are not a ladder's (a ladder writes
    only into an empty folder or one of its own), or whose reports, stage folders or ``outputs`` (a config copy)
    would overwrite one of ``inputs``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise YocoError(f"{folder}: exists and is not a folder; a ladder's --out is a folder")
    if folder.is_dir() and not (folder / "ladder.json").is_file():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in UNCLAIMED and not _temporary(p.name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise YocoError(f"{folder}: holds files that are not a ladder's ({shown}); a ladder writes only into an "
                            "empty folder or one of its own: choose another --out")
    check_outputs([folder / name for name in REPORTS] + list(outputs), inputs)
    for stage in STAGES:
        check_outputs([], inputs, folders=[folder / stage])


def _temporary(name: str) -> bool:
    """An atomic write's temporary (``.<name>.<random>.tmp``), left behind by a ladder killed mid-write."""
    return name.startswith(".") and name.endswith(".tmp")


def claim(folder: Path, source_fp: str, dataset: str, config: dict[str, Any], force: bool) -> None:
    """Refuse a folder that holds a ladder of another source set or dataset (unless ``force``), or files that are not
    a ladder's (even with ``force``), then claim it.

    Called only after every input has been checked, so a ladder that fails to start leaves no claim behind.
    """
    check_folder(folder)
    manifest = folder / "ladder.json"
    old = read_json(manifest) if manifest.exists() else None
    if old is not None and not force and (old.get("source_fingerprint"), old.get("dataset")) != (source_fp, dataset):
        raise YocoError(f"{folder}: holds a ladder of another condensed set or dataset ({old.get('dataset')}, "
                        f"source {old.get('source_fingerprint')}); use --force to reuse it or choose another --out")
    write_json(manifest, {"source_fingerprint": source_fp, "dataset": dataset, "config": config})
