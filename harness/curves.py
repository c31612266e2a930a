"""The per-run learning-curve figure (errors and loss against epochs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_learning_curve(history: dict[str, list[tuple[int, float]]], title: str, path: Path) -> Path:
    """history: {metric: [(epoch, value), ...]}; errors (percent) left, loss right."""
    fig, (err_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, series in sorted(history.items()):
        if not series:
            continue
        epochs, values = zip(*series)
        ax = loss_ax if key.endswith("loss") else err_ax
        ax.plot(epochs, values, marker="o", markersize=3, label=key)
    err_ax.set(xlabel="epoch", ylabel="top-1 error (%)", title="error")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for ax in (err_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
