"""``--condense SPEC``: condense a real dataset from one line of ``key=value`` items, the way a ladder starts from
raw images (``yoco ladder --condense ipc=10,iterations=100`` or ``method=mdc,ipc=10``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from yoco.condense.config import config_from_spec, parse_value, resolve_config, split_spec
from yoco.condense.idc import condense
from yoco.condense.mdc import MDCConfig, condense_mdc, resolve_mdc_config
from yoco.data.condensed import CondensedSet
from yoco.errors import YocoError
from yoco.runtime import Runtime

METHODS = ("idc", "mdc")
MDC_KEYS = {f"mdc_{f.name}": f.name for f in dataclasses.fields(MDCConfig)}  # MDC's own settings in a spec


def condense_from_spec(dataset: str, spec: str, out: str | Path, *, data_root: str | Path | None = None,
                       runtime: Runtime | None = None, resume: bool = False) -> CondensedSet:
    """Load ``dataset`` and condense it as ``spec`` says: ``method=idc`` (default) or ``mdc``, ``preset=NAME``,
    MDC's ``mdc_period`` / ``mdc_class_wise``, and any field of :class:`~yoco.condense.config.IDCConfig` (an MDC
    run starts from MDC's settings, IDC's preset with mse, as ``yoco condense --method mdc`` does)."""
    from yoco.data.datasets import DATASETS, load_dataset

    pairs = split_spec(spec)
    method = pairs.pop("method", "idc")
    if method not in METHODS:
        raise YocoError(f"condense spec: method must be one of {', '.join(METHODS)}, got {method!r}")
    own = {MDC_KEYS[k]: pairs.pop(k) for k in list(pairs) if k in MDC_KEYS}
    if own and method != "mdc":
        raise YocoError(f"condense spec: {', '.join('mdc_' + k for k in own)} are MDC's settings; add method=mdc")
    # the whole spec is read before the dataset is: a bad value costs no loading
    name = DATASETS.get(str(dataset).strip().lower()).name
    cfg = config_from_spec(name, pairs, resolve_mdc_config if method == "mdc" else resolve_config)
    kinds = {f.name: type(getattr(MDCConfig(), f.name)) for f in dataclasses.fields(MDCConfig)}
    mdc = MDCConfig(**{k: parse_value(f"mdc_{k}", v, kinds[k]) for k, v in own.items()})
    real = load_dataset(dataset, root=data_root)
    if method == "mdc":
        return condense_mdc(real, cfg, out, mdc, runtime=runtime, resume=resume)
    return condense(real, cfg, out, runtime=runtime, resume=resume)
