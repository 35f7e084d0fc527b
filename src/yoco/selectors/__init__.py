"""Selectors: selection methods that are not a plain score order (random, SSP, CCS), one file each.

Each file registers its method with :func:`register_selector` (:mod:`yoco.selectors.base`); importing this
package imports every module in it, so a new selector is one new file.
"""

from yoco.registry import import_submodules
from yoco.selectors.base import SELECTORS, Context, PruneContext, SelectFn, Selector, register_selector

import_submodules(__name__, __path__, first=("random", "ssp", "ccs"), skip=("base", "kmeans"))

__all__ = ["SELECTORS", "Context", "PruneContext", "SelectFn", "Selector", "register_selector"]
