"""The command line's promises that cut across commands: the ones that do not train never import
Lightning (about 10 s here) and answer in the time their own work takes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PROBE = ("import sys\nfrom harness import cli\ntry:\n    code = cli.main(sys.argv[1:])\nexcept SystemExit as e:\n"
         "    code = e.code\nprint('lightning' if any(m.split('.')[0] == 'lightning' for m in sys.modules) else 'none', "
         "code, file=sys.stderr)\n")


@pytest.mark.parametrize("command", [
    ["--help"],
    ["describe", "--preset", "cifar_convnet4", "--steps", "1"],
    ["sweep", str(ROOT / "ablations" / "relu_speed_cpu.yaml"), "--dry-run", "--calibrate-steps", "1"],
    ["report", "--out", "reports"],
    ["export", "relu_speed_cpu"],
    ["import", str(ROOT / "reports" / "relu_speed_cpu" / "runs.zip")],
], ids=["help", "describe", "dry-run", "report", "export", "import"])
def test_commands_that_do_not_train_do_not_import_lightning(command, tmp_path, real_cifar):
    from harness import cli

    uri = f"sqlite:///{tmp_path}/mlflow.db"  # holding a committed sweep, for report and export to read
    assert cli.main(["import", str(ROOT / "reports" / "relu_speed_cpu" / "runs.zip"), "--tracking-uri", uri]) == 0
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, HARNESS_DATA_DIR=str(real_cifar.parent))
    done = subprocess.run([sys.executable, "-c", PROBE, *command], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    imported, code = done.stderr.strip().splitlines()[-1].split()
    assert (imported, code) == ("none", "0"), done.stderr[-2000:]
