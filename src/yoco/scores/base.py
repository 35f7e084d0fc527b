"""The score registry and what every score shares: :class:`ScoreSpec`, :func:`register_score`,
:func:`compute_scores`, the windows the scores read, and the per-epoch error they are built from.

Every score is a pure function ``(dynamics, config) -> [rows, N]`` (one row per training run, or one row for
scores that do not depend on a run); :func:`compute_scores` averages the rows. The paper scores each run on its
own (``Dynamics.run(i)``, one row); the mean over several runs is the ladder's averaged-scores option. The
registry also records which end of a score is *hard*, so that a rule's ``easy``/``hard`` direction means the same
thing for every score: ``easy`` keeps the least hard images, ``hard`` the hardest.

The float16 log-probabilities are turned into float64 probabilities with a softmax, which renormalises the
rows after float16 rounding (a log-softmax row is left unchanged up to that rounding).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from yoco import protocol
from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.registry import Registry

log = logging.getLogger(__name__)

Harder = Literal["high", "low"]
Direction = Literal["easy", "hard"]
Balance = Literal["balance", "imbalance"]


@dataclass(frozen=True)
class ScoreConfig:
    """The windows the scores read (docs/protocol.md): LBPE's first ``lbpe_epochs`` epochs and top ``lbpe_top_k``.

    ``el2n_epochs`` is EL2N's window; ``seed`` seeds the ``random`` score.
    """

    lbpe_epochs: int = protocol.LBPE_WINDOW[0]
    lbpe_top_k: int = protocol.LBPE_WINDOW[1]
    el2n_epochs: int = protocol.EL2N_EPOCHS
    seed: int = 0


ScoreFn = Callable[[Dynamics, ScoreConfig], torch.Tensor]


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score: its function and how rules read it.

    ``harder`` says which end is hard ("high" or "low"); ``directional`` is False for scores whose order means
    nothing (``random``), which then take no ``easy``/``hard`` direction in a rule. ``version`` is raised when the
    function's numbers change, so score tables holding the older column compute it again.
    """

    name: str
    fn: ScoreFn
    harder: Harder
    default_direction: Direction
    default_balance: Balance
    directional: bool
    summary: str
    version: int = 1


SCORES: Registry[ScoreSpec] = Registry("score")


def register_score(
    name: str,
    *,
    harder: Harder = "high",
    default_direction: Direction = "hard",
    default_balance: Balance = "imbalance",
    directional: bool = True,
    version: int = 1,
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator adding a score function to the registry under ``name`` (the first docstring line is its summary)."""
    if not re.fullmatch(r"[a-z][a-z0-9]*", name):
        raise ValueError(f"score name {name!r} must be lower-case letters and digits (rules split on '_')")
    if harder not in ("high", "low") or default_direction not in ("easy", "hard"):
        raise ValueError(f"score {name!r}: harder must be high|low and default_direction easy|hard")
    if default_balance not in ("balance", "imbalance"):
        raise ValueError(f"score {name!r}: default_balance must be balance|imbalance")

    def add(fn: ScoreFn) -> ScoreFn:
        summary = ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        SCORES.add(name, ScoreSpec(name, fn, harder, default_direction, default_balance, directional, summary,
                                   version), description=summary)
        return fn

    return add


def score_names() -> list[str]:
    """Names of the registered scores, in registration order."""
    return SCORES.names()


def get_score(name: str) -> ScoreSpec:
    """The registry entry of ``name``; an unknown name is a :class:`YocoError` listing the known ones."""
    return SCORES.get(name)


def compute_scores(
    dyn: Dynamics,
    names: Iterable[str] | None = None,
    *,
    lbpe_epochs: int = ScoreConfig.lbpe_epochs,
    lbpe_top_k: int = ScoreConfig.lbpe_top_k,
    el2n_epochs: int = ScoreConfig.el2n_epochs,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Every requested score (all registered ones by default) as a float64 vector ``[N]``, averaged over runs.

    Parameters
    ----------
    dyn : the recorded dynamics.
    names : scores to compute; default all of :func:`score_names`.
    lbpe_epochs, lbpe_top_k : LBPE's window (E, K); see :func:`yoco.protocol.lbpe_window` for the published ones.
    el2n_epochs : EL2N averages the error over this many first epochs.
    seed : seeds the ``random`` score.
    """
    cfg = ScoreConfig(lbpe_epochs, lbpe_top_k, el2n_epochs, seed)
    specs = [get_score(n) for n in (score_names() if names is None else list(names))]
    labels = dyn.labels
    if labels.dtype in (torch.float16, torch.float32, torch.float64, torch.bool):
        raise YocoError(f"{dyn.source}: labels must be integers, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= dyn.num_classes):
        raise YocoError(f"{dyn.source}: labels must lie in 0..{dyn.num_classes - 1}, "
                        f"got {int(labels.min())}..{int(labels.max())}")
    out: dict[str, torch.Tensor] = {}
    for spec in specs:
        value = spec.fn(dyn, cfg).to(torch.float64).mean(0)
        bad = torch.isnan(value).nonzero().flatten()
        if len(bad):
            raise YocoError(f"{dyn.source}: score {spec.name} is NaN for {len(bad)} image(s) (first: "
                            f"{bad[:5].tolist()}); the dynamics hold NaN or all -inf outputs")
        out[spec.name] = value
    return out


def resolve_windows(dyn: Dynamics, *, lbpe_epochs: int | None = None, lbpe_top_k: int | None = None,
                    el2n_epochs: int | None = None) -> dict[str, int]:
    """The score windows for ``dyn``: the given ones, else the published ones for its source (dataset, method).

    A default window longer than the recorded dynamics is shrunk to fit, with a warning naming the flag that
    sets it; a window that was asked for and does not fit is an error naming the flag.
    """
    meta = dyn.config.get("condensed_meta", {}) if isinstance(dyn.config, dict) else {}
    return windows_for(str(meta.get("dataset", "")), str(meta.get("method", "")), dyn.epochs, dyn.source,
                       lbpe_epochs=lbpe_epochs, lbpe_top_k=lbpe_top_k, el2n_epochs=el2n_epochs)


def windows_for(dataset: str, method: str, epochs: int, source: str, *, lbpe_epochs: int | None = None,
                lbpe_top_k: int | None = None, el2n_epochs: int | None = None, warn: bool = True) -> dict[str, int]:
    """:func:`resolve_windows` for dynamics of ``epochs`` epochs recorded on a set of ``dataset`` made by
    ``method`` (named ``source`` in messages), known before the dynamics exist (``warn`` False: a check ahead of
    the work, which says nothing of the windows it shrinks)."""
    e_pub, k_pub = protocol.lbpe_window(dataset, method)
    asked = {"lbpe_epochs": lbpe_epochs, "lbpe_top_k": lbpe_top_k, "el2n_epochs": el2n_epochs}
    out = {"lbpe_epochs": lbpe_epochs or e_pub, "lbpe_top_k": lbpe_top_k or k_pub,
           "el2n_epochs": el2n_epochs or protocol.EL2N_EPOCHS}
    for name in ("lbpe_epochs", "el2n_epochs"):
        if out[name] > epochs:
            flag = "--" + name.replace("_", "-")
            if asked[name] is not None:
                raise YocoError(f"{source}: the dynamics hold {epochs} epochs, shorter than {flag} "
                                f"{out[name]}; record longer dynamics or choose a shorter window")
            if warn:
                log.warning("%s: the dynamics hold %d epochs; %s shrunk from %d to %d (set %s to choose)", source,
                            epochs, name, out[name], epochs, flag)
            out[name] = epochs
    if out["lbpe_top_k"] > out["lbpe_epochs"]:
        if asked["lbpe_top_k"] is not None:
            raise YocoError(f"--lbpe-top-k {out['lbpe_top_k']} is larger than the LBPE window of "
                            f"{out['lbpe_epochs']} epochs")
        out["lbpe_top_k"] = out["lbpe_epochs"]
    return out


def uniform_scores(n: int, seed: int) -> torch.Tensor:
    """``n`` float64 draws from U[0, 1) of a generator seeded with ``seed`` (the ``random`` score and rule)."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def l2_error(log_probs: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """``||target - softmax||_2`` over the last axis of ``log_probs [..., N, C]``, in float64: ``[..., N]``.

    The target is ``onehot(labels)``, or the soft labels ``targets [N, C]`` of a set that has them: the error
    is then measured against the distribution the networks were taught.
    """
    probs = torch.softmax(log_probs.to(torch.float64), dim=-1)
    target = (F.one_hot(labels, probs.shape[-1]) if targets is None else targets).to(torch.float64)
    return torch.linalg.vector_norm(probs - target, dim=-1)


def need_epochs(dyn: Dynamics, epochs: int, what: str) -> None:
    """Refuse a window of fewer than 1 epoch, or longer than the dynamics hold, naming ``what`` reads it."""
    if epochs < 1:
        raise YocoError(f"{what} needs a window of at least 1 epoch, got {epochs}")
    if dyn.epochs < epochs:
        raise YocoError(f"{dyn.source}: the dynamics hold {dyn.epochs} epochs, shorter than {what}'s window of "
                        f"{epochs} epochs; record longer dynamics or shrink the window")


def epoch_chunks(dyn: Dynamics, run: int, stop: int) -> Iterator[torch.Tensor]:
    """Epochs ``[0, stop)`` of one run as float16 chunks of about 8M values (bounded float64 memory)."""
    step = max(1, 8_000_000 // max(1, dyn.num_samples * dyn.num_classes))
    for start in range(0, stop, step):
        yield dyn.log_probs[run, start:min(stop, start + step)]
