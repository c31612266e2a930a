import pytest
import torch
from torch import nn

from harness.config import ModelConfig
from harness.models import build_model, count_parameters
from harness.models.layers import LocalResponseNorm


def conv_params(c_in, c_out, k, groups=1):
    return c_out * (c_in // groups) * k * k + c_out


def fc_params(n_in, n_out):
    return n_in * n_out + n_out


def test_paper_net_parameter_counts():
    fc = fc_params(6 * 6 * 256, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    two_towers = (conv_params(3, 96, 11) + conv_params(96, 256, 5, 2) + conv_params(256, 384, 3)
                  + conv_params(384, 384, 3, 2) + conv_params(384, 256, 3, 2) + fc)
    assert two_towers == 60_965_224  # the paper's count, from the table by hand
    assert count_parameters(build_model(ModelConfig(), 1000)) == two_towers
    # The one-GPU net: half the kernels in conv1-4, a full conv5 and full FC layers.
    one_tower = (conv_params(3, 48, 11) + conv_params(48, 128, 5) + conv_params(128, 192, 3)
                 + conv_params(192, 192, 3) + conv_params(192, 256, 3) + fc)
    assert count_parameters(build_model(ModelConfig(towers=1), 1000)) == one_tower == 59_798_312
    dense = (conv_params(3, 96, 11) + conv_params(96, 256, 5) + conv_params(256, 384, 3)
             + conv_params(384, 384, 3) + conv_params(384, 256, 3) + fc)
    assert count_parameters(build_model(ModelConfig(towers=1, one_tower="full"), 1000)) == dense


def test_convnet4_and_cifar_alexnet_counts():
    convnet4 = conv_params(3, 32, 5) + conv_params(32, 32, 5) + conv_params(32, 64, 5) + fc_params(64 * 16, 10)
    cfg = ModelConfig(name="convnet4", towers=1, dropout=0, lrn=False)
    assert count_parameters(build_model(cfg, 10)) == convnet4 == 89_578
    # cuda-convnet's layers-80sec: the same convs, a hidden fc64 and fc10 (pools 32 -> 16 -> 8 -> 4)
    eighty = (conv_params(3, 32, 5) + conv_params(32, 32, 5) + conv_params(32, 64, 5) + fc_params(64 * 16, 64)
              + fc_params(64, 10))
    cfg80 = ModelConfig(name="convnet80sec", towers=1, dropout=0, lrn=False)
    assert count_parameters(build_model(cfg80, 10)) == eighty == 145_578
    cifar = (conv_params(3, 96, 5) + conv_params(96, 256, 5, 2) + conv_params(256, 384, 3)
             + conv_params(384, 384, 3, 2) + conv_params(384, 256, 3, 2)
             + fc_params(4 * 4 * 256, 4096) + fc_params(4096, 4096) + fc_params(4096, 10))
    assert count_parameters(build_model(ModelConfig(name="alexnet_cifar"), 10)) == cifar


@pytest.mark.parametrize("cfg, size", [
    (ModelConfig(), 227),
    (ModelConfig(pool="plain", towers=1, depth="no_conv4"), 227),
    (ModelConfig(name="alexnet_cifar"), 32),
    (ModelConfig(name="alexnet_cifar", pool="plain", depth="no_conv3", width=0.25), 32),
    (ModelConfig(name="convnet4", towers=1, dropout=0, pool="plain"), 32),
    (ModelConfig(name="convnet80sec", towers=1, dropout=0, activation="tanh"), 32),
])
def test_output_shapes(cfg, size):
    model = build_model(cfg, 10)
    assert model(torch.zeros(2, 3, size, size)).shape == (2, 10)


def kinds(model, kind):
    return [n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, kind)]


def test_each_switch_changes_the_module():
    base = ModelConfig(name="alexnet_cifar")
    full = build_model(base, 10)
    assert kinds(full, LocalResponseNorm) == ["lrn1", "lrn2"]
    assert kinds(build_model(ModelConfig(name="alexnet_cifar", lrn=False), 10), LocalResponseNorm) == []

    pools = {m.kernel_size for m in full.modules() if isinstance(m, nn.MaxPool2d)}
    plain = build_model(ModelConfig(name="alexnet_cifar", pool="plain"), 10)
    assert pools == {3} and {m.kernel_size for m in plain.modules() if isinstance(m, nn.MaxPool2d)} == {2}
    # Same feature-map size either way, as the paper's comparison requires.
    x = torch.zeros(1, 3, 32, 32)
    assert full.features(x).shape == plain.features(x).shape == (1, 256, 4, 4)

    assert [m.p for m in full.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert kinds(build_model(ModelConfig(name="alexnet_cifar", dropout=0), 10), nn.Dropout) == []

    groups = {n.split(".")[-1]: m.groups for n, m in full.named_modules() if isinstance(m, nn.Conv2d)}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    one = build_model(ModelConfig(name="alexnet_cifar", towers=1), 10)
    assert {m.groups for m in one.modules() if isinstance(m, nn.Conv2d)} == {1}
    assert [m.out_channels for m in one.modules() if isinstance(m, nn.Conv2d)] == [48, 128, 192, 192, 256]

    assert kinds(build_model(ModelConfig(name="alexnet_cifar", depth="no_conv3"), 10), nn.Conv2d) == \
        ["conv1", "conv2", "conv4", "conv5"]
    assert kinds(build_model(ModelConfig(name="alexnet_cifar", depth="no_conv4"), 10), nn.Conv2d) == \
        ["conv1", "conv2", "conv3", "conv5"]

    assert len(kinds(full, nn.ReLU)) == 7 and kinds(full, nn.Tanh) == []
    assert len(kinds(build_model(ModelConfig(name="alexnet_cifar", activation="tanh"), 10), nn.Tanh)) == 7

    half = build_model(ModelConfig(name="alexnet_cifar", width=0.5), 10)
    assert [m.out_channels for m in half.modules() if isinstance(m, nn.Conv2d)] == [48, 128, 192, 192, 128]
    assert half.classifier.fc6.out_features == 2048


def test_paper_initialisation():
    torch.manual_seed(0)
    model = build_model(ModelConfig(), 1000)
    layers = {n.split(".")[-1]: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    for name, layer in layers.items():
        assert layer.weight.std().item() == pytest.approx(0.01, rel=0.05), name
        assert layer.weight.mean().abs().item() < 1e-3
        expected_bias = 1.0 if name in {"conv2", "conv4", "conv5", "fc6", "fc7"} else 0.0
        assert torch.all(layer.bias == expected_bias), name
    torch_init = build_model(ModelConfig(init="pytorch"), 1000)
    # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); fc6 fan-in 9216 gives std 1/sqrt(3*9216).
    assert torch_init.classifier.fc6.weight.std().item() == pytest.approx((3 * 9216) ** -0.5, rel=0.05)
    assert not torch.all(torch_init.features.conv2.bias == 1)
    he = build_model(ModelConfig(name="alexnet_cifar", init="kaiming", width=0.25), 10)
    # He et al.: std sqrt(2 / fan_in); conv2 is grouped (two towers), so its fan-in is half the input
    conv2 = he.features.conv2
    fan_in = conv2.in_channels // conv2.groups * conv2.kernel_size[0] * conv2.kernel_size[1]
    assert conv2.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert he.classifier.fc8.weight.std().item() == pytest.approx((2 / he.classifier.fc8.in_features) ** 0.5, rel=0.1)
    assert all(torch.all(m.bias == 0) for m in he.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))

    c4 = build_model(ModelConfig(name="convnet4", towers=1, dropout=0), 10)
    assert c4.features.conv1.weight.std().item() == pytest.approx(1e-4, rel=0.1)
    assert c4.features.conv2.weight.std().item() == pytest.approx(1e-2, rel=0.1)
    assert torch.all(c4.features.conv2.bias == 0)
    # 80sec's cuda-convnet initW: 1e-4 in conv1, 0.01 in conv2-3, 0.1 in fc64 and fc10; biases 0
    c80 = build_model(ModelConfig(name="convnet80sec", towers=1, dropout=0), 10)
    stds = {n.split(".")[-1]: m.weight.std().item() for n, m in c80.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert stds == {"conv1": pytest.approx(1e-4, rel=0.1), "conv2": pytest.approx(0.01, rel=0.1),
                    "conv3": pytest.approx(0.01, rel=0.1), "fc4": pytest.approx(0.1, rel=0.1),
                    "fc5": pytest.approx(0.1, rel=0.2)}
    assert all(torch.all(m.bias == 0) for m in c80.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def paper_lrn(a: torch.Tensor) -> torch.Tensor:
    """Section 3.3, written as printed, one channel at a time (with alpha/n, as PyTorch and the
    authors' code have it), in float64."""
    n, k, alpha, beta = 5, 2.0, 1e-4, 0.75
    channels = a.shape[1]
    out = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[:, i] = a[:, i] / (k + alpha / n * (a[:, lo:hi + 1] ** 2).sum(1)) ** beta
    return out


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_lrn_matches_torch_and_the_paper_forward_and_backward(memory_format):
    torch.manual_seed(0)
    # ReLU outputs at the paper's 0-255 input scale reach the hundreds: where the denominator matters.
    x = (torch.randn(4, 24, 6, 5, dtype=torch.float64) * 60).relu().contiguous(memory_format=memory_format)
    grad = torch.randn(4, 24, 6, 5, dtype=torch.float64).contiguous(memory_format=memory_format)

    def value_and_grad(layer, x):
        x = x.detach().requires_grad_()
        out = layer(x)
        out.backward(grad)
        return out.detach(), x.grad

    ours, our_grad = value_and_grad(LocalResponseNorm(), x.float())
    torch_out, torch_grad = value_and_grad(nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), x.float())
    paper, paper_grad = value_and_grad(paper_lrn, x)
    assert ours.is_contiguous(memory_format=memory_format)
    for reference, reference_grad in ((torch_out, torch_grad), (paper.float(), paper_grad.float())):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(our_grad, reference_grad, rtol=1e-5, atol=1e-6 * float(reference_grad.abs().max()))
    assert (paper - x).abs().max() > 1  # the normalisation is not a no-op at this scale
