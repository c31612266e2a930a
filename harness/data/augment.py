"""Batched image transforms on whatever device holds the batch: crops, mirrors, PCA colour
jitter, normalisation and 10-crop views. Images arrive as uint8 NCHW; there is no per-image
Python work (airbench's approach).

PCA colour jitter (paper section 4.1): for each image, each time it is seen, add
sum_i p_i * alpha_i * lambda_i to every pixel, alpha_i ~ N(0, sigma), where p_i, lambda_i are the
eigenvectors and eigenvalues of the 3x3 RGB covariance of the training pixels. The formula adds
a variance to a value, so its size depends on the pixel scale: we fit on pixels in [0, 1], the
scale of the widely used ImageNet constants (eigenvalues 0.2175, 0.0188, 0.0045), and add the
result times 255 to 0-255 pixels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PixelStats:
    """Per-channel statistics of the training pixels; cached beside the decoded data."""

    mean: tuple[float, float, float]  # 0-255 scale
    std: tuple[float, float, float]  # 0-255 scale
    eigvals: tuple[float, float, float]  # of the [0, 1]-scale covariance, descending
    eigvecs: tuple[tuple[float, ...], ...]  # 3x3, column i is the eigenvector of eigvals[i]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "PixelStats":
        return cls(**{k: tuple(tuple(r) if isinstance(r, list) else r for r in v) for k, v in values.items()})


def fit_pixel_stats(images: torch.Tensor, chunk: int = 4096) -> PixelStats:
    """Mean, std and RGB covariance eigen-decomposition over every pixel of uint8 NCHW images."""
    total = torch.zeros(3, dtype=torch.float64)
    outer = torch.zeros(3, 3, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        pixels = images[start:start + chunk].permute(1, 0, 2, 3).reshape(3, -1).double() / 255
        total += pixels.sum(1)
        outer += pixels @ pixels.T
        count += pixels.shape[1]
    mean = total / count
    cov = outer / count - torch.outer(mean, mean)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    order = eigvals.argsort(descending=True)
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    return PixelStats(
        mean=tuple((mean * 255).tolist()),
        std=tuple((cov.diagonal().sqrt() * 255).tolist()),
        eigvals=tuple(eigvals.tolist()),
        eigvecs=tuple(tuple(row) for row in eigvecs.tolist()),
    )


def load_or_fit(file: Path, fit: Callable[[], PixelStats]) -> PixelStats:
    """The statistics saved in `file`, else `fit()`'s, saved there for the next run (written beside
    it and renamed, so a concurrent run never reads half a file)."""
    if file.is_file():
        return PixelStats.from_json(json.loads(file.read_text()))
    stats = fit()
    file.parent.mkdir(parents=True, exist_ok=True)
    staging = file.with_suffix(f".{os.getpid()}.tmp")
    staging.write_text(json.dumps(stats.to_json()))
    os.replace(staging, file)
    return stats


def random_crop(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by `pad` and cut a random window of the original size from each image."""
    if pad == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=images.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(images: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def pca_jitter(images: torch.Tensor, stats: PixelStats, sigma: float) -> torch.Tensor:
    """Add the paper's colour noise to float 0-255 images, one alpha draw per image."""
    eigvals = torch.tensor(stats.eigvals, device=images.device, dtype=images.dtype)
    eigvecs = torch.tensor(stats.eigvecs, device=images.device, dtype=images.dtype)
    alpha = torch.randn(len(images), 3, device=images.device, dtype=images.dtype) * sigma
    shift = (alpha * eigvals) @ eigvecs.T * 255  # row b: sum_i p_i * alpha_bi * lambda_i
    return images + shift[:, :, None, None]


def normalize(images: torch.Tensor, stats: PixelStats, mode: str) -> torch.Tensor:
    """'paper': subtract the channel mean, keep the 0-255 scale the paper's N(0, 0.01)
    initialisation was tuned for; 'standard': also divide by the channel std."""
    mean = torch.tensor(stats.mean, device=images.device, dtype=images.dtype)[:, None, None]
    images = images - mean
    if mode == "standard":
        images = images / torch.tensor(stats.std, device=images.device, dtype=images.dtype)[:, None, None]
    return images


def ten_crops(images: torch.Tensor, pad: int) -> torch.Tensor:
    """N x 10 x C x H x W: the 4 corner and the centre windows of the padded images, and their
    mirrors (the paper's test-time views, at CIFAR's scale of translation)."""
    _, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = [(0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad), (pad, pad)]
    views = [padded[:, :, y:y + h, x:x + w] for y, x in offsets]
    views += [v.flip(3) for v in views]
    return torch.stack(views, 1)


@dataclass(frozen=True)
class BatchTransform:
    """What happens to a uint8 batch on the training device. `pad` is None where crops were
    already cut per image (the ImageNet loader)."""

    stats: PixelStats
    normalize: str
    augment: bool
    pca_sigma: float
    pad: int | None = None
    test_crops: int = 1

    def train(self, images: torch.Tensor) -> torch.Tensor:
        if self.augment and self.pad is not None:
            images = random_flip(random_crop(images, self.pad))
        images = images.float()
        if self.pca_sigma > 0:
            images = pca_jitter(images, self.stats, self.pca_sigma)
        return normalize(images, self.stats, self.normalize)

    def evaluate(self, images: torch.Tensor, views: bool = False) -> torch.Tensor:
        """`views`: return N x 10 x C x H x W test crops (CIFAR cuts them here)."""
        if views and self.test_crops == 10 and self.pad is not None:
            images = ten_crops(images, self.pad)
        shape = images.shape
        flat = normalize(images.reshape(-1, *shape[-3:]).float(), self.stats, self.normalize)
        return flat.reshape(shape)
