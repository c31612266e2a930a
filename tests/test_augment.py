import numpy as np
import pytest
import torch

from harness.data.augment import (
    BatchTransform, PixelStats, fit_pixel_stats, normalize, pca_jitter, random_crop, random_flip, ten_crops,
)
from harness.models.layers import lrn


def test_lrn_matches_the_formula_computed_by_hand():
    """b = a / (k + alpha/n * sum over the n channels around c of a^2)^beta, k=2 n=5 alpha=1e-4 beta=0.75."""
    rng = np.random.default_rng(0)
    a = rng.normal(0, 30, (2, 7, 3, 3))  # large values so the normaliser differs from k
    expected = np.empty_like(a)
    for c in range(7):
        window = a[:, max(0, c - 2):min(7, c + 3)]
        expected[:, c] = a[:, c] / (2 + 1e-4 / 5 * (window ** 2).sum(1)) ** 0.75
    got = lrn(True)(torch.tensor(a)).numpy()
    assert np.allclose(got, expected, rtol=1e-6)
    assert not np.allclose(got, a / 2 ** 0.75, rtol=1e-3)  # the squared sum really matters here
    assert lrn(False) is None


def test_pixel_stats_match_numpy():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 3, 8, 8), dtype=np.uint8)
    images[:, 1] = images[:, 0] // 2 + 60  # correlated channels, as in real photos
    stats = fit_pixel_stats(torch.from_numpy(images), chunk=7)
    pixels = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255
    cov = np.cov(pixels, bias=True)
    values, vectors = np.linalg.eigh(cov)
    assert np.allclose(stats.mean, pixels.mean(1) * 255)
    assert np.allclose(stats.std, np.sqrt(np.diag(cov)) * 255)
    assert np.allclose(stats.eigvals, values[::-1])
    for i in range(3):  # eigenvectors up to sign
        assert abs(np.dot(np.array(stats.eigvecs)[:, i], vectors[:, 2 - i])) == pytest.approx(1)


STATS = PixelStats(mean=(100.0, 110.0, 120.0), std=(50.0, 60.0, 70.0), eigvals=(0.2175, 0.0188, 0.0045),
                   eigvecs=((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203)))


def test_pca_jitter_adds_eigvec_alpha_eigval_per_image():
    images = torch.full((4, 3, 2, 2), 128.0)
    torch.manual_seed(5)
    out = pca_jitter(images, STATS, sigma=0.1)
    torch.manual_seed(5)
    alpha = (torch.randn(4, 3) * 0.1).numpy()  # the same draws
    p, lam = np.array(STATS.eigvecs), np.array(STATS.eigvals)
    for b in range(4):
        shift = sum(p[:, i] * alpha[b, i] * lam[i] for i in range(3)) * 255
        for c in range(3):
            assert torch.allclose(out[b, c], torch.tensor(128.0 + shift[c], dtype=torch.float32), atol=1e-4)
    assert not torch.allclose(out[0], out[1])  # one draw per image


def test_random_crop_takes_windows_of_the_padded_image():
    torch.manual_seed(0)
    images = torch.arange(6 * 3 * 8 * 8, dtype=torch.float32).reshape(6, 3, 8, 8)
    out = random_crop(images, pad=2)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(6):
        windows = [padded[b, :, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)
    assert not all(torch.equal(out[b], images[b]) for b in range(6))


def test_flip_mirrors_about_half_the_batch():
    torch.manual_seed(0)
    images = torch.rand(200, 1, 2, 2)
    out = random_flip(images)
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    assert all(torch.equal(o, i) or f for o, i, f in zip(out, images, flipped))
    assert 70 < sum(flipped) < 130


def test_ten_crops_and_normalize():
    images = torch.rand(2, 3, 8, 8) * 255
    views = ten_crops(images, pad=2)
    assert views.shape == (2, 10, 3, 8, 8)
    assert torch.equal(views[:, 4], images)  # the centre view is the image itself
    assert torch.equal(views[:, 9], images.flip(3))
    assert torch.equal(views[:, 0, :, 2:, 2:], images[:, :, :6, :6])  # top-left corner window
    out = normalize(images, STATS, "paper")
    assert torch.allclose(out[:, 0], images[:, 0] - 100)
    out = normalize(images, STATS, "standard")
    assert torch.allclose(out[:, 2], (images[:, 2] - 120) / 70)


def test_batch_transform_train_and_eval():
    transform = BatchTransform(STATS, "paper", augment=True, pca_sigma=0.1, pad=4, test_crops=10)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert transform.train(images).dtype == torch.float32
    assert transform.evaluate(images, views=True).shape == (5, 10, 3, 32, 32)
    single = transform.evaluate(images)
    assert torch.allclose(single, images.float() - torch.tensor(STATS.mean)[:, None, None])
