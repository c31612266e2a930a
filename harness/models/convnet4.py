"""The four-layer CIFAR-10 net of Figure 1 (ReLU vs tanh): three 5x5 conv layers and one FC layer.

PAPER.md gives two defensible readings; this is cuda-convnet's `layers-18pct` without its two
response-normalisation layers, which is exactly four weight layers, the paper's "four-layer" count
(the other reading, `80sec`, has five):

    conv1 32 5x5 -> max-pool -> act -> conv2 32 5x5, act -> avg-pool -> conv3 64 5x5, act
    -> avg-pool -> fc 10

All pools are 3x3 stride 2 (1 pixel of padding, so 32 -> 16 -> 8 -> 4); `pool=plain` makes them
2x2 stride 2 at the same sizes. Max-pool and a monotone activation commute, so pooling before the
first activation is the same function as after it. `lrn=true` puts the paper's cross-channel LRN
where 18pct had its normalisation layers. Paper initialisation is cuda-convnet's: conv1 weights
N(0, 1e-4), the rest N(0, 0.01), biases 0. 89,578 parameters at width 1.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.config import ModelConfig, scaled
from harness.models.layers import activation, conv, init_weights, lrn, pool, sequential, weighted_layers

KERNELS = {"conv1": 32, "conv2": 32, "conv3": 64}
INIT_STD = {"conv1": 1e-4, "conv2": 0.01, "conv3": 0.01, "fc4": 0.01}
FINAL_SIZE = 4


class ConvNet4(nn.Module):
    input_size = 32

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        c1, c2, c3 = (scaled(k, cfg.width) for k in KERNELS.values())
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
        self.classifier = sequential(("fc4", nn.Linear(c3 * FINAL_SIZE**2, num_classes)))
        init_weights(cfg.init, weighted_layers(self), INIT_STD, unit_bias=set())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))
