"""CIFAR-10 as uint8 tensors: read once from any of its published forms, cached by checksum.

Readable sources (`data.source`):
- the official `cifar-10-batches-py` folder of pickles, or the `cifar-10-python.tar.gz` holding it;
- an image-folder tree `train/<class>/*`, `test/<class>/*`, or a zip of one (such as
  `cifar10-jpeg.zip`); class folders sort alphabetically, which is CIFAR-10's label order.

The first read decodes every image and saves the arrays under the cache folder, named by the
source's sha256 and the pillow that decoded it; later runs load them in a fraction of a second. The
validation split (`data.val_size` images, chosen by `data.split_seed`) comes out of the training
set; the pixel statistics (mean, std, RGB PCA) are fitted on the rest, the training split, and saved
beside the arrays under a name for that split. The test set is only for reporting.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from harness.data.augment import PixelStats, fit_pixel_stats, load_or_fit
from harness.errors import writing
from harness.data.sources import (
    BATCH_FILES, DataError, Source, cifar_form, decoded_key, list_names, open_zip, split_class_tree,
)

CACHE_VERSION = 2  # 2: pillow's version in the name; statistics of the training split, in their own files


@dataclass
class Arrays:
    train_x: np.ndarray  # N x 3 x 32 x 32 uint8
    train_y: np.ndarray  # N int64
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]


def _decode(data: bytes, where: str) -> np.ndarray:
    try:
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as err:  # PIL raises many types for a bad file
        raise DataError(where, f"not a readable image ({err})") from None
    if image.shape != (32, 32, 3):
        raise DataError(where, f"expected a 32x32 image, got {image.shape[1]}x{image.shape[0]}")
    return image


def _from_tree(tree: dict[str, dict[str, list[str]]], read: callable) -> Arrays:
    """`read(name) -> bytes` for every file named in the tree."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    classes = list(tree["train"])
    for split, by_class in tree.items():
        images, labels = [], []
        for label, cls in enumerate(classes):
            for name in by_class[cls]:
                images.append(_decode(read(name), name))
                labels.append(label)
        out[split] = (np.stack(images).transpose(0, 3, 1, 2), np.asarray(labels, dtype=np.int64))
    return Arrays(*out["train"], *out["test"], classes)


def _read_zip(path: Path) -> Arrays:
    with open_zip(path) as archive:
        tree = split_class_tree(archive.namelist(), ("train", "test"), path)

        def read(name: str) -> bytes:
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
                raise DataError(path, f"member {name} is unreadable (truncated zip?): {err}") from None

        return _from_tree(tree, read)


def _read_folder(path: Path) -> Arrays:
    tree = split_class_tree(list_names(path), ("train", "test"), path)
    return _from_tree(tree, lambda name: (path / name).read_bytes())


def _unpickle(data: bytes, where: str) -> dict:
    try:
        return pickle.loads(data, encoding="bytes")
    except Exception as err:
        raise DataError(where, f"not a CIFAR-10 pickle ({err})") from None


def _from_pickles(read: callable, where: Path) -> Arrays:
    """`read(file_name) -> bytes` for data_batch_1..5, test_batch and batches.meta."""
    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        d = _unpickle(read(name), f"{where}/{name}")
        try:
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            return x, np.asarray(d[b"labels"], dtype=np.int64)
        except (KeyError, ValueError) as err:
            raise DataError(f"{where}/{name}", f"expected b'data' (N x 3072) and b'labels': {err}") from None

    parts = [batch(n) for n in BATCH_FILES]
    test_x, test_y = batch("test_batch")
    meta = _unpickle(read("batches.meta"), f"{where}/batches.meta")
    classes = [c.decode() for c in meta[b"label_names"]]
    return Arrays(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                  test_x, test_y, classes)


def _read_pickle_dir(path: Path) -> Arrays:
    def read(name: str) -> bytes:
        file = path / name
        if not file.is_file():
            raise DataError(path, f"missing {name} (expected the cifar-10-batches-py files)")
        return file.read_bytes()

    return _from_pickles(read, path)


def _read_tarball(path: Path) -> Arrays:
    try:
        with tarfile.open(path) as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

            def read(name: str) -> bytes:
                if name not in members:
                    raise DataError(path, f"missing {name} (expected the cifar-10-batches-py files)")
                return tar.extractfile(members[name]).read()

            return _from_pickles(read, path)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(path, f"not a readable tar archive (truncated or corrupt?): {err}") from None


READERS = {"pickles": _read_pickle_dir, "tree": _read_folder, "zip": _read_zip, "tarball": _read_tarball}


def read_source(path: Path) -> Arrays:
    form, where = cifar_form(path)
    return READERS[form](where)


def _check(arrays: Arrays, path: Path) -> None:
    if len(arrays.classes) != 10:
        raise DataError(path, f"expected CIFAR-10's 10 classes, found {len(arrays.classes)}")


def cache_folder(source: Source, cache_root: Path) -> Path:
    return cache_root / f"cifar10-v{CACHE_VERSION}-{decoded_key(source.checksum)}"


def load_cached(source: Source, cache_root: Path) -> Arrays:
    """Decoded arrays, from the cache if this checksum was decoded by this pillow before. Takes a
    checked `Source`, so a bad archive has failed before the line that announces the decoding."""
    folder = cache_folder(source, cache_root)
    names = ("train_x", "train_y", "test_x", "test_y")
    if not (folder / "meta.json").is_file():
        started = time.time()
        print(f"harness: decoding {source.path} once; caching under {folder}", file=sys.stderr)
        arrays = read_source(source.path)
        _check(arrays, source.path)
        cache_root.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename, so concurrent workers never read half a cache.
        staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=".staging-"))
        try:
            with writing(f"the decoded images of {source.path.name} (data.cache_dir)", cache_root):
                for name in names:
                    np.save(staging / f"{name}.npy", getattr(arrays, name))
                meta = {"source": str(source.path), "sha256": source.checksum, "classes": arrays.classes,
                        "decoder": decoded_key(source.checksum)}
                (staging / "meta.json").write_text(json.dumps(meta, indent=1))
        except BaseException:  # never half a cache left behind
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            os.rename(staging, folder)
        except OSError:  # another process finished first; theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
        print(f"harness: decoded {len(arrays.train_x) + len(arrays.test_x):,} images in "
              f"{time.time() - started:.0f} s", file=sys.stderr)
    meta = json.loads((folder / "meta.json").read_text())
    # Mapped copy-on-write, not read: loading takes no time, the pages a run touches are read as it
    # indexes them, and workers on one machine share them through the page cache.
    return Arrays(*(np.load(folder / f"{n}.npy", mmap_mode="c") for n in names), meta["classes"])


def pixel_stats(source: Source, cache_root: Path, train_images: Callable[[], torch.Tensor], split_key: str) -> PixelStats:
    """Of the training split's images (named by `split_key`; gathered by `train_images()` only when
    they must be fitted), saved beside the decoded arrays."""
    file = cache_folder(source, cache_root) / f"stats-{split_key}.json"
    return load_or_fit(file, lambda: fit_pixel_stats(train_images()))
