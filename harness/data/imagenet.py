"""ImageNet-layout data (`train/<wnid>/*`, `val/<wnid>/*`, as a folder or a zip): ILSVRC-2012 or
Imagenette. Per-image decoding and geometry run in DataLoader workers: resize the short side to
`data.resize` (256), random `data.image_size` (227) crops and mirrors for training, the centre crop
or the ten crops (4 corners + centre, and their mirrors) for testing; grayscale becomes RGB. Batches
leave the workers as uint8; colour jitter and normalisation run batched on the training device.

The paper reports on ILSVRC's validation set, having no test labels, so `val/` is our test set and
the validation split for learning-rate decisions is held out of `train/`.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from harness.data.augment import PixelStats, fit_pixel_stats, load_or_fit
from harness.data.sources import DataError, Source, decoded_key, open_zip

STATS_SAMPLE = 2000  # training images whose pixels estimate mean, std and the RGB PCA
STATS_SIDE = 64  # they are shrunk to this side first: colour statistics barely depend on size
STATS_VERSION = 2  # 2: fitted on the training split only, named by it and by pillow's version


class ImageFiles(Dataset):
    """Images by name from a folder or a zip; the zip is opened once per worker process."""

    def __init__(self, root: Path, names: list[str], labels: list[int], transform):
        self.root, self.names, self.labels, self.transform = root, names, labels, transform
        self._zip, self._zip_pid = None, None

    def __len__(self) -> int:
        return len(self.names)

    def _bytes(self, name: str) -> bytes:
        if self.root.is_dir():
            return (self.root / name).read_bytes()
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip, self._zip_pid = open_zip(self.root), os.getpid()
        return self._zip.read(name)

    def __getitem__(self, i: int):
        name = self.names[i]
        try:
            image = Image.open(io.BytesIO(self._bytes(name))).convert("RGB")
        except Exception as err:
            raise DataError(f"{self.root}/{name}", f"not a readable image ({err})") from None
        return self.transform(image), self.labels[i]


def flat(tree: dict[str, list[str]]) -> tuple[list[str], list[int]]:
    names, labels = [], []
    for label, files in enumerate(tree.values()):
        names += files
        labels += [label] * len(files)
    return names, labels


def transforms(resize: int, size: int, train: bool, ten_crop: bool = False):
    """Paper section 2: short side to `resize`, then the central resize x resize patch; crops
    and corners come from that patch."""
    square = [v2.Resize(resize), v2.CenterCrop(resize)]
    to_uint8 = v2.PILToTensor()
    if train:
        return v2.Compose([*square, v2.RandomCrop(size), v2.RandomHorizontalFlip(), to_uint8])
    if ten_crop:
        return v2.Compose([*square, to_uint8, v2.TenCrop(size), stack_views])
    return v2.Compose([*square, v2.CenterCrop(size), to_uint8])


def stack_views(crops: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.stack(crops)  # a named function, so DataLoader workers can pickle the transform


def stats_view():
    """What the statistics see of an image: shrunk to STATS_SIDE, centre square, uint8 CHW."""
    return v2.Compose([v2.Resize(STATS_SIDE), v2.CenterCrop(STATS_SIDE), v2.PILToTensor()])


def pixel_stats(source: Source, names: list[str], split_key: str, cache_root: Path) -> PixelStats:
    """Fitted on a seeded sample of `names`, the training split's images (named by `split_key`)."""
    file = cache_root / f"imagenet-stats-v{STATS_VERSION}-{decoded_key(source.checksum)}-{split_key}.json"

    def fit() -> PixelStats:
        print(f"harness: fitting pixel statistics of {source.path} once; caching in {file}", file=sys.stderr)
        pick = torch.randperm(len(names), generator=torch.Generator().manual_seed(0))[:STATS_SAMPLE]
        sample = ImageFiles(source.path, [names[i] for i in pick], [0] * len(pick), stats_view())
        return fit_pixel_stats(torch.stack([sample[i][0] for i in range(len(sample))]))

    return load_or_fit(file, fit)


def loader(dataset: Dataset, batch_size: int, workers: int, shuffle: bool) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
