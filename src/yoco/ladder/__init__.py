"""The size ladder: one condensed set in, a family of smaller ones out, each evaluated, for every rule.

``config`` (what decides the numbers, presets), ``cache`` (one caching rule, the folder lock), ``cells``
(evaluation runs and where they execute), ``run`` (the stage sequence and the demo), ``page`` (the folder as one
HTML page).
"""

from yoco.ladder.cache import check_folder, key
from yoco.ladder.cells import Cell, execute, run_cell
from yoco.ladder.config import (
    DEFAULT_RULES,
    DEMO_SET,
    PRESETS,
    SCORE_RUNS,
    SHIPPED,
    LadderConfig,
    build_config,
    demo_config,
    preset_config,
    quick,
    shipped_set,
)
from yoco.ladder.page import page_path, write_page
from yoco.ladder.run import demo, fingerprint, preflight, report_ladder, run_ladder

__all__ = [
    "DEFAULT_RULES",
    "DEMO_SET",
    "PRESETS",
    "SCORE_RUNS",
    "SHIPPED",
    "Cell",
    "LadderConfig",
    "build_config",
    "check_folder",
    "demo",
    "demo_config",
    "execute",
    "fingerprint",
    "key",
    "page_path",
    "preflight",
    "preset_config",
    "quick",
    "report_ladder",
    "run_cell",
    "run_ladder",
    "shipped_set",
    "write_page",
]
