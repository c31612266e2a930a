"""Data for a run: `load_data(DataConfig) -> Data`, the loaders plus the batch transform that the
training module applies on its device. Reads and verifies everything before returning, so a bad
source fails before any run is recorded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.config import DataConfig, cache_dir, source_path
from harness.data.augment import BatchTransform
from harness.data.sources import DataError, verified_checksum

__all__ = ["Data", "DataError", "TensorBatches", "load_data"]


class TensorBatches:
    """Mini-batches of uint8 images held in one tensor (on the training device once `to` is
    called); shuffled with the global torch RNG, which the run's seed fixes."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, shuffle: bool):
        self.images, self.labels, self.batch_size, self.shuffle = images, labels, batch_size, shuffle

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        order = torch.randperm(n, device=self.images.device) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.images[idx], self.labels[idx]

    def to(self, device: torch.device) -> None:
        self.images, self.labels = self.images.to(device), self.labels.to(device)


@dataclass
class Data:
    name: str
    source: Path
    checksum: str  # sha256 of the source (see sources.sha256)
    classes: list[str]
    transform: BatchTransform
    train: Iterable
    val: Iterable | None
    test: Iterable
    sizes: dict[str, int] = field(default_factory=dict)  # images per split

    def to(self, device: torch.device) -> None:
        """Move in-memory data sets to the training device (a no-op for worker-fed loaders)."""
        for loader in (self.train, self.val, self.test):
            if isinstance(loader, TensorBatches):
                loader.to(device)


def split(n: int, cfg: DataConfig, where: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), fixed by data.split_seed alone."""
    if cfg.val_size >= n:
        raise DataError(where, f"data.val_size={cfg.val_size} leaves no training images out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    train, val = perm[cfg.val_size:], perm[:cfg.val_size]
    return (train[:cfg.train_subset] if cfg.train_subset else train), val


def test_subset(n: int, cfg: DataConfig) -> torch.Tensor:
    if not cfg.test_subset:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))[:cfg.test_subset]


def _cifar(cfg: DataConfig, path: Path, checksum: str) -> Data:
    from harness.data.cifar import load_cached

    arrays, stats = load_cached(path, checksum, cache_dir(cfg))
    train_x, train_y = torch.from_numpy(arrays.train_x), torch.from_numpy(arrays.train_y)
    train_idx, val_idx = split(len(train_x), cfg, path)
    test_idx = test_subset(len(arrays.test_x), cfg)
    test_x, test_y = torch.from_numpy(arrays.test_x)[test_idx], torch.from_numpy(arrays.test_y)[test_idx]

    def batches(x, y, shuffle):
        return TensorBatches(x.contiguous(), y.contiguous(), cfg.batch_size, shuffle)

    transform = BatchTransform(stats, cfg.normalize, cfg.augment, cfg.pca_jitter, cfg.cifar_pad, cfg.test_crops)
    return Data(
        name="cifar10", source=path, checksum=checksum, classes=arrays.classes, transform=transform,
        train=batches(train_x[train_idx], train_y[train_idx], True),
        val=batches(train_x[val_idx], train_y[val_idx], False) if len(val_idx) else None,
        test=batches(test_x, test_y, False),
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
    )


def _imagenet(cfg: DataConfig, path: Path, checksum: str) -> Data:
    from harness.data import imagenet as inet

    train_tree, val_tree = inet.list_images(path)
    names, labels = inet.flat(train_tree)
    train_idx, val_idx = split(len(names), cfg, path)
    test_names, test_labels = inet.flat(val_tree)
    test_idx = test_subset(len(test_names), cfg)
    stats = inet.pixel_stats(path, names, checksum, cache_dir(cfg))  # all of train/, as for CIFAR

    def files(pick, all_names, all_labels, transform):
        return inet.ImageFiles(path, [all_names[i] for i in pick], [all_labels[i] for i in pick], transform)

    size, resize, workers = cfg.image_size, cfg.resize, cfg.num_workers
    train_tf = inet.transforms(resize, size, train=cfg.augment)
    eval_tf = inet.transforms(resize, size, train=False)
    test_tf = inet.transforms(resize, size, train=False, ten_crop=cfg.test_crops == 10)
    return Data(
        name="imagenet", source=path, checksum=checksum, classes=list(train_tree),
        transform=BatchTransform(stats, cfg.normalize, cfg.augment, cfg.pca_jitter, None, cfg.test_crops),
        train=inet.loader(files(train_idx, names, labels, train_tf), cfg.batch_size, workers, True),
        val=inet.loader(files(val_idx, names, labels, eval_tf), cfg.batch_size, workers, False)
        if len(val_idx) else None,
        test=inet.loader(files(test_idx, test_names, test_labels, test_tf), cfg.batch_size, workers, False),
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
    )


def load_data(cfg: DataConfig) -> Data:
    path = source_path(cfg)
    checksum = verified_checksum(path, cfg.sha256)
    return (_cifar if cfg.dataset == "cifar10" else _imagenet)(cfg, path, checksum)
