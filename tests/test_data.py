import hashlib
import io
import re
import subprocess
import sys
import zipfile

import numpy as np
import PIL
import pytest
import torch
from PIL import Image

from harness import config as C
from harness.config import DataConfig
from harness.data import DataError, load_data
from harness.data.cifar import read_source
from harness.data.imagenet import stats_view
from harness.data.sources import decoded_key


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


def test_cache_by_checksum_and_splits(cifar_sources, tmp_path, capsys):
    cfg = cifar_cfg(cifar_sources["zip"], tmp_path, train_subset=40)
    first = load_data(cfg)
    digest = hashlib.sha256(cifar_sources["zip"].read_bytes()).hexdigest()
    assert first.checksum == digest
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"cifar10-v2-pil{PIL.__version__}-{digest[:16]}"]
    assert "decoding" in capsys.readouterr().err
    again = load_data(cfg)
    assert "decoding" not in capsys.readouterr().err  # read from the cache
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
    with pytest.raises(DataError, match=r"cifar\.zip: checksum mismatch: expected sha256 0{64}, got [0-9a-f]{64}"):
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
    [stats_file] = (tmp_path / "cache").iterdir()
    pattern = rf"imagenet-stats-v2-pil{re.escape(PIL.__version__)}-{data.checksum[:16]}-train21-[0-9a-f]{{12}}\.json"
    assert re.fullmatch(pattern, stats_file.name)


# ------------------------------------------------------------------- pixel statistics (issue 13)

def hand_stats(images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Channel mean and std (0-255), and the RGB covariance's eigenvalues (0-1 scale, descending)
    and eigenvectors (columns), of N x 3 x H x W uint8 images, by numpy."""
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255
    cov = np.cov(pixels, bias=True)
    values, vectors = np.linalg.eigh(cov)
    return pixels.mean(1) * 255, np.sqrt(np.diag(cov)) * 255, values[::-1], vectors[:, ::-1]


def assert_fitted_on(stats, images: np.ndarray, not_on: np.ndarray) -> None:
    """`stats` are those of `images`, and measurably not those of `not_on`."""
    *wanted, vectors = hand_stats(images)
    *others, _ = hand_stats(not_on)
    for got, want, other in zip((stats.mean, stats.std, stats.eigvals), wanted, others):
        assert np.allclose(got, want, rtol=1e-9, atol=0)
        assert np.abs(np.asarray(got) - other).max() > 1e-4 * np.abs(other).max()
    # eigenvectors up to sign
    assert np.allclose(np.abs((np.asarray(stats.eigvecs) * vectors).sum(0)), 1, rtol=0, atol=1e-9)


def test_pixel_stats_are_fitted_on_the_training_split_only(cifar_sources, cifar_pixels, tmp_path):
    data = load_data(cifar_cfg(cifar_sources["zip"], tmp_path))  # 10 of the 60 training images held out
    train = torch.cat([x for x, _ in data.train]).numpy()
    val = torch.cat([x for x, _ in data.val]).numpy()
    every = cifar_pixels["train"][0].transpose(0, 3, 1, 2)
    assert len(train) == 50 and len(val) == 10
    assert sorted(map(bytes, np.concatenate([train, val]))) == sorted(map(bytes, every))
    assert_fitted_on(data.transform.stats, train, not_on=every)
    # Not the subset's: the whole training split (see harness/data/loading.py), from the same cache file.
    subset = load_data(cifar_cfg(cifar_sources["zip"], tmp_path, train_subset=20))
    assert subset.sizes["train"] == 20 and subset.transform.stats == data.transform.stats
    # Another split has statistics of its own, not the cached ones of split_seed=0.
    other = load_data(cifar_cfg(cifar_sources["zip"], tmp_path, split_seed=1))
    assert_fitted_on(other.transform.stats, torch.cat([x for x, _ in other.train]).numpy(), not_on=train)


def test_imagenet_pixel_stats_are_fitted_on_the_training_split_only(imagenet_zip, tmp_path):
    cfg = DataConfig(dataset="imagenet", source=str(imagenet_zip), cache_dir=str(tmp_path / "cache"),
                     val_size=3, train_subset=5, batch_size=4, image_size=32, resize=36, num_workers=0)
    data = load_data(cfg)
    with zipfile.ZipFile(imagenet_zip) as archive:
        every = [n for n in archive.namelist() if n.startswith("train/")]
        views = {n: stats_view()(Image.open(io.BytesIO(archive.read(n))).convert("RGB")).numpy() for n in every}
    held_out = set(data.val.dataset.names)
    train = [n for n in every if n not in held_out]
    assert len(held_out) == 3 and len(train) == 21 and len(data.train.dataset.names) == 5
    assert_fitted_on(data.transform.stats, np.stack([views[n] for n in train]),
                     not_on=np.stack([views[n] for n in every]))


# ------------------------------------------------------------------------ caches and bad sources

def test_decoded_cache_is_named_by_the_pillow_version(cifar_sources, tmp_path, monkeypatch, capsys):
    cfg = cifar_cfg(cifar_sources["zip"], tmp_path)
    first, version = load_data(cfg), PIL.__version__
    monkeypatch.setattr(PIL, "__version__", "99.1.0")
    assert decoded_key("ab" * 32) == "pil99.1.0-abababababababab"
    capsys.readouterr()
    load_data(cfg)
    assert "decoding" in capsys.readouterr().err  # decoded again by the new pillow, not read from the old cache
    digest = first.checksum[:16]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [f"cifar10-v2-pil{version}-{digest}", f"cifar10-v2-pil99.1.0-{digest}"])


def bad_zip(tmp_path, kind: str):
    path = tmp_path / "bad.zip"
    if kind == "not a zip":
        path.write_text("hello")
    else:  # a zip of images, but not in train/<class>/ and test/<class>/
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("images/cat/0000.png", b"")
    return path


@pytest.mark.parametrize("kind, problem", [("not a zip", "not a readable zip archive"),
                                           ("wrong layout", "no train/<class>/ folders found")])
def test_a_bad_zip_fails_before_the_decoding_line(kind, problem, tmp_path, capsys):
    path = bad_zip(tmp_path, kind)
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: {problem}')}"):
        load_data(cifar_cfg(path, tmp_path))
    assert "decoding" not in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


# In a fresh interpreter: check_source on each bad source given, then which heavy modules it imported.
CHECK_ONLY = """
import sys
from harness.config import DataConfig
from harness.data import DataError, check_source
for source, sha256 in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        check_source(DataConfig(source=source, sha256=sha256.strip("-")))
    except DataError as err:
        print(err)
print("imported:", *sorted(m for m in ("torch", "numpy", "lightning", "PIL.Image") if m in sys.modules))
"""


def test_a_bad_source_is_reported_without_importing_torch(cifar_sources, tmp_path):
    """The command line can answer a bad source before it imports the training stack (seconds)."""
    zeros = "0" * 64
    sources = [(tmp_path / "missing.zip", "-"), (bad_zip(tmp_path, "not a zip"), "-"), (cifar_sources["zip"], zeros)]
    args = [str(a) for pair in sources for a in pair]
    lines = subprocess.run([sys.executable, "-c", CHECK_ONLY, *args], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines[0] == f"{sources[0][0]}: no such file or folder (set data.data_dir, data.source or $HARNESS_DATA_DIR)"
    assert lines[1].startswith(f"{sources[1][0]}: not a readable zip archive")
    assert lines[2].startswith(f"{sources[2][0]}: checksum mismatch: expected sha256 {zeros}, got ")
    assert lines[3:] == ["imported:"]


def test_a_sha256_override_keeps_every_digit(cifar_sources, tmp_path):
    zeros = "0" * 64  # YAML reads these 64 digits as the integer 0
    cfg = C.load("cifar_convnet4", [f"data.sha256={zeros}", f"data.source={cifar_sources['zip']}",
                                    f"data.cache_dir={tmp_path / 'cache'}"])
    assert cfg.data.sha256 == zeros
    with pytest.raises(DataError, match=f"checksum mismatch: expected sha256 {zeros}, got [0-9a-f]{{64}}$"):
        load_data(cfg.data)
    assert C.load("cifar_convnet4", ["tracking.run_name=007"]).tracking.run_name == "007"  # any text key
    # What cannot be a sha256 fails with the config, naming the key: a YAML file's unquoted zeros, a typo.
    for value in (0, "abc", zeros[:-1] + "g"):
        with pytest.raises(C.ConfigError, match=r"^preset cifar_convnet4: data\.sha256: expected 64 hexadecimal digits"):
            C.load("cifar_convnet4", values={"data.sha256": value})
