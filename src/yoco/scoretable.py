"""The score table: one value per decoded image for every score, the labels, the per-image features some
selectors need (each made once and shared: the final model's embeddings, TDDS's per-epoch contributions, DUAL's
per-epoch label probabilities) and the config that produced them, in ONE file; :func:`build_table` makes it
from the dynamics.

:class:`ScoreTable` is saved as a safetensors file (no pickle) that ``yoco prune`` and the ladder read; the CSV,
``index,label,<score columns...>`` with the config as JSON on its first line (``# config: {json}``), is a
readable export any tool can open (pandas: ``comment="#"``) and can be read back as a table without features.
Values are written with ``repr``, which round-trips every float64 exactly. Both files are written atomically,
and since features and scores live in one file they can never come from two different runs.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoco import protocol
from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.files import read_tensors, write_tensors, write_text
from yoco.scores import SCORES, compute_scores
from yoco.selectors import canonical_feature, get_feature
from yoco.selectors import features as all_features

log = logging.getLogger(__name__)

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
        # utf-8-sig drops the byte-order mark spreadsheets put in front of the file
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise YocoError(f"{path}: cannot read scores file ({exc})") from None
    config: dict[str, Any] = {}
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        if lines[start].startswith(CONFIG_PREFIX):
            try:
                config = json.loads(lines[start][len(CONFIG_PREFIX):])
            except (json.JSONDecodeError, RecursionError, ValueError) as exc:
                raise YocoError(f"{path}: line {start + 1}: config is not valid JSON "
                                f"({type(exc).__name__}: {str(exc)[:80]})") from None
            if not isinstance(config, dict):
                raise YocoError(f"{path}: line {start + 1}: config must be a JSON object")
        start += 1
    try:
        rows = [[field.strip() for field in row] for row in csv.reader(lines[start:])]  # "1, 0.5" from some tools
    except csv.Error as exc:
        raise YocoError(f"{path}: not a readable CSV ({exc})") from None
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


TABLE_VERSION = "1"


@dataclass
class ScoreTable:
    """Scores of every decoded image of one condensed set, with what the selectors need beside them.

    Attributes:
        scores: score name -> float64 ``[N]``.
        labels: int64 ``[N]``, the class of every decoded image.
        features: name -> float32 ``[N, ...]`` per-image features shared by the selectors that read them
            (``"embeddings"``: the final model's; a table made before features were shared holds them as
            ``"ssp"``, read as ``"embeddings"``).
        config: how the scores were made (the dynamics file, windows, seed).
    """

    scores: dict[str, torch.Tensor]
    labels: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels).to(torch.int64).flatten()
        n = len(self.labels)
        for name, col in list(self.scores.items()):
            col = torch.as_tensor(col).to(torch.float64)
            if col.shape != (n,):
                raise YocoError(f"{self.source}: score {name!r} has shape {list(col.shape)}, expected [{n}]")
            if not torch.isfinite(col).all():
                raise YocoError(f"{self.source}: score {name!r} holds NaN or infinite values")
            self.scores[name] = col
        features = {}
        for name, feat in self.features.items():
            feat = torch.as_tensor(feat).to(torch.float32)
            if feat.dim() < 2 or feat.shape[0] != n:
                raise YocoError(f"{self.source}: features {name!r} have shape {list(feat.shape)}, expected [{n}, D]")
            if not torch.isfinite(feat).all():
                raise YocoError(f"{self.source}: features {name!r} hold NaN or infinite values")
            features.setdefault(canonical_feature(name), feat)
        self.features = features

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: str | Path) -> Path:
        """Write the table as one safetensors file (atomically), the config in its header."""
        tensors = {"labels": self.labels, **{f"score.{k}": v for k, v in self.scores.items()},
                   **{f"features.{k}": v for k, v in self.features.items()}}
        header = {"yoco_scores": TABLE_VERSION, "config": json.dumps(self.config, default=_jsonable),
                  "order": json.dumps(list(self.scores))}
        return write_tensors(path, tensors, header)

    def to_csv(self, path: str | Path) -> Path:
        """Export the scores (not the features) as the readable CSV."""
        return write_scores_csv(path, self.scores, self.labels, self.config)

    def check_matches(self, labels: torch.Tensor) -> None:
        """Refuse a table that does not describe the decoded set with these ``labels``."""
        check_matches(self.labels, labels, self.source)


def load_table(path: str | Path) -> ScoreTable:
    """Read a score table: yoco's safetensors file, or a scores CSV (which carries no features)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        scores, labels, config = read_scores_csv(path)
        return ScoreTable(scores, labels, {}, config, source=str(path))
    header, tensors = read_tensors(path, "score table")
    if header.get("yoco_scores") != TABLE_VERSION or "labels" not in tensors:
        raise YocoError(f"{path}: not a yoco score table (write one with `yoco score`)")
    try:
        config = json.loads(header.get("config", "{}"))
        order = json.loads(header.get("order", "[]"))
    except (ValueError, RecursionError) as exc:  # bad JSON, or JSON nested deeper than Python's parser goes
        raise YocoError(f"{path}: score table header is damaged ({str(exc)[:200] or type(exc).__name__})") from None
    if not isinstance(config, dict) or not isinstance(order, list):
        raise YocoError(f"{path}: score table header is damaged (config must be an object, order a list)")
    names = [k.removeprefix("score.") for k in tensors if k.startswith("score.")]
    names = [n for n in order if n in names] + [n for n in names if n not in order]
    scores = {n: tensors[f"score.{n}"] for n in names}
    features = {k.removeprefix("features."): v for k, v in tensors.items() if k.startswith("features.")}
    return ScoreTable(scores, tensors["labels"], features, config, source=str(path))


def build_table(dyn: Dynamics, *, lbpe_epochs: int, lbpe_top_k: int, el2n_epochs: int = protocol.EL2N_EPOCHS,
                seed: int = 0, config: Mapping[str, Any] | None = None) -> ScoreTable:
    """Every score of ``dyn`` plus the features every selector prepares from it, as one :class:`ScoreTable`; its
    config records the version of every method it holds (:func:`complete_table` reads them)."""
    scores = compute_scores(dyn, lbpe_epochs=lbpe_epochs, lbpe_top_k=lbpe_top_k, el2n_epochs=el2n_epochs, seed=seed)
    features = {name: feature.prepare(dyn) for name, feature in all_features().items()}
    cfg = {"lbpe_epochs": lbpe_epochs, "lbpe_top_k": lbpe_top_k, "el2n_epochs": el2n_epochs, "seed": seed,
           **({"set_sha256": dyn.config["set_sha256"]} if "set_sha256" in dyn.config else {}), **dict(config or {}),
           "methods": _versions(scores, features), "dynamics_sha256": dyn.digest()}
    return ScoreTable(scores, dyn.labels, features, cfg)


def complete_table(table: ScoreTable, dynamics: Callable[[], Dynamics], *, scores: Iterable[str] = (),
                   features: Iterable[str] = ()) -> tuple[ScoreTable, list[str]]:
    """``table`` with the asked-for ``scores`` and ``features`` it lacks, or holds in an older version than the
    registered method's, computed from ``dynamics()`` (called only then) with the table's own windows.

    How a method added after a folder was made joins that folder: only its column is computed, every other column
    (and every pruned set and cell made from it) stays. Returns the table and the names computed (empty: as it was).
    A table written before versions were recorded holds version 1 of everything in it; features held under a
    former name (SSP's embeddings as ``ssp``) count as the feature's current name.
    """
    held = table.config.get("methods") or _versions(table.scores, table.features, assume=1)
    held_features = {canonical_feature(n): v for n, v in held.get("features", {}).items()}
    held = {"scores": dict(held.get("scores", {})), "features": held_features}
    stale_scores = [n for n in dict.fromkeys(scores)
                    if n not in table.scores or held["scores"].get(n) != SCORES.get(n).version]
    stale_features = [n for n in dict.fromkeys(canonical_feature(f) for f in features)
                      if n not in table.features or held_features.get(n) != get_feature(n).version]
    if not stale_scores and not stale_features:
        return table, []
    dyn = dynamics()
    cfg = table.config
    if cfg.get("dynamics_sha256") not in (None, dyn.digest()):
        # the dynamics were recorded again (e.g. on another machine, whose rounding differs): a column from them
        # beside columns from the old ones would mix two records, so the whole table is made again from these
        log.warning("%s: the dynamics differ from those its scores came from; every column is computed again",
                    table.source)
        fresh = build_table(dyn, lbpe_epochs=cfg["lbpe_epochs"], lbpe_top_k=cfg["lbpe_top_k"],
                            el2n_epochs=cfg["el2n_epochs"], seed=cfg.get("seed", 0),
                            config={k: v for k, v in cfg.items() if k not in ("methods", "dynamics_sha256")})
        return fresh, sorted({*fresh.scores, *fresh.features})
    new_scores = compute_scores(dyn, stale_scores, lbpe_epochs=cfg["lbpe_epochs"], lbpe_top_k=cfg["lbpe_top_k"],
                                el2n_epochs=cfg["el2n_epochs"], seed=cfg.get("seed", 0)) if stale_scores else {}
    new_features = {n: get_feature(n).prepare(dyn) for n in stale_features}
    check_matches(table.labels, dyn.labels, table.source)
    merged_scores, merged_features = {**table.scores, **new_scores}, {**table.features, **new_features}
    versions = {"scores": {**held["scores"], **{n: SCORES.get(n).version for n in new_scores}},
                "features": {**held_features, **{n: get_feature(n).version for n in new_features}}}
    done = ScoreTable(merged_scores, table.labels, merged_features, {**cfg, "methods": versions}, source=table.source)
    return done, stale_scores + stale_features


def _versions(scores: Iterable[str], features: Iterable[str], assume: int | None = None) -> dict[str, dict[str, int]]:
    """The method version of each column: the registered method's, or ``assume`` (a table older than versions)."""
    return {"scores": {n: assume or SCORES.get(n).version for n in scores},
            "features": {n: assume or get_feature(n).version for n in features}}
