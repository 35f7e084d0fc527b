"""Importance scores: one value per decoded image, computed from the recorded training dynamics.

One file per score, each registering itself with :func:`register_score` (:mod:`yoco.scores.base` holds the
registry, :func:`compute_scores` and what the scores share). Importing this package imports every module in it,
so a new score is one new file: YOCO's published scores first, in the paper's order, then the others by name.
"""

from yoco.registry import import_submodules
from yoco.scores.base import (
    SCORES,
    ScoreConfig,
    ScoreSpec,
    compute_scores,
    get_score,
    l2_error,
    register_score,
    resolve_windows,
    score_names,
    uniform_scores,
    windows_for,
)

import_submodules(__name__, __path__, first=("lbpe", "el2n", "forgetting", "aum", "entropy", "random"))

__all__ = [
    "SCORES",
    "ScoreConfig",
    "ScoreSpec",
    "compute_scores",
    "get_score",
    "l2_error",
    "register_score",
    "resolve_windows",
    "score_names",
    "uniform_scores",
    "windows_for",
]
