"""Condensation methods: IDC gradient matching with multi-formation (the only one so far)."""

from yoco.condense.idc import (
    PRESETS,
    IDCConfig,
    check_config,
    checkpoint_path,
    condense,
    condense_from_spec,
    config_from_spec,
    gradient_distance,
    init_synthetic,
    inner_step_batched,
    inner_step_sequential,
    matched_params,
    matching_cost_breakdown,
    matching_loss,
    preset_for,
    quick,
)

__all__ = [
    "PRESETS",
    "IDCConfig",
    "check_config",
    "checkpoint_path",
    "condense",
    "condense_from_spec",
    "config_from_spec",
    "gradient_distance",
    "init_synthetic",
    "inner_step_batched",
    "inner_step_sequential",
    "matched_params",
    "matching_cost_breakdown",
    "matching_loss",
    "preset_for",
    "quick",
]
