"""The report's figures, as PNG and SVG with no timestamps in them (regenerating gives the same bytes)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.store import CellRun  # noqa: E402

plt.rcParams["svg.hashsalt"] = "harness"  # fixed ids inside the SVG
STYLES = {"relu": "-", "tanh": "--"}  # as the paper's Figure 1: ReLU solid, tanh dashed
SETTING_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=120, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [png, svg]


def _mean_band(runs: list[CellRun], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean, min and max over seeds, up to the shortest run (runs stop at the target)."""
    curves = [np.array([v for _, v in sorted(r.curves.get(key, []))]) for r in runs]
    length = min((len(c) for c in curves), default=0)
    stack = np.stack([c[:length] for c in curves]) if length else np.zeros((1, 0))
    return np.arange(1, length + 1), stack.mean(0), stack.min(0), stack.max(0)


def speed_figure(groups: dict[tuple[str, str, str], list[CellRun]], winners: dict[tuple[str, str], str],
                 target: float, title: str, stem: Path) -> list[Path]:
    """Training error against epochs and against training seconds, ReLU (solid) and tanh (dashed) at
    their fastest rates, one colour per setting (initialisation, or network)."""
    fig, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {name: SETTING_COLOURS[i % len(SETTING_COLOURS)] for i, name in enumerate(sorted({n for _, n in winners}))}
    for (act, name), lr in sorted(winners.items()):
        runs = groups[(act, name, lr)]
        epochs, mean, low, high = _mean_band(runs, "train_err")
        _, seconds, _, _ = _mean_band(runs, "train_time_s")
        label = f"{act}, {name}, lr {float(lr):g} ({len(runs)} seeds)"
        style = dict(color=colours[name], linestyle=STYLES.get(act, ":"))
        by_epoch.plot(epochs, mean, label=label, **style)
        by_epoch.fill_between(epochs, low, high, color=colours[name], alpha=0.15, linewidth=0)
        by_time.plot(seconds, mean, label=label, **style)
        by_time.fill_between(seconds, low, high, color=colours[name], alpha=0.15, linewidth=0)
    for ax, xlabel in ((by_epoch, "epochs"), (by_time, "training seconds (this machine)")):
        ax.axhline(target, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training error rate (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    by_epoch.legend(fontsize=7)
    by_epoch.set_title(f"{title}: mean over seeds, band = min-max", fontsize=9)
    by_time.set_title(f"{target:g}% line: Figure 1's target; paper: ReLU ~6x faster", fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


def delta_chart(table: pd.DataFrame, title: str, stem: Path) -> list[Path]:
    """Each trick's measured delta (trick off minus full model) with its 95% interval; the paper's as x,
    the later studies' as +."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(table) + 1.5))
    y = np.arange(len(table))[::-1]
    labelled = set()

    def once(label: str) -> str | None:  # one legend entry per kind of mark, wherever it first appears
        first = label not in labelled
        labelled.add(label)
        return label if first else None

    for yi, row in zip(y, table.to_dict("records")):
        low, high = row["ci_low"], row["ci_high"]
        err = None if math.isnan(low) else [[row["delta"] - low], [high - row["delta"]]]
        ax.errorbar(row["delta"], yi, xerr=err, fmt="o", color="tab:blue", capsize=3, label=once("measured, 95% CI"))
        if row["paper_delta"] is not None and not math.isnan(row["paper_delta"]):
            ax.plot(row["paper_delta"], yi, "x", color="tab:red", markersize=8, label=once("paper"))
        if not math.isnan(row.get("later_delta", math.nan)):
            ax.plot(row["later_delta"], yi, "+", color="tab:green", markersize=10, markeredgewidth=2,
                    label=once("later studies"))
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(y, [f"{r['trick']}\n({r['switch']})" for r in table.to_dict("records")], fontsize=8)
    ax.set_xlabel("test top-1 error, trick off minus full model (points; > 0: the trick helps)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save(fig, stem)


def ratio_curve(curve: pd.DataFrame, target: float, title: str, stem: Path) -> list[Path]:
    """tanh/ReLU epochs against the training-error target, with 95% intervals; the paper's 6x at 25%."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, rows) in enumerate(curve.groupby("setting", sort=True)):
        rows = rows.sort_values("target", ascending=False)
        ratio = rows["ratio"].to_numpy()
        low, high = rows["ci_low"].fillna(rows["ratio"]).to_numpy(), rows["ci_high"].fillna(rows["ratio"]).to_numpy()
        ax.errorbar(rows["target"], ratio, yerr=[ratio - low, high - ratio], marker="o", capsize=3,
                    color=SETTING_COLOURS[i % len(SETTING_COLOURS)], label=name)
    ax.axhline(1, color="grey", linewidth=0.8)
    ax.plot([25], [6], marker="*", markersize=12, color="black", linestyle="none", label="paper: ~6x at 25%")
    ax.set_xlim(max(curve["target"].max(), 30) + 5, min(curve["target"].min(), 25) - 5)  # down = further in
    ax.set_yscale("log")
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if t >= min(curve["ci_low"].min(), 0.5) / 2]
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training error target (%)")
    ax.set_ylabel("tanh epochs / ReLU epochs")
    ax.set_title(f"{title}: ratio at each target, 95% intervals over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, stem)
