"""Reading sources safely: checksums, expected-checksum checks, zip opening, the layouts we read,
and the one error type every reader raises, naming the path and what was expected.

Light on purpose (no torch, numpy or image decoding): `check_source` answers for a missing file, a
file that is not an archive, a wrong layout or a wrong checksum in a fraction of a second, so a
caller can check a source before it imports the training stack."""

from __future__ import annotations

import functools
import hashlib
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import PIL

from harness.config import DataConfig
from harness.places import source_path
from harness.errors import DataError

Tree = dict[str, dict[str, list[str]]]  # {'train': {'cat': [name, ...]}, 'test': {...}}
SPLITS = {"cifar10": ("train", "test"), "imagenet": ("train", "val")}
BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
PICKLE_FILES = (*BATCH_FILES, "test_batch", "batches.meta")  # the official cifar-10-batches-py


@dataclass(frozen=True)
class Source:
    """A source that passed `check_source`: only these are decoded."""

    path: Path
    checksum: str  # sha256 (see `sha256`)
    tree: Tree | None  # its image files by split and class; None for CIFAR-10's pickles and tarball


def sha256(path: Path) -> str:
    """Of a file, its bytes. Of a folder, every file's relative path and size in sorted order:
    hashing the 140 GB of an ILSVRC-2012 tree on every run is not an option. Computed once per
    process for a file of a given size and time (the command line checks the source before it
    imports torch, and training reads it again)."""
    status = path.stat()
    return _sha256(path.resolve(), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\n".encode())
        return digest.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(path: Path, configured: str) -> str | None:
    """The configured checksum, else the one a SHA256SUMS file beside `path` lists for it."""
    if configured:
        return configured.lower()
    sums = path.parent / "SHA256SUMS"
    if path.is_file() and sums.is_file():
        for line in sums.read_text().splitlines():
            digest, _, name = line.strip().partition(" ")
            if name.strip().lstrip("*") == path.name:
                return digest.lower()
    return None


def verified_checksum(path: Path, configured: str = "") -> str:
    """The sha256 of an existing `path`, checked against the expected one where there is one."""
    actual = sha256(path)
    expected = expected_sha256(path, configured)
    if expected and actual != expected:
        raise DataError(path, f"checksum mismatch: expected sha256 {expected}, got {actual}")
    return actual


def decoded_key(checksum: str) -> str:
    """Names what was decoded from a source in cache folders and files: the source's checksum and
    the pillow that decoded it. JPEG decoders change between pillow releases (so may the pixels),
    and a new pillow must never read an old one's pixels."""
    return f"pil{PIL.__version__}-{checksum[:16]}"


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(path, f"not a readable zip archive (truncated or corrupt?): {err}") from None
    return archive


def list_names(path: Path) -> list[str]:
    """A zip's member names, or a folder's files and (ending in /) sub-folders, relative to it."""
    if not path.is_dir():
        with open_zip(path) as archive:
            return archive.namelist()
    names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    return names + [str(p.relative_to(path)) + "/" for p in path.rglob("*") if p.is_dir()]


def split_class_tree(names: list[str], splits: tuple[str, str], where: Path) -> Tree:
    """{'train': {'cat': [name, ...]}, ...} from paths that end in <split>/<class>/<file>, under
    any common prefix (zips often wrap everything in one top folder). Empty class folders and
    classes that differ between the splits are errors."""
    tree: Tree = {s: {} for s in splits}
    for name in names:
        parts = [p for p in name.split("/") if p]
        if any(p.startswith((".", "__MACOSX")) for p in parts):
            continue
        for i, part in enumerate(parts):
            depth = len(parts) - i
            is_class_folder = depth == 2 and name.endswith("/")
            if part in tree and (depth == 3 or is_class_folder):
                files = tree[part].setdefault(parts[i + 1], [])
                if depth == 3 and not name.endswith("/"):
                    files.append(name)
                break
    for split, classes in tree.items():
        if not classes:
            raise DataError(where, f"no {split}/<class>/ folders found (expected {splits[0]}/ and {splits[1]}/)")
        empty = sorted(c for c, files in classes.items() if not files)
        if empty:
            raise DataError(where, f"empty class folder {split}/{empty[0]}/ (expected image files)")
    if sorted(tree[splits[0]]) != sorted(tree[splits[1]]):
        raise DataError(where, f"{splits[0]}/ and {splits[1]}/ hold different class folders")
    return {s: {c: sorted(f) for c, f in sorted(classes.items())} for s, classes in tree.items()}


def cifar_form(path: Path) -> tuple[str, Path]:
    """Which of CIFAR-10's published forms `path` is, and where it lies: 'pickles' (the
    cifar-10-batches-py folder, `path` or inside it), 'tree' (a train/ test/ folder), 'zip' or
    'tarball'."""
    if path.is_dir():
        if (path / "cifar-10-batches-py").is_dir():
            path = path / "cifar-10-batches-py"
        if (path / "data_batch_1").exists() or (path / "test_batch").exists():
            return "pickles", path
        return "tree", path
    if path.suffix == ".zip":
        return "zip", path
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tarball", path
    raise DataError(path, "expected a .zip, a .tar.gz, a cifar-10-batches-py folder or a train/ test/ tree")


def _check_pickles(folder: Path) -> None:
    missing = [name for name in PICKLE_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(folder, f"missing {missing[0]} (expected the cifar-10-batches-py files)")


def _check_tarball(path: Path) -> None:
    """Opens and reads the first member's header only: listing every member of the official
    tarball means decompressing all 163 MB; a truncated one still fails when it is decoded."""
    try:
        with tarfile.open(path) as tar:
            tar.next()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(path, f"not a readable tar archive (truncated or corrupt?): {err}") from None


def layout(path: Path, dataset: str) -> Tree | None:
    """The source's image files by split and class; None for CIFAR-10's pickles and tarball, whose
    presence and header are checked instead. Reads names only, never an image. An archive's is
    read once per process for a file of a given size and time, as its checksum is (listing
    CIFAR-10's 60,000 members takes a second or more, and a sweep's worker loads its data once
    per cell)."""
    if path.is_file():
        status = path.stat()
        return _file_layout(path.resolve(), dataset, status.st_size, status.st_mtime_ns)
    return _layout(path, dataset)


@functools.lru_cache(maxsize=16)
def _file_layout(path: Path, dataset: str, size: int, mtime_ns: int) -> Tree | None:
    return _layout(path, dataset)


def _layout(path: Path, dataset: str) -> Tree | None:
    if dataset == "cifar10":
        form, path = cifar_form(path)
        if form == "pickles":
            _check_pickles(path)
            return None
        if form == "tarball":
            _check_tarball(path)
            return None
    return split_class_tree(list_names(path), SPLITS[dataset], path)


def check_source(cfg: DataConfig) -> Source:
    """Everything about the configured source that can be known without decoding an image: it
    exists, it opens, its layout is one we read, and its checksum is the expected one. The layout
    comes before the checksum because it is the cheaper of the two (a zip's directory against
    hashing the whole file)."""
    path = source_path(cfg)
    if not path.exists():
        raise DataError(path, "no such file or folder (set data.data_dir, data.source or $HARNESS_DATA_DIR)")
    tree = layout(path, cfg.dataset)
    return Source(path, verified_checksum(path, cfg.sha256), tree)
