"""Commands on sets and datasets: ``datasets``, ``download``, ``show``, ``import``, ``export``, ``sample``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from yoco.cli.base import (
    BOUNDED,
    Handler,
    _dataset,
    _inputs,
    _real,
    _saved,
    command,
)


@command("datasets", "list the known real datasets and whether each is found")
def _datasets(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--dataset", default=None, metavar="NAME", help="check this dataset at --data-root")
    p.add_argument("--data-root", default=None, metavar="DIR", help="folder to look in for --dataset")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.datasets import dataset_status

        rows = dataset_status({a.dataset: a.data_root} if a.dataset and a.data_root else None)
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {'found' if r['found'] else 'missing':<7}  {r['root']}  "
                  f"{r.get('description', '')}")
        return 0

    return run


@command("download", "fetch a real dataset from its official source (checksum-verified, resumable)")
def _download(p: argparse.ArgumentParser) -> Handler:
    from yoco.data.download import SOURCES

    p.add_argument("name", choices=list(SOURCES), help="the dataset")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where to put it (default: $YOCO_DATA/NAME or ~/.yoco/data/NAME, where yoco looks)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.download import download

        folder = download(a.name, a.data_root, progress=not a.quiet)
        print(f"{a.name} is in {folder}")
        return 0

    return run


@command("show", "summarise a condensed set (provenance, storage, recipe, labels); --png draws its images")
def _show(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("condensed", help="a yoco condensed-set file (.safetensors)")
    p.add_argument("--png", default=None, help="also write a grid of its images per class to this PNG file")
    p.add_argument("--per-class", type=BOUNDED["ipc"], default=10, help="images shown per class in --png")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.files import check_outputs
        from yoco.report import save_image_grid, summarize

        check_outputs([a.png] if a.png else [], _inputs(a, a.condensed))
        cs = load(a.condensed)
        print(summarize(cs))
        if a.png:
            save_image_grid(cs, a.png, per_class=a.per_class)
            print(f"grid: {a.png}")
        return 0

    return run


@command("import", "convert a published condensed set (IDC, DREAM, MTT, DD-Ranking, DSA, KIP, image folder, "
         "Hugging Face) to yoco's format")


def _import(p: argparse.ArgumentParser) -> Handler:
    from yoco.data.formats import FORMATS

    p.add_argument("path", help="the published file or folder (data.pt, images_best.pt, images.pt, res_*.pt, .npz, "
                   "an image folder, a parquet snapshot)")
    p.add_argument("--format", default=None, choices=FORMATS.names(),
                   help="default: told from the path's name or contents (a path that fits several formats is "
                   "refused, naming them). " + FORMATS.help())
    p.add_argument("--dataset", required=True, help="the real dataset it was condensed from")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--num-classes", type=BOUNDED["classes"], default=None,
                   help="default: the width of one-hot labels, else the largest label + 1")
    p.add_argument("--factor", type=BOUNDED["factor"], default=None,
                   help="multi-formation factor (default: the format's: IDC 2, 3 for ImageNet; DREAM 2; others 1)")
    p.add_argument("--normalized", choices=["yes", "no"], default=None,
                   help="are the stored images standardised (default: the format's: IDC/DREAM and the picture "
                   "formats no, MTT, DD-Ranking, DSA, KIP yes)")
    p.add_argument("--mean", type=_floats, default=None, metavar="M,...",
                   help="per-channel mean the images were standardised with (default: the dataset's)")
    p.add_argument("--std", type=_floats, default=None, metavar="S,...", help="per-channel std, with --mean")
    p.add_argument("--experiment", type=BOUNDED["index"], default=0, help="which experiment of a DSA res_*.pt file")
    p.add_argument("--labels", default=None,
                   help="MTT's labels_best.pt or DD-Ranking's labels.pt (default: beside the images)")
    p.add_argument("--image-column", default=None, metavar="NAME",
                   help="hf: the image column (default: the first of image, img, images, pixel_values, ...)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="hf: the label column (default: the first of label, labels, class_id, label_id, ...)")
    p.add_argument("--zca", action="store_true", help="the images are ZCA-whitened (MTT's CIFAR sets): evaluation "
                   "whitens the test set the same way")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.formats import detect_format, import_condensed
        from yoco.files import check_outputs

        a.format = a.format or detect_format(a.path)
        check_outputs([a.out], _import_inputs(a))
        normalized = None if a.normalized is None else a.normalized == "yes"
        cs = import_condensed(a.path, a.format, dataset=a.dataset, num_classes=a.num_classes, factor=a.factor,
                              normalized=normalized, mean=a.mean, std=a.std, experiment=a.experiment,
                              labels_path=a.labels, zca=a.zca, image_column=a.image_column,
                              label_column=a.label_column)
        print(f"format: {a.format}")
        return _saved(cs, a.out)

    return run


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text[:60]!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers separated by commas, got {text[:60]!r}")
    return values


def _import_inputs(a: argparse.Namespace) -> list[Path]:
    """The files an import reads (:func:`yoco.data.formats.input_files`: the file, the labels and learning-rate
    files beside an images file, yoco's ``condensed.json``) and the dataset's files (read for class names)."""
    from yoco.data.formats import input_files

    return _inputs(a, *input_files(a.path, a.format, a.labels))


@command("export", "write a condensed set for other tools: an image folder, a Hugging Face snapshot, DD-Ranking's "
         "files")


def _export(p: argparse.ArgumentParser) -> Handler:
    from yoco.data.exports import EXPORTS

    p.add_argument("condensed", help="a yoco condensed-set file")
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    p.add_argument("--format", default="imagefolder", choices=EXPORTS.names(), help=EXPORTS.help())
    p.add_argument("--class-names", action="store_true",
                   help="name the classes after the dataset's (reads the dataset) instead of 0..C-1")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where the dataset is, for --class-names")
    p.add_argument("--lossy", action="store_true",
                   help="picture formats: write a ZCA-whitened set as clamped 8-bit pictures anyway (their metadata "
                   "drops the ZCA recipe: they are not the set)")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.data.datasets import dataset_inputs, load_dataset
        from yoco.data.exports import export_set
        from yoco.files import check_outputs

        check_outputs([], _inputs(a, a.condensed), folders=[a.out])
        cs = load(a.condensed)
        if a.class_names:
            check_outputs([], dataset_inputs(cs.meta.dataset, a.data_root), folders=[a.out])
        names = list(load_dataset(cs.meta.dataset, root=a.data_root).classes) if a.class_names else None
        out = export_set(cs, a.out, a.format, names, lossy=a.lossy)
        kind = "8-bit PNG in pixel space" if EXPORTS.get(a.format).pictures else "tensors"
        print(f"wrote {len(cs)} images to {out} ({a.format}: {kind}, labels and recipe in condensed.json; "
              f"re-import with: yoco import {out} --dataset {cs.meta.dataset} --out SET.safetensors)")
        return 0

    return run


@command("sample", "take random real images per class as a starting (\"condensed\") set")
def _sample(p: argparse.ArgumentParser) -> Handler:
    _dataset(p)
    p.add_argument("--ipc", type=BOUNDED["ipc"], required=True, help="images per class")
    p.add_argument("--seed", type=BOUNDED["seed"], default=0, help="which random subset")
    p.add_argument("--out", required=True, help="output .safetensors path")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.subset import random_real_subset
        from yoco.files import check_outputs

        check_outputs([a.out], _inputs(a))
        cs = random_real_subset(_real(a), a.ipc, seed=a.seed)
        return _saved(cs, a.out)

    return run
