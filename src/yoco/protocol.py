"""The published protocol's numbers, in one place: what every yoco default is and where upstream it comes from.

Upstream code (the truth where a paper is silent): IDC = snu-mllab/Efficient-Dataset-Condensation,
YOCO = he-y/you-only-condense-once, CCS = haizhongzheng/Coverage-centric-coreset-selection. ``docs/protocol.md``
lists every number below with its upstream file and line, and the places where yoco deviates on purpose.

This module imports nothing from the rest of yoco (it sits below everything), so a dataset, a model or a
condensation preset reads its numbers from here and adding a dataset or checking a number touches one file.
"""

from __future__ import annotations

import re
from typing import Any

# ----------------------------------------------------------------------------------------------------------
# Datasets: normalisation (IDC data.py MEANS/STDS) and whether a horizontal flip is a valid augmentation
# (IDC argument.py drops flip for svhn and mnist; it keeps it for fashion and cifar).

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion-mnist": ((0.2861,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": (CIFAR_MEAN, CIFAR_STD),
    "cifar100": (CIFAR_MEAN, CIFAR_STD),  # IDC uses the CIFAR-10 constants for CIFAR-100 too
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet10": (IMAGENET_MEAN, IMAGENET_STD),
    "imagenet100": (IMAGENET_MEAN, IMAGENET_STD),
}
NO_FLIP = frozenset({"mnist", "svhn"})
IMAGENET_SUBSETS = ("imagenet10", "imagenet100")


def is_imagenet(dataset: str) -> bool:
    """ImageNet subsets follow their own evaluation protocol (ResNet-AP-10, ImageNet augmentation)."""
    return dataset in IMAGENET_SUBSETS


# ----------------------------------------------------------------------------------------------------------
# Evaluation (IDC train.py / test.py, argument.py; YOCO test.py): train a fresh network, test on the real set.

# One network's training (IDC train.py ``train``): SGD, lr x0.2 at 2/3 and 5/6 of training, batch 64.
BATCH_SIZE, LR, MOMENTUM, WEIGHT_DECAY = 64, 0.01, 0.9, 5e-4
MILESTONES, GAMMA = (2 / 3, 5 / 6), 0.2
EVAL_DSA = "color_crop_flip_scale_rotate"  # IDC's dsa_strategy minus cutout, which CutMix replaces
MIX, MIX_P, MIX_BETA = "cutmix", 0.5, 1.0
# Arithmetic precision of training: "fp32" is PyTorch's defaults, what IDC's and YOCO's code get (IEEE float32
# matmuls; on NVIDIA Ampere and newer, cuDNN may run convolutions in TF32); "tf32" allows TF32 for matmuls and
# convolutions (CUDA only); "bf16" trains under bfloat16 autocast with float32 weights and optimiser state.
PRECISIONS = ("fp32", "tf32", "bf16")
PRECISION = "fp32"
EVAL_TEST_POINTS = 4  # IDC test_data: epoch_print_freq = epochs // 4, so tested at 1/4, 1/2, 3/4 and the end
EVAL_REPEATS = 3  # IDC README example and YOCO tables 2-5: --repeat 3
# YOCO's Table 1 (scripts/table1.sh, --repeat 1): each of the 3 dynamics runs makes its own scores and pruned set,
# each pruned set is evaluated once, and a cell is the mean and (population) std over the runs.
PER_RUN_REPEATS = 1
DYNAMICS_EPOCHS = 1000  # YOCO get_training_dynamics.py --epochs
DYNAMICS_RUNS = 3  # the paper averages three dynamics runs (README: reproduce_1..3)
# The final model's pass for entropy and SSP (YOCO generate_importance_score.py): batch 256; on ImageNet its loader
# keeps the training augmentation on (augment=True at line 395), so each pass sees randomly augmented images.
SCORE_PASS_BATCH = 256


def final_pass_augmented(dataset: str) -> bool:
    """Whether entropy and SSP read the final model on augmented images: on ImageNet subsets, as YOCO does."""
    return is_imagenet(dataset)


def augmentation(dataset: str, purpose: str = "eval") -> dict[str, Any]:
    """The augmentation of a network trained on a (condensed) set of ``dataset``, as TrainConfig fields.

    Everything but ImageNet subsets: DSA ``color_crop_flip_scale_rotate`` with per-sample parameters (no flip
    for MNIST and SVHN) and CutMix on a batch with probability 0.5. ImageNet subsets: the ImageNet augmentation
    (random-resized crop, flip, colour jitter, lighting) with CutMix on every batch and no DSA for evaluation;
    for ``purpose="dynamics"`` YOCO keeps DSA on top of it and CutMix at p 0.5 (get_training_dynamics.py).
    """
    if purpose not in ("eval", "dynamics"):
        raise ValueError(f"purpose must be eval or dynamics, got {purpose!r}")
    flip = dataset not in NO_FLIP
    if is_imagenet(dataset):
        if purpose == "eval":
            return {"base_aug": "imagenet", "dsa": "none", "mix_p": 1.0, "flip": flip}
        return {"base_aug": "imagenet", "dsa": EVAL_DSA, "mix_p": MIX_P, "flip": flip}
    return {"base_aug": "none", "dsa": EVAL_DSA, "mix_p": MIX_P, "flip": flip}


def eval_model(dataset: str) -> str:
    """ConvNet-3 (instance norm, width 128) everywhere but ImageNet subsets, which use ResNet-AP-10."""
    return "resnet10_ap" if is_imagenet(dataset) else "convnet3"


# The epochs of a pruned ImageNet set: YOCO's argument.py computes them from the SOURCE set (ipc_epoch(args.ipc, ...)
# at lines 616-621) before it swaps in the target IPC (lines 638-640), so every pruned ImageNet-10 set of an IPC-10
# or IPC-20 source (90 or 180 decoded images per class) trains 1000 epochs. "own" applies IDC's table to the pruned
# set's own size instead (9 images per class: 2000 epochs; 18 or 45: 1500), yoco's rule before it followed YOCO.
PRUNED_EPOCHS = ("source", "own")
PRUNED_EPOCHS_DEFAULT = "source"


def set_eval_epochs(dataset: str, images_per_class: int, num_classes: int, source_images_per_class: int | None,
                    pruned_epochs: str = PRUNED_EPOCHS_DEFAULT) -> int:
    """Evaluation epochs of a set with ``images_per_class`` decoded images per class; for a pruned set
    (``source_images_per_class`` = its source's decoded images per class) with ``pruned_epochs="source"``, those
    of its source, as YOCO's test.py trains it (:data:`PRUNED_EPOCHS`)."""
    if pruned_epochs not in PRUNED_EPOCHS:
        raise ValueError(f"pruned_epochs must be one of {PRUNED_EPOCHS}, got {pruned_epochs!r}")
    n = source_images_per_class if (pruned_epochs == "source" and source_images_per_class) else images_per_class
    return eval_epochs(dataset, n, num_classes)


def eval_epochs(dataset: str, images_per_class: int, num_classes: int) -> int:
    """Epochs of IDC's evaluation for ``images_per_class`` decoded images per class (argument.py ``ipc_epoch``).

    1000 for CIFAR, SVHN, MNIST and Fashion-MNIST; for ImageNet subsets by images per class: 1 -> 3000,
    <= 10 -> 2000, <= 50 -> 1500, <= 200 -> 1000, <= 500 -> 500, else 300, and 2/3 of that (rounded down to
    a multiple of 100) for 100 classes.
    """
    if not is_imagenet(dataset):
        return 1000
    n = images_per_class
    epochs = 3000 if n <= 1 else 2000 if n <= 10 else 1500 if n <= 50 else 1000 if n <= 200 else 500 if n <= 500 else 300
    return int(epochs * 2 / 3) // 100 * 100 if num_classes >= 100 else epochs


# ----------------------------------------------------------------------------------------------------------
# Scores (YOCO generate_importance_score.py, argument.py)

EL2N_EPOCHS = 10  # EL2N = the error summed over epochs 0..9 of the dynamics run (CCS and YOCO)
LBPE_BY_METHOD = {"mtt": (10, 3), "dsa": (100, 3), "kip": (50, 3), "dream": (200, 10)}
LBPE_WINDOW = (100, 10)  # IDC on CIFAR-10, and what every dataset without its own entry takes


def lbpe_window(dataset: str, method: str) -> tuple[int, int]:
    """LBPE's (E, K): the K best-training-accuracy epochs among the first E, by condensation method and dataset.

    MTT (10, 3), DSA (100, 3), KIP (50, 3), DREAM (200, 10); IDC and any other method: (200, 10) on CIFAR-100 and
    ImageNet subsets, (100, 10) on CIFAR-10 and every other dataset (Fashion-MNIST, MNIST, SVHN and real
    images take the CIFAR-10 setting). Names match ignoring case and punctuation, and a pruned set's method
    (``idc+lbpe_easy_balance``) counts as its source method.
    """
    m = _norm(method.split("+")[0])
    if m in LBPE_BY_METHOD:
        return LBPE_BY_METHOD[m]
    d = _norm(dataset)
    return (200, 10) if d == "cifar100" or d.startswith("imagenet") else LBPE_WINDOW


# CCS's hard-cut ratio beta by (dataset, source IPC, target IPC): YOCO argument.py prune_score_ratio_config.
CCS_HARD_CUTS: dict[str, dict[tuple[int, int], float]] = {
    "cifar10": {(10, 1): 0.3, (10, 2): 0.1, (10, 5): 0.0,
                (50, 1): 0.3, (50, 2): 0.3, (50, 5): 0.3, (50, 10): 0.1},
    "cifar100": {(10, 1): 0.5, (10, 2): 0.4, (10, 5): 0.2,
                 (20, 1): 0.5, (20, 2): 0.5, (20, 5): 0.3,
                 (50, 1): 0.5, (50, 2): 0.5, (50, 5): 0.5, (50, 10): 0.3},
    "imagenet10": {(10, 1): 0.3, (10, 2): 0.2, (10, 5): 0.1,
                   (20, 1): 0.3, (20, 2): 0.3, (20, 5): 0.2},
}
CCS_DEFAULT_HARD_CUT = 0.1  # for combinations the table does not cover (upstream crashes on them)
CCS_STRATA = 50  # CCS Coreset.stratified_sampling
# Within a stratum YOCO's code keeps the first members in its descending-EL2N order, i.e. the highest
# (utils/img_loader.py passes random_select=--strata_fixed_select, which no script sets); upstream CCS draws them
# at random (Coreset.py random_select=True).
CCS_PICKS = ("highest", "random")
CCS_PICK = "highest"


def ccs_hard_cut(dataset: str, source_ipc: int, target_ipc: int) -> float:
    """CCS's beta for ``dataset`` pruned ``source_ipc -> target_ipc``; outside the table the CIFAR-10 entry for the
    same IPCs, else :data:`CCS_DEFAULT_HARD_CUT`."""
    table = CCS_HARD_CUTS.get(_norm(dataset), {})
    if (source_ipc, target_ipc) in table:
        return table[(source_ipc, target_ipc)]
    return CCS_HARD_CUTS["cifar10"].get((source_ipc, target_ipc), CCS_DEFAULT_HARD_CUT)


# The paper's pruning experiments (YOCO scripts/table1.sh): source dataset, condensation method, source IPC and the
# target IPCs. LBPE's window follows from (dataset, method) through lbpe_window.
PAPER_LADDERS: dict[str, dict[str, Any]] = {
    f"{d}-{m}-ipc{src}": {"dataset": d, "method": m, "source_ipc": src, "ipcs": ipcs}
    for d, m, src, ipcs in [
        ("cifar10", "idc", 10, (1, 2, 5)), ("cifar10", "idc", 50, (1, 2, 5, 10)),
        ("cifar100", "idc", 10, (1, 2, 5)), ("cifar100", "idc", 20, (1, 2, 5)), ("cifar100", "idc", 50, (1, 2, 5, 10)),
        ("imagenet10", "idc", 10, (1, 2, 5)), ("imagenet10", "idc", 20, (1, 2, 5)),
        ("cifar10", "dream", 10, (1, 2, 5)), ("cifar10", "mtt", 10, (1, 2, 5)), ("cifar10", "dsa", 10, (1, 2, 5)),
        ("cifar10", "kip", 10, (1, 2, 5)),
    ]
}
KMEANS_MAX_ITER, KMEANS_TOL = 100, 1e-4  # fast_pytorch_kmeans.KMeans defaults, as YOCO calls it for SSP

# ----------------------------------------------------------------------------------------------------------
# The newer rules (docs/protocol.md, "Newer rules"), each with its authors' defaults. Epoch counts are absolute
# (the first T epochs of the dynamics), as LBPE's window is.

# TDDS (zhangxin-xd/Dataset-Pruning-TDDS): the first T epochs, windows of W epochs, exponential weight `decay`;
# README's reproduction command (importance_evaluation.py's own argparse defaults are T = W = 10).
TDDS_EPOCHS, TDDS_WINDOW, TDDS_DECAY = 30, 10, 0.9
TDDS_LOG_EPS = 1e-8  # log(p + 1e-8) in the per-epoch contribution

# DUAL (behaapyy/dual-pruning): windows of W epochs over the first T (30 on CIFAR, 60 on ImageNet), each window's
# std (x10) times (1 - mean) of the label's probability; Beta sampling with c_D = 4 (exp_cifar README); the
# ImageNet README runs the plain top-score selection.
DUAL_EPOCHS, DUAL_EPOCHS_IMAGENET, DUAL_WINDOW = 30, 60, 10
DUAL_STD_SCALE = 10.0
DUAL_C_D = 4.0
DUAL_SAMPLES = ("beta", "top")
DUAL_SAMPLE, DUAL_SAMPLE_IMAGENET = "beta", "top"
DUAL_ANCHORS = 10  # the anchor is the mean prediction of the 10 highest-scoring images
DUAL_BETA_SCALE = 15.0  # y_b = 15 (1 - anchor) (1 - r^c_D), y_a = 16 - y_b

# Herding as DeepCore's code runs it steps to the image FARTHEST from (i+1) mu - sum(chosen) (torch.argmax);
# Welling's herding (and iCaRL's exemplars) step to the nearest. Both are offered, DeepCore's by default.
HERDING_PICKS = ("farthest", "nearest")
HERDING_PICK = "farthest"


def dual_defaults(dataset: str) -> dict[str, Any]:
    """DUAL's window T and sampling for ``dataset``: ImageNet subsets as the authors' ImageNet code (T = 60, the
    top scores), every other dataset as their CIFAR code (T = 30, Beta sampling)."""
    if is_imagenet(_norm(dataset)):
        return {"dual_epochs": DUAL_EPOCHS_IMAGENET, "dual_sample": DUAL_SAMPLE_IMAGENET}
    return {"dual_epochs": DUAL_EPOCHS, "dual_sample": DUAL_SAMPLE}

# ----------------------------------------------------------------------------------------------------------
# IDC condensation presets (IDC misc/reproduce.py set_arguments, argument.py). Every preset matches conv kernels
# only, steps the images once per class with momentum 0.5, trains the network on real data between steps.

IDC_BASE: dict[str, Any] = {
    "factor": 2, "iterations": 2000, "inner": 100, "batch_real": 64, "batch_syn": 128, "lr_img": 5e-3,
    "mom_img": 0.5, "metric": "mse", "match_dsa": "color_crop_cutout", "net_images": 2000, "net_epochs": 1,
    "net_lr": 0.01, "net_weight_decay": 5e-4, "net_mix": "cutmix", "net_mix_p": 0.5, "net_pretrain_epochs": 0,
    "model": "convnet3", "width": 128, "init": "mix",
}
IDC_PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {},
    "cifar100": {},
    "svhn": {"net_images": 500},
    "mnist": {"metric": "l1", "lr_img": 1e-4, "net_images": 500, "match_dsa": "color_crop", "net_mix": "none"},
    "fashion-mnist": {"metric": "l1", "lr_img": 1e-4, "net_images": 500},
    "imagenet10": {"factor": 3, "iterations": 500, "metric": "l1", "lr_img": 3e-3, "net_images": 500,
                   "net_pretrain_epochs": 10, "model": "resnet10_ap", "width": 64, "net_mix_p": 1.0},
    "imagenet100": {"factor": 3, "iterations": 500, "metric": "l1", "lr_img": 1e-3, "net_images": 500,
                    "batch_real": 128, "net_lr": 0.1, "net_weight_decay": 1e-4, "model": "resnet10_ap",
                    "width": 64, "net_mix_p": 1.0},
}
# The network trained between matching steps (and pre-trained on ImageNet) mixes with CutMix at IDC's ``mix_p``:
# argparse's default 1.0 (argument.py:139), which argument.py lowers to 0.5 for CIFAR, SVHN, MNIST and
# Fashion-MNIST only (argument.py:268, 278, 286, 294). The presets above carry it as ``net_mix_p``.

# IDC's "bound" multi-formation while condensing (misc/reproduce.py:54-57): ImageNet with factor >= 3 at IPC >= 20
# decodes each class to at most ``batch_syn`` (128) images, its first stored images at the full factor and the
# rest at smaller ones (condense.py:136-168), "to prevent OOM"; evaluation decodes every image at the full factor
# ("At evaluation, decode_type=single (default) shows better performance"; test.py:172-179 has no bound branch).
IDC_BOUND_MIN_FACTOR, IDC_BOUND_MIN_IPC = 3, 20


def idc_decode(dataset: str, factor: int, ipc: int) -> str:
    """The multi-formation IDC's presets use while condensing: ``bound`` for ImageNet subsets with factor >= 3 at
    IPC >= 20, else ``single``."""
    bound = is_imagenet(dataset) and factor >= IDC_BOUND_MIN_FACTOR and ipc >= IDC_BOUND_MIN_IPC
    return "bound" if bound else "single"
# lr_img is tuned by (ipc / 10) * (size / base)^2 (IDC argument.py): base 224 for ImageNet, 28 for MNIST, and
# 32 for everything else, Fashion-MNIST included (28 px: x0.765625).
IDC_LR_SIZE_BASE = {"mnist": 28, "imagenet10": 224, "imagenet100": 224}


def idc_preset(dataset: str) -> dict[str, Any]:
    """IDC's published settings for ``dataset`` (the CIFAR-10 ones for a dataset IDC did not condense)."""
    return {**IDC_BASE, **IDC_PRESETS.get(dataset, {})}


def idc_lr_scale(dataset: str, ipc: int, size: int) -> float:
    """IDC's image learning-rate multiplier ``(ipc / 10) * (size / base)**2``."""
    base = IDC_LR_SIZE_BASE.get(dataset, 32)
    return ipc / 10 * (size / base) ** 2


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())
