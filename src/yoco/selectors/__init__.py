"""Selectors: selection methods that are not a plain score order (random, SSP, CCS, TDDS, DUAL, k-center greedy,
herding, moderate coreset, an MDC set's own subsets), one file each, and the features they share (the final model's embeddings).

Each file registers its method with :func:`register_selector` (:mod:`yoco.selectors.base`), or a shared feature
with :func:`register_feature`; importing this package imports every module in it, so a new selector is one new
file.
"""

from yoco.registry import import_submodules
from yoco.selectors.base import (
    FEATURES,
    SELECTORS,
    Context,
    Feature,
    PruneContext,
    SelectFn,
    Selector,
    canonical_feature,
    features,
    get_feature,
    register_feature,
    register_selector,
)

import_submodules(__name__, __path__, first=("random", "ssp", "ccs", "tdds", "dual", "kcenter", "herding", "moderate"),
                  skip=("base", "kmeans", "metrics"))

__all__ = ["FEATURES", "SELECTORS", "Context", "Feature", "PruneContext", "SelectFn", "Selector",
           "canonical_feature", "features", "get_feature", "register_feature", "register_selector"]
