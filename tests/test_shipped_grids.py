"""Every grid file shipped in ablations/ runs: its first cell, as the grid resolves it (preset, set,
with, lr, stop), for one epoch of one step of the real data it names (8 images: the ImageNet net's
bf16 backward pass takes most of a minute for 64 on a 2-core CPU). A grid that only fails on the
machine it was written for (a GPU run days later) fails here first."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import grid as G

pytestmark = pytest.mark.slow

GRIDS = sorted((Path(__file__).parents[1] / "ablations").glob("*.yaml"))
SHRINK = ["trainer.max_epochs=1", "data.batch_size=8", "data.train_subset=8", "data.val_size=8",
          "data.test_subset=8", "trainer.progress_bar=false"]


def test_every_grid_file_is_covered_and_in_the_readmes_table():
    assert len(GRIDS) >= 6 and all(G.load(path).cells for path in GRIDS)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert [p.stem for p in GRIDS if f"\n| `{p.stem}` |" not in readme] == []


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_first_cell_of_each_shipped_grid_trains_one_epoch(path, store, real_cifar, real_imagenette, monkeypatch):
    from harness.train import train

    monkeypatch.setenv("HARNESS_DATA_DIR", str(real_cifar.parent))
    # the tracking URI is the sweep's to give (--tracking-uri), so it goes on the cell's config
    overrides = SHRINK + [f"{k}={v}" for k, v in store.items() if k != "tracking.uri"]
    cell = G.load(path, overrides).cells[0]
    cell.config.tracking.uri = store["tracking.uri"]
    assert cell.config.trainer.max_epochs == 1 and cell.config.data.train_subset == 8
    result = train(cell.config)
    assert result.status == "FINISHED", result.error
    assert result.epochs == 1 and 0 <= result.metrics["test_err"] <= 100
    run = MlflowClient(store["tracking.uri"]).get_run(result.run_id)
    assert run.data.params["model.name"] == cell.config.model.name
