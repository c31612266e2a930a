"""Training: a LightningModule with the paper's recipe, and `train(cfg) -> Result`, the one function
that turns a config into a recorded MLflow run.

Order of work, so that a bad input never leaves a half-written store: the config was validated
when it was built; the data is read and verified next; only then is the run created. Errors are
percent.

An epoch ends in this order: its metrics reach MLflow (step = epochs completed), the learning-rate
schedule steps, and only then is its checkpoint written. A run killed at any moment therefore
continues from a checkpoint whose epochs are all recorded and whose schedule is up to date; one
killed between the metrics and the checkpoint redoes that epoch, and its second values replace
the first (readers take the last value per step).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment

from harness import compiling
from harness import config as C
from harness import places
from harness.bench import pick_device
from harness import stores, tracking
from harness.errors import RunOutOfRoom, room_lost, writing_to_store
from harness.curves import plot_learning_curve
from harness.data import Data, load_data
from harness.data.augment import BatchTransform
from harness.models import build_model

IMPORTED_AT = time.perf_counter()  # start-up is measured from here (`harness bench`)

# Lightning's start-up chatter (accelerators available, tips) is noise in a sweep of many runs.
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")  # resuming
# A checkpoint carried by a runs file continues under the copied run's id, in another folder; only
# its newest file matters here (harness.importing).
warnings.filterwarnings("ignore", message="The dirpath has changed from")
# On a machine with SLURM installed, a local sweep is not meant to go through srun (harness submit
# runs each worker as a task of its own), so Lightning's hint is noise in every cell.
warnings.filterwarnings("ignore", message="The `srun` command is available on your system")

EPOCH_METRICS = ["train_loss", "train_err", "val_loss", "val_err", "val_err5", "lr", "images_per_sec", "train_time_s"]
TEST_METRICS = ["test_loss", "test_err", "test_err5"]


class Diverged(FloatingPointError):
    """The training loss stopped being a finite number."""

    failure_reason = "diverged"


def view_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits; for N x V x C x H x W input (V test views), the log of the mean softmax."""
    if x.dim() == 5:
        n, v = x.shape[:2]
        return F.softmax(model(x.flatten(0, 1)), dim=1).view(n, v, -1).mean(1).log()
    return model(x)


def topk_errors(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 and top-5 error in percent over the batch."""
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return 100 * (1 - hit[:, 0].float().mean()), 100 * (1 - hit.any(1).float().mean())


class Classifier(pl.LightningModule):
    """`record(step, metrics)` receives each epoch's metrics before its checkpoint is written;
    `stop_check(epochs)`, after the epoch's own stop rules, may name a reason to stop (a race's)."""

    def __init__(self, cfg: C.RunConfig, transform: BatchTransform, num_classes: int,
                 record: Callable[[int, dict[str, float]], None] = lambda step, metrics: None,
                 channels_last: bool = False, stop_check: Callable[[int], str | None] = lambda epochs: None,
                 compiled: bool = False):
        super().__init__()
        self.cfg, self.transform, self.record, self.stop_check = cfg, transform, record, stop_check
        self.channels_last = channels_last  # C.channels_last for the device it trains on
        self.model = build_model(cfg.model, num_classes)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.compiled = compiled  # compiling.prepare's answer for the device it trains on
        if compiled:
            self.model.compile()  # in place: its parameters' names, and so its checkpoints, are the eager ones
        # Saved in checkpoints: cumulative training time, the best training error so far (for
        # trainer.stop_stalled), the stop rule that fired ('' = none yet), and the schedule's state.
        self.train_time_s = 0.0
        self.best_train_err, self.best_epoch = math.inf, 0
        self.stopped = ""
        # tracking.log_model=best: the weights of the epoch with the lowest validation error so far
        self.best_val: tuple[float, int, dict[str, torch.Tensor] | None] = (math.inf, 0, None)
        self.scheduler = None
        self._scheduler_state: dict | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return view_logits(self.model, x)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        if self.trainer.training:
            images = self.transform.train(images)
        else:
            images = self.transform.evaluate(images, views=self.trainer.testing)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

    # -- training ------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._epoch_started, self._epoch_images = time.perf_counter(), 0
        self._epoch_lr = self.optimizers().param_groups[0]["lr"]
        # Image-weighted sums of loss and error, on the device: self.log on every step would cost
        # ~2.5% of a small network's step on a CPU (`harness bench`); they are logged at the end.
        self._epoch_sums = torch.zeros(2, device=self.device, dtype=torch.float32 if self.device.type == "mps"
                                       else torch.float64)  # exact counts past 2^24 (ImageNet epochs)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        n = len(labels)
        self._epoch_sums += torch.stack([loss.detach() * n, 100 * (logits.detach().argmax(1) != labels).sum()])
        self._epoch_images += n
        # Checking every step would make the CPU wait for the GPU; every 20th step is enough.
        if batch_idx % 20 == 0:
            if not torch.isfinite(loss):
                raise Diverged(f"training loss became {loss.item()} at epoch {self.current_epoch + 1}, "
                               f"step {batch_idx + 1} (learning rate {self._epoch_lr:g})")
            self.log("err", self._epoch_sums[1] / self._epoch_images, prog_bar=True, logger=False)  # the bar's
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.device.type == "cuda" and batch_idx == self.trainer.num_training_batches - 1:
            torch.cuda.synchronize()  # the epoch's time must include its queued GPU work
        self._epoch_seconds = time.perf_counter() - self._epoch_started

    def on_train_epoch_end(self) -> None:
        """Runs before Lightning's checkpoint callback (see the module docstring for why it matters)."""
        loss, err = (self._epoch_sums / self._epoch_images).tolist()
        self.log_dict({"train_loss": loss, "train_err": err}, logger=False)
        logged = self.trainer.callback_metrics
        if not math.isfinite(logged["train_loss"]):
            raise Diverged(f"training loss became {float(logged['train_loss'])} "
                           f"in epoch {self.current_epoch + 1} (learning rate {self._epoch_lr:g})")
        self.train_time_s += self._epoch_seconds
        metrics = {k: float(logged[k]) for k in EPOCH_METRICS if k in logged}
        metrics |= {"images_per_sec": self._epoch_images / self._epoch_seconds,
                    "train_time_s": self.train_time_s, "lr": self._epoch_lr}
        self.record(self.current_epoch + 1, metrics)
        self._step_schedule(metrics)
        if self.cfg.tracking.log_model == "best" and metrics.get("val_err", math.inf) < self.best_val[0]:
            self.best_val = (metrics["val_err"], self.current_epoch + 1,
                             {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()})
        t = self.cfg.trainer
        if metrics["train_err"] < self.best_train_err:
            self.best_train_err, self.best_epoch = metrics["train_err"], self.current_epoch
        stalled = t.stop_stalled and self.current_epoch - self.best_epoch >= t.stop_stalled
        self.stopped = ("target" if t.stop_train_err and metrics["train_err"] < t.stop_train_err
                        else "stalled" if stalled else self.stop_check(self.current_epoch + 1) or "")
        self.trainer.should_stop = bool(self.stopped)

    def on_train_start(self) -> None:
        self.trainer.should_stop = bool(self.stopped)  # a run killed after its stop rule fired stays stopped

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["harness"] = {"train_time_s": self.train_time_s, "stopped": self.stopped,
                                 "best_train_err": (self.best_train_err, self.best_epoch), "best_val": self.best_val,
                                 "scheduler": self.scheduler.state_dict() if self.scheduler else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["harness"]
        # Checkpoints written before the rule was named hold True for "a rule fired".
        self.train_time_s, self.stopped = state["train_time_s"], {True: "rule", False: ""}.get(state["stopped"], state["stopped"])
        self.best_train_err, self.best_epoch = state["best_train_err"]
        self.best_val = state.get("best_val", (math.inf, 0, None))  # (none in checkpoints before log_model=best)
        self._scheduler_state = state["scheduler"]  # loaded once configure_optimizers makes it

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, batch, prefix: str) -> None:
        images, labels = batch
        logits = self(images)
        err1, err5 = topk_errors(logits, labels)
        n = len(labels)
        self.log(f"{prefix}_loss", F.cross_entropy(logits, labels), batch_size=n, logger=False)
        self.log(f"{prefix}_err", err1, batch_size=n, prog_bar=True, logger=False)
        self.log(f"{prefix}_err5", err5, batch_size=n, logger=False)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")  # recorded once, by train(), at the last epoch

    # -- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self):
        """SGD for Lightning to step; the schedule is stepped here, at the end of each epoch
        (`_step_schedule`), so that the epoch's checkpoint holds it already stepped."""
        o = self.cfg.optim
        sgd = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        self.scheduler = None
        if o.schedule == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(sgd, o.step_every, o.lr_factor)
        elif o.schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(sgd, "min", o.lr_factor, o.plateau_patience)
        if self.scheduler and self._scheduler_state:
            self.scheduler.load_state_dict(self._scheduler_state)
        return sgd

    def _step_schedule(self, metrics: dict[str, float]) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics["val_err" if "val_err" in metrics else "train_err"])
        elif self.scheduler:
            self.scheduler.step()


@dataclass
class Result:
    run_id: str
    status: str  # FINISHED, FAILED or KILLED
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    error: str = ""
    stopped_by: str = ""  # the stop rule that ended training (the run's `stopped_by` tag)


def run_tags(cfg: C.RunConfig, data: Data) -> dict[str, str]:
    flat = C.flatten(cfg)
    tags = {key.split(".")[-1]: str(flat[key]) for key in C.SWITCHES}
    return tags | {"model": cfg.model.name, "seed": str(cfg.seed), "dataset": data.name,
                   "dataset_sha256": data.checksum, "git_commit": tracking.git_commit()}


def machine_tags(device: torch.device) -> dict[str, str]:
    """What the run trained on: the device line, the CPU's model and cores, the GPU, torch's version."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or platform.machine())
    return {"device": device_name(device), "machine.cpu": cpu, "machine.cores": str(os.cpu_count()),
            "machine.gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none",
            "machine.torch": torch.__version__}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:  # not Linux
        return []


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    threads = torch.get_num_threads()
    return f"{device.type} ({os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''})"


def describe_data(data: Data) -> str:
    s = data.sizes
    return f"{data.name} from {data.source}: {s['train']:,} train / {s['val']:,} val / {s['test']:,} test images"


class Claim(Protocol):
    """A sweep's hold on the cell a run trains: the run records nothing more once it is lost."""

    def held(self) -> bool:
        """Still ours (checked before each epoch is recorded)."""

    def complete(self, metrics: dict[str, float]) -> bool:
        """Make the cell ours for good, once everything is recorded; False: the claim was lost."""


def train(cfg: C.RunConfig, *, parent_run_id: str | None = None, resume_run_id: str | None = None,
          extra_tags: dict[str, str] | None = None, data: Data | None = None, claim: Claim | None = None,
          stop_check: Callable[[int], str | None] = lambda epochs: None) -> Result:
    """Train, test and record one run. Exceptions inside training end the run FAILED (with the
    reason as tags) and are returned in the Result, not raised; Ctrl-C ends it KILLED and re-raises.
    With a `claim` that is lost (the sweep handed the cell to another worker, which may be
    continuing this very run) the run is left as it is and the Result says KILLED. `stop_check`:
    see `Classifier`. The run's tags `stopped_by` (target, stalled, max_epochs, or the reason
    `stop_check` gave) and `epochs_trained` say how it ended."""
    data = data or load_data(cfg.data)  # reads and verifies before any run exists
    num_classes = cfg.model.num_classes or len(data.classes)
    if num_classes != len(data.classes):
        raise C.ConfigError(f"model.num_classes: {num_classes}, but {data.source} has {len(data.classes)} classes")
    uri = places.tracking_uri(cfg.tracking)
    places.check_outputs(cfg)
    stores.check_tracking_store(uri)
    tracking.check_experiment(uri, cfg.tracking.experiment, cfg.tracking.artifact_root)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    compiled = compiling.prepare(cfg, num_classes, pick_device(cfg.trainer))  # a failure: before any run

    with ExitStack() as held_run:
        if resume_run_id:
            run_id = resume_run_id
            held_run.enter_context(places.training_lock(cfg.trainer, run_id))
            tracking.resume_run(uri, run_id)
        else:
            with writing_to_store(uri, "starting a run"):
                run_id = tracking.start_run(
                    uri, cfg.tracking.experiment, cfg.tracking.artifact_root, cfg.tracking.run_name or C.run_name(cfg),
                    C.flatten(cfg), run_tags(cfg, data) | (extra_tags or {}), C.to_yaml(cfg), parent_run_id)
                tracking.log_dataset(uri, run_id, data.name, data.checksum, str(data.source), data.sizes)
            held_run.enter_context(places.training_lock(cfg.trainer, run_id))
        return _fit_and_test(cfg, data, num_classes, uri, run_id, resume_run_id is not None, claim, stop_check, compiled)


def _fit_and_test(cfg: C.RunConfig, data: Data, num_classes: int, uri: str, run_id: str, resume: bool,
                  claim: Claim | None, stop_check: Callable[[int], str | None], compiled: bool) -> Result:
    from harness.describe import cost_line

    def record(step: int, metrics: dict[str, float]) -> None:
        if claim and not claim.held():
            raise tracking.RunTaken(f"claim on the cell lost before epoch {step} was recorded")
        tracking.log_metrics(uri, run_id, metrics, step)

    checkpoint = places.checkpoint_path(cfg.trainer, run_id)
    trainer = None
    try:
        with tracking.ending(uri, run_id):
            trainer = lightning_trainer(cfg, checkpoint, [FirstStepLine()], compiled)
            device = trainer.strategy.root_device
            module = Classifier(cfg, data.transform, num_classes, record, device_settings(cfg.trainer, device), stop_check,
                                compiled)
            print(f"harness: {describe_data(data)}\nharness: {cost_line(module.model, cfg, data.sizes['train'])}")
            data.to(device)
            tracking.set_tags(uri, run_id, machine_tags(device) | {"memory_format": "NHWC" if module.channels_last else "NCHW",
                                                                   "compiled": str(compiled).lower()})
            with tracking.system_metrics(uri, run_id, cfg.tracking.system_metrics_s, resume):
                trainer.fit(module, data.train, data.val, ckpt_path=_resumable(checkpoint, run_id) if resume else None)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in EPOCH_METRICS}
            stopped_by = module.stopped or "max_epochs"
            tracking.set_tags(uri, run_id, {"stopped_by": stopped_by, "epochs_trained": str(trainer.current_epoch)})
            metrics |= _test(trainer, module, data, uri, run_id)
            _log_artifacts(cfg, uri, run_id)
            _log_model(cfg, uri, run_id, module, data, trainer.current_epoch)
            if claim and not claim.complete(metrics):
                raise tracking.RunTaken("claim on the cell lost before the run could be marked FINISHED")
    except tracking.RunTaken as err:
        return Result(run_id, "KILLED", epochs=trainer.current_epoch if trainer else 0, error=str(err))
    except Exception as err:  # recorded as the run's failure by tracking.ending
        where = room_lost(err)
        if where is not None:  # not the run's failure: the command stops, saying where (tracking.ending)
            raise RunOutOfRoom(where, run_id, uri) from err
        epochs = trainer.current_epoch if trainer else 0
        return Result(run_id, "FAILED", epochs=epochs, error=f"{type(err).__name__}: {err}")
    return Result(run_id, "FINISHED", metrics, trainer.current_epoch, stopped_by=stopped_by)


def device_settings(t: C.TrainerConfig, device: torch.device) -> bool:
    """The settings chosen for the device, once per run: TF32 matrix products for fp32 on CUDA
    (Lightning's advice for tensor-core GPUs); returns whether activations are NHWC."""
    if device.type == "cuda" and t.precision == "32-true":
        torch.set_float32_matmul_precision("high")
    return C.channels_last(t, device.type)


class FirstStepLine(pl.Callback):
    """Says, once per process, how long after its imports the first training step began: the
    start-up a user waits through (`harness bench` reads this line from `harness train`)."""

    said = False

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if not FirstStepLine.said:
            FirstStepLine.said = True
            print(f"harness: first training step {time.perf_counter() - IMPORTED_AT:.1f} s after imports", flush=True)


def lightning_trainer(cfg: C.RunConfig, checkpoint: Path, callbacks: list[pl.Callback] = (),
                      compiled: bool = False) -> pl.Trainer:
    """The harness's Lightning trainer, writing the run's checkpoint every epoch (the bench times
    its epochs with this same trainer)."""
    return pl.Trainer(
        max_epochs=cfg.trainer.max_epochs, accelerator=cfg.trainer.accelerator, devices=1,
        precision=cfg.trainer.precision,
        # "warn": LRN's CUDA backward has no deterministic kernel; keep going, say so.
        deterministic="warn" if cfg.trainer.deterministic else False,
        logger=False,  # the module records each epoch itself, before its checkpoint is written
        # save_top_k=1 without a monitor keeps the newest: last.ckpt, rewritten every epoch.
        callbacks=[ModelCheckpoint(dirpath=checkpoint.parent, filename=checkpoint.stem, save_top_k=1,
                                   enable_version_counter=False), *callbacks],
        enable_progress_bar=cfg.trainer.progress_bar, enable_model_summary=False,
        num_sanity_val_steps=0, default_root_dir=str(checkpoint.parent),
        # A compiled network evaluates under no_grad: under inference_mode, validation and testing
        # each compiled a graph of their own (Dynamo guards on grad mode and on inference tensors).
        inference_mode=not compiled,
        # Under SLURM the harness owns requeueing (harness.slurm: the cell's claim, its KILLED run);
        # Lightning's own auto-requeue would save a second checkpoint and requeue behind its back.
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
    )


def _test(trainer: pl.Trainer, module: Classifier, data: Data, uri: str, run_id: str) -> dict[str, float]:
    """Test the trained model and record the result at the last epoch, once: a run killed after
    recording it and continued does not record it again (testing is deterministic)."""
    epochs = trainer.current_epoch
    trainer.test(module, data.test, verbose=False)
    test = {k: float(v) for k, v in trainer.callback_metrics.items() if k in TEST_METRICS}
    recorded = tracking.metric_history(uri, run_id, ["test_err"])["test_err"]
    if not any(step == epochs for step, _ in recorded):
        tracking.log_metrics(uri, run_id, test, step=epochs)
    return test


def _resumable(checkpoint: Path, run_id: str) -> str | None:
    """The checkpoint a resumed run continues from, or None: it starts over, in the same run. So
    does a run killed before its first checkpoint, and one whose checkpoint was cut short (a full
    disk: Lightning's save is a copy across file systems), which would not load."""
    if not checkpoint.is_file():
        return None
    if places.is_whole_zip(checkpoint):
        return str(checkpoint)
    print(f"harness: run {run_id}: its checkpoint {checkpoint} is cut short (a full disk?); "
          "starting it again from its first epoch, in the same run", flush=True)
    return None


def _log_artifacts(cfg: C.RunConfig, uri: str, run_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        history = tracking.metric_history(uri, run_id, ["train_err", "val_err", "train_loss", "val_loss"])
        png = plot_learning_curve(history, C.run_name(cfg), Path(tmp) / "learning_curve.png")
        tracking.log_artifact(uri, run_id, png)
    checkpoint = places.checkpoint_path(cfg.trainer, run_id)
    if cfg.tracking.log_checkpoint and checkpoint.exists():
        tracking.log_artifact(uri, run_id, checkpoint, "checkpoints")


def _log_model(cfg: C.RunConfig, uri: str, run_id: str, module: Classifier, data: Data, epochs: int) -> None:
    """The trained network as the run's MLflow model (harness.trained), once: a run killed after
    logging it and continued does not log it again (one trained further does). tracking.log_model=best:
    the weights of the epoch with the lowest validation error (the last epoch's where none was validated)."""
    from harness import trained

    logged = tracking.run_model(uri, run_id)
    if cfg.tracking.log_model == "none" or (logged is not None and logged.tags.get("after_epochs") == str(epochs)):
        return
    images, _ = next(iter(data.test))
    example = data.transform.evaluate(images[:2].to(next(module.model.parameters()).device))
    val_err, best_epoch, weights = module.best_val
    chosen = (f"best: epoch {best_epoch} of {epochs}, validation error {val_err:.2f}%"
              if cfg.tracking.log_model == "best" and weights is not None else "final")
    model_id, size = trained.log(uri, run_id, module.model, example, epochs, best_epoch if chosen != "final" else epochs,
                                 weights if chosen != "final" else None, chosen)
    print(f"harness: model {model_id} logged ({chosen}; {size / 2**20:,.1f} MB, pt2); "
          f"load it with harness.trained.load({run_id!r})", flush=True)


def resume(run_id: str, uri: str | None = None) -> Result:
    """Continue a run from its last checkpoint, with the config it was started with (from its
    start, in the same run, when it was stopped before its first epoch ended)."""
    uri = uri or places.tracking_uri(C.TrackingConfig())
    if not stores.has_tracking_store(uri):
        raise C.ConfigError(f"--resume {run_id}: no tracking store at {uri}")
    if not tracking.run_active(uri, run_id):
        raise C.ConfigError(f"--resume {run_id}: no such run in {uri}")
    if tracking.run_status(uri, run_id) == "FINISHED":
        raise C.ConfigError(f"--resume {run_id}: that run already FINISHED; nothing to continue")
    cfg = C.from_yaml(tracking.run_config_yaml(uri, run_id), f"run {run_id} config")
    folder = places.checkpoint_path(cfg.trainer, run_id).parent
    if not folder.is_dir():  # made as training starts; holds no checkpoint until the first epoch ends
        raise C.ConfigError(f"--resume {run_id}: no checkpoint folder {folder} (run from the folder it started in)")
    cfg.tracking.uri = uri
    return train(cfg, resume_run_id=run_id)
