"""``--condense SPEC``: condense a real dataset from one line of ``key=value`` items, the way a ladder starts from
raw images (``yoco ladder --condense ipc=10,iterations=100`` or ``method=mdc,ipc=10``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from yoco.condense.config import (
    RUNTIME_FIELDS,
    IDCConfig,
    config_from_spec,
    parse_value,
    resolve_config,
    split_spec,
)
from yoco.condense.idc import condense
from yoco.condense.mdc import MDCConfig, condense_mdc, nested_record, resolve_mdc_config
from yoco.data.condensed import CondensedSet
from yoco.errors import YocoError
from yoco.runtime import Runtime

METHODS = ("idc", "mdc")
MDC_KEYS = {f"mdc_{f.name}": f.name for f in dataclasses.fields(MDCConfig)}  # MDC's own settings in a spec


@dataclasses.dataclass(frozen=True)
class CondenseSpec:
    """A ``--condense`` line read and checked, nothing loaded yet: the method, the dataset's registered name and the
    settings the run will use."""

    method: str
    dataset: str
    cfg: IDCConfig
    mdc: MDCConfig

    def set_meta(self, source: str) -> dict[str, Any]:
        """The metadata the condensed set will carry, as the ladder's checks read a set's (``rules.set_meta_of``),
        so a ladder refuses what it cannot do on that set before the condensation runs."""
        extra = {"nested_subsets": nested_record(self.cfg.ipc)} if self.method == "mdc" else {}
        return {"dataset": self.dataset, "method": self.method, "ipc": self.cfg.ipc, "factor": self.cfg.factor,
                "extra": extra, "source": source}

    def differences(self, cs: CondensedSet) -> list[str]:
        """How ``cs`` differs from the set this spec makes (empty: it is that set, e.g. made by an earlier run of the
        same ladder): method, dataset and every setting but the runtime's (checkpoints, engine), as its metadata
        records them."""
        made = cs.meta.extra.get("config") if isinstance(cs.meta.extra.get("config"), dict) else {}
        want = {k: v for k, v in self.cfg.resolved(self.dataset).to_dict().items() if k not in RUNTIME_FIELDS}
        have = {k: v for k, v in made.items() if k not in RUNTIME_FIELDS}
        out = [f"{k}: {have.get(k)!r} there, {want.get(k)!r} asked" for k in sorted(set(want) | set(have))
               if have.get(k) != want.get(k)]
        if (cs.meta.method, cs.meta.dataset) != (self.method, self.dataset):
            out.insert(0, f"made by {cs.meta.method} on {cs.meta.dataset}, {self.method} on {self.dataset} asked")
        elif self.method == "mdc" and (cs.meta.extra.get("mdc") or {}).get("config") != self.mdc.to_dict():
            out.append(f"MDC settings {(cs.meta.extra.get('mdc') or {}).get('config')!r} there, "
                       f"{self.mdc.to_dict()!r} asked")
        return out


def parse_condense_spec(dataset: str, spec: str) -> CondenseSpec:
    """Read ``spec``: ``method=idc`` (default) or ``mdc``, ``preset=NAME``, MDC's ``mdc_period`` / ``mdc_class_wise``,
    and any field of :class:`~yoco.condense.config.IDCConfig` (an MDC run starts from MDC's settings, IDC's preset
    with mse, as ``yoco condense --method mdc`` does). A bad item is a :class:`YocoError`; no data is read."""
    from yoco.data.datasets import DATASETS

    pairs = split_spec(spec)
    method = pairs.pop("method", "idc")
    if method not in METHODS:
        raise YocoError(f"condense spec: method must be one of {', '.join(METHODS)}, got {method!r}")
    own = {MDC_KEYS[k]: pairs.pop(k) for k in list(pairs) if k in MDC_KEYS}
    if own and method != "mdc":
        raise YocoError(f"condense spec: {', '.join('mdc_' + k for k in own)} are MDC's settings; add method=mdc")
    name = DATASETS.get(str(dataset).strip().lower()).name
    cfg = config_from_spec(name, pairs, resolve_mdc_config if method == "mdc" else resolve_config)
    kinds = {f.name: type(getattr(MDCConfig(), f.name)) for f in dataclasses.fields(MDCConfig)}
    mdc = MDCConfig(**{k: parse_value(f"mdc_{k}", v, kinds[k]) for k, v in own.items()})
    return CondenseSpec(method, name, cfg, mdc)


def condense_from_spec(dataset: str, spec: str | CondenseSpec, out: str | Path, *, data_root: str | Path | None = None,
                       runtime: Runtime | None = None, resume: bool = False) -> CondensedSet:
    """Load ``dataset`` and condense it as ``spec`` says (a line for :func:`parse_condense_spec`, or one it read);
    the whole spec is read before the dataset is, so a bad value costs no loading."""
    from yoco.data.datasets import load_dataset

    plan = spec if isinstance(spec, CondenseSpec) else parse_condense_spec(dataset, spec)
    real = load_dataset(dataset, root=data_root)
    if plan.method == "mdc":
        return condense_mdc(real, plan.cfg, out, plan.mdc, runtime=runtime, resume=resume)
    return condense(real, plan.cfg, out, runtime=runtime, resume=resume)
