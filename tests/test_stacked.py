"""N networks as one computation (yoco.models.stacked): grouped convolutions must be each network's own forward
pass, gradients included, and whatever they cannot take must fall back to vmap."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import grad, stack_module_state

from yoco.models import create_model
from yoco.models.stacked import groupable, stacked_forward
from yoco.runtime import seeded

CONVNETS = [
    ("convnet3", 1, 28, {"width": 8}),  # IDC's network on 28x28 input: first conv padded by 3
    ("convnet3", 3, 32, {"width": 8}),
    ("convnet", 3, 16, {"width": 6, "depth": 2, "norm": "none", "pooling": "max"}),
    ("convnet", 1, 12, {"width": 4, "depth": 2, "pooling": "none"}),
]


def _nets(name: str, channels: int, size: int, kw: dict, n: int = 3) -> list[torch.nn.Module]:
    nets = []
    for s in range(n):
        with seeded(s):
            nets.append(create_model(name, 5, channels, size, **kw))
    return nets


def _stacked(nets: list[torch.nn.Module]) -> dict[str, torch.Tensor]:
    params, _ = stack_module_state(nets)
    return {k: v.detach() for k, v in params.items()}


@pytest.mark.parametrize("name,channels,size,kw", CONVNETS)
def test_grouped_convnets_are_each_networks_own_forward_and_gradient(name, channels, size, kw):
    nets = _nets(name, channels, size, kw)
    assert groupable(nets[0])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, channels, size, size, generator=g)
    y = torch.randint(0, 5, (3, 7), generator=g)
    params = _stacked(nets)
    out = stacked_forward(nets[0], training=True)(params, x)
    assert out.shape == (3, 7, 5)
    # built once per architecture and mode (it holds no weights): another network of the same shape reuses it
    assert stacked_forward(nets[1], training=True) is stacked_forward(nets[0], training=True)
    assert stacked_forward(nets[0], training=False) is not stacked_forward(nets[0], training=True)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(x[i]), atol=1e-5, rtol=1e-5)

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        o = stacked_forward(nets[0], training=True)(p, x)
        return F.cross_entropy(o.flatten(0, 1), y.flatten(), reduction="sum")

    grads = grad(loss)(params)
    for i, net in enumerate(nets):
        F.cross_entropy(net(x[i]), y[i], reduction="sum").backward()
        for k, p in net.named_parameters():
            torch.testing.assert_close(grads[k][i], p.grad, atol=1e-4, rtol=1e-4, msg=f"network {i}, {k}")


@pytest.mark.parametrize("name,channels,size,kw", CONVNETS[:3])
def test_shared_images_give_every_network_its_own_logits(name, channels, size, kw):
    nets = _nets(name, channels, size, kw, n=4)
    x = torch.randn(9, channels, size, size, generator=torch.Generator().manual_seed(1))
    out = stacked_forward(nets[0], training=False, shared_input=True)(_stacked(nets), x)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(x), atol=1e-5, rtol=1e-5)


def test_architectures_without_a_grouped_form_fall_back_to_vmap():
    # instance-norm ResNet-AP-10 has no buffers (it trains batched) but is not a ConvNet: vmap runs it
    nets = []
    for s in range(2):
        with seeded(s):
            nets.append(create_model("resnet10_ap", 4, 3, 16, width=4))
    assert not groupable(nets[0])
    x = torch.randn(2, 5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    out = stacked_forward(nets[0], training=True)(_stacked(nets), x)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(x[i]), atol=1e-5, rtol=1e-5)
    shared = stacked_forward(nets[0], training=False, shared_input=True)(_stacked(nets), x[0])
    for i, net in enumerate(nets):
        torch.testing.assert_close(shared[i], net.eval()(x[0]), atol=1e-5, rtol=1e-5)


def test_a_convnet_with_an_unknown_layer_is_not_grouped():
    net = create_model("convnet", 4, 1, 12, width=4, depth=2)
    net.body[2] = torch.nn.GELU()  # a layer the grouped form does not know: it must not guess
    assert not groupable(net)

    class Scaled(torch.nn.Conv2d):  # a subclass may compute something else than its parent
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    net = create_model("convnet", 4, 1, 12, width=4, depth=2)
    old = net.body[0]
    net.body[0] = Scaled(old.in_channels, old.out_channels, 3, padding=old.padding)
    assert not groupable(net)
