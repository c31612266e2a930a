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
    return LocalResponseNorm() if enabled else None


class LocalResponseNorm(nn.Module):
    """The values of `torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2)` at a fraction of its cost.

    b_c = a_c * d_c^-beta with d_c = k + alpha/n * sum of a_j^2 over channels j in c-2..c+2. Torch
    builds the window sum from a padded 5-D copy and avg_pool3d, and autograd differentiates through
    that and through pow; here the window sum is one matrix product with a banded 0/1 matrix over
    the channels, and the backward is written out:
    dL/da_c = g_c d_c^-beta - 2 alpha/n beta a_c * sum over the window of g_j a_j d_j^(-beta-1),
    one more window sum and no second power."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LRN.apply(x)

    def extra_repr(self) -> str:
        return f"{LRN_SIZE}, alpha={LRN_ALPHA}, beta={LRN_BETA}, k={LRN_K}"


def _window_sum(v: torch.Tensor, scale: float) -> torch.Tensor:
    """scale * the sum of the LRN_SIZE channels centred on each channel (zero beyond the ends), in
    v's memory format. NHWC: a (pixels x C) by (C x C) banded matrix product; measured on a 2-core
    EPYC, a third faster than the same band as a 1x1 convolution through oneDNN."""
    c = v.shape[1]
    i = torch.arange(c, device=v.device)
    band = (((i[:, None] - i[None, :]).abs() <= LRN_SIZE // 2) * scale).to(v.dtype)
    if v.dim() == 4 and not v.is_contiguous() and v.is_contiguous(memory_format=torch.channels_last):
        n, _, h, w = v.shape
        return (v.permute(0, 2, 3, 1).reshape(-1, c) @ band).view(n, h, w, c).permute(0, 3, 1, 2)
    return nn.functional.conv2d(v, band[:, :, None, None])


def _power_minus_three_quarters(d: torch.Tensor) -> torch.Tensor:
    """d^-0.75 as rsqrt(d) * sqrt(rsqrt(d)): torch's CPU pow with a fractional exponent ran 3-5x
    slower per element than rsqrt and sqrt together (measured here; both vectorised)."""
    r = d.rsqrt()
    return r.mul_(r.sqrt())


assert LRN_BETA == 0.75, "_power_minus_three_quarters is d^-beta for beta = 0.75 only"


class _LRN(torch.autograd.Function):
    """Each pass over the activations costs about as much as the window sum itself, so there are
    few: k is added in place, and the backward reuses d^-beta."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        d = _window_sum(x * x, LRN_ALPHA / LRN_SIZE).add_(LRN_K)  # k + alpha/n * window sum
        t = _power_minus_three_quarters(d)
        ctx.save_for_backward(x, d, t)
        return x * t

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        x, d, t = ctx.saved_tensors
        gt = g * t
        w = _window_sum(gt * x / d, 2 * LRN_ALPHA / LRN_SIZE * LRN_BETA)
        return torch.addcmul(gt, x, w, value=-1)


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


def init_weights(kind: str, named: dict[str, nn.Module], paper_std: dict[str, float], unit_bias: set[str]) -> None:
    """model.init. 'paper' (section 5): weights from N(0, paper_std[name]), biases 1 for the layers
    in `unit_bias`, else 0. 'kaiming' (He et al. 2015): N(0, 2 / fan_in), zero biases, which keeps
    the activations' scale through a deep ReLU stack; torch's default draws with a sixth of that
    variance (1 / (3 fan_in)), so the signal shrinks layer by layer. 'pytorch': as torch made them."""
    with torch.no_grad():
        for name, layer in named.items():
            if kind == "paper":
                layer.weight.normal_(0.0, paper_std[name])
                layer.bias.fill_(1.0 if name in unit_bias else 0.0)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                layer.bias.zero_()


def sequential(*named: tuple[str, nn.Module | None]) -> nn.Sequential:
    """nn.Sequential from (name, module) pairs, leaving out switches that are off (None)."""
    seq = nn.Sequential()
    for name, module in named:
        if module is not None:
            seq.add_module(name, module)
    return seq


def weighted_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n.split(".")[-1]: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
