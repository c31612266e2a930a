"""`harness bench`: the harness's training loop against a bare PyTorch loop, on this machine.

Claims: with the same settings the harness trains as fast as a plain `for` loop over the same
model, uint8 tensors, batch transform, optimiser and precision (harness/bare >= 0.97, eager and
compiled: issues 14 and 25); its default settings train at least 1.25x as fast as the bare eager
fp32 loop (issue 25); LRN costs at most 15% of a step, the data transform at most 5%, and `harness
train` reaches its first step within 3 s of its imports. Evidence: the table this writes to
reports/bench/<machine>.md.

Method: every measurement runs in this one process, in turn, `repeats` times (machines are noisy,
so ratios come from measurements taken side by side), after one untimed warm-up round; medians
with their spread ((max - min) / median). Each epoch is timed in every setting of SETTINGS (and
the harness's default, if that is none of them), harness and bare loop alike. Start-up runs
`harness train` in a child process against a throw-away store, with the data cache already warm.
`--workers auto` uses `best_workers`: each layout of worker processes x threads runs the cell's
training step concurrently for a few seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import torch
from torch import nn

from harness import compiling
from harness import config as C
from harness import places
from harness.data import Data, load_data
from harness.describe import random_batch, seconds_per_step, sgd, sgd_step, step_gflops
from harness.models import build_model
from harness.models.layers import LocalResponseNorm

# Issue 14's goal networks: convnet4 (relu_speed_cpu's) and the quarter-width CIFAR AlexNet
# (cifar_tricks_cpu trains it at width 0.125: `--preset cifar_alexnet model.width=0.125`).
DEFAULT_TARGETS = [("cifar_convnet4", []), ("cifar_alexnet", ["model.width=0.25"])]
DEFAULT_GRIDS = [Path(__file__).parents[1] / "ablations" / f"{name}.yaml" for name in ("relu_speed_cpu", "cifar_tricks_cpu")]
SECONDS_PER_MEASUREMENT = 4.0  # sets the batches per timed loop: long enough to dwarf timer noise
# The settings every epoch is timed in, named "<eager|compiled> <fp32|bf16>" (trainer.compile,
# trainer.precision). The bare loop in REFERENCE is what every speed-up is measured against.
SETTINGS = ("eager fp32", "compiled fp32", "eager bf16")
REFERENCE = "eager fp32"


# -- the machine ------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    described = {"cpu": cpu, "cores": str(os.cpu_count()), "threads": str(torch.get_num_threads()),
                 "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        described["gpu"] = torch.cuda.get_device_name()
    return described


def machine_slug(described: dict[str, str]) -> str:
    """File name for the machine's table: the GPU where there is one, else CPU model and cores."""
    name = described.get("gpu") or f"cpu-{described['cores']}core-{described['cpu']}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower().replace("(r)", "").replace("(tm)", "")).strip("-")


def pick_device(t: C.TrainerConfig) -> torch.device:
    """The device Lightning's accelerator setting gives (auto: CUDA, else MPS, else the CPU)."""
    if t.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if t.accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def memory_format(nhwc: bool) -> torch.memory_format:
    return torch.channels_last if nhwc else torch.contiguous_format


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device: torch.device, work: Callable[[], object]) -> float:
    sync(device)
    started = time.perf_counter()
    work()
    sync(device)
    return time.perf_counter() - started


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """The machine's matrix-product rate in `dtype`: the ceiling a training step can approach."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up
    return 2 * n**3 / statistics.median(timed(device, lambda: a @ b) for _ in range(repeats)) / 1e9


# -- one network ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Bench:
    """One preset on one device: its data on the device, and the loops to time."""

    label: str
    cfg: C.RunConfig
    data: Data
    device: torch.device
    nhwc: bool  # the memory format the harness picks here (C.channels_last)
    compiled: bool  # C.compiles here: the model goes through torch.compile

    @property
    def num_classes(self) -> int:
        return self.cfg.model.num_classes or len(self.data.classes)

    def model(self, nhwc: bool | None = None, lrn: type[nn.Module] | None = LocalResponseNorm) -> nn.Module:
        torch.manual_seed(self.cfg.seed)
        model = build_model(self.cfg.model, self.num_classes)
        for name, module in list(model.named_modules()):
            if isinstance(module, LocalResponseNorm) and lrn is not LocalResponseNorm:
                parent = model.get_submodule(name.rpartition(".")[0])
                setattr(parent, name.rpartition(".")[2], lrn() if lrn else nn.Identity())
        model = model.to(self.device, memory_format=memory_format(self.nhwc if nhwc is None else nhwc))
        if self.compiled:
            model.compile()
        return model

    def batch(self, nhwc: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = next(iter(self.data.train))
        x = self.data.transform.train(images)
        return x.contiguous(memory_format=memory_format(self.nhwc if nhwc is None else nhwc)), labels

    @property
    def bf16(self) -> bool:
        return self.cfg.trainer.precision == "bf16-mixed"

    def sgd(self, model: nn.Module) -> torch.optim.Optimizer:
        """The run's optimiser settings: the bare loop does the harness's work, no more, no less."""
        return sgd(model, self.cfg.optim.momentum, self.cfg.optim.weight_decay)


def bare_epoch(b: Bench, batches: int) -> float:
    """Images/s of a plain loop: the harness's batches and transform, its model (compiled or not),
    SGD and precision."""
    model = b.model()
    optimiser, fmt, seen = b.sgd(model), memory_format(b.nhwc), []

    def loop():
        for images, labels in islice(b.data.train, batches):
            sgd_step(model, optimiser, b.data.transform.train(images).contiguous(memory_format=fmt), labels, b.bf16)
            seen.append(len(labels))
    seconds = timed(b.device, loop)
    return sum(seen) / seconds


def harness_epoch(b: Bench, batches: int, folder: Path) -> float:
    """Images/s of the harness's own epoch: its LightningModule and Trainer, as `train` builds them,
    timed by the module itself (from the epoch's start to its last step; checkpoint excluded)."""
    from harness import train as T

    cfg = dataclasses.replace(b.cfg, trainer=dataclasses.replace(b.cfg.trainer, max_epochs=1, progress_bar=False))
    recorded: dict[str, float] = {}
    module = T.Classifier(cfg, b.data.transform, b.num_classes, lambda step, m: recorded.update(m), b.nhwc,
                          compiled=b.compiled)
    T.lightning_trainer(cfg, folder / "last.ckpt", compiled=b.compiled).fit(module, FirstBatches(b.data.train, batches))
    return recorded["images_per_sec"]


class FirstBatches:
    """The first `n` batches of a loader, as Lightning reads a loader (an epoch of them, no validation)."""

    def __init__(self, batches, n: int):
        self.batches, self.n = batches, n

    def __iter__(self):
        return islice(iter(self.batches), self.n)

    def __len__(self) -> int:
        return min(self.n, len(self.batches))


def step_seconds(b: Bench, steps: int, nhwc: bool | None = None, lrn: type[nn.Module] | None = LocalResponseNorm) -> float:
    model = b.model(nhwc, lrn)
    return seconds_per_step(model, *b.batch(nhwc), steps, b.bf16, b.sgd(model))


def transform_seconds(b: Bench, batches: int) -> float:
    fmt, loaded = memory_format(b.nhwc), list(islice(b.data.train, batches))
    return timed(b.device, lambda: [b.data.transform.train(x).contiguous(memory_format=fmt) for x, _ in loaded]) / batches


def setting(compiled: bool, precision: str) -> str:
    return f"{'compiled' if compiled else 'eager'} {'bf16' if precision == 'bf16-mixed' else 'fp32'}"


def in_setting(b: Bench, name: str) -> Bench:
    """The same network and data in another of SETTINGS."""
    compiled, precision = name.startswith("compiled"), "bf16-mixed" if name.endswith("bf16") else "32-true"
    trainer = dataclasses.replace(b.cfg.trainer, compile=compiled, precision=precision)
    return dataclasses.replace(b, cfg=dataclasses.replace(b.cfg, trainer=trainer), compiled=compiled)


def measurements(b: Bench, folder: Path, settings: list[str]) -> dict[str, Callable[[int], float]]:
    """name -> (batches -> value): images/s for the epochs (harness and bare, in each setting), seconds
    per batch for the rest (in the harness's default setting, `b`'s)."""
    out: dict[str, Callable[[int], float]] = {}
    for name in settings:
        v = in_setting(b, name)
        out |= {f"harness epoch, {name}": lambda n, v=v: harness_epoch(v, n, folder),
                f"bare epoch, {name}": lambda n, v=v: bare_epoch(v, n)}
    out |= {"step": lambda n: step_seconds(b, n), "step, other format": lambda n: step_seconds(b, n, not b.nhwc),
            "transform": lambda n: transform_seconds(b, n)}
    if b.cfg.model.lrn:
        out |= {"step, no LRN": lambda n: step_seconds(b, n, lrn=None),
                "step, torch LRN": lambda n: step_seconds(b, n, lrn=lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2))}
    return out


def compile_seconds(b: Bench, say: Callable[[str], None]) -> float | None:
    """Seconds `compiling.prepare` takes on this network (Inductor's caches as this machine has them),
    or None where it cannot compile here (the compiled setting is then left out, and says why)."""
    started = time.perf_counter()
    try:
        compiling.prepare(in_setting(b, "compiled fp32").cfg, b.num_classes, b.device, say=lambda line: None)
    except C.ConfigError as err:
        say(f"bench: {b.label}: {err}: the compiled setting is left out")
        return None
    return time.perf_counter() - started


def run_target(preset: str, overrides: list[str], repeats: int, say: Callable[[str], None]) -> dict:
    from harness.train import device_settings

    cfg, label = C.load(preset, overrides), " ".join([preset, *overrides])

    device = pick_device(cfg.trainer)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    data = load_data(cfg.data)
    data.to(device)
    b = Bench(label, cfg, data, device, device_settings(cfg.trainer, device), C.compiles(cfg.trainer, device.type))
    default = setting(b.compiled, cfg.trainer.precision)
    compile_s = compile_seconds(b, say)
    settings = [name for name in dict.fromkeys((default, *SETTINGS)) if compile_s is not None or "compiled" not in name]
    probe = step_seconds(b, 3)
    batches = max(5, min(len(data.train), round(SECONDS_PER_MEASUREMENT / probe)))
    say(f"bench: {label}: {batches} batches of {cfg.data.batch_size} per timed loop (~{probe:.3f} s a step), "
        f"{repeats} repeat{'s' if repeats > 1 else ''} of {len(measurements(b, Path(), settings))} measurements; "
        f"the default here: {default}")
    values: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        timings = measurements(b, Path(tmp), settings)
        for measure in timings.values():  # warm-up: first-call allocations, kernel choices, compiling
            measure(max(2, batches // 10))
        for repeat in range(repeats):
            for name, measure in timings.items():
                values.setdefault(name, []).append(measure(batches))
            say(f"bench: {label}: repeat {repeat + 1}/{repeats} done")
    model = b.model() if not b.compiled else in_setting(b, "eager fp32").model()
    return {"label": label, "device": str(device), "nhwc": b.nhwc, "batch": cfg.data.batch_size, "default": default,
            "settings": settings, "compile_s": compile_s,
            "gflop_per_step": step_gflops(model.cpu(), cfg.data.batch_size), "values": values,
            "first_step": first_step(label, preset, overrides, say),
            "system_metrics": {"sample_s": system_metrics_sample_s(), "every_s": cfg.tracking.system_metrics_s}}


def system_metrics_sample_s(samples: int = 5) -> float:
    """Median wall seconds of one system-metrics sample (collect, aggregate, and log it to a SQLite
    store in one batch, as MLflow's monitor thread does, but waited for here), in this thread: what
    the monitor takes from training every tracking.system_metrics_s."""
    from harness import private_api, tracking

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        run_id = tracking.client(uri).create_run(tracking.experiment_id(uri, "bench", tmp)).info.run_id
        monitor = private_api.system_metrics_monitor(run_id, uri, 10, resume=False)
        times = []
        for step in range(samples):
            start = time.perf_counter()
            monitor.collect_metrics()
            tracking.log_metrics(uri, run_id, {f"system/{k}": v for k, v in monitor.aggregate_metrics().items()}, step)
            times.append(time.perf_counter() - start)
        return med(times)


def first_step(label: str, preset: str, overrides: list[str], say: Callable[[str], None],
               timeout_s: float = 300) -> dict[str, float]:
    """Seconds from `harness train` to its imports, and from its imports to its first step, in a
    child process against a throw-away store (created here first, as a user's would exist)."""
    from harness import stores

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        stores.open_tracking_store(uri)
        command = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", "train",
                   "--preset", preset, *overrides, f"tracking.uri={uri}", f"tracking.artifact_root={tmp}/artifacts",
                   f"trainer.checkpoint_dir={tmp}/checkpoints", "trainer.progress_bar=false"]
        started, seen, after = time.perf_counter(), [], None
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:  # stopped however this ends (an error, Ctrl-C, SIGTERM): it must not outlive its folder
            for line in child.stdout:
                seen.append(line)
                found = re.search(r"first training step ([\d.]+) s after imports", line)
                if found:
                    total, after = time.perf_counter() - started, float(found.group(1))
                    break
                if time.perf_counter() - started > timeout_s:
                    break
        finally:
            child.kill()
            child.wait()
        if after is None:
            raise BenchError(f"{label}: `harness train` did not reach its first step:\n" + "".join(seen[-20:]).rstrip())
    say(f"bench: {label}: first step {total:.1f} s after the command ({after:.1f} s after imports)")
    return {"total": total, "imports": total - after, "after imports": after}


class BenchError(C.ConfigError):
    """A network the bench cannot time, with the reason (exit 2, as for bad input)."""


# -- sweep layouts ----------------------------------------------------------------------------------
def layouts(cores: int) -> list[tuple[int, int]]:
    """(worker processes, threads each) that use every core once."""
    return [(p, cores // p) for p in range(1, cores + 1) if cores % p == 0]


def throughput(cfg: C.RunConfig, processes: int, threads: int, seconds: float) -> float:
    """Images/s of `processes` children each training the cell's network on `threads` threads,
    all at once, for `seconds` after a common start (random input: the step is the cost)."""
    start_at = time.time() + 8  # every child has imported torch and warmed up by then
    spec = json.dumps({"config": C.to_yaml(cfg), "threads": threads, "start_at": start_at, "seconds": seconds})
    children = [subprocess.Popen([sys.executable, "-c", "from harness.bench import _layout_child; _layout_child()", spec],
                                 stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outputs = [child.communicate()[0] for child in children]  # every child waited for, failed or not
    if any(child.returncode for child in children):
        raise BenchError(f"a layout probe of {processes} x {threads} threads failed (its error is above)")
    return sum(float(out.split()[-1]) for out in outputs)


def _layout_child() -> None:
    spec = json.loads(sys.argv[1])
    cfg = C.from_yaml(spec["config"], "bench layout")
    torch.set_num_threads(spec["threads"])
    nhwc, batch = C.channels_last(cfg.trainer, "cpu"), cfg.data.batch_size
    model = build_model(cfg.model, cfg.model.num_classes or 10).to(memory_format=memory_format(nhwc))
    x, y = random_batch(model, batch, nhwc)
    optimiser = sgd(model)

    def step():
        sgd_step(model, optimiser, x, y)
    step()
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    # a child that came late (a slow start) times its own, shorter window, not the common one
    steps, begin, end = 0, max(time.time(), spec["start_at"]), spec["start_at"] + spec["seconds"]
    while time.time() < end or not steps:  # at least one step, however late
        step()
        steps += 1
    print(steps * batch / (time.time() - begin))


def layout_rates(grid, seconds: float, say: Callable[[str], None]) -> dict[tuple[int, int], dict[str, float]]:
    """Each layout of this machine's cores: images/s of the grid's first network in all its processes
    at once, and the grid's cells/hour at that rate by the dry run's cost model (steps, evaluation,
    set-up per cell: several workers also overlap their set-up)."""
    from harness.plan import cell_seconds

    cfg = grid.cells[0].config
    sizes = load_data(cfg.data).sizes
    rates = {}
    for p, t in layouts(os.cpu_count() or 1):
        images_per_s = throughput(cfg, p, t, seconds)
        mean_s = statistics.mean(cell_seconds(c.config, sizes, c.config.data.batch_size * p / images_per_s)
                                 for c in grid.cells)
        rates[(p, t)] = {"images_per_s": images_per_s, "cells_per_hour": 3600 * p / mean_s}
        say(f"{grid.name}: {p} worker(s) x {t} thread(s): {images_per_s:,.0f} images/s, "
            f"{rates[(p, t)]['cells_per_hour']:.1f} cells/hour")
    return rates


def best_workers(grid, seconds: float = 6.0, say: Callable[[str], None] = print) -> int:
    """`--workers auto`: the layout of this machine's cores that finishes the grid's cells fastest,
    by measurement; one worker on a GPU (workers there would share the one device)."""
    cores = os.cpu_count() or 1
    if pick_device(grid.cells[0].config.trainer).type != "cpu":
        say("--workers auto: the cells train on a GPU: 1 worker")
        return 1
    if len(layouts(cores)) == 1:
        return 1
    say(f"--workers auto: timing {len(layouts(cores))} layouts of {cores} cores for {seconds:.0f} s each "
        f"(~{len(layouts(cores)) * (seconds + 9):.0f} s in all)")
    rates = layout_rates(grid, seconds, lambda line: say(f"--workers auto: {line}"))
    best = max(rates, key=lambda layout: rates[layout]["cells_per_hour"])
    say(f"--workers auto: {best[0]} worker(s) x {best[1]} thread(s)")
    return best[0]


def grid_rates(grid_file: Path, say: Callable[[str], None]) -> dict:
    """The bench's sweep-layout table for one grid file."""
    from harness.grid import load

    grid = load(grid_file)
    rates = layout_rates(grid, 6.0, lambda line: say(f"bench: {line}"))
    return {"grid": grid.name, "cells": len(grid.cells),
            "layouts": {f"{p} x {t}": r for (p, t), r in rates.items()}}


# -- the table ---------------------------------------------------------------------------------------
def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"±{50 * (max(values) - min(values)) / med(values):.0f}%"


def epoch(t: dict, who: str, name: str) -> float:
    """Median images/s of the harness's or the bare loop's epoch in one setting."""
    return med(t["values"][f"{who} epoch, {name}"])


def goals(t: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for one network."""
    v, default, out = t["values"], t["default"], []
    for name in dict.fromkeys((default, "compiled fp32")):
        if name in t["settings"]:
            ratio = epoch(t, "harness", name) / epoch(t, "bare", name)
            out.append((f"harness/bare >= 0.97, {name}", f"{ratio:.3f}", ratio >= 0.97))
    speedup = epoch(t, "harness", default) / epoch(t, "bare", REFERENCE)
    out.append((f"default ({default}) >= 1.25x the bare {REFERENCE} loop", f"{speedup:.2f}x", speedup >= 1.25))
    share = med(v["transform"]) / med(v["step"])
    out.append(("data transform <= 5% of the step", f"{100 * share:.1f}%", share <= 0.05))
    if "step, no LRN" in v:
        lrn = med(v["step"]) / med(v["step, no LRN"]) - 1
        out.append(("LRN <= +15% of the step", f"+{100 * lrn:.0f}%", lrn <= 0.15))
    after = t["first_step"]["after imports"]
    out.append(("first step <= imports + 3 s", f"imports + {after:.1f} s", after <= 3))
    sample, every = t["system_metrics"]["sample_s"], t["system_metrics"]["every_s"]
    cost = sample / every if every else 0.0
    out.append((f"system metrics (a sample every {every:g} s) < 1% of the time",
                f"{1e3 * sample:.1f} ms a sample: {100 * cost:.2f}%", cost < 0.01))
    return out


# What stands between a goal and the measurement, where it is known (printed under an unmet goal).
CAUSES = {
    "LRN <= +15% of the step": (
        "LRN is memory-bound: a few operations per activation, but each eager PyTorch operation is one "
        "full pass over the activations, and `harness.models.layers.LocalResponseNorm` makes twelve (seven "
        "forward, five in its handwritten backward; torch's makes more). Inductor's fused kernels for the "
        "same formula were no faster here (torch 2.14's C++ code for the channel window)."),
    "default": (
        "the default is eager fp32. Compiling does not pay on a CPU (the compiled rows), so `trainer.compile=auto` "
        "compiles on CUDA only. bf16-mixed (the bf16 rows) is a setting a grid or run chooses "
        "(`trainer.precision: bf16-mixed`), not a default that changes with the processor: sweeps here are "
        "continued on whatever machine the next session gets, with or without bf16 instructions, and a "
        "cell must compute the same wherever it runs. reports/precision_cpu/ measures what bf16 does to test error."),
}


def cause(goal: str) -> str | None:
    return CAUSES.get(goal) or (CAUSES["default"] if goal.startswith("default (") else None)


def table(results: list[dict], grids: list[dict], described: dict[str, str], ceilings: dict[str, float],
          command: str) -> str:
    from harness.plan import CELL_SETUP_S  # (plan imports MLflow and Optuna: not in every layout child)

    def gflops(t: dict, images_per_s: float, name: str) -> str:
        rate = t["gflop_per_step"] / t["batch"] * images_per_s
        return f"{rate:,.0f} ({100 * rate / ceilings[name.split()[-1]]:.0f}%)"

    lines = [f"# `harness bench` on {machine_slug(described)}", "",
             "Generated by `harness bench`; every number below was measured in one run of:", "",
             f"    {command}", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in described.items())
             + "; matrix-product ceilings (2048x2048): " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in ceilings.items())
             + ".", "",
             "Medians of the repeats, ± half their range as a percentage of the median. Epochs are images/s "
             "over the same batches (harness: its LightningModule and Trainer; bare: a plain loop over the "
             "same model, uint8 tensors, batch transform, SGD and precision; both without a progress bar), "
             "in each setting (eager or `torch.compile`d, fp32 or bf16-mixed autocast); GFLOP/s is the "
             f"harness's, against the ceiling of its precision. x {REFERENCE}: the harness's images/s over "
             f"the bare {REFERENCE} loop's.", "",
             "| network | setting | harness img/s | bare img/s | harness/bare | x bare " + REFERENCE
             + " | GFLOP/s (ceiling %) |", "|---|---|---|---|---|---|---|"]
    for t in results:
        for name in t["settings"]:
            h, bare = epoch(t, "harness", name), epoch(t, "bare", name)
            v = t["values"]
            lines.append(f"| {t['label']} | {name}{' (default)' if name == t['default'] else ''} "
                         f"| {h:,.0f} {spread(v[f'harness epoch, {name}'])} | {bare:,.0f} {spread(v[f'bare epoch, {name}'])} "
                         f"| {h / bare:.3f} | {h / epoch(t, 'bare', REFERENCE):.2f}x | {gflops(t, h, name)} |")
    lines += ["", "Steps, in the default setting: ms per SGD step on one fixed batch; the transform is ms per "
              "batch; compile: seconds for `torch.compile` and one step (Inductor's on-disk caches as found).", "",
              "| network | format | step ms | GFLOP/s (ceiling %) | other format | transform ms | LRN (torch's) "
              "| compile s | imports s | first step s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for t in results:
        v = t["values"]
        step = med(v["step"])
        lrn = "-"
        if "step, no LRN" in v:
            base = med(v["step, no LRN"])
            lrn = f"+{100 * (step / base - 1):.0f}% (+{100 * (med(v['step, torch LRN']) / base - 1):.0f}%)"
        fs = t["first_step"]
        compile_s = "-" if t["compile_s"] is None else f"{t['compile_s']:.1f}"
        lines.append(
            f"| {t['label']} | {'NHWC' if t['nhwc'] else 'NCHW'} | {1e3 * step:.1f} {spread(v['step'])} "
            f"| {gflops(t, t['batch'] / step, t['default'])} | {med(v['step, other format']) / step:.2f}x the time "
            f"| {1e3 * med(v['transform']):.1f} ({100 * med(v['transform']) / step:.1f}% of a step) | {lrn} "
            f"| {compile_s} | {fs['imports']:.1f} | +{fs['after imports']:.1f} |")
    lines += ["", "## Goals (issues 14 and 25)", "", "| network | goal | measured | met |", "|---|---|---|---|"]
    for t in results:
        lines += [f"| {t['label']} | {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in goals(t)]
    unmet = dict.fromkeys(g for t in results for g, _, ok in goals(t) if not ok and cause(g))
    lines += [f"\n{goal}, not met: {cause(goal)}" for goal in unmet]
    if grids:
        lines += ["", "## Sweep layouts (`--workers auto`)", "",
                  "Each layout runs the grid's first network in all its processes at once for 6 s; cells/hour is "
                  "modelled, not timed: the dry run's cost model (steps, evaluation, "
                  f"{CELL_SETUP_S} s set-up per cell) applied to every cell of the grid at that rate.", "",
                  "| grid | cells | layout (workers x threads) | images/s | cells/hour |", "|---|---|---|---|---|"]
        for g in grids:
            lines += [f"| {g['grid']} | {g['cells']} | {name} | {r['images_per_s']:,.0f} | {r['cells_per_hour']:.1f} |"
                      for name, r in g["layouts"].items()]
    return "\n".join(lines) + "\n"


def check(targets: list[tuple[str, list[str]]], grid_files: list[Path], out_dir: Path | None) -> None:
    """Everything the bench will read or write, checked before anything is timed."""
    from harness.grid import load

    if out_dir:
        places.check_writable(out_dir, "--out")
    for preset, overrides in targets:
        cfg = C.load(preset, overrides)
        classes = len(load_data(cfg.data).classes)
        if cfg.model.num_classes not in (0, classes):
            raise BenchError(f"{preset}: model.num_classes: {cfg.model.num_classes}, but the data has {classes} classes")
    for path in grid_files:
        for data in {repr(c.config.data): c.config.data for c in load(path).cells}.values():
            load_data(data)


def bench(targets: list[tuple[str, list[str]]], grid_files: list[Path], repeats: int, out_dir: Path | None,
          command: str, say: Callable[[str], None] = print) -> str:
    check(targets, grid_files, out_dir)
    described = machine()
    busy = os.getloadavg()[0]
    if busy >= max(1.0, 0.25 * (os.cpu_count() or 1)):
        described["caution"] = (f"load average {busy:.1f} on {os.cpu_count()} cores as the bench began: other "
                                "work shares the cores, and every number below is lower for it")
        say(f"bench: caution: {described['caution']}")
    device = pick_device(C.TrainerConfig())
    from harness.train import device_settings
    device_settings(C.TrainerConfig(), device)  # the ceilings in the precision the runs use (TF32 on CUDA)
    ceilings = {"fp32": matmul_gflops(device), "bf16": matmul_gflops(device, torch.bfloat16)}
    results = [run_target(preset, overrides, repeats, say) for preset, overrides in targets]
    grids = [grid_rates(path, say) for path in grid_files] if device.type == "cpu" else []
    text = table(results, grids, described, ceilings, command)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{machine_slug(described)}.md"
        path.write_text(text)
        (out_dir / f"{machine_slug(described)}.json").write_text(json.dumps(
            {"machine": described, "ceiling_gflops": ceilings, "networks": results, "grids": grids}, indent=1))
        say(f"bench: wrote {path}")
    return text
