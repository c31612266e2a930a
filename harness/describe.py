"""What a model is and what it costs: layers, parameters, multiply-adds, and measured step time.

FLOPs count 2 per multiply-add in conv and FC layers only (activations, LRN and pooling are a few
percent); a training step is 3x a layer's forward pass (forward, and backward for its input and its
weights), 2x for a layer fed the image itself, whose input needs no gradient."""

from __future__ import annotations

import time

import torch
from torch import nn

from harness import config as C
from harness.config import RunConfig
from harness.models import build_model, count_parameters


def layer_macs(model: nn.Module, input_size: int) -> list[tuple[str, nn.Module, tuple, int, bool]]:
    """[(name, module, output shape, multiply-adds per image, whether backward computes its input's
    gradient)] for every leaf module, in order."""
    rows = []

    def hook(name):
        def record(module, inputs, output):
            macs = 0
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                macs = output[0].numel() * k
            elif isinstance(module, nn.Linear):
                macs = module.in_features * module.out_features
            rows.append((name, module, tuple(output.shape[1:]), macs, inputs[0].requires_grad))
        return record

    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        with torch.enable_grad():  # so that a layer's input says whether backward reaches it
            # forward, not __call__: a network compiled in place (nn.Module.compile) would compile
            # a graph for this batch of one, which no step uses; its layers' hooks fire either way
            model.eval().forward(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train()
    return rows


def step_gflops(model: nn.Module, batch_size: int) -> float:
    passes = sum(macs * (3 if input_grad else 2) for *_, macs, input_grad in layer_macs(model, model.input_size))
    return 2 * passes * batch_size / 1e9


def cost_line(model: nn.Module, cfg: RunConfig, train_images: int) -> str:
    gflop = step_gflops(model, cfg.data.batch_size)
    steps = -(-train_images // cfg.data.batch_size)
    return (f"{cfg.model.name}: {count_parameters(model):,} parameters; {gflop:,.1f} GFLOP per training "
            f"step of {cfg.data.batch_size}; {gflop * steps / 1e3:,.2f} TFLOP per epoch of {train_images:,} images, "
            f"x{cfg.trainer.max_epochs} epochs")


def sgd(model: nn.Module, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """SGD as a run makes it (the paper's momentum and weight decay unless given; the rate costs
    nothing to time)."""
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=momentum, weight_decay=weight_decay)


def sgd_step(model: nn.Module, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             bf16: bool = False) -> None:
    """One training step as a run takes it (bf16 autocast where the run uses it)."""
    with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
        loss = nn.functional.cross_entropy(model(x), y)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def seconds_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, bf16: bool = False,
                     optimiser: torch.optim.Optimizer | None = None) -> float:
    """Seconds per SGD step on one batch, after one untimed step (first-call allocations), waiting
    for a GPU's queued work: the one step timer (describe, the dry run's estimate, the bench)."""
    optimiser = optimiser or sgd(model)
    sgd_step(model, optimiser, x, y, bf16)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        sgd_step(model, optimiser, x, y, bf16)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def random_batch(model: nn.Module, batch_size: int, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of noise the model's size (its cost is the step's, whatever the pixels)."""
    x = torch.randn(batch_size, 3, model.input_size, model.input_size)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), torch.randint(0, 10, (batch_size,))


def measure_step(model: nn.Module, batch_size: int, steps: int, channels_last: bool, bf16: bool = False) -> float:
    """Seconds per SGD step on random input, on the CPU (under bf16 autocast where asked)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return seconds_per_step(model, *random_batch(model, batch_size, channels_last), steps, bf16)


def describe(cfg: RunConfig, num_classes: int, steps: int) -> str:
    model = build_model(cfg.model, num_classes)
    rows = layer_macs(model, model.input_size)
    lines = [f"{'layer':<34}{'output':>18}{'params':>14}{'MMAC/image':>12}"]
    for name, module, shape, macs, _ in rows:
        params = sum(p.numel() for p in module.parameters())
        label = f"{name} {type(module).__name__}"
        lines.append(f"{label:<34}{'x'.join(map(str, shape)):>18}{params:>14,}{macs / 1e6:>12.1f}")
    lines.append(f"input 3x{model.input_size}x{model.input_size}, {num_classes} classes")
    batch = cfg.data.batch_size
    lines.append(f"{count_parameters(model):,} parameters; {step_gflops(model, batch):,.2f} GFLOP per "
                 f"training step of {batch} images")
    if steps:
        seconds = measure_step(model, cfg.data.batch_size, steps, C.channels_last(cfg.trainer, "cpu"))
        lines.append(f"measured on this CPU ({torch.get_num_threads()} threads): {seconds:.3f} s per training "
                     f"step = {cfg.data.batch_size / seconds:,.0f} images/s (model only, no data loading)")
    return "\n".join(lines)
