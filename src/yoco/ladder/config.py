"""What decides a ladder's numbers: :class:`LadderConfig`, the paper presets, the quick and demo settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yoco import protocol
from yoco.dynamics import DynamicsConfig
from yoco.errors import YocoError
from yoco.evaluate import EvalConfig
from yoco.rules import RANDOM_REFERENCE, option_names, parse_rule, resolve_options

# The paper's Table 1 rows (its Random is YOCO's `--pruning_key random`, an imbalanced draw) and yoco's reference
# for the gain over random, random balanced subsets
DEFAULT_RULES = ("yoco", "random_balance", "random", "forgetting", "el2n", "aum", "entropy", "ssp", "ccs")
PRESETS = protocol.PAPER_LADDERS
SCORE_RUNS = ("separate", "averaged")  # how a cell uses the dynamics runs; the first is the paper's
MAX_RANDOM_SUBSETS = 100  # random reference subsets per run: each one is a pruned set and its evaluations


@dataclass
class LadderConfig:
    """Everything that decides a ladder's numbers (serialised into every result file).

    ``None`` score windows follow the published ones for the source (:func:`yoco.scores.resolve_windows`).

    ``score_runs`` says how a table cell uses the ``dynamics.runs`` recordings. ``"separate"`` (the paper's: YOCO
    averages "over three independent training dynamics", ``reproduce_1..3``): run ``i`` makes its own scores and its
    own pruned set, each pruned set is evaluated ``repeat`` times (default 1, YOCO's ``--repeat 1``), and the cell
    is the mean ± std over all those evaluations. ``"averaged"``: the scores are averaged over the runs into one
    pruned set, evaluated ``repeat`` times (default 3); a departure from the protocol, named in the table.

    ``seed`` seeds the training runs (a cell's evaluations use seeds ``seed .. seed + evaluations - 1``; with
    separate runs, run ``i``'s set gets ``seed + i * repeat ..``), and ``dynamics.seed`` the dynamics runs whose
    scores the score-based rules read (another dynamics seed measures how much of a rule's result is its scores'
    noise); ``subset_seed`` seeds the rules that draw at random (random, ssp, ccs with a random pick, kcenter,
    dual), so the spread between subsets can be measured apart from the training noise; ``random_subsets`` random
    balanced subsets (per run, with separate runs; subset seeds ``subset_seed ..``) make the reference that every
    rule's "gain over random" is measured against, with the spread between subsets in its std. ``options`` are
    rule-method options (``{"hard_cut": 0.2}`` for CCS); ``None`` LBPE window entries follow
    :func:`yoco.protocol.lbpe_window` for the source.
    """

    dataset: str
    ipcs: tuple[int, ...] = (1, 2, 5)
    rules: tuple[str, ...] = DEFAULT_RULES
    repeat: int | None = None
    seed: int = 0
    subset_seed: int = 0
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lbpe_epochs: int | None = None
    lbpe_top_k: int | None = None
    el2n_epochs: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    reference: bool = True
    random_subsets: int = 1
    score_runs: str = SCORE_RUNS[0]

    def __post_init__(self) -> None:
        self.ipcs = tuple(self.ipcs)
        self.rules = tuple(self.rules)
        if self.score_runs not in SCORE_RUNS:
            raise YocoError(f"score_runs must be one of {', '.join(SCORE_RUNS)}, got {self.score_runs!r}")
        if self.repeat is None:
            self.repeat = protocol.PER_RUN_REPEATS if self.separate else protocol.EVAL_REPEATS
        if not self.ipcs:
            raise YocoError("the ladder needs at least one target IPC")
        bad = [k for k in self.ipcs if isinstance(k, bool) or not isinstance(k, int) or k < 1]
        if bad:
            raise YocoError(f"target IPCs must be whole numbers >= 1, got {bad}")
        if len(set(self.ipcs)) != len(self.ipcs):
            raise YocoError(f"a target IPC is listed twice in {list(self.ipcs)}; each IPC is one column of the table")
        if not self.rules:
            raise YocoError("the ladder needs at least one rule (--rules)")
        for rule in self.rules:
            parse_rule(rule)
        if len({parse_rule(r).name for r in self.rules}) != len(self.rules):
            raise YocoError(f"the same rule is listed twice in {list(self.rules)}")
        _at_least("repeat", self.repeat, 1)
        _at_least("random_subsets", self.random_subsets, 1)
        if self.random_subsets > MAX_RANDOM_SUBSETS:
            raise YocoError(f"random_subsets must be at most {MAX_RANDOM_SUBSETS} (yoco's limit; each subset is a "
                            f"pruned set and its evaluations), got {self.random_subsets}")
        for name in ("lbpe_epochs", "lbpe_top_k", "el2n_epochs"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        known = {o for opts in option_names().values() for o in opts}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise YocoError(f"unknown rule option(s) {unknown}; options by method: {option_names()}")
        for rule in self.rules:  # a bad option value stops the ladder now, not after hours of dynamics
            resolve_options(parse_rule(rule), self.options, None)
        # every evaluation is seeded from the ladder's own seed range, and the saved eval config says how many
        # evaluations a table cell averages
        self.eval = dataclasses.replace(self.eval, repeat=self.evaluations, seed=self.seed)

    @property
    def separate(self) -> bool:
        """Whether each dynamics run makes its own scores and pruned sets (the paper's cells)."""
        return self.score_runs == "separate"

    @property
    def set_runs(self) -> int:
        """Pruned sets per (rule, target IPC) from the dynamics: one per run, or one from the averaged scores."""
        return self.dynamics.runs if self.separate else 1

    def pruned_sets(self) -> int:
        """How many pruned sets the ladder writes: per rule, target IPC and set run (random reference: per subset)."""
        per_rule = [self.random_subsets if parse_rule(r).name == RANDOM_REFERENCE else 1 for r in self.rules]
        return sum(per_rule) * len(self.ipcs) * self.set_runs

    @property
    def evaluations(self) -> int:
        """Evaluations a table cell averages (per rule other than the random reference)."""
        return self.set_runs * int(self.repeat)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "dynamics": self.dynamics.to_dict(), "eval": self.eval.to_dict()}

    def departures(self) -> list[str]:
        """How these settings depart from the published protocol (empty: the full protocol)."""
        out = []
        dyn, ev, base = self.dynamics, self.eval, DynamicsConfig()
        if dyn.epochs != base.epochs or dyn.runs != base.runs:
            out.append(f"dynamics {dyn.runs} x {dyn.epochs} epochs (protocol {base.runs} x {base.epochs})")
        if ev.train.epochs is not None:
            here = "" if protocol.is_imagenet(self.dataset) else f", {protocol.eval_epochs(self.dataset, 1, 1)} here"
            out.append(f"evaluation {ev.train.epochs} epochs (protocol: by dataset and set size{here})")
        for what, width in (("dynamics", dyn.width), ("evaluation", ev.width)):
            if width is not None:
                out.append(f"{what} network width {width} (protocol {protocol.CONVNET_WIDTH})")
        if ev.test_points != protocol.EVAL_TEST_POINTS:
            out.append(f"{ev.test_points} test points (protocol {protocol.EVAL_TEST_POINTS})")
        for what, train in (("dynamics", dyn.train), ("evaluation", ev.train)):
            if train.precision != protocol.PRECISION:
                out.append(f"{what} in {train.precision} (protocol {protocol.PRECISION})")
        if not self.separate:
            out.append(f"averaged-scores cells: the scores averaged over the {dyn.runs} dynamics runs into one pruned "
                       "set (protocol: each run's own scores and pruned set)")
        return out


def _at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise YocoError(f"{name} must be a whole number >= {low}, got {value!r}")


def quick(cfg: LadderConfig, width: int = 64, dyn_epochs: int = 150, eval_epochs: int = 300) -> LadderConfig:
    """A first look on a CPU: narrower networks and far fewer epochs (numbers are NOT the protocol's).

    Sets the network width (64), dynamics to 2 runs x 150 epochs, evaluation to 300 epochs with 2 test points,
    and shrinks LBPE's window to fit the shorter dynamics (E at most half of them, K at most 10).
    """
    window = max(1, min(cfg.lbpe_epochs or dyn_epochs, dyn_epochs // 2))
    return dataclasses.replace(
        cfg,
        dynamics=dataclasses.replace(cfg.dynamics, width=width, runs=2,
                                     train=dataclasses.replace(cfg.dynamics.train, epochs=dyn_epochs)),
        eval=dataclasses.replace(cfg.eval, width=width, test_points=2,
                                 train=dataclasses.replace(cfg.eval.train, epochs=eval_epochs)),
        lbpe_epochs=window,
        lbpe_top_k=min(cfg.lbpe_top_k or 10, 10, window),
    )


def preset_config(name: str, **overrides: Any) -> LadderConfig:
    """The ladder config of a paper experiment (:data:`yoco.protocol.PAPER_LADDERS`), with overrides."""
    if name not in PRESETS:
        raise YocoError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    p = PRESETS[name]
    e, k = protocol.lbpe_window(p["dataset"], p["method"])
    return LadderConfig(**{"dataset": p["dataset"], "ipcs": p["ipcs"], "lbpe_epochs": e, "lbpe_top_k": k,
                           **overrides})


def build_config(*, preset: str | None = None, dataset: str | None = None, quick_look: bool = False,
                 ipcs: tuple[int, ...] | None = None, rules: tuple[str, ...] | None = None,
                 repeat: int | None = None, seed: int | None = None, subset_seed: int | None = None,
                 random_subsets: int | None = None, score_runs: str | None = None,
                 lbpe_epochs: int | None = None, lbpe_top_k: int | None = None,
                 options: dict[str, Any] | None = None, eval_epochs: int | None = None, width: int | None = None,
                 dynamics_epochs: int | None = None, dynamics_runs: int | None = None,
                 dynamics_seed: int | None = None, precision: str | None = None,
                 pruned_epochs: str | None = None) -> LadderConfig:
    """A ladder config from a preset or a dataset, then the given settings (``None``: keep the default).

    Order: the preset (or the dataset's defaults), the top-level settings, ``quick_look`` (:func:`quick`), then
    the training overrides, so an explicit ``eval_epochs`` or ``width`` wins over the quick settings.
    """
    top = {k: v for k, v in {"ipcs": ipcs, "rules": rules, "repeat": repeat, "seed": seed, "subset_seed": subset_seed,
                             "random_subsets": random_subsets, "score_runs": score_runs,
                             "lbpe_epochs": lbpe_epochs, "lbpe_top_k": lbpe_top_k, "options": options}.items()
           if v is not None}
    if preset:
        cfg = preset_config(preset, **({"dataset": dataset} if dataset else {}), **top)
    elif dataset:
        cfg = LadderConfig(dataset=dataset, **top)
    else:
        raise YocoError("the ladder needs --dataset (or a --preset)")
    if quick_look:
        cfg = quick(cfg)
    ev, dy = cfg.eval, cfg.dynamics
    if eval_epochs is not None:
        ev = dataclasses.replace(ev, train=dataclasses.replace(ev.train, epochs=eval_epochs))
    if pruned_epochs is not None:
        ev = dataclasses.replace(ev, pruned_epochs=pruned_epochs)
    if width is not None:
        ev, dy = dataclasses.replace(ev, width=width), dataclasses.replace(dy, width=width)
    if dynamics_epochs is not None:
        dy = dataclasses.replace(dy, train=dataclasses.replace(dy.train, epochs=dynamics_epochs))
    if dynamics_runs is not None:
        dy = dataclasses.replace(dy, runs=dynamics_runs)
    if dynamics_seed is not None:
        dy = dataclasses.replace(dy, seed=dynamics_seed)
    if precision is not None:  # one arithmetic for the scores' networks and the evaluated ones
        ev = dataclasses.replace(ev, train=dataclasses.replace(ev.train, precision=precision))
        dy = dataclasses.replace(dy, train=dataclasses.replace(dy.train, precision=precision))
    return dataclasses.replace(cfg, eval=ev, dynamics=dy)


ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_SET = ASSETS / "fashion-mnist-idc-ipc10.safetensors"
# The condensed sets yoco ships for paper presets: `yoco ladder --preset NAME` starts from them when given no set
SHIPPED = {"cifar10-idc-ipc10": ASSETS / "cifar10-idc-ipc10.safetensors"}


def shipped_set(preset: str) -> Path:
    """The condensed set yoco ships for ``preset``, or a one-line error saying what to give instead."""
    path = SHIPPED.get(preset)
    if path is None:
        raise YocoError(f"yoco ships no condensed set for the preset {preset!r} (it ships sets for "
                        f"{', '.join(SHIPPED)}); give a condensed set or --condense ipc=K")
    if not path.is_file():
        raise YocoError(f"{path}: the condensed set of the preset {preset} is not shipped with this version of yoco; "
                        "give a condensed set or --condense ipc=K")
    return path


def demo_config() -> LadderConfig:
    """The README's main job: Fashion-MNIST IPC 10 -> 1, 2, 5 with every rule, sized for ~15 min on 2 cores.

    The shipped set decodes to 400 images, so the demo's networks are narrower (width 32) than ``--quick``'s.
    """
    return quick(LadderConfig(dataset="fashion-mnist", ipcs=(1, 2, 5)), width=32)
