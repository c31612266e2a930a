"""The paper's numbers (from ../shared/PAPER.md), in the one table the report compares against.

A trick's delta is the error of the model with the trick turned OFF minus the full model's, in
percentage points: positive means the trick helps, as the paper claims for every one it numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

RELU_TARGET = 25.0  # Figure 1: epochs until the training error is below 25%
RELU_SPEEDUP = 6.0  # "six times faster": roughly 6 epochs (ReLU) vs 36 (tanh)


@dataclass(frozen=True)
class Claim:
    label: str  # the trick, as a reader names it
    top1: float | None  # paper's delta in top-1 error (points); None = no number
    top5: float | None
    claim: str  # the paper's words, briefly
    source: str  # where the number was measured


_IMAGENET = {
    "model.lrn": Claim("local response normalisation", 1.4, 1.2, "top-1/top-5 -1.4/-1.2 with LRN", "ImageNet"),
    "model.pool": Claim("overlapping pooling", 0.4, 0.3, "top-1/top-5 -0.4/-0.3 with 3/2 pools", "ImageNet"),
    "model.towers": Claim("two towers", 1.7, 1.2, "two-GPU net vs one-GPU half-kernel net: -1.7/-1.2", "ImageNet"),
    "data.pca_jitter": Claim("PCA colour jitter", 1.0, None, "top-1 -1% or more", "ImageNet"),
    "model.depth": Claim("depth", 2.0, None, "removing any middle conv layer: top-1 about +2%", "ImageNet"),
    "model.dropout": Claim("dropout", None, None, "without it substantial overfitting; with it about 2x the "
                                                  "iterations to converge (no error number)", "ImageNet"),
    "model.activation": Claim("ReLU (vs tanh)", None, None, "ReLU reaches 25% training error ~6x faster "
                                                            "(Figure 1; no error number)", "CIFAR-10"),
    "data.test_crops": Claim("10-crop testing", 1.5, 1.3, "ILSVRC-2010 39.0/18.3 one crop vs 37.5/17.0 ten", "ImageNet"),
}

# Where the paper also gives a CIFAR-10 number, it is the closer comparison for the CIFAR grids.
_CIFAR = {
    "model.lrn": Claim("local response normalisation", 2.0, None, "13% -> 11% test error with LRN "
                       "(cuda-convnet conv-local-11pct net)", "CIFAR-10"),
}


def claim(key: str, dataset: str) -> Claim | None:
    """The paper's claim for a switch, preferring a number measured on the same data set."""
    if dataset == "cifar10" and key in _CIFAR:
        return _CIFAR[key]
    return _IMAGENET.get(key)
