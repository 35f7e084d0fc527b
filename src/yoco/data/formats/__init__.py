"""Importers for the file formats that published condensed sets come in.

Each format is one reader function registered with :func:`register`; a reader opens the file and returns the
raw images and labels, and :func:`import_condensed` turns them into a validated :class:`CondensedSet` with
the format's defaults (multi-formation factor, normalisation) unless the caller overrides them.

Nothing in a file is ever executed: ``.pt`` files are opened with ``torch.load(weights_only=True)`` and
``.npz`` files with ``allow_pickle=False``.
"""

from yoco.data.formats.base import (
    IMAGE_FILES,
    MAX_ARRAY_BYTES,
    MAX_LOAD_BYTES,
    MAX_LOAD_OBJECTS,
    MAX_MTT_LR,
    OWN_META,
    companion_files,
    describe,
    detect_format,
    format_candidates,
    format_names,
    from_own_meta,
    import_condensed,
    input_files,
)
from yoco.data.readers import FORMATS, Format, Raw, Request, register
from yoco.registry import import_submodules

import_submodules(__name__, __path__, first=("pairs", "tensors", "dsa", "kip", "own", "folders"))

__all__ = [
    "FORMATS",
    "IMAGE_FILES",
    "MAX_ARRAY_BYTES",
    "MAX_LOAD_BYTES",
    "MAX_LOAD_OBJECTS",
    "MAX_MTT_LR",
    "OWN_META",
    "Format",
    "Raw",
    "Request",
    "companion_files",
    "describe",
    "detect_format",
    "format_candidates",
    "format_names",
    "from_own_meta",
    "import_condensed",
    "input_files",
    "register",
]
