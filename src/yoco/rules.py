"""Rules: which decoded images of a condensed set to keep, and the pruned set they make.

A rule is a score, a direction and a class handling: ``lbpe_easy_balance`` keeps, in every class, the images
with the lowest LBPE score (YOCO's rule); ``forgetting_hard_imbalance`` keeps the most-forgotten images of the
whole set, whatever their class. Short names take the score's defaults (``forgetting`` is
``forgetting_hard_imbalance``, ``lbpe`` is YOCO's ``lbpe_easy_balance``), and ``yoco`` is ``lbpe_easy_balance``.
Every other rule defaults to *imbalanced*, as in the published baselines; an imbalanced rule chooses globally
and may leave a class with no image at all, which is part of what it is compared on.

Some methods are selections rather than score orders: ``random`` (a seeded uniform order), ``ssp`` (k-means
prototypes on the final model's embeddings), ``ccs`` (coverage-centric stratified sampling on EL2N), and the newer
``tdds``, ``dual``, ``kcenter``, ``herding`` and ``moderate``. Each is one :class:`~yoco.selectors.Selector` in a
file of :mod:`yoco.selectors` that declares what it reads (score columns, a per-image feature prepared once from
the dynamics and shared with other selectors) and its own options with their defaults (CCS owns its hard-cut
table), so adding a method is one file, and :func:`select`/:func:`prune` carry only generic arguments. A selector
that orders images (TDDS) takes a rule's easy/hard direction like a score; the others take none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from yoco.data.condensed import CondensedSet, content_sha256, decode
from yoco.errors import YocoError
from yoco.provenance import PROVENANCE_KEY, provenance
from yoco.scores import SCORES, get_score
from yoco.scoretable import ScoreTable
from yoco.selectors import SELECTORS, Context, PruneContext, Selector, canonical_feature

DIRECTIONS = ("easy", "hard")
BALANCES = ("balance", "imbalance")
ALIASES = {"yoco": "lbpe_easy_balance"}
YOCO_RULE = ALIASES["yoco"]
RANDOM_REFERENCE = "random_balance"  # what "gain over random" is measured against


@dataclass(frozen=True)
class Rule:
    """A parsed rule: ``score`` (a score name or a selector: random, ssp, ccs, ...), ``direction``, ``balance``.

    ``direction`` is ``"easy"`` or ``"hard"`` for score orders and directional selectors, None for the others.
    """

    score: str
    direction: str | None
    balance: str

    def __post_init__(self) -> None:
        if self.score not in SELECTORS and self.score not in _ranked_scores():
            raise YocoError(f"unknown rule score {self.score!r}; known: {', '.join(_ranked_scores() + SELECTORS.names())}")
        if self.balance not in BALANCES:
            raise YocoError(f"rule balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")
        if self.score in SELECTORS and not SELECTORS.get(self.score).directional:
            if self.direction is not None:
                raise YocoError(f"rule {self.score} takes no easy/hard direction, got {self.direction!r}")
        elif self.direction not in DIRECTIONS:
            raise YocoError(f"rule direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")

    @property
    def name(self) -> str:
        """The canonical spelling, e.g. ``lbpe_easy_balance`` or ``ccs_imbalance``."""
        parts = [self.score, self.direction, self.balance]
        return "_".join(p for p in parts if p is not None)

    @property
    def balanced(self) -> bool:
        return self.balance == "balance"

    @property
    def reads_dynamics(self) -> bool:
        """Whether the selection depends on the recorded dynamics (a score, score columns or prepared features);
        False for a selector that reads neither (random), whose subsets do not change with the dynamics."""
        sel = self.selector
        return sel is None or bool(sel.columns) or sel.feature_name is not None

    @property
    def needs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The score columns and the features this rule reads from a score table."""
        sel = self.selector
        if sel is None:
            return (self.score,), ()
        return sel.columns, ((sel.feature_name,) if sel.feature_name is not None else ())

    @property
    def selector(self) -> Selector | None:
        """The selection method behind the rule, or None for a plain score order."""
        return SELECTORS.get(self.score) if self.score in SELECTORS else None


def _ranked_scores() -> list[str]:
    return [name for name in SCORES.names() if SCORES.get(name).directional]


def rule_names() -> list[str]:
    """Every canonical rule name a user can type (plus the ``yoco`` alias and the short forms it implies)."""
    names = list(ALIASES)
    for s in _ranked_scores():
        names += [f"{s}_{d}_{b}" for d in DIRECTIONS for b in BALANCES]
    for s in SELECTORS.names():
        if SELECTORS.get(s).directional:
            names += [f"{s}_{d}_{b}" for d in DIRECTIONS for b in BALANCES]
        else:
            names += [f"{s}_{b}" for b in BALANCES]
    return names


def bare_defaults() -> dict[str, str]:
    """What each name typed without its parts means: every alias, score and selection, and the rule it stands
    for (its default direction and class handling), for ``--help``."""
    bare = list(ALIASES) + _ranked_scores() + list(SELECTORS.names())
    return {name: parse_rule(name).name for name in bare}


def option_names() -> dict[str, list[str]]:
    """Each selector's own options (what ``--option METHOD.NAME=VALUE`` may set)."""
    return {name: list(SELECTORS.get(name).options) for name in SELECTORS.names() if SELECTORS.get(name).options}


def options_help() -> str:
    """One line naming each selector's options and their defaults, for ``--help``."""
    parts = []
    for name in SELECTORS.names():
        sel = SELECTORS.get(name)
        # the options whose default depends on the dataset and IPCs are those resolve() fills
        resolved = set(sel.resolve(dict(sel.options), PruneContext("", 0, 0))) if sel.resolve is not None else set()
        for k, v in sel.options.items():
            default = f"the protocol's value for the dataset and IPCs, else {v}" if k in resolved else f"{v}"
            among = f"; one of {', '.join(map(str, sel.choices[k]))}" if k in sel.choices else ""
            parts.append(f"{name}: {k} (default: {default}{among})")
    return "; ".join(parts)


def parse_rule(name: str | Rule) -> Rule:
    """Parse ``score[_easy|_hard][_balance|_imbalance]`` (or an alias); missing parts take the score's defaults.

    ``-`` may stand for ``_`` and case is ignored. An unknown rule is a :class:`YocoError` listing the known ones.
    """
    if isinstance(name, Rule):
        return name
    text = ALIASES.get(name.strip().lower().replace("-", "_"), name.strip().lower().replace("-", "_"))
    parts = text.split("_")
    balance = parts.pop() if len(parts) > 1 and parts[-1] in BALANCES else None
    direction = parts.pop() if len(parts) > 1 and parts[-1] in DIRECTIONS else None
    base = "_".join(parts)
    if base in SELECTORS:
        sel = SELECTORS.get(base)
        if sel.directional:
            return Rule(base, direction or sel.default_direction, balance or sel.default_balance)
        if direction is not None:
            raise YocoError(f"rule {name!r}: {base} is a selection and takes no easy/hard direction; "
                            f"use {base}_balance or {base}_imbalance")
        return Rule(base, None, balance or sel.default_balance)
    if base in _ranked_scores():
        spec = get_score(base)
        return Rule(base, direction or spec.default_direction, balance or spec.default_balance)
    raise YocoError(f"unknown rule {name!r}: a rule is score[_easy|_hard][_balance|_imbalance]; "
                    f"known rules: {', '.join(rule_names())}")


def set_meta_of(cs: CondensedSet) -> dict[str, Any]:
    """What a selector reads of the set it selects from (``Context.set_meta``): its metadata and its source."""
    return {**cs.meta.to_dict(), "source": cs.source}


def check_set(rule: str | Rule, cs: CondensedSet | Mapping[str, Any]) -> None:
    """Refuse, before any work, a set ``rule`` cannot select from (``mdc_prefix`` on a set that is not MDC's); the
    set, or its metadata as :func:`set_meta_of` gives it (a ladder checks a set a condensation is about to make)."""
    sel = parse_rule(rule).selector
    if sel is not None and sel.check_set is not None:
        sel.check_set(set_meta_of(cs) if isinstance(cs, CondensedSet) else cs)


def check_epochs(r: Rule, options: Mapping[str, Any], where: PruneContext, recorded: int) -> None:
    """Refuse, before the dynamics are recorded, a rule that reads more of their first epochs than ``recorded``
    (TDDS's and DUAL's T: 30 by default, so a quick ladder's shorter dynamics would fail only after hours)."""
    sel = r.selector
    if sel is None or sel.epochs_option is None:
        return
    need = resolve_options(r, options, where)[sel.epochs_option]
    if need > recorded:
        raise YocoError(f"rule {r.name} reads the first {need} epochs of the training dynamics ({sel.epochs_option}), "
                        f"but they record {recorded} (--dynamics-epochs); record at least {need} or set "
                        f"--option {sel.epochs_option}=N with N <= {recorded}")


def resolve_options(r: Rule, options: Mapping[str, Any], where: PruneContext | None) -> dict[str, Any]:
    """The rule's method options: its defaults, resolved for ``where``, overridden by what was given.

    An option no method knows is refused (a typo); options of other methods are ignored, so one set of options
    can serve a whole ladder of rules.
    """
    known = {o for sel in SELECTORS.names() for o in SELECTORS.get(sel).options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise YocoError(f"unknown rule option(s) {unknown}; options by method: {option_names() or 'none'}")
    sel = r.selector
    if sel is None:
        return {}
    own = {k: v for k, v in sel.options.items()}
    given = {k: v for k, v in options.items() if k in own and v is not None}
    if sel.resolve is not None and where is not None:
        own.update(sel.resolve(dict(own), where))
    own.update(given)
    for k, allowed in sel.choices.items():
        if own.get(k) not in allowed:
            raise YocoError(f"{sel.name} option {k} must be one of {', '.join(map(str, allowed))}, got {own.get(k)!r}")
    if sel.check is not None:
        sel.check(own)
    return own


def select(
    scores: Mapping[str, torch.Tensor | np.ndarray],
    labels: torch.Tensor | np.ndarray | Sequence[int],
    rule: str | Rule,
    n: int,
    *,
    num_classes: int | None = None,
    features: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    where: PruneContext | None = None,
    set_meta: Mapping[str, Any] | None = None,
    **options: Any,
) -> torch.Tensor:
    """Indices (int64, sorted) of the images ``rule`` keeps: ``n`` per class, or ``n * num_classes`` in all.

    Parameters
    ----------
    scores : score columns (``name -> [N]``), e.g. from :func:`yoco.scores.compute_scores`.
    labels : ``[N]`` class of every image.
    rule : a rule name (see :func:`rule_names`) or a parsed :class:`Rule`.
    n : images to keep per class. A balanced rule keeps exactly ``n`` of every class; an imbalanced one keeps
        exactly ``n * num_classes`` chosen over the whole set, so a class may get none.
    num_classes : default ``max(labels) + 1``.
    features : per-image features by feature name (``{"embeddings": [N, D]}``; the older name ``ssp`` is read
        as ``embeddings``).
    seed : seeds the selectors that draw (``random``, ``ssp``, ``ccs``'s random pick, ``kcenter``'s first centre,
        ``dual``'s Beta sampling); score orders break ties by index and use no randomness.
    where : dataset and IPCs, for option defaults that depend on them (CCS's hard cut).
    set_meta : the metadata of the condensed set the images decode from (``CondensedMeta.to_dict()``), for a selector
        that reads the set's own order (``mdc_prefix``); :func:`prune` passes it.
    **options : the rule's method options (``hard_cut`` for CCS); see :func:`option_names`.
    """
    r = parse_rule(rule)
    lab = _as_labels(labels)
    count = len(lab)
    c = _num_classes(lab, num_classes)
    table = _as_table(scores, count)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise YocoError(f"images to keep per class must be an integer >= 1, got {n!r}")
    n = int(n)
    sel = r.selector
    columns = sel.columns if sel else (r.score,)
    for col in columns:
        if col not in table:
            raise YocoError(f"rule {r.name} needs score column {col!r}; the scores hold: "
                            f"{', '.join(table) or 'no columns'}")
        bad = (~torch.isfinite(table[col])).nonzero().flatten()
        if len(bad):
            raise YocoError(f"score column {col!r} has {len(bad)} NaN or infinite value(s) (first at index "
                            f"{int(bad[0])}); recompute the scores")
    feats = None
    if sel is not None and sel.feature_name is not None:
        fname = sel.feature_name
        given = {canonical_feature(k): v for k, v in (features or {}).items()}
        feats = given.get(fname)
        if feats is None:
            raise YocoError(f"rule {r.name} needs the {sel.name} features of every image ({fname} [N, ...], made "
                            "by `yoco score` into its score table); none were given (a scores CSV carries none)")
        feats = torch.as_tensor(feats).to(torch.float32)
        if feats.dim() < 2 or len(feats) != count:
            raise YocoError(f"{sel.name} features must be [N={count}, D], got {list(feats.shape)}")
        if not torch.isfinite(feats).all():
            raise YocoError(f"{sel.name} features hold NaN or infinite values")
    own = resolve_options(r, options, where)

    if r.balanced:
        groups = []
        for k in range(c):
            members = (lab == k).nonzero().flatten()
            if len(members) < n:
                raise YocoError(f"rule {r.name} keeps {n} images per class but class {k} has only "
                                f"{len(members)}")
            groups.append(members)
        budget = n
    else:
        budget = n * c
        if budget > count:
            raise YocoError(f"rule {r.name} keeps {n} x {c} classes = {budget} images but the set has only {count}")
        groups = [torch.arange(count)]

    ctx = Context(table, lab, feats, own, torch.Generator().manual_seed(seed), seed, r.direction, set_meta)
    picks = [sel.fn(members, budget, ctx) if sel else _rank(r, members, budget, ctx) for members in groups]
    out = torch.sort(torch.cat(picks).to(torch.int64)).values
    if len(out) != budget * len(groups) or len(torch.unique(out)) != len(out):
        raise RuntimeError(f"rule {r.name} chose {len(out)} indices, expected {budget * len(groups)} distinct")
    return out


def class_counts(
    labels: torch.Tensor | np.ndarray | Sequence[int], indices: torch.Tensor | Sequence[int], num_classes: int
) -> list[int]:
    """How many of ``indices`` fall in each of the ``num_classes`` classes."""
    lab = _as_labels(labels)
    idx = torch.as_tensor(indices, dtype=torch.int64)
    return torch.bincount(lab[idx], minlength=num_classes).tolist()


def _rank(rule: Rule, members: torch.Tensor, budget: int, ctx: Context) -> torch.Tensor:
    """The ``budget`` least hard (easy) or hardest (hard) members; ties go to the lower index."""
    higher_is_harder = get_score(rule.score).harder == "high"
    ascending = higher_is_harder == (rule.direction == "easy")
    key = ctx.scores[rule.score][members]
    order = torch.sort(key if ascending else -key, stable=True).indices
    return members[order[:budget]]


# ----------------------------------------------------------------------------------------------------------
# The score table and the pruned set


def prune(cs: CondensedSet, table: ScoreTable | None, rule: str | Rule, ipc: int, *, seed: int = 0,
          **options: Any) -> tuple[CondensedSet, dict[str, Any]]:
    """Keep ``ipc`` stored images' worth of decoded images per class (``ipc * factor**2``) of ``cs`` by ``rule``.

    Returns the pruned set (decoded, factor 1) and a JSON-ready record of the kept indices (into the decoded
    set), per-class counts and the method's resolved options; the record is also in the set's metadata
    (``meta.extra["selection"]``), so the set always carries how it was made. Target IPC counts *stored*
    images, as in the paper's tables.    A rule that reads no scores (``random``) needs no ``table`` (None).
    """
    if isinstance(ipc, bool) or not isinstance(ipc, int):
        raise YocoError(f"{cs.source}: target IPC must be a whole number, got {ipc!r}")
    if ipc < 1 or (cs.meta.ipc and ipc >= cs.meta.ipc):
        raise YocoError(f"{cs.source}: target IPC must be at least 1 and below the source IPC {cs.meta.ipc}, got {ipc}")
    r = parse_rule(rule)
    dec = decode(cs)
    if table is None:
        if r.reads_dynamics:
            raise YocoError(f"rule {r.name} reads scores: give the set's score table (--scores, from `yoco score`)")
        table = ScoreTable({}, dec.labels, source="<no scores: the rule reads none>")
    table.check_matches(dec.labels)
    made_for = table.config.get("set_sha256")
    if made_for is not None and made_for != content_sha256(cs):
        raise YocoError(f"{table.source}: the scores were computed for another set (sha256 {str(made_for)[:12]}), not "
                        f"{cs.source} (sha256 {content_sha256(cs)[:12]}); score this set's own dynamics")
    f = cs.meta.factor
    n = ipc * f * f
    where = PruneContext(cs.meta.dataset, cs.meta.ipc, ipc)
    own = resolve_options(r, options, where)
    idx = select(table.scores, dec.labels, r, n, num_classes=cs.num_classes, features=table.features, seed=seed,
                 set_meta=set_meta_of(cs), **own)
    counts = class_counts(dec.labels, idx, cs.num_classes)
    record = {"rule": r.name, "ipc": ipc, "factor": f, "kept_decoded_per_class_target": n, "seed": seed,
              "options": own, "class_counts": counts, "indices": idx.tolist(), "scores": table.source,
              "score_config": table.config}
    meta = dataclasses.replace(
        dec.meta, method=f"{cs.meta.method}+{r.name}", ipc=ipc, factor=1,
        # an imbalanced rule may legitimately keep nothing of a class; that is part of what it is compared on
        allow_empty_classes=r.balance == "imbalance",
        # the pruning's provenance replaces the source's condensation's (outside the content digest either way)
        extra={**dec.meta.extra, "pruned_from_ipc": cs.meta.ipc, "selection": record, PROVENANCE_KEY: provenance()},
    )
    soft = dec.soft[idx] if dec.soft is not None else None
    pruned = CondensedSet(dec.images[idx], dec.labels[idx], meta, source=f"{cs.source}[{r.name}@ipc{ipc}]", soft=soft)
    return pruned, record


def _as_labels(labels: Any) -> torch.Tensor:
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if lab.dim() != 1:
        raise YocoError(f"labels must be one-dimensional [N], got shape {list(lab.shape)}")
    if lab.is_floating_point() or lab.dtype == torch.bool or lab.is_complex():
        raise YocoError(f"labels must be integers, got {lab.dtype}")
    lab = lab.to(torch.int64)
    if len(lab) and int(lab.min()) < 0:
        raise YocoError(f"labels must be >= 0, got {int(lab.min())}")
    return lab


def _num_classes(lab: torch.Tensor, num_classes: int | None) -> int:
    seen = int(lab.max()) + 1 if len(lab) else 0
    if num_classes is None:
        if not seen:
            raise YocoError("cannot select from an empty set")
        return seen
    if num_classes < seen:
        raise YocoError(f"num_classes={num_classes} but the labels reach {seen - 1}")
    return int(num_classes)


def _as_table(scores: Mapping[str, Any], count: int) -> dict[str, torch.Tensor]:
    table = {}
    for name, col in scores.items():
        t = torch.as_tensor(np.asarray(col) if not isinstance(col, torch.Tensor) else col).to(torch.float64)
        if t.dim() != 1 or len(t) != count:
            raise YocoError(f"score column {name!r} has shape {list(t.shape)} but there are {count} labels")
        table[name] = t
    return table


