"""trainer.compile: whether a run's network goes through torch.compile, decided and tried before
the run exists.

Compiling happens at a network's first call, and can fail there (no C++ compiler, an operation
Inductor cannot lower). So where a run will compile, `prepare` compiles a copy of its network and
takes one training step with it, on a batch of zeros, in the run's precision, before any run is
created: `trainer.compile=true` that fails is bad input (exit 2, nothing written); `auto` that fails
says why in one line and trains eager. Inductor keeps what it made in its on-disk caches (the FX
graph cache, on by default), so the run's own first step, and each later cell of a sweep on the
same network, reuse it instead of compiling again: `prepare` says how long its compile took.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from harness import config as C
from harness.describe import sgd, sgd_step
from harness.models import build_model


def prepare(cfg: C.RunConfig, num_classes: int, device: torch.device, say: Callable[[str], None] = print) -> bool:
    """Whether the run compiles its network on `device` (see the module docstring). The random
    number generators are left as they were: the run's own stream is not moved on by the trial."""
    if not C.compiles(cfg.trainer, device.type):
        return False
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            fmt = torch.channels_last if C.channels_last(cfg.trainer, device.type) else torch.contiguous_format
            model = build_model(cfg.model, num_classes).to(device, memory_format=fmt)
            x = torch.zeros(cfg.data.batch_size, 3, model.input_size, model.input_size, device=device)
            y = torch.zeros(cfg.data.batch_size, dtype=torch.long, device=device)
            model.compile()
            sgd_step(model, sgd(model), x.contiguous(memory_format=fmt), y, cfg.trainer.precision == "bf16-mixed")
        except Exception as err:  # noqa: BLE001 - whatever the compiler raises: one line, named
            why = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
            if cfg.trainer.compile is True:
                raise C.ConfigError(f"trainer.compile=true: torch.compile failed on {device.type} ({why})") from None
            say(f"harness: trainer.compile=auto: torch.compile failed on {device.type} ({why}); training eager")
            return False
    say(f"harness: compiled {cfg.model.name} in {time.perf_counter() - started:.1f} s (torch.compile, "
        "a training step; Inductor's caches serve this run's first step and later runs of this network)")
    return True
