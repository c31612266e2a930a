"""Model factory: a ModelConfig and a class count in, an nn.Module out."""

from __future__ import annotations

from torch import nn

from harness.config import ModelConfig
from harness.models.alexnet import CIFAR, IMAGENET, AlexNet
from harness.models.convnet4 import ConvNet4


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    if cfg.name == "alexnet":
        return AlexNet(cfg, num_classes, IMAGENET)
    if cfg.name == "alexnet_cifar":
        return AlexNet(cfg, num_classes, CIFAR)
    return ConvNet4(cfg, num_classes)  # convnet4, convnet80sec


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
