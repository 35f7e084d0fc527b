"""IDC's configuration: :class:`IDCConfig` (defaults: the published CIFAR-10 settings), the presets of its
``--reproduce``, a config built from a ``key=value`` spec, and the checks made before a run starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yoco import protocol
from yoco.augment import parse_strategy
from yoco.data.condensed import (
    bound_plan,
    factor_problem,
)
from yoco.errors import YocoError
from yoco.models import model_names

if TYPE_CHECKING:
    from yoco.data.datasets import RealDataset


INITS = ("mix", "real", "noise")
METRICS = ("mse", "l1")
DECODES = ("auto", "single", "bound")
ENGINES = ("auto", "batched", "sequential")
GPU_NET_GROUP = 8  # outer iterations whose networks train side by side on a GPU by default (net_group)
CHECKPOINT_VERSION = "2"
# Fields that change how long a run goes, how it reports or how it computes the same numbers, never its
# trajectory: a resumed run may differ here.
# How a run is carried out, not what it makes (a finished set is the same set under any of them).
RUNTIME_FIELDS = ("checkpoint_every", "eval_every", "engine")
RESUMABLE_FIELDS = ("iterations", *RUNTIME_FIELDS, "precision")
# Fields added after checkpoints existed, at the values every earlier run had: a checkpoint's identity leaves them
# out there, so an older checkpoint still resumes.
LEGACY_VALUES = {"decode": "single", "net_mix_p": protocol.MIX_P}


@dataclass
class IDCConfig:
    """IDC hyper-parameters; defaults are the published CIFAR-10 settings (IDC's ``--reproduce``).

    ``lr_img`` is IDC's base rate: with ``scale_lr_img`` it is multiplied by ``(ipc / 10) * (size / base)**2``
    as IDC's argument.py does (base 32 px, 28 for MNIST, 224 for ImageNet). ``match_dsa`` augments the matched
    batches (one draw per class); the network update between inner steps uses it per sample, without cutout
    when ``net_mix`` is CutMix. ``net_images`` real images (rounded up to whole batches of ``batch_real``) are
    trained on after every inner step; ``net_pretrain_epochs`` full passes precede matching on each new network
    (IDC uses 10 for ImageNet-10). ``init="mix"`` tiles the *first* ``ipc * factor**2`` real images of each
    class, downsampled nearest-neighbour (IDC); ``init_random=True`` takes random images instead, downsampled
    by area averaging (a seed then changes the start). ``precision`` is the arithmetic of the matching and of the
    network updates (:func:`yoco.runtime.precision_scope`); a checkpoint resumes under another one.

    ``net_mix_p`` is the probability of CutMix in that network training (IDC: 0.5 for CIFAR-like data, 1.0 for
    ImageNet). ``decode`` is the multi-formation of the matched synthetic batches: ``single`` (every stored image
    at the full factor), ``bound`` (IDC's ``decode_zoom_bound``: at most ``batch_syn`` decoded images per class,
    the first stored images at the full factor, the rest at smaller ones) or ``auto`` (IDC's presets: ``bound``
    for ImageNet with factor >= 3 at IPC >= 20).
    """

    ipc: int = 10
    factor: int = protocol.IDC_BASE["factor"]
    iterations: int = protocol.IDC_BASE["iterations"]
    inner: int = protocol.IDC_BASE["inner"]
    batch_real: int = protocol.IDC_BASE["batch_real"]
    batch_syn: int = protocol.IDC_BASE["batch_syn"]
    lr_img: float = protocol.IDC_BASE["lr_img"]
    mom_img: float = protocol.IDC_BASE["mom_img"]
    scale_lr_img: bool = True
    metric: str = protocol.IDC_BASE["metric"]
    match_dsa: str = protocol.IDC_BASE["match_dsa"]
    net_images: int = protocol.IDC_BASE["net_images"]
    net_epochs: int = protocol.IDC_BASE["net_epochs"]
    net_lr: float = protocol.IDC_BASE["net_lr"]
    net_weight_decay: float = protocol.IDC_BASE["net_weight_decay"]
    net_mix: str = protocol.IDC_BASE["net_mix"]
    net_mix_p: float = protocol.IDC_BASE["net_mix_p"]
    net_pretrain_epochs: int = protocol.IDC_BASE["net_pretrain_epochs"]
    model: str = protocol.IDC_BASE["model"]
    width: int = protocol.IDC_BASE["width"]
    init: str = protocol.IDC_BASE["init"]
    init_random: bool = False
    decode: str = "auto"
    engine: str = "auto"
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 0
    precision: str = protocol.PRECISION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved(self, dataset: str) -> IDCConfig:
        """This config with ``decode="auto"`` replaced by what IDC's presets use on ``dataset``."""
        if self.decode != "auto":
            return self
        return dataclasses.replace(self, decode=protocol.idc_decode(dataset, self.factor, self.ipc))

    def decoded_per_class(self) -> int:
        """Decoded synthetic images of one class before the matching subsamples ``batch_syn`` of them."""
        if self.decode == "bound":
            return sum(k * k * n for k, n in bound_plan(self.ipc, self.factor, self.batch_syn))
        return self.ipc * self.factor**2

    def effective_lr_img(self, dataset: str, size: int) -> float:
        """The image learning rate actually used on ``dataset`` at ``size`` px."""
        return self.lr_img * (protocol.idc_lr_scale(dataset, self.ipc, size) if self.scale_lr_img else 1.0)


def quick(cfg: IDCConfig) -> IDCConfig:
    """A CPU-sized version of ``cfg`` for smoke runs: far fewer iterations, smaller batches and network."""
    return dataclasses.replace(cfg, iterations=10, inner=5, batch_real=32, batch_syn=64, net_images=256,
                               width=32, net_pretrain_epochs=0, checkpoint_every=5)


PRESETS: dict[str, IDCConfig] = {
    "idc": IDCConfig(**protocol.idc_preset("cifar10")),
    **{name: IDCConfig(**protocol.idc_preset(name)) for name in protocol.IDC_PRESETS},
    "cpu-quick": quick(IDCConfig(**protocol.idc_preset("cifar10"))),
}


def preset_for(dataset: str) -> IDCConfig:
    """The preset named after ``dataset``, or the published CIFAR-10 settings for any other dataset."""
    return PRESETS.get(dataset, PRESETS["idc"])


def split_spec(spec: str) -> dict[str, str]:
    """``"ipc=10, iterations=200"`` -> ``{"ipc": "10", "iterations": "200"}`` (dashes in keys read as underscores)."""
    pairs: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise YocoError(f"condense spec {spec!r}: expected key=value items, got {item!r}")
        pairs[key.strip().replace("-", "_")] = value.strip()
    return pairs


def config_from_spec(dataset: str, spec: str | dict[str, str],
                     resolve: Callable[..., IDCConfig] | None = None) -> IDCConfig:
    """Build a config from ``"ipc=10,iterations=200,preset=cpu-quick"`` (what ``--condense`` takes) or its
    :func:`split_spec` pairs.

    The base is ``resolve(dataset, preset)`` (default :func:`resolve_config`: the dataset's preset; ``preset=NAME``
    picks another one, except ``preset=cpu-quick``, which shrinks the dataset's own preset with :func:`quick`).
    Other keys override single fields.
    """
    pairs = dict(split_spec(spec) if isinstance(spec, str) else spec)
    base = (resolve or resolve_config)(dataset, pairs.pop("preset", None))
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    overrides: dict[str, Any] = {}
    for key, value in pairs.items():
        if key not in fields:
            raise YocoError(f"condense spec: unknown field {key!r}; known: method, preset, {', '.join(fields)}")
        overrides[key] = parse_value(key, value, type(fields[key]))
    return dataclasses.replace(base, **overrides)


def resolve_config(dataset: str, preset: str | None = None, **overrides: Any) -> IDCConfig:
    """The IDC config for ``dataset``: its published preset (or ``preset``; ``cpu-quick`` shrinks the dataset's own
    preset with :func:`quick`), then ``overrides`` of single fields."""
    if preset in (None, "idc"):
        base = preset_for(dataset)
    elif preset == "cpu-quick":
        base = quick(preset_for(dataset))
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise YocoError(f"unknown IDC preset {preset!r}; known: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(IDCConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise YocoError(f"unknown IDC setting(s) {unknown}; known: {', '.join(sorted(fields))}")
    return dataclasses.replace(base, **overrides)


def parse_value(key: str, value: str, kind: type) -> Any:
    """A spec's text ``value`` for ``key`` as ``kind`` (bool, int, float or str), or a one-line error."""
    if kind is bool:
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise YocoError(f"condense spec: {key} must be true or false, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    try:
        return kind(value)
    except ValueError:
        raise YocoError(f"condense spec: {key} must be {kind.__name__}, got {value!r}") from None


def check_config(cfg: IDCConfig, real: RealDataset) -> None:
    """Refuse settings that cannot run on ``real`` before any work or file is made."""
    counts = [len(idx) for idx in real.class_indices("train")]
    h, w = _hw(real)
    positive = ("ipc", "factor", "iterations", "inner", "batch_real", "batch_syn", "net_images", "net_epochs",
                "width")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise YocoError(f"IDC: {name} must be at least 1, got {getattr(cfg, name)}")
    for name in ("checkpoint_every", "eval_every", "net_pretrain_epochs"):
        if getattr(cfg, name) < 0:
            raise YocoError(f"IDC: {name} must be 0 (off) or more, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.mom_img < 1.0:
        raise YocoError(f"IDC: mom_img must be in [0, 1), got {cfg.mom_img}")
    problem = factor_problem(h, w, cfg.factor)
    if problem:
        raise YocoError(f"IDC on {real.name}: {problem}")
    if not 0.0 <= cfg.net_mix_p <= 1.0:
        raise YocoError(f"IDC: net_mix_p must be a probability, got {cfg.net_mix_p}")
    need = cfg.ipc * (cfg.factor**2 if cfg.init == "mix" else 1)
    if need > min(counts):
        c = counts.index(min(counts))
        raise YocoError(f"IDC: ipc {cfg.ipc} needs {need} real images per class to initialise, but class {c} of "
                        f"{real.name} has {counts[c]}")
    choices = {"init": INITS, "metric": METRICS, "engine": ENGINES, "net_mix": ("cutmix", "mixup", "none"),
               "decode": DECODES, "precision": protocol.PRECISIONS}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise YocoError(f"IDC: unknown {name} {getattr(cfg, name)!r}; choose {', '.join(allowed)}")
    if cfg.model not in model_names():
        raise YocoError(f"IDC: unknown model {cfg.model!r}; known: {', '.join(model_names())}")
    parse_strategy(cfg.match_dsa)


def _hw(real: RealDataset) -> tuple[int, int]:
    size = real.image_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
