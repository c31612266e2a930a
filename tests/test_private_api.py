"""Every private MLflow and Optuna name the harness uses (harness/private_api.py), each touched once
and checked for what the harness relies on: a lock refresh that moves one fails here, naming it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import sqlite3
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from harness import private_api


def test_mlflow_schema_head_is_one_of_its_revisions_and_what_a_new_store_records(tmp_path):
    head = private_api.mlflow_schema_head()
    assert head in private_api.mlflow_schema_revisions()
    db = tmp_path / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        made = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "experiments", "metrics", "tags", "params"} <= private_api.mlflow_table_names()
    assert made - {"alembic_version"} <= private_api.mlflow_table_names()


def test_forget_mlflow_engine_closes_the_cached_engine_and_leaves_a_store_usable(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(tracking_uri=uri).search_experiments()
    private_api.forget_mlflow_engine(uri)
    private_api.forget_mlflow_engine(uri)  # none cached: nothing to do
    assert [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()] == ["Default"]


def test_system_metrics_monitor_samples_into_the_run_it_was_given(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow = MlflowClient(tracking_uri=uri)
    run_id = mlflow.create_run(mlflow.create_experiment("e", artifact_location=tmp_path.as_uri())).info.run_id
    monitor = private_api.system_metrics_monitor(run_id, uri, every_s=1, resume=False)
    monitor.start()
    time.sleep(2.5)
    monitor.finish()
    metrics = mlflow.get_run(run_id).data.metrics
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
    assert metrics["system/system_memory_usage_megabytes"] > 0
    steps = [m.step for m in mlflow.get_metric_history(run_id, "system/cpu_utilization_percentage")]
    assert steps == list(range(len(steps))) and len(steps) >= 1


def test_check_mlflow_fields_passes_good_names_and_refuses_bad_ones_with_mlflows_message():
    private_api.check_mlflow_fields({"model.lrn": "true"}, {"sweep": "x"}, ["train_err"])
    with pytest.raises(ValueError, match="Names may only contain"):
        private_api.check_mlflow_fields({}, {}, ["bad name?"])
    with pytest.raises(ValueError, match="exceeds the maximum length of 250"):
        private_api.check_mlflow_fields({"k" * 300: "v"}, {}, [])
    with pytest.raises(ValueError, match="treated as files"):
        private_api.check_mlflow_fields({}, {"../escape": "v"}, [])


def test_optuna_table_names_and_engine_match_a_real_storage(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    engine = private_api.rdb_engine(storage)
    with engine.connect() as con:
        import sqlalchemy
        made = {r[0] for r in con.execute(sqlalchemy.text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
    assert {"studies", "trials"} <= private_api.optuna_table_names()
    assert made - {"alembic_version"} <= private_api.optuna_table_names()


def test_a_name_that_is_gone_is_one_error_naming_the_library_version_and_the_name():
    with pytest.raises(private_api.PrivateAPIChanged) as err:
        private_api.rdb_engine(object())
    version = importlib.metadata.version("optuna")
    assert f"optuna {version}: RDBStorage.engine is gone or changed" in str(err.value)
    assert "harness/private_api.py" in str(err.value)


def test_submitit_sbatch_text_is_the_job_harness_submit_would_hand_slurm(tmp_path):
    from harness import slurm

    settings = slurm.JobSettings(tasks=3, partition="gpu", time_min=90, cpus_per_task=4, gpus_per_task=1,
                                 options={"qos": "high"}, logs=tmp_path / "logs", job_name="harness-tiny")
    text = private_api.submitit_sbatch_text(slurm.executor(settings), settings.tasks)
    for line in ("#SBATCH --array=0-2", "#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gpus-per-task=1", "#SBATCH --qos=high", "#SBATCH --signal=USR2@120",
                 "#SBATCH --job-name=harness-tiny", "-m submitit.core._submit"):
        assert line in text, text
    assert not (tmp_path / "logs").exists()  # shown, not submitted


def test_mlflows_pt2_pickle_check_passes_a_saved_model_and_names_a_pickled_record(tmp_path):
    import io
    import zipfile

    import torch
    from harness import trained

    folder = tmp_path / "model"
    trained.save(torch.nn.Linear(4, 2).eval(), folder, torch.zeros(2, 4))
    archive = folder / "data" / "model.pt2"
    assert private_api.pt2_pickle_problem(archive) is None
    pickled = io.BytesIO()
    torch.save({"x": print}, pickled)  # a global that weights_only refuses
    hostile = tmp_path / "hostile.pt2"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(hostile, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, pickled.getvalue() if "sample_inputs" in info.filename else src.read(info))
    assert "sample_inputs/model.pt' in the model's 'pt2' archive is not a pickle-free payload" in private_api.pt2_pickle_problem(hostile)


def test_mlflow_pytorch_comes_without_a_second_lightning_or_a_root_log_handler():
    """MLflow's Lightning autologging is left out (it would import pytorch_lightning and install a
    root log handler), as long as MLflow imports it where the harness expects, inside a try."""
    import mlflow

    source = (Path(mlflow.__file__).parent / "pytorch" / "__init__.py").read_text()
    assert "    from mlflow.pytorch._lightning_autolog import MlflowModelCheckpointCallback" in source, \
        f"mlflow {mlflow.__version__} imports its Lightning autologging otherwise: update private_api.mlflow_pytorch"
    probe = ("import logging, sys\nfrom harness import private_api\nhandlers = list(logging.root.handlers)\n"
             "m = private_api.mlflow_pytorch()\n"
             "print('pytorch_lightning' in sys.modules, logging.root.handlers == handlers, callable(m.save_model))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["False", "True", "True"], done.stderr[-2000:]
