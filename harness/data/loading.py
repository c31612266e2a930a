"""Data for a run: `load_data(DataConfig) -> Data`, the loaders plus the batch transform that the
training module applies on its device. Checks the source before anything is decoded, so a bad
source fails before any run is recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.config import DataConfig
from harness.places import cache_dir
from harness.data.augment import BatchTransform
from harness.data.sources import DataError, Source, check_source


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
    """(training split, validation) indices, fixed by data.split_seed alone. The training split is
    what the pixel statistics are fitted on; a run trains on its first data.train_subset images."""
    if cfg.val_size >= n:
        raise DataError(where, f"data.val_size={cfg.val_size} leaves no training images out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))
    return perm[cfg.val_size:], perm[:cfg.val_size]


def train_count(train_idx: torch.Tensor, cfg: DataConfig) -> int:
    """How many of the training split's images the run trains on (data.train_subset; 0 = all)."""
    return min(cfg.train_subset or len(train_idx), len(train_idx))


def split_key(train_idx: torch.Tensor) -> str:
    """Names the training split in cache file names by the images in it, so that another
    data.val_size or data.split_seed (or another torch shuffle) can never reuse its statistics."""
    indices = np.sort(train_idx.numpy()).astype("<i8")
    return f"train{len(indices)}-{hashlib.sha256(indices.tobytes()).hexdigest()[:12]}"


def test_subset(n: int, cfg: DataConfig) -> torch.Tensor:
    if not cfg.test_subset:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed))[:cfg.test_subset]


# The pixel statistics describe the training distribution, so they come from the training split
# and never from the validation images held out of it (issue 13). They do not follow
# data.train_subset: a subset is a sample of that same distribution, the full split estimates it
# better, and one cache file then serves every subset size, so runs that differ only in
# data.train_subset differ only in how many images they train on, not in their normalisation.

def _cifar(cfg: DataConfig, source: Source) -> Data:
    from harness.data import cifar

    arrays = cifar.load_cached(source, cache_dir(cfg))
    train_x, train_y = torch.from_numpy(arrays.train_x), torch.from_numpy(arrays.train_y)
    train_idx, val_idx = split(len(train_x), cfg, source.path)
    # The whole training split (138 MB) is gathered only to fit its statistics, once per split: a run
    # copies only the images it trains on, in the split's shuffled order.
    stats = cifar.pixel_stats(source, cache_dir(cfg), lambda: train_x[train_idx], split_key(train_idx))
    keep = train_count(train_idx, cfg)
    test_idx = test_subset(len(arrays.test_x), cfg)
    test_x, test_y = torch.from_numpy(arrays.test_x)[test_idx], torch.from_numpy(arrays.test_y)[test_idx]

    def batches(x, y, shuffle):
        return TensorBatches(x.contiguous(), y.contiguous(), cfg.batch_size, shuffle)

    transform = BatchTransform(stats, cfg.normalize, cfg.augment, cfg.pca_jitter, cfg.cifar_pad, cfg.test_crops)
    return Data(
        name="cifar10", source=source.path, checksum=source.checksum, classes=arrays.classes, transform=transform,
        train=batches(train_x[train_idx[:keep]], train_y[train_idx[:keep]], True),
        val=batches(train_x[val_idx], train_y[val_idx], False) if len(val_idx) else None,
        test=batches(test_x, test_y, False),
        sizes={"train": keep, "val": len(val_idx), "test": len(test_idx)},
    )


def _imagenet(cfg: DataConfig, source: Source) -> Data:
    from harness.data import imagenet as inet

    names, labels = inet.flat(source.tree["train"])
    train_idx, val_idx = split(len(names), cfg, source.path)
    stats = inet.pixel_stats(source, [names[i] for i in train_idx], split_key(train_idx), cache_dir(cfg))
    train_idx = train_idx[:train_count(train_idx, cfg)]
    test_names, test_labels = inet.flat(source.tree["val"])
    test_idx = test_subset(len(test_names), cfg)

    def files(pick, all_names, all_labels, transform):
        return inet.ImageFiles(source.path, [all_names[i] for i in pick], [all_labels[i] for i in pick], transform)

    size, resize, workers = cfg.image_size, cfg.resize, cfg.num_workers
    train_tf = inet.transforms(resize, size, train=cfg.augment)
    eval_tf = inet.transforms(resize, size, train=False)
    test_tf = inet.transforms(resize, size, train=False, ten_crop=cfg.test_crops == 10)
    return Data(
        name="imagenet", source=source.path, checksum=source.checksum, classes=list(source.tree["train"]),
        transform=BatchTransform(stats, cfg.normalize, cfg.augment, cfg.pca_jitter, None, cfg.test_crops),
        train=inet.loader(files(train_idx, names, labels, train_tf), cfg.batch_size, workers, True),
        val=inet.loader(files(val_idx, names, labels, eval_tf), cfg.batch_size, workers, False)
        if len(val_idx) else None,
        test=inet.loader(files(test_idx, test_names, test_labels, test_tf), cfg.batch_size, workers, False),
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
    )


def load_data(cfg: DataConfig) -> Data:
    source = check_source(cfg)  # before any decoding, and before the line that announces it
    return (_cifar if cfg.dataset == "cifar10" else _imagenet)(cfg, source)
