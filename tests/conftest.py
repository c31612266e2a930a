"""Shared fixtures: tiny CIFAR-10 and ImageNet-layout data sets built in temporary folders, the
real CIFAR-10 archive where $HARNESS_DATA_DIR holds it, and throwaway MLflow stores."""

from __future__ import annotations

import contextlib
import fcntl
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
    decoded(root / "cifar.zip")  # the form the commands' tests run on, decoded before their output is read
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
    """The real archive, decoded into the machine's cache (harness.data.cifar) before any test
    trains on it: once, under a lock, rather than by two xdist workers at once."""
    path = _real_archive("cifar10-jpeg.zip", "CIFAR-10")
    decoded(path)
    return path


def decoded(path: Path) -> None:
    """Decode a CIFAR-10 source into the machine's cache unless it is there: once per test run,
    under a lock, so that neither two xdist workers decode it at once nor a test that counts a
    command's output lines sees the first decoding's progress lines, whatever ran before it."""
    from harness.config import DataConfig
    from harness.data import cifar, sources
    from harness.places import cache_dir

    cfg = DataConfig(source=str(path))
    with shared_lock("cifar-decode"):
        cifar.load_cached(sources.check_source(cfg), cache_dir(cfg))


@pytest.fixture(scope="session")
def real_imagenette() -> Path:
    return _real_archive("imagenette-224.zip", "Imagenette")


def _store_template() -> Path:
    """An empty MLflow store, made once per test run by MLflow itself (harness.stores), shared by
    the run's xdist workers."""
    from harness import stores

    db = shared_folder() / "store-template" / "mlflow.db"
    with shared_lock("store-template"):
        if not db.is_file():
            db.parent.mkdir(exist_ok=True)
            making = db.parent / "making.db"
            making.unlink(missing_ok=True)  # a worker killed while making it left this
            stores.open_tracking_store(f"sqlite:///{making}")
            making.rename(db)  # whole or absent
    return db


def fresh_store(db: Path) -> str:
    """The URI of a new, empty MLflow store at `db`: a copy of the session's template, since MLflow
    runs its ~60 schema migrations on every new SQLite store (2.5 s of CPU each, here). The tests
    of store creation itself, and of importing into a new store, make theirs from nothing."""
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_store_template(), db)
    return f"sqlite:///{db}"


def tiny_grid(path: Path, source: Path, checkpoints: Path, *, axes: str = "{model.activation: [relu, tanh]}",
              seeds: str = "[0, 1]", images: int = 256, epochs: int = 1,
              settings: dict[str, object] | None = None) -> Path:
    """A small real grid of convnet4 written to `path`: PyTorch init and z-scored input learn in a
    few steps on a few hundred images (see test_train). `axes` and `seeds` are YAML; `settings` are
    more `set:` lines."""
    more = "".join(f"\n  {key}: {value}" for key, value in (settings or {}).items())
    path.write_text(f"""
name: tiny
preset: cifar_convnet4
design: factorial
axes: {axes}
seeds: {seeds}
set:
  data.source: {source}
  data.train_subset: {images}
  data.val_size: 256
  data.test_subset: 256
  model.init: pytorch
  data.normalize: standard
  optim.lr: 0.05
  trainer.max_epochs: {epochs}
  trainer.progress_bar: false
  trainer.checkpoint_dir: {checkpoints}{more}
""")
    return path


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


def _pg(root: Path, *command: str) -> None:
    """A PostgreSQL tool in `root`, as the postgres user where we are root (the server refuses root)."""
    import subprocess

    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(as_user + list(command), check=True, capture_output=True, cwd=root)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_postgres(bin_dir: Path, root: Path) -> int:
    """initdb and start a server under `root`; returns its port."""
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    _pg(root, str(bin_dir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "harness")
    # TCP only (no Unix socket: its path must fit 107 bytes, which a long $TMPDIR breaks).
    _pg(root, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "server.log"), "-w", "start", "-o",
        f"-p {port} -c unix_socket_directories='' -c listen_addresses=127.0.0.1 -c max_connections=300")
    return port


def _stop_postgres(root: Path) -> None:
    import subprocess

    bin_dir = _pg_bin()
    if bin_dir is not None and (root / "data" / "postmaster.pid").is_file():
        try:
            _pg(root, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # already gone


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server on 127.0.0.1 for the whole test run (its xdist workers
    included: the first to ask starts it, the controller stops it), as a function that creates a
    fresh database and returns its SQLAlchemy URL. Skips where Debian's postgresql is not
    installed, except where HARNESS_REQUIRE_POSTGRES=1 (.ci/run installs it and sets that), which
    fails instead."""
    import subprocess

    bin_dir = _pg_bin()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)"
        if os.environ.get("HARNESS_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    root = shared_folder() / "postgres"
    with shared_lock("postgres"):
        if not (root / "port").is_file():
            if root.exists():  # a worker killed while starting it: start again from nothing
                _stop_postgres(root)
                shutil.rmtree(root)
            root.mkdir()
            root.chmod(0o755)
            port = _start_postgres(bin_dir, root)
            (root / "port").write_text(str(port))
        port = int((root / "port").read_text())
    count = iter(range(10**6))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")

    def database(prefix: str = "db") -> str:
        name = f"{prefix}_{worker}_{next(count)}"
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "harness", name],
                       check=True, capture_output=True)
        return f"postgresql+psycopg2://harness@127.0.0.1:{port}/{name}"

    return database


# ------------------------------------------------------------------------ worker processes

def worker_processes():
    """A multiprocessing context for tests whose workers race each other: fresh processes (no
    connection or cached store inherited from the test), forked from a server that imported the
    harness's libraries once, so each starts in milliseconds rather than the seconds that importing
    MLflow and Optuna again takes ("spawn")."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["harness.claims", "harness.stores", "harness.tracking", "harness.grid"])
    return context


# ----------------------------------------------------- one test run, several xdist workers

def pytest_configure(config) -> None:
    """The controller (the only process without xdist) makes the folder its workers share: the
    PostgreSQL server, the store template and the lock files that make each once per run. Each
    xdist worker, and every process it starts, trains on its share of the cores: two processes of
    two threads each on a 2-core machine took 64.6 s where one thread each took 41.4 s (two
    `harness train` runs of 8,000 images side by side, an AMD EPYC, 2026-12-04)."""
    if hasattr(config, "workerinput"):
        share = max(1, (os.cpu_count() or 1) // int(config.workerinput["workercount"]))
        os.environ.setdefault("OMP_NUM_THREADS", str(share))  # read when torch is imported, after this
    else:
        folder = Path(tempfile.mkdtemp(prefix="harness-tests-"))
        folder.chmod(0o755)  # the postgres user reaches its server's folder inside
        os.environ[SHARED] = str(folder)  # workers start after this and inherit it


def pytest_unconfigure(config) -> None:
    if not hasattr(config, "workerinput") and SHARED in os.environ:
        folder = Path(os.environ.pop(SHARED))
        _stop_postgres(folder / "postgres")
        shutil.rmtree(folder, ignore_errors=True)


SHARED = "HARNESS_TESTS_SHARED"


def shared_folder() -> Path:
    if SHARED not in os.environ:
        raise RuntimeError(f"${SHARED} is unset: this helper runs inside a pytest session (tests/conftest.py sets it)")
    return Path(os.environ[SHARED])


@contextlib.contextmanager
def shared_lock(name: str):
    """Held by one process of the test run at a time."""
    with open(shared_folder() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pytest_collection_modifyitems(config, items) -> None:
    """The tests marked slow (tens of seconds) first, in file order: run by several xdist workers,
    none of them then starts last and leaves the other workers idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def wait_for_ui(port: int, ui) -> None:
    """Until the MLflow server that `harness ui` (the process `ui`) started answers on `port`."""
    import time
    import urllib.request

    deadline = time.time() + 300  # a loaded 2-core machine can take minutes to start it
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except OSError:
            assert time.time() < deadline and ui.poll() is None, "the UI did not come up"
            time.sleep(1)
