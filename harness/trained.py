"""A run's trained network as an MLflow model: logged when the run finishes, loaded back by run id.

    from harness.trained import load
    net = load("RUN_ID")                        # the store of $MLFLOW_TRACKING_URI, else mlruns/
    net = load("RUN_ID", "http://host:5000")    # or a tracking server
    net.state_dict()["features.conv1.weight"]   # conv1's filters (the paper's Figure 3)

The format is MLflow's PyTorch flavour saved as "pt2" (torch.export), MLflow's default outside
Databricks: a traced graph and its weights. Loading it runs no pickled code (a model that came in a
runs file from another machine is as safe to open as its metrics) and needs none of this project's
classes. It loads in inference mode (dropout off, as it was traced), in fp32, for any batch size at
the run's input size, with the training module's parameter names; it cannot be trained further
(continue a run from its checkpoint: `harness train --resume`).

`harness model RUN_ID` says where a run's model is and its size; `--test` evaluates it again on the
run's own test set, with its test crops and precision, beside the test error the run recorded.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness import config as C
from harness import places, private_api, stores, tracking
from harness.errors import ConfigError, StoreError


def _mlflow_pytorch() -> Any:
    """mlflow.pytorch, set to refuse pickled records: MLflow 3.17 lets a pt2 file hold them (and
    loads them, running their code) unless MLFLOW_ALLOW_PICKLE_DESERIALIZATION is false; its
    default is true. A model from a runs file must never run code. (Without MLflow's Lightning
    autologging: see private_api.mlflow_pytorch; mlflow.pytorch.autolog fails in this process.)"""
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    return private_api.mlflow_pytorch()


def log(uri: str, run_id: str, net: torch.nn.Module, example: torch.Tensor, after_epochs: int, epochs: int,
        weights: dict[str, torch.Tensor] | None = None, chosen: str = "final") -> tuple[str, int]:
    """Log `net` (as it is now, or with `weights`: those it had after `epochs`) as the run's model
    once it has trained `after_epochs`; `example`: a batch of its input; `chosen` says which weights.
    Returns the model's id and its size in bytes. Exporting took 0.3-1.5 s on a 2-core CPU (README)."""
    net = copy.deepcopy(net).float().cpu().to(memory_format=torch.contiguous_format).eval()
    if weights is not None:
        net.load_state_dict(weights)
    # Zeros, two: its values only fix shapes (and travel as JSON); a batch of one would fix the batch size at 1.
    example = torch.zeros(2, *example.shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / tracking.MODEL_NAME
        save(net, folder, example)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        parameters = sum(p.numel() for p in net.parameters())
        model_id = tracking.log_model_folder(uri, run_id, folder, epochs, {
            "epochs": str(epochs), "after_epochs": str(after_epochs), "bytes": str(size), "parameters": str(parameters), "format": "pt2", "chosen": chosen})
    return model_id, size


def save(net: torch.nn.Module, folder: Path, example: torch.Tensor) -> None:
    """`net` as an MLflow model folder (the PyTorch flavour, pt2) at `folder`, with its pip
    requirements said: left to infer them, MLflow starts a process that imports the model's
    libraries again (about 7 s of CPU per model here)."""
    _mlflow_pytorch().save_model(net, str(folder), input_example=example.numpy(), serialization_format="pt2",
                                 pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])


# The tags `log` gives a model: counts, as ASCII digits (a runs file's may be anything)
COUNT_TAGS = ("epochs", "after_epochs", "bytes", "parameters")


def folder_problem(files: dict[str, bytes], tags: dict[str, str]) -> str | None:
    """Why a model folder from a runs file (path -> bytes) and its tags are not one that `log`
    writes, else None: its MLmodel names the PyTorch flavour (and pyfunc through it) over `data`
    with no code of its own, its pt2 archive holds no pickled records, its counts are numbers."""
    bad = [k for k in COUNT_TAGS if k in tags and not (tags[k].isascii() and tags[k].isdigit() and len(tags[k]) <= 15)]
    if "epochs" not in tags or bad:
        return f"its tags are not counts: {', '.join(bad or ['epochs (none)'])}"
    try:
        mlmodel = C.parse_yaml(files.get("MLmodel", b""), "its MLmodel")
    except ConfigError as err:
        return str(err)
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    torch_flavor = flavors.get("pytorch") if isinstance(flavors, dict) else None
    pyfunc = flavors.get("python_function", {}) if isinstance(flavors, dict) else None
    if not (isinstance(torch_flavor, dict) and isinstance(pyfunc, dict) and set(flavors) <= {"pytorch", "python_function"}
            and torch_flavor.get("model_data") == "data" and torch_flavor.get("code") is None
            and pyfunc.get("loader_module", "mlflow.pytorch") == "mlflow.pytorch"
            and pyfunc.get("data", "data") == "data" and pyfunc.get("code") is None):
        return "its MLmodel is not MLflow's PyTorch flavour over data/ without code of its own"
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.pt2"
        archive.write_bytes(files[tracking.PT2_FILE])
        problem = private_api.pt2_pickle_problem(archive)
    return f"its {tracking.PT2_FILE}: {problem}" if problem else None


@dataclass
class Found:
    run_id: str
    run_name: str
    uri: str
    model: Any  # MLflow's LoggedModel

    @property
    def size(self) -> int:
        size = self.model.tags.get("bytes", "")
        return int(size) if size.isascii() and size.isdigit() else 0


def find(run_id: str, tracking_uri: str | None = None) -> Found:
    """The run's logged model; a store, run or model that is not there is one InputError."""
    uri = tracking_uri or places.tracking_uri(C.TrackingConfig())
    if not stores.has_tracking_store(uri):
        raise StoreError(f"no tracking store at {uri} (name one with --tracking-uri or $MLFLOW_TRACKING_URI)")
    if not tracking.run_active(uri, run_id):
        raise ConfigError(f"run {run_id}: no such run in {uri}")
    model = tracking.run_model(uri, run_id)
    name = tracking.client(uri).get_run(run_id).info.run_name
    if model is None:
        raise ConfigError(f"run {run_id} ({name}): no model logged (it did not finish, it is a sweep's parent, "
                          "or it ran with tracking.log_model=none)")
    return Found(run_id, name, uri, model)


def load(run_id: str, tracking_uri: str | None = None) -> torch.nn.Module:
    """The run's trained network (see the module docstring)."""
    mlflow_pytorch = _mlflow_pytorch()
    found = find(run_id, tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracking.download_model(found.uri, found.model, Path(tmp))
        if not (folder / tracking.PT2_FILE).is_file() or any(folder.glob("data/*.pth")):
            raise ConfigError(f"run {run_id}: its model {found.model.model_id} is not a pt2 file ({tracking.PT2_FILE}); "
                              "a pickled model can run code as it loads, so harness does not load one")
        return mlflow_pytorch.load_model(str(folder))


def retest(run_id: str, tracking_uri: str | None = None) -> tuple[float, float | None, int]:
    """(top-1 test error now, in percent; the one the run recorded, None if none; test images),
    on the run's own test set (its recorded data config) with its test crops and precision."""
    from harness.data import load_data
    from harness.train import topk_errors, view_logits

    found = find(run_id, tracking_uri)
    cfg = C.from_yaml(tracking.run_config_yaml(found.uri, run_id), f"run {run_id}'s {tracking.CONFIG_ARTIFACT}")
    data = load_data(cfg.data)
    net = load(run_id, found.uri)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net.to(device)
    data.to(device)
    wrong = images = 0
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=cfg.trainer.precision == "bf16-mixed"):
        for batch, labels in data.test:
            batch, labels = batch.to(device), labels.to(device)
            logits = view_logits(net, data.transform.evaluate(batch, views=True))
            wrong += float(topk_errors(logits, labels)[0]) * len(labels)
            images += len(labels)
    recorded = tracking.client(found.uri).get_run(run_id).data.metrics.get("test_err")
    return wrong / images, recorded, images
