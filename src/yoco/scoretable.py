"""The scores CSV: one row per decoded image, ``index,label,<score columns...>``, readable by any tool.

The config that produced the scores sits on the file's first line as ``# config: {json}``, so the table and
its provenance are written together in one atomic write and can never disagree (pandas reads the table with
``comment="#"``). Values are written with ``repr``, which round-trips every float64 exactly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco.errors import YocoError
from yoco.io import write_text

CONFIG_PREFIX = "# config: "


def write_scores_csv(
    path: str | Path, scores: Mapping[str, torch.Tensor], labels: torch.Tensor, config: Mapping[str, Any]
) -> Path:
    """Write ``scores`` (``name -> [N]``) and ``labels`` as a CSV, the ``config`` as JSON on its first line.

    Returns the path. Refuses NaN or infinite values, so every file written can be read back.
    """
    path = Path(path)
    lab = torch.as_tensor(labels).to(torch.int64).flatten()
    cols = {}
    for name, col in scores.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in ("index", "label"):
            raise YocoError(f"{path}: score column name {name!r} must be an identifier other than index/label")
        t = torch.as_tensor(np.asarray(col) if not isinstance(col, torch.Tensor) else col).to(torch.float64)
        if t.dim() != 1 or len(t) != len(lab):
            raise YocoError(f"{path}: score {name!r} has shape {list(t.shape)}, expected [{len(lab)}]")
        if not torch.isfinite(t).all():
            raise YocoError(f"{path}: score {name!r} holds NaN or infinite values; refusing to write it")
        cols[name] = t.tolist()
    try:
        header = json.dumps(dict(config), sort_keys=True, allow_nan=False, default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise YocoError(f"{path}: config cannot be written as JSON ({exc})") from None
    buf = io.StringIO()
    buf.write(CONFIG_PREFIX + header + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "label", *cols])
    values = list(cols.values())
    for i, y in enumerate(lab.tolist()):
        writer.writerow([i, y, *(repr(v[i]) for v in values)])
    return write_text(path, buf.getvalue())


def read_scores_csv(path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]]:
    """Read a file written by :func:`write_scores_csv`: (float64 score columns, int64 labels, config).

    Every problem is a :class:`YocoError` naming the file (and line): a missing file, a bad header, a
    non-numeric or non-finite value, a row of the wrong length, or an index column that is not 0..N-1.
    """
    path = Path(path)
    if not path.is_file():
        raise YocoError(f"{path}: no such scores file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise YocoError(f"{path}: cannot read scores file ({exc})") from None
    config: dict[str, Any] = {}
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        if lines[start].startswith(CONFIG_PREFIX):
            try:
                config = json.loads(lines[start][len(CONFIG_PREFIX):])
            except json.JSONDecodeError as exc:
                raise YocoError(f"{path}: line {start + 1}: config is not valid JSON ({exc})") from None
            if not isinstance(config, dict):
                raise YocoError(f"{path}: line {start + 1}: config must be a JSON object")
        start += 1
    rows = list(csv.reader(lines[start:]))
    if not rows:
        raise YocoError(f"{path}: empty scores file (expected a header index,label,<scores...>)")
    header = rows[0]
    names = header[2:]
    if header[:2] != ["index", "label"] or not names or len(set(names)) != len(names) or "" in names:
        raise YocoError(f"{path}: line {start + 1}: bad header {','.join(header)!r}; expected "
                        "index,label,<score columns...> with distinct, non-empty names")
    labels: list[int] = []
    values: list[list[float]] = [[] for _ in names]
    for i, row in enumerate(rows[1:]):
        line = start + 2 + i
        if len(row) != len(header):
            raise YocoError(f"{path}: line {line}: {len(row)} fields, expected {len(header)}")
        if _int(row[0], path, line, "index") != i:
            raise YocoError(f"{path}: line {line}: index {row[0]!r}, expected {i} (rows must be 0..N-1 in order)")
        label = _int(row[1], path, line, "label")
        if label < 0:
            raise YocoError(f"{path}: line {line}: label {label} is negative")
        labels.append(label)
        for j, (name, text) in enumerate(zip(names, row[2:], strict=True)):
            try:
                v = float(text)
            except ValueError:
                raise YocoError(f"{path}: line {line}: {name} value {text!r} is not a number") from None
            if not math.isfinite(v):
                raise YocoError(f"{path}: line {line}: {name} value {text!r} is NaN or infinite")
            values[j].append(v)
    scores = {name: torch.tensor(v, dtype=torch.float64) for name, v in zip(names, values, strict=True)}
    return scores, torch.tensor(labels, dtype=torch.int64), config


def check_matches(scores_labels: torch.Tensor, condensed_labels: torch.Tensor, path: str | Path) -> None:
    """Refuse a scores file that does not describe the decoded condensed set (row count and every label)."""
    a = torch.as_tensor(scores_labels).to(torch.int64).flatten()
    b = torch.as_tensor(condensed_labels).to(torch.int64).flatten()
    if len(a) != len(b):
        raise YocoError(f"{path}: {len(a)} score rows but the decoded condensed set has {len(b)} images; "
                        "were the scores computed for another set?")
    diff = (a != b).nonzero().flatten()
    if len(diff):
        i = int(diff[0])
        raise YocoError(f"{path}: labels differ from the decoded condensed set's at {len(diff)} row(s) "
                        f"(first: index {i}, file {int(a[i])}, set {int(b[i])}); were the scores computed "
                        "for another set?")


def _int(text: str, path: Path, line: int, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise YocoError(f"{path}: line {line}: {what} {text!r} is not an integer") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
