"""The two folder layouts, ``imagefolder`` and ``hf`` (read by :mod:`yoco.data.containers`, which also writes them),
registered here with the file formats, so the registry's order never depends on which module a process imported
first."""

from yoco.data.containers import read_hf, read_imagefolder
from yoco.data.readers import register

register("imagefolder", factor=1, normalized=False, folder=True,
         summary="an image-folder tree root/<class>/<image>.png (DD-Ranking and several authors)")(read_imagefolder)
register("hf", factor=1, normalized=False, folder=True, uses=("columns",),
         summary="a local Hugging Face datasets snapshot: parquet or .arrow files with image and label columns")(read_hf)
