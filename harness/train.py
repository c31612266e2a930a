"""Training: a LightningModule with the paper's recipe, and `train(cfg) -> Result`, the one function
that turns a config into a recorded MLflow run.

Order of work, so that a bad input never leaves a half-written store: the config was validated
when it was built; the data is read and verified next; only then is the run created. Metrics go
to MLflow once per epoch with step = epochs completed. Errors are percent.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger

from harness import config as C
from harness import tracking
from harness.curves import plot_learning_curve
from harness.data import Data, load_data
from harness.data.augment import BatchTransform
from harness.models import build_model, count_parameters

# Lightning's start-up chatter (accelerators available, tips) is noise in a sweep of many runs.
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")  # resuming

EPOCH_METRICS = ["train_loss", "train_err", "val_err", "val_err5", "lr", "images_per_sec", "train_time_s"]


class Diverged(FloatingPointError):
    """The training loss stopped being a finite number."""


def topk_errors(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 and top-5 error in percent over the batch."""
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return 100 * (1 - hit[:, 0].float().mean()), 100 * (1 - hit.any(1).float().mean())


class Classifier(pl.LightningModule):
    def __init__(self, cfg: C.RunConfig, transform: BatchTransform, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.model = build_model(cfg.model, num_classes)
        self.transform = transform
        if cfg.trainer.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_time_s = 0.0  # cumulative over epochs, saved in checkpoints
        self.best_train_err, self.best_epoch = math.inf, 0  # for trainer.stop_stalled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; for N x V x C x H x W input (V test views), the log of the mean softmax."""
        if x.dim() == 5:
            n, v = x.shape[:2]
            probs = F.softmax(self.model(x.flatten(0, 1)), dim=1).view(n, v, -1).mean(1)
            return probs.log()
        return self.model(x)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        if self.trainer.training:
            images = self.transform.train(images)
        else:
            images = self.transform.evaluate(images, views=self.trainer.testing)
        if self.cfg.trainer.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels

    # -- training ------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._epoch_started, self._epoch_images = time.perf_counter(), 0
        self._epoch_lr = self.optimizers().param_groups[0]["lr"]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        # Checking every step would make the CPU wait for the GPU; every 20th step is enough.
        if batch_idx % 20 == 0 and not torch.isfinite(loss):
            raise Diverged(f"training loss became {loss.item()} at epoch {self.current_epoch + 1}, "
                           f"step {batch_idx + 1} (learning rate {self._epoch_lr:g})")
        err1, _ = topk_errors(logits.detach(), labels)
        n = len(labels)
        self.log("train_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=n)
        self.log("train_err", err1, on_step=False, on_epoch=True, batch_size=n, prog_bar=True)
        self._epoch_images += n
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.device.type == "cuda" and batch_idx == self.trainer.num_training_batches - 1:
            torch.cuda.synchronize()  # the epoch's time must include its queued GPU work
        self._epoch_seconds = time.perf_counter() - self._epoch_started

    def on_train_epoch_end(self) -> None:
        if not math.isfinite(self.trainer.callback_metrics["train_loss"]):
            raise Diverged(f"training loss became {float(self.trainer.callback_metrics['train_loss'])} "
                           f"in epoch {self.current_epoch + 1} (learning rate {self._epoch_lr:g})")
        self.train_time_s += self._epoch_seconds
        self.log("images_per_sec", self._epoch_images / self._epoch_seconds)
        self.log("train_time_s", self.train_time_s)
        self.log("lr", self._epoch_lr)
        train_err = float(self.trainer.callback_metrics["train_err"])
        t = self.cfg.trainer
        if train_err < self.best_train_err:
            self.best_train_err, self.best_epoch = train_err, self.current_epoch
        stalled = t.stop_stalled and self.current_epoch - self.best_epoch >= t.stop_stalled
        if (t.stop_train_err and train_err < t.stop_train_err) or stalled:
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["harness_train_time_s"] = self.train_time_s
        checkpoint["harness_best_train_err"] = (self.best_train_err, self.best_epoch)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.train_time_s = checkpoint.get("harness_train_time_s", 0.0)
        self.best_train_err, self.best_epoch = checkpoint.get("harness_best_train_err", (math.inf, 0))

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, batch, prefix: str, to_logger: bool) -> None:
        images, labels = batch
        logits = self(images)
        err1, err5 = topk_errors(logits, labels)
        n = len(labels)
        self.log(f"{prefix}_loss", F.cross_entropy(logits, labels), batch_size=n, logger=to_logger)
        self.log(f"{prefix}_err", err1, batch_size=n, prog_bar=True, logger=to_logger)
        self.log(f"{prefix}_err5", err5, batch_size=n, logger=to_logger)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val", to_logger=True)

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test", to_logger=False)  # logged once, by train(), at the last epoch

    def configure_optimizers(self):
        o = self.cfg.optim
        sgd = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        if o.schedule == "constant":
            return sgd
        if o.schedule == "step":
            return {"optimizer": sgd, "lr_scheduler": torch.optim.lr_scheduler.StepLR(sgd, o.step_every, o.lr_factor)}
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(sgd, "min", o.lr_factor, o.plateau_patience)
        monitor = "val_err" if self.cfg.data.val_size else "train_err"
        return {"optimizer": sgd, "lr_scheduler": {"scheduler": plateau, "monitor": monitor}}


class EpochMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger with step = epochs completed, and no say over the run's status
    (train() ends the run once everything, test included, is recorded)."""

    def log_metrics(self, metrics, step=None):
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        super().log_metrics(metrics, step=int(epoch) + 1 if epoch is not None else step)

    def finalize(self, status: str = "success") -> None:
        pass


@dataclass
class Result:
    run_id: str
    status: str  # FINISHED, FAILED or KILLED
    metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    error: str = ""


def run_tags(cfg: C.RunConfig, data: Data) -> dict[str, str]:
    flat = C.flatten(cfg)
    tags = {key.split(".")[-1]: str(flat[key]) for key in C.SWITCHES}
    return tags | {"model": cfg.model.name, "seed": str(cfg.seed), "dataset": data.name,
                   "dataset_sha256": data.checksum, "git_commit": tracking.git_commit()}


def failure_tags(err: BaseException) -> dict[str, str]:
    last_lines = "".join(traceback.format_exception(err)).strip().splitlines()[-12:]
    return {"failure_reason": "diverged" if isinstance(err, Diverged) else type(err).__name__,
            "failure_message": str(err)[:4000], "failure_traceback": "\n".join(last_lines)[-4000:]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    threads = torch.get_num_threads()
    return f"{device.type} ({os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''})"


def describe_data(data: Data) -> str:
    s = data.sizes
    return f"{data.name} from {data.source}: {s['train']:,} train / {s['val']:,} val / {s['test']:,} test images"


def train(cfg: C.RunConfig, *, parent_run_id: str | None = None, resume_run_id: str | None = None,
          extra_tags: dict[str, str] | None = None, data: Data | None = None) -> Result:
    """Train, test and record one run. Exceptions inside training end the run FAILED (with the
    reason as tags) and are returned in the Result, not raised; Ctrl-C ends it KILLED and re-raises."""
    from harness.describe import cost_line

    data = data or load_data(cfg.data)  # reads and verifies before any run exists
    num_classes = cfg.model.num_classes or len(data.classes)
    if num_classes != len(data.classes):
        raise C.ConfigError(f"model.num_classes: {num_classes}, but {data.source} has {len(data.classes)} classes")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    module = Classifier(cfg, data.transform, num_classes)
    print(f"harness: {describe_data(data)}\nharness: {cost_line(module.model, cfg, data.sizes['train'])}")

    uri = C.tracking_uri(cfg.tracking)
    if resume_run_id:
        run_id = resume_run_id
        tracking.resume_run(uri, run_id)
    else:
        run_id = tracking.start_run(
            uri, cfg.tracking.experiment, cfg.tracking.artifact_root, cfg.tracking.run_name or C.run_name(cfg),
            C.flatten(cfg), run_tags(cfg, data) | (extra_tags or {}), C.to_yaml(cfg), parent_run_id)
    checkpoints = Path(cfg.trainer.checkpoint_dir) / run_id
    last_ckpt = checkpoints / "last.ckpt"
    trainer = None
    try:
        trainer = pl.Trainer(
            max_epochs=cfg.trainer.max_epochs, accelerator=cfg.trainer.accelerator, devices=1,
            precision=cfg.trainer.precision,
            # "warn": LRN's CUDA backward has no deterministic kernel; keep going, say so.
            deterministic="warn" if cfg.trainer.deterministic else False,
            logger=EpochMLFlowLogger(tracking_uri=uri, run_id=run_id),
            # save_top_k=1 without a monitor keeps the newest: last.ckpt, rewritten every epoch.
            callbacks=[ModelCheckpoint(dirpath=checkpoints, filename="last", save_top_k=1,
                                       enable_version_counter=False)],
            enable_progress_bar=cfg.trainer.progress_bar, enable_model_summary=False,
            num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=str(checkpoints),
        )
        data.to(trainer.strategy.root_device)
        tracking.set_tags(uri, run_id, {"device": device_name(trainer.strategy.root_device)})
        trainer.fit(module, data.train, data.val, ckpt_path=str(last_ckpt) if resume_run_id else None)
        epochs = trainer.current_epoch
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        trainer.test(module, data.test, verbose=False)
        test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        tracking.log_metrics(uri, run_id, test, step=epochs)
        with tempfile.TemporaryDirectory() as tmp:
            history = tracking.metric_history(uri, run_id, ["train_err", "val_err", "train_loss", "val_loss"])
            png = plot_learning_curve(history, C.run_name(cfg), Path(tmp) / "learning_curve.png")
            tracking.log_artifact(uri, run_id, png)
        if cfg.tracking.log_checkpoint and last_ckpt.exists():
            tracking.log_artifact(uri, run_id, last_ckpt, "checkpoints")
        metrics |= test
    except (KeyboardInterrupt, SystemExit) as err:
        tracking.end_run(uri, run_id, "KILLED", {"failure_reason": "interrupted"})
        raise err
    except Exception as err:
        tracking.end_run(uri, run_id, "FAILED", failure_tags(err))
        epochs = trainer.current_epoch if trainer else 0
        return Result(run_id, "FAILED", epochs=epochs, error=f"{type(err).__name__}: {err}")
    tracking.end_run(uri, run_id, "FINISHED")
    return Result(run_id, "FINISHED", metrics, epochs)


def resume(run_id: str, uri: str | None = None) -> Result:
    """Continue a run from its last checkpoint, with the config it was started with."""
    uri = uri or C.tracking_uri(C.TrackingConfig())
    if tracking.run_status(uri, run_id) == "FINISHED":
        raise C.ConfigError(f"--resume {run_id}: that run already FINISHED; nothing to continue")
    cfg = C.from_yaml(tracking.run_config_yaml(uri, run_id), f"run {run_id} config")
    checkpoint = Path(cfg.trainer.checkpoint_dir) / run_id / "last.ckpt"
    if not checkpoint.is_file():
        raise C.ConfigError(f"--resume {run_id}: no checkpoint at {checkpoint} (run from the folder it started in)")
    cfg.tracking.uri = uri
    return train(cfg, resume_run_id=run_id)
