"""Shared fixtures: tiny CIFAR-10 and ImageNet-layout data sets built in temporary folders, the
real CIFAR-10 archive where $HARNESS_DATA_DIR holds it, and throwaway MLflow stores."""

from __future__ import annotations

import atexit
import functools
import io
import os
import shutil
import tempfile
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = {"train": 6, "test": 2}


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")  # lossless, so every format decodes alike
    return out.getvalue()


@pytest.fixture(scope="session")
def cifar_pixels() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (N x 32 x 32 x 3 uint8, labels), 'test': ...}, ordered by class."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in PER_CLASS.items():
        labels = np.repeat(np.arange(10), n)
        out[split] = (rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8), labels)
    return out


@pytest.fixture(scope="session")
def cifar_sources(tmp_path_factory, cifar_pixels) -> dict[str, Path]:
    """The same tiny CIFAR-10 as a folder tree, a zip (wrapped in a top folder), the official
    pickles folder and the official tarball."""
    root = tmp_path_factory.mktemp("cifar")
    tree = root / "tree"
    archive = zipfile.ZipFile(root / "cifar.zip", "w")
    for split, (images, labels) in cifar_pixels.items():
        for i, (pixels, label) in enumerate(zip(images, labels)):
            name = f"{split}/{CLASSES[label]}/{i:04d}.png"
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(png_bytes(pixels))
            archive.writestr(f"cifar10/{name}", png_bytes(pixels))
    archive.close()

    pickles = root / "cifar-10-batches-py"
    pickles.mkdir()
    train_x, train_y = cifar_pixels["train"]
    flat = train_x.transpose(0, 3, 1, 2).reshape(len(train_x), -1)
    for b, chunk in enumerate(np.array_split(np.arange(len(train_x)), 5), start=1):
        batch = {b"data": flat[chunk], b"labels": train_y[chunk].tolist()}
        (pickles / f"data_batch_{b}").write_bytes(pickle.dumps(batch))
    test_x, test_y = cifar_pixels["test"]
    test = {b"data": test_x.transpose(0, 3, 1, 2).reshape(len(test_x), -1), b"labels": test_y.tolist()}
    (pickles / "test_batch").write_bytes(pickle.dumps(test))
    (pickles / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}))
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(pickles, arcname="cifar-10-batches-py")
    return {"tree": tree, "zip": root / "cifar.zip", "pickles": pickles,
            "tarball": root / "cifar-10-python.tar.gz"}


@pytest.fixture(scope="session")
def imagenet_zip(tmp_path_factory) -> Path:
    """Three classes of odd-sized images, one grayscale, in train/<wnid>/ and val/<wnid>/."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("imagenet") / "tiny-imagenet.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for split, n in (("train", 8), ("val", 2)):
            for wnid in ("n01440764", "n02102040", "n02979186"):
                for i in range(n):
                    h, w = rng.integers(40, 60, 2)
                    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                    if i == 0:
                        image = image.convert("L")
                    out = io.BytesIO()
                    image.save(out, format="JPEG")
                    archive.writestr(f"{split}/{wnid}/{wnid}_{i}.JPEG", out.getvalue())
    return path


def _real_archive(name: str, what: str) -> Path:
    """$HARNESS_DATA_DIR/<name>. Skips where it is missing, except where HARNESS_REQUIRE_DATA=1
    (.ci/run sets that), which fails instead."""
    path = (Path(os.environ.get("HARNESS_DATA_DIR", "data")) / name).resolve()
    if not path.is_file():
        message = f"real {what} not found at {path} (set HARNESS_DATA_DIR to the folder holding {name})"
        if os.environ.get("HARNESS_REQUIRE_DATA") == "1":
            pytest.fail(f"{message}; HARNESS_REQUIRE_DATA=1 makes this a failure, not a skip", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def real_cifar() -> Path:
    return _real_archive("cifar10-jpeg.zip", "CIFAR-10")


@pytest.fixture(scope="session")
def real_imagenette() -> Path:
    return _real_archive("imagenette-224.zip", "Imagenette")


@functools.cache
def _store_template() -> Path:
    """An empty MLflow store, made once per test session by MLflow itself (harness.stores)."""
    from harness import stores

    folder = Path(tempfile.mkdtemp(prefix="harness-store-template-"))
    atexit.register(shutil.rmtree, folder, True)
    stores.open_tracking_store(f"sqlite:///{folder}/mlflow.db")
    return folder / "mlflow.db"


def fresh_store(db: Path) -> str:
    """The URI of a new, empty MLflow store at `db`: a copy of the session's template, since MLflow
    runs its ~60 schema migrations on every new SQLite store (seconds each, here). The tests of
    store creation itself (test_stores.py) make theirs from nothing."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_store_template(), db)
    return f"sqlite:///{db}"


@pytest.fixture
def store(tmp_path) -> dict[str, str]:
    """Overrides that point a run at a fresh MLflow store and checkpoint folder."""
    return {"tracking.uri": fresh_store(tmp_path / "mlflow.db"),
            "tracking.artifact_root": str(tmp_path / "artifacts"),
            "trainer.checkpoint_dir": str(tmp_path / "checkpoints")}


# ------------------------------------------------------------------------------------ PostgreSQL

def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL server on 127.0.0.1, as a function that creates a fresh database and
    returns its SQLAlchemy URL. Skips where Debian's postgresql is not installed, except where
    HARNESS_REQUIRE_POSTGRES=1 (.ci/run installs it and sets that), which fails instead."""
    import socket
    import subprocess

    bin_dir = _pg_bin()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)"
        if os.environ.get("HARNESS_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    root.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"

    def pg(*command: str) -> None:
        subprocess.run(as_user + list(command), check=True, capture_output=True, cwd=root)

    pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "harness")
    pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "start", "-o",
       f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200")
    count = iter(range(10**6))

    def database(prefix: str = "db") -> str:
        name = f"{prefix}{next(count)}"
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "harness", name)
        return f"postgresql+psycopg2://harness@127.0.0.1:{port}/{name}"

    yield database
    pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    shutil.rmtree(root, ignore_errors=True)
