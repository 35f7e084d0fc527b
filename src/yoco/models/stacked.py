"""N networks of one architecture evaluated as one computation over their stacked parameters.

Batched training (:func:`yoco.train.train_batched`) and batched test passes (:func:`yoco.predict.predict_many`)
need ``f(params, x) -> logits [N, B, K]`` where every entry of ``params`` is stacked over the N networks
(:func:`torch.func.stack_module_state`). The generic way is :func:`torch.func.vmap` over a weightless copy of the
model. For ConvNet, the network of every result in this field, the same function is written here with grouped
convolutions instead: the N networks' channels side by side (``[B, N*C, H, W]``), one convolution with
``groups=N``, one native group norm with N times the groups (instance norm per network, exactly), one batched
matrix product for the classifier. vmap computes the same convolutions but decomposes instance norm's backward into
about a hundred elementwise operations (``benchmarks/op_count.py``), and its convolution rule reads sizes as
constants, so a compiled step cannot serve another batch size; the grouped form has neither problem.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from yoco.models.convnet import ConvNet

StackedForward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]

_LAYERS = (nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.Identity)


_FORWARDS: dict[tuple[str, bool, bool], StackedForward] = {}


def stacked_forward(model: nn.Module, training: bool, shared_input: bool = False) -> StackedForward:
    """``f(params, x)``: the logits ``[N, B, K]`` of N networks shaped like ``model`` (stacked ``params``) on
    ``x`` (``[N, B, ...]``, one batch per network, or ``[B, ...]`` seen by all with ``shared_input``).

    Grouped convolutions where the architecture allows (:func:`groupable`), else ``vmap`` over the model; both are
    the N networks' own forward passes (tested equal to float tolerance, ``tests/test_stacked.py``). Built once per
    architecture and mode for the process (it holds no weights), since IDC's batched matching asks for it at every
    inner step and a test pass at every test point."""
    key = (repr(model), training, shared_input)
    if key not in _FORWARDS:
        _FORWARDS[key] = _build(model, training, shared_input)
    return _FORWARDS[key]


def _build(model: nn.Module, training: bool, shared_input: bool) -> StackedForward:
    template = copy.deepcopy(model).to("meta").train(training)  # the architecture only, not the weights
    if groupable(model):
        return lambda params, x: _grouped(template, params, x, shared_input)
    from torch.func import functional_call, vmap

    return vmap(lambda p, x: functional_call(template, p, (x,)), in_dims=(0, None if shared_input else 0))


def groupable(model: nn.Module) -> bool:
    """Whether :func:`stacked_forward` can use grouped convolutions: a :class:`ConvNet` whose layers it knows
    (convolutions without groups or padding modes, group/instance norm, ReLU, pooling)."""
    if type(model) is not ConvNet or type(model.classifier) is not nn.Linear:
        return False
    if len(model.body) == 0 or type(model.body[0]) is not nn.Conv2d:  # the channels are per network after it
        return False
    for m in model.body:
        if type(m) not in _LAYERS:  # exact types: a subclass may change what its forward computes
            return False
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            return False
    return True


def _grouped(model: ConvNet, params: dict[str, torch.Tensor], x: torch.Tensor, shared: bool) -> torch.Tensor:
    """ConvNet's forward for N stacked networks with their channels side by side (see the module's docstring)."""
    n = params["classifier.weight"].shape[0]
    if shared:  # every network sees the same images: the first convolution is one ordinary convolution
        b, h, first = x.shape[0], x, True
    else:
        b, h, first = x.shape[1], x.transpose(0, 1).flatten(1, 2), False
    for name, m in model.body.named_children():
        if isinstance(m, nn.Conv2d):
            w, bias = params[f"body.{name}.weight"], params.get(f"body.{name}.bias")
            h = F.conv2d(h, w.flatten(0, 1), None if bias is None else bias.flatten(), m.stride, m.padding,
                         m.dilation, groups=1 if first else n)
            first = False
        elif isinstance(m, nn.GroupNorm):
            w, bias = params.get(f"body.{name}.weight"), params.get(f"body.{name}.bias")
            h = F.group_norm(h, n * m.num_groups, None if w is None else w.flatten(),
                             None if bias is None else bias.flatten(), m.eps)
        else:
            h = m(h)
    features = h.reshape(b, n, -1).transpose(0, 1)  # [N, B, D]: each network's flattened [C, h, w]
    w, bias = params["classifier.weight"], params.get("classifier.bias")
    if bias is None:
        return torch.bmm(features, w.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), features, w.transpose(1, 2))


def batchable(model: nn.Module) -> bool:
    """Whether ``model`` can be trained batched with others: no buffers (batch norm's running statistics)."""
    return not any(True for _ in model.buffers())
