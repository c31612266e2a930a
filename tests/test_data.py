import hashlib
import time
import zipfile

import numpy as np
import pytest
import torch

from harness.config import DataConfig
from harness.data import DataError, load_data
from harness.data.cifar import read_source


def cifar_cfg(path, tmp_path, **kw) -> DataConfig:
    return DataConfig(source=str(path), cache_dir=str(tmp_path / "cache"), val_size=10, batch_size=16, **kw)


@pytest.mark.parametrize("form", ["tree", "zip", "pickles", "tarball"])
def test_every_cifar_form_reads_the_same_pixels(form, cifar_sources, cifar_pixels):
    arrays = read_source(cifar_sources[form])
    for split, (images, labels) in cifar_pixels.items():
        x, y = getattr(arrays, f"{split}_x"), getattr(arrays, f"{split}_y")
        assert x.dtype == np.uint8 and x.shape == (len(images), 3, 32, 32)
        assert np.array_equal(x, images.transpose(0, 3, 1, 2)) and np.array_equal(y, labels)
    assert arrays.classes[:3] == ["airplane", "automobile", "bird"]


def test_cache_by_checksum_and_splits(cifar_sources, tmp_path):
    cfg = cifar_cfg(cifar_sources["zip"], tmp_path, train_subset=40)
    first = load_data(cfg)
    digest = hashlib.sha256(cifar_sources["zip"].read_bytes()).hexdigest()
    assert first.checksum == digest
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"cifar10-v1-{digest[:16]}"]
    started = time.perf_counter()
    again = load_data(cfg)
    assert time.perf_counter() - started < 1.0
    assert first.sizes == again.sizes == {"train": 40, "val": 10, "test": 20}
    train = torch.cat([x for x, _ in first.train])
    val = torch.cat([x for x, _ in first.val])
    assert train.dtype == torch.uint8 and len(train) == 40 and len(first.train) == 3
    # Validation images are held out of the training set, and chosen by split_seed alone.
    rows = {bytes(x.numpy()) for x in train}
    assert not rows & {bytes(x.numpy()) for x in val}
    assert torch.equal(torch.cat([x for x, _ in again.val]), val)
    other = torch.cat([x for x, _ in load_data(cifar_cfg(cifar_sources["zip"], tmp_path, split_seed=1)).val])
    assert not torch.equal(other, val)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.zip: no such file or folder"):
        load_data(cifar_cfg(tmp_path / "nowhere.zip", tmp_path))


def test_truncated_zip(cifar_sources, tmp_path):
    cut = tmp_path / "cut.zip"
    data = cifar_sources["zip"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.zip: .*truncated"):
        load_data(cifar_cfg(cut, tmp_path))


def test_empty_class_folder(cifar_sources, tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(cifar_sources["zip"]) as src, zipfile.ZipFile(broken, "w") as dst:
        for name in src.namelist():
            if "/train/cat/" not in name:
                dst.writestr(name, src.read(name))
        dst.writestr("cifar10/train/cat/", b"")
    with pytest.raises(DataError, match=r"broken\.zip: empty class folder train/cat/"):
        load_data(cifar_cfg(broken, tmp_path))


def test_checksum_mismatch(cifar_sources, tmp_path):
    with pytest.raises(DataError, match=r"cifar\.zip: checksum mismatch: expected sha256 0+, got [0-9a-f]{64}"):
        load_data(cifar_cfg(cifar_sources["zip"], tmp_path, sha256="0" * 64))
    # A SHA256SUMS file beside the source is checked too.
    copy = tmp_path / "sums" / "c.zip"
    copy.parent.mkdir()
    copy.write_bytes(cifar_sources["zip"].read_bytes())
    (copy.parent / "SHA256SUMS").write_text(f"{'1' * 64}  c.zip\n")
    with pytest.raises(DataError, match=r"c\.zip: checksum mismatch: expected sha256 1+"):
        load_data(cifar_cfg(copy, tmp_path))
    assert not (tmp_path / "cache").exists()  # nothing decoded or cached from a bad source


def test_imagenet_layout_zip(imagenet_zip, tmp_path):
    cfg = DataConfig(dataset="imagenet", source=str(imagenet_zip), cache_dir=str(tmp_path / "cache"),
                     val_size=3, batch_size=4, image_size=32, resize=36, num_workers=0, test_crops=10)
    data = load_data(cfg)
    assert data.classes == ["n01440764", "n02102040", "n02979186"]
    assert data.sizes == {"train": 21, "val": 3, "test": 6}
    x, y = next(iter(data.train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8  # grayscale became RGB
    x, _ = next(iter(data.val))
    assert x.shape == (3, 3, 32, 32)
    x, y = next(iter(data.test))
    assert x.shape == (4, 10, 3, 32, 32)  # ten views per test image
    assert torch.equal(x[:, 9], x[:, 4].flip(3))  # the centre view and its mirror
    assert data.transform.evaluate(x, views=True).shape == (4, 10, 3, 32, 32)
    assert len(data.transform.stats.eigvals) == 3
    assert (tmp_path / "cache" / f"imagenet-stats-{data.checksum[:16]}.json").is_file()
