"""The paper's network (ImageNet, 227x227 input) and its CIFAR-10 sibling, from one width table.

`alexnet` is Table/Figure 2 of the paper: conv 96-256-384-384-256, FC 4096-4096-classes, 60,965,224
parameters for 1000 classes with two towers. Input is 227x227: conv1 (11x11, stride 4, no padding)
then gives 55x55 maps, and the three 3/2 max-pools give 27, 13 and 6, so fc6 sees 6x6x256 exactly
as tabled; the paper's "224" needs 3 pixels of padding for the same arithmetic.

`alexnet_cifar` keeps every kernel count, the FC widths and the order of activation, LRN, pooling
and dropout, and changes only what 32x32 input forces: conv1 is 5x5 stride 1 (cuda-convnet's CIFAR
stem; an 11x11 stride-4 filter would leave 6x6 maps after one layer) and the overlapping pools pad by
1 so that 3/2 and 2/2 pooling both give 16, 8 and 4 pixels. fc6 thus sees 4x4x256 = 4096 features.
At width 1.0 this is 35,910,026 parameters, 33.6M of them in fc6/fc7; `model.width` shrinks it for CPUs.

towers=2 groups conv2, conv4 and conv5 in two halves (each sees only its own tower; conv3 and the FC
layers see both), as in the paper's two-GPU net. towers=1 with one_tower=half is the paper's one-GPU
comparison net (half the kernels in conv1-conv4, conv5 and the FC layers full); one_tower=full is
the full-width dense net (torchvision-style, no groups).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.config import ALEXNET_CONV_KERNELS, ModelConfig, scaled
from harness.models.layers import (
    activation, conv, dropout, init_weights, lrn, pool, sequential, weighted_layers,
)

CONV_SHAPES = {"conv2": (5, 1, 2), "conv3": (3, 1, 1), "conv4": (3, 1, 1), "conv5": (3, 1, 1)}
GROUPED = {"conv2", "conv4", "conv5"}  # convs that see only their own tower
FOLLOWED_BY_LRN = {"conv1", "conv2"}
FOLLOWED_BY_POOL = {"conv1", "conv2", "conv5"}
FC_UNITS = 4096
UNIT_BIAS = {"conv2", "conv4", "conv5", "fc6", "fc7"}  # paper section 5: bias 1, others 0


@dataclass(frozen=True)
class Geometry:
    input_size: int
    conv1: tuple[int, int, int]  # kernel size, stride, padding
    pool_padding: int  # of the overlapping 3/2 pools
    final_size: int  # side of conv5's pooled maps


IMAGENET = Geometry(227, (11, 4, 0), 0, 6)
CIFAR = Geometry(32, (5, 1, 2), 1, 4)


def kernel_counts(cfg: ModelConfig) -> dict[str, int]:
    """Kernels per conv layer after towers, width and depth."""
    counts = dict(ALEXNET_CONV_KERNELS)
    if cfg.towers == 1 and cfg.one_tower == "half":
        counts = {n: k if n == "conv5" else k // 2 for n, k in counts.items()}
    counts = {n: scaled(k, cfg.width) for n, k in counts.items()}
    removed = {"no_conv3": "conv3", "no_conv4": "conv4"}.get(cfg.depth)
    counts.pop(removed, None)
    return counts


class AlexNet(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int, geometry: Geometry):
        super().__init__()
        self.input_size = geometry.input_size
        layers: list[tuple[str, nn.Module | None]] = []
        c_in = 3
        for name, c_out in kernel_counts(cfg).items():
            shape = geometry.conv1 if name == "conv1" else CONV_SHAPES[name]
            groups = 2 if cfg.towers == 2 and name in GROUPED else 1
            i = name[-1]
            layers += [(name, conv(c_in, c_out, *shape, groups=groups)),
                       (f"act{i}", activation(cfg.activation))]
            if name in FOLLOWED_BY_LRN:
                layers.append((f"lrn{i}", lrn(cfg.lrn)))
            if name in FOLLOWED_BY_POOL:
                layers.append((f"pool{i}", pool(cfg.pool, geometry.pool_padding)))
            c_in = c_out
        self.features = sequential(*layers)
        fc = scaled(FC_UNITS, cfg.width)
        self.classifier = sequential(
            ("fc6", nn.Linear(c_in * geometry.final_size**2, fc)),
            ("act6", activation(cfg.activation)),
            ("drop6", dropout(cfg.dropout)),
            ("fc7", nn.Linear(fc, fc)),
            ("act7", activation(cfg.activation)),
            ("drop7", dropout(cfg.dropout)),
            ("fc8", nn.Linear(fc, num_classes)),
        )
        named = weighted_layers(self)
        init_weights(cfg.init, named, {n: 0.01 for n in named}, UNIT_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
