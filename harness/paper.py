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


@dataclass(frozen=True)
class Later:
    """A later study's measurement of the same switch, in the same sign convention as `Claim.top1`:
    top-1 error with the trick off minus with it on, in points (accuracies converted: 0.471 -> 52.9%)."""
    top1: float | None  # None: the study measured a neighbouring contrast, not this switch's
    words: str  # what was measured, in the study's own terms
    cite: str  # short, for a table cell
    source: str  # where to find it


_VGG = ("VGG 2014", "Simonyan & Zisserman 2014, Very Deep Convolutional Networks, Table 3: ImageNet")
_MISHKIN = ("Mishkin 2016", "Mishkin, Sergievskiy & Matas 2016, Systematic Evaluation of CNN Advances on the "
                            "ImageNet: CaffeNet at 128 px")

# Later studies of the same tricks, so a reader sees whether a measured delta sides with 2012 or
# with what came after. Mishkin et al. change one thing at a time from CaffeNet (Caffe's AlexNet,
# grouped convolutions included) and report top-1 accuracy; their "plain" convolutions keep every
# kernel, where the paper's one-tower net (`model.towers=1`, `model.one_tower=half`) halves them.
_LATER = {
    "model.lrn": (Later(-0.1, "net A 29.6% top-1 error without LRN, 29.7% with", *_VGG),
                  Later(-0.1, "top-1 accuracy 0.471 without LRN, 0.470 with", *_MISHKIN)),
    "model.towers": (Later(-1.6, "plain convolutions 0.487, grouped (two towers) 0.471; their plain net keeps every "
                                   "kernel, where this switch's one-tower net (the paper's) halves them", *_MISHKIN),),
    "model.pool": (Later(-1.3, "2x2/2 max-pool 0.484, 3x3/2 (overlapping) 0.471", *_MISHKIN),),
    "model.activation": (Later(7.0, "tanh 0.401, ReLU 0.471", *_MISHKIN),),
    "model.dropout": (Later(None, "dropout 0.3 0.497, 0.5 0.471 (no run without dropout)", *_MISHKIN),),
}


def later(key: str) -> tuple[Later, ...]:
    """Later studies' measurements of a switch (none: no later study in this table measured it)."""
    return _LATER.get(key, ())


def claim(key: str, dataset: str) -> Claim | None:
    """The paper's claim for a switch, preferring a number measured on the same data set."""
    if dataset == "cifar10" and key in _CIFAR:
        return _CIFAR[key]
    return _IMAGENET.get(key)
