"""Reading sources safely: checksums, expected-checksum checks, zip opening, and the one error
type every reader raises, naming the path and what was expected."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path


class DataError(RuntimeError):
    """A data source that is missing, unreadable or not what it should be."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path


def sha256(path: Path) -> str:
    """Of a file, its bytes. Of a folder, every file's relative path and size in sorted order:
    hashing the 140 GB of an ILSVRC-2012 tree on every run is not an option."""
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
    if not path.exists():
        raise DataError(path, "no such file or folder (set data.data_dir, data.source or $HARNESS_DATA_DIR)")
    actual = sha256(path)
    expected = expected_sha256(path, configured)
    if expected and actual != expected:
        raise DataError(path, f"checksum mismatch: expected sha256 {expected}, got {actual}")
    return actual


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(path, f"not a readable zip archive (truncated or corrupt?): {err}") from None
    return archive


def split_class_tree(names: list[str], splits: tuple[str, str], where: Path) -> dict[str, dict[str, list[str]]]:
    """{'train': {'cat': [name, ...]}, ...} from paths that end in <split>/<class>/<file>, under
    any common prefix (zips often wrap everything in one top folder). Empty class folders and
    classes that differ between the splits are errors."""
    tree: dict[str, dict[str, list[str]]] = {s: {} for s in splits}
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
