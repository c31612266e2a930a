"""One factory per paper switch. A switch that is off returns None and adds no module, so a
printed model shows exactly the layers that run."""

from __future__ import annotations

import torch
from torch import nn

# Paper section 3.3: k=2, n=5, alpha=1e-4, beta=0.75. PyTorch divides alpha by n, as the
# authors' code and Caffe do (the printed formula omits the /n).
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


def activation(name: str) -> nn.Module:
    return {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}[name]()


def lrn(enabled: bool) -> nn.Module | None:
    return nn.LocalResponseNorm(LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K) if enabled else None


def pool(kind: str, overlap_padding: int, avg: bool = False) -> nn.Module:
    """'overlap' is z=3, s=2 (paper section 3.4); 'plain' is z=2, s=2. `overlap_padding` keeps
    the two at the same output size (0 on 55/27/13-pixel maps, 1 on CIFAR's even sizes)."""
    size, padding = (3, overlap_padding) if kind == "overlap" else (2, 0)
    if avg:
        return nn.AvgPool2d(size, 2, padding, count_include_pad=False)
    return nn.MaxPool2d(size, 2, padding)


def dropout(p: float) -> nn.Module | None:
    return nn.Dropout(p) if p > 0 else None


def conv(c_in: int, c_out: int, size: int, stride: int, padding: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, size, stride, padding, groups=groups)


def paper_init(named: dict[str, nn.Module], std: dict[str, float], unit_bias: set[str]) -> None:
    """Weights from N(0, std[name]); biases 1 for the layers in `unit_bias`, else 0 (section 5)."""
    with torch.no_grad():
        for name, layer in named.items():
            layer.weight.normal_(0.0, std[name])
            layer.bias.fill_(1.0 if name in unit_bias else 0.0)


def sequential(*named: tuple[str, nn.Module | None]) -> nn.Sequential:
    """nn.Sequential from (name, module) pairs, leaving out switches that are off (None)."""
    seq = nn.Sequential()
    for name, module in named:
        if module is not None:
            seq.add_module(name, module)
    return seq


def weighted_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n.split(".")[-1]: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
