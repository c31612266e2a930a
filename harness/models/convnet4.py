"""The four-layer CIFAR-10 nets of Figure 1 (ReLU vs tanh), both readings PAPER.md allows, from the
authors' cuda-convnet examples (`example-layers/`):

- `convnet4`: `layers-18pct` without its two response-normalisation layers, exactly four weight
  layers (the paper's "four-layer" count if it counts weight layers):

    conv1 32 5x5 -> max-pool -> act -> conv2 32 5x5, act -> avg-pool -> conv3 64 5x5, act
    -> avg-pool -> fc 10

- `convnet80sec`: `layers-80sec` (26% test error in 80 s on a GTX 580), the same three convs and a
  hidden fc64 (four hidden layers: the count of the paper's other "four-layer CNN", its CIFAR LRN
  claim): ... -> avg-pool -> fc 64, act -> fc 10. Its cuda-convnet initialisation: conv1 N(0, 1e-4),
  conv2 and conv3 N(0, 0.01), fc64 and fc10 N(0, 0.1), biases 0. 145,578 parameters at width 1.

All pools are 3x3 stride 2 (1 pixel of padding, so 32 -> 16 -> 8 -> 4); `pool=plain` makes them
2x2 stride 2 at the same sizes. Max-pool and a monotone activation commute, so pooling before the
first activation is the same function as after it. `lrn=true` puts the paper's cross-channel LRN
where 18pct had its normalisation layers. `init=paper` is cuda-convnet's for each net (the paper's
own N(0, 0.01) is its ImageNet net's): for convnet4 (18pct) conv1 weights N(0, 1e-4), the rest
N(0, 0.01), biases 0. 89,578 parameters at width 1.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.config import ModelConfig, scaled
from harness.models.layers import activation, conv, init_weights, lrn, pool, sequential, weighted_layers

KERNELS = {"conv1": 32, "conv2": 32, "conv3": 64}
HIDDEN = {"convnet4": 0, "convnet80sec": 64}  # units of the hidden FC layer (80sec's fc64)
INIT_STD = {  # cuda-convnet's initW per layer (18pct's, 80sec's)
    "convnet4": {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc4": 0.01},
    "convnet80sec": {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc4": 0.1, "fc5": 0.1},
}
FINAL_SIZE = 4


class ConvNet4(nn.Module):
    """`convnet4` or `convnet80sec` (cfg.name): the two differ only by 80sec's hidden fc64."""

    input_size = 32

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        c1, c2, c3 = (scaled(k, cfg.width) for k in KERNELS.values())
        hidden = scaled(HIDDEN[cfg.name], cfg.width) if HIDDEN[cfg.name] else 0
        act = cfg.activation
        self.features = sequential(
            ("conv1", conv(3, c1, 5, 1, 2)),
            ("pool1", pool(cfg.pool, 1)),
            ("act1", activation(act)),
            ("lrn1", lrn(cfg.lrn)),
            ("conv2", conv(c1, c2, 5, 1, 2)),
            ("act2", activation(act)),
            ("pool2", pool(cfg.pool, 1, avg=True)),
            ("lrn2", lrn(cfg.lrn)),
            ("conv3", conv(c2, c3, 5, 1, 2)),
            ("act3", activation(act)),
            ("pool3", pool(cfg.pool, 1, avg=True)),
        )
        if hidden:
            self.classifier = sequential(("fc4", nn.Linear(c3 * FINAL_SIZE**2, hidden)), ("act4", activation(act)),
                                         ("fc5", nn.Linear(hidden, num_classes)))
        else:
            self.classifier = sequential(("fc4", nn.Linear(c3 * FINAL_SIZE**2, num_classes)))
        init_weights(cfg.init, weighted_layers(self), INIT_STD[cfg.name], unit_bias=set())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
