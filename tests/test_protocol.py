"""The protocol's numbers, pinned to the upstream code they come from (docs/protocol.md cites file and line)."""

from __future__ import annotations

import torch

from yoco import protocol
from yoco.augment import ImageNetAug


def test_eval_epochs_table():
    # IDC argument.py ipc_epoch, keyed on decoded images per class; 2/3 for 100 classes, rounded to hundreds
    assert protocol.eval_epochs("cifar10", 1, 10) == 1000
    assert protocol.eval_epochs("fashion-mnist", 40, 10) == 1000
    table = {1: 3000, 10: 2000, 40: 1500, 200: 1000, 500: 500, 501: 300}
    for n, epochs in table.items():
        assert protocol.eval_epochs("imagenet10", n, 10) == epochs
    assert [protocol.eval_epochs("imagenet100", n, 100) for n in (10, 40, 200)] == [1300, 1000, 600]


def test_eval_models_and_augmentation():
    assert protocol.eval_model("fashion-mnist") == "convnet3" and protocol.eval_model("imagenet10") == "resnet10_ap"
    fm = protocol.augmentation("fashion-mnist")
    assert (fm["base_aug"], fm["dsa"], fm["mix_p"], fm["flip"]) == ("none", "color_crop_flip_scale_rotate", 0.5, True)
    assert protocol.augmentation("mnist")["flip"] is False and protocol.augmentation("svhn")["flip"] is False
    inet = protocol.augmentation("imagenet10")
    assert (inet["base_aug"], inet["dsa"], inet["mix_p"]) == ("imagenet", "none", 1.0)
    dyn = protocol.augmentation("imagenet10", "dynamics")  # YOCO keeps DSA and CutMix 0.5 for the dynamics
    assert (dyn["base_aug"], dyn["dsa"], dyn["mix_p"]) == ("imagenet", "color_crop_flip_scale_rotate", 0.5)
    assert protocol.EVAL_TEST_POINTS == 4


def test_normalisation_constants_are_idcs():
    assert protocol.NORMALIZATION["fashion-mnist"] == ((0.2861,), (0.3530,))
    assert protocol.NORMALIZATION["cifar100"] == protocol.NORMALIZATION["cifar10"]
    assert protocol.NORMALIZATION["cifar10"][1] == (0.2023, 0.1994, 0.2010)


def test_idc_presets_and_image_learning_rate():
    fm = protocol.idc_preset("fashion-mnist")
    assert (fm["metric"], fm["lr_img"], fm["net_images"], fm["match_dsa"]) == ("l1", 1e-4, 500, "color_crop_cutout")
    assert protocol.idc_preset("cifar10")["net_images"] == 2000 and protocol.idc_preset("cifar10")["metric"] == "mse"
    assert protocol.idc_preset("mnist")["match_dsa"] == "color_crop"
    assert protocol.idc_lr_scale("fashion-mnist", 10, 28) == 0.765625  # (28 / 32)^2: Fashion's base is 32
    assert protocol.idc_lr_scale("mnist", 10, 28) == 1.0
    assert protocol.idc_lr_scale("cifar10", 50, 32) == 5.0


def test_imagenet_augmentation_is_per_sample_and_keeps_shape():
    g = torch.Generator().manual_seed(0)
    mean, std = protocol.IMAGENET_MEAN, protocol.IMAGENET_STD
    x = torch.rand(8, 3, 32, 32, generator=g)
    z = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out = ImageNetAug(mean, std)(z.clone(), generator=torch.Generator().manual_seed(1))
    assert out.shape == z.shape and torch.isfinite(out).all()
    changes = (out - z).flatten(1).abs().mean(1)
    assert (changes > 1e-3).all() and len(set(changes.tolist())) == 8  # every image, differently
    again = ImageNetAug(mean, std)(z.clone(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    off = ImageNetAug(mean, std, scale=(1.0, 1.0), jitter=0.0, lighting=0.0, flip=False)
    assert torch.allclose(off(z.clone(), generator=g), z, atol=1e-4)  # nothing random left: identity


def test_paper_ladders_take_their_lbpe_window_from_the_method():
    from yoco.ladder import preset_config

    assert set(protocol.PAPER_LADDERS) >= {"cifar10-idc-ipc10", "cifar100-idc-ipc20", "imagenet10-idc-ipc10"}
    windows = {name: (cfg.lbpe_epochs, cfg.lbpe_top_k) for name in protocol.PAPER_LADDERS
               for cfg in [preset_config(name)]}
    assert windows["cifar10-idc-ipc10"] == (100, 10) and windows["cifar100-idc-ipc50"] == (200, 10)
    assert windows["cifar10-mtt-ipc10"] == (10, 3) and windows["cifar10-kip-ipc10"] == (50, 3)
    assert preset_config("cifar10-idc-ipc50").ipcs == (1, 2, 5, 10)


def test_the_documented_protocol_numbers_appear_in_code_only_in_protocol_py():
    """Every number docs/protocol.md lists lives in protocol.py: the distinctive ones (normalisation constants, DSA
    and ImageNet augmentation ranges, the lighting PCA, CCS's strata edge, the optimiser's weight decay) never appear
    as a literal in any other module's code (docstrings and comments may quote them)."""
    import ast
    from pathlib import Path

    import yoco
    from yoco import protocol

    documented = {v for mean, std in protocol.NORMALIZATION.values() for v in (*mean, *std)}
    documented |= {v for row in protocol.LIGHTING_EIGVEC for v in row} | set(protocol.LIGHTING_EIGVAL)
    documented |= {protocol.DSA_SCALE, protocol.DSA_ROTATE_DEG, protocol.DSA_CROP, protocol.CCS_TOP,
                   protocol.WEIGHT_DECAY}  # distinctive values only: 0.1 or 0.5 are everywhere for other reasons
    unrelated = {("report.py", 1.2)}  # a plot's line width
    found = []
    for path in sorted(Path(yoco.__file__).parent.rglob("*.py")):
        if path.name == "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value in documented
                    and (path.name, node.value) not in unrelated):
                found.append(f"{path.name}:{node.lineno}: {node.value}")
    assert not found, "protocol numbers outside protocol.py:\n" + "\n".join(found)


def test_protocol_settings_are_not_spelled_out_by_name_outside_protocol_py():
    """A setting passed or stored by its name (``width=128``, ``{"depth": 3}``, ``epochs=1000``, ``lr=0.01``) with
    the protocol's value written out is a copy of a protocol number: it must be read from protocol.py instead."""
    import ast
    from pathlib import Path

    import yoco
    from yoco import protocol

    named = {"width": protocol.CONVNET_WIDTH, "depth": protocol.CONVNET_DEPTH, "epochs": protocol.DYNAMICS_EPOCHS,
             "lr": protocol.LR, "momentum": protocol.MOMENTUM, "weight_decay": protocol.WEIGHT_DECAY}
    found = []
    for path in sorted(Path(yoco.__file__).parent.rglob("*.py")):
        if path.name == "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            pairs = []
            if isinstance(node, ast.keyword):
                pairs.append((node.arg, node.value))
            elif isinstance(node, ast.Dict):
                pairs += [(k.value, v) for k, v in zip(node.keys, node.values, strict=True)
                          if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            for name, value in pairs:
                if (name in named and isinstance(value, ast.Constant) and not isinstance(value.value, bool)
                        and value.value == named[name]):
                    found.append(f"{path.name}:{value.lineno}: {name}={value.value}")
    assert not found, "protocol settings written out outside protocol.py:\n" + "\n".join(found)
