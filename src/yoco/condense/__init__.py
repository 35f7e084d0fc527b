"""Condensation methods: IDC gradient matching with multi-formation, and MDC (IDC plus an adaptive subset loss,
so that every class's first images are a good smaller set)."""

from yoco.condense.config import (
    PRESETS,
    IDCConfig,
    check_config,
    config_from_spec,
    preset_for,
    quick,
    resolve_config,
)
from yoco.condense.idc import checkpoint_path, condense, net_group
from yoco.condense.init import init_synthetic
from yoco.condense.matching import (
    Objective,
    gradient_distance,
    inner_step_batched,
    inner_step_sequential,
    matched_params,
    matching_loss,
)
from yoco.condense.mdc import MDCConfig, MDCObjective, condense_mdc, crop_major_order, resolve_mdc_config
from yoco.condense.spec import METHODS, CondenseSpec, condense_from_spec, parse_condense_spec

__all__ = [
    "METHODS",
    "PRESETS",
    "CondenseSpec",
    "IDCConfig",
    "MDCConfig",
    "MDCObjective",
    "Objective",
    "check_config",
    "checkpoint_path",
    "condense",
    "condense_from_spec",
    "condense_mdc",
    "config_from_spec",
    "crop_major_order",
    "gradient_distance",
    "init_synthetic",
    "inner_step_batched",
    "inner_step_sequential",
    "matched_params",
    "matching_loss",
    "net_group",
    "parse_condense_spec",
    "preset_for",
    "quick",
    "resolve_config",
    "resolve_mdc_config",
]
