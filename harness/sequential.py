"""Seeds added until a trick's delta is resolved, with the error rate kept at 5% over every look.

A trick's delta is a paired comparison over seeds: d_s = error(trick off, seed s) - error(full
model, seed s). `harness sweep GRID --until-resolved --max-seeds N` looks after the grid's n0
seeds, then after each further seed, up to N; at every look the trick is resolved when its interval
excludes zero (an effect) or excludes the paper's delta (not the paper's effect). Testing at every
look with the fixed-sample 95% interval would declare an effect that is not there far more often
than 5% of the time (17% over eight looks, 3 to 10 seeds); so the looks share the 5%:

- Error spending (Lan & DeMets 1983) with the Pocock-type function alpha(t) = alpha ln(1 + (e-1) t),
  information fraction t = n / N: look k may spend alpha(t_k) - alpha(t_{k-1}).
- The boundaries c_k for the z-statistics at the looks are computed, look by look, from their
  exact joint distribution (a random walk in n: independent increments), by integrating the
  density of the running sum over a grid (Armitage, McPherson & Rowe 1969).
- At look k, with n_k seeds and an unknown spread, the paired t-statistic is held to the same
  nominal level p_k = 2(1 - Phi(c_k)), with n_k - 1 degrees of freedom, and the interval is the
  matching repeated confidence interval mean +- t(1 - p_k/2, n_k - 1) sd / sqrt(n_k).

The t-step is exact at each look but approximate jointly; `tests/test_sequential.py` measures the
whole procedure's error rate by simulation: 2,000 pairs with no effect, 5% +- 1% declared one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05


def spent(t: float, alpha: float = ALPHA) -> float:
    """The Pocock-type spending function: error spent by information fraction t."""
    return alpha * math.log(1 + (math.e - 1) * min(t, 1.0))


def _exit_mass(c: float, n: int, sd: float, density: np.ndarray | None, grid: np.ndarray) -> float:
    """The probability of first crossing +-c sqrt(n) at the look with n seeds, given the density
    (on `grid`) of the running sum over the paths that have not crossed before; sd: its increment's."""
    if density is None:  # the first look: S_n ~ N(0, n)
        return 2 * stats.norm.sf(c)
    b = c * math.sqrt(n)
    step = grid[1] - grid[0]
    return step * float(np.sum(density * (stats.norm.cdf((-b - grid) / sd) + stats.norm.sf((b - grid) / sd))))


@lru_cache(maxsize=64)
def nominal_levels(first: int, last: int, alpha: float = ALPHA) -> tuple[float, ...]:
    """Two-sided nominal level of each look at first, first+1, ..., last seeds."""
    looks = list(range(first, max(first, last) + 1))
    grid = np.linspace(-10, 10, 1601) * math.sqrt(looks[-1])  # the running sum S_n, sd sqrt(n)
    step = grid[1] - grid[0]
    density, previous_n, previous_spent, levels = None, 0, 0.0, []
    for n in looks:
        target, sd = spent(n / looks[-1], alpha) - previous_spent, math.sqrt(n - previous_n)
        c = optimize.brentq(lambda c, n=n, sd=sd, density=density, target=target:
                            _exit_mass(c, n, sd, density, grid) - target, 0.0, 12.0, xtol=1e-10)
        # the density of S_n over the paths still going (|S_m| < c_m sqrt(m) at every look so far)
        if density is None:
            density = stats.norm.pdf(grid / sd) / sd
        else:
            density = step * stats.norm.pdf((grid[:, None] - grid[None, :]) / sd) @ density / sd
        density = np.where(np.abs(grid) < c * math.sqrt(n), density, 0.0)
        levels.append(float(2 * stats.norm.sf(c)))
        previous_n, previous_spent = n, previous_spent + target
    return tuple(levels)


@dataclass(frozen=True)
class Look:
    n: int  # seeds (pairs) so far
    mean: float
    low: float
    high: float
    level: float  # the nominal two-sided level this look was held to
    decision: str  # "effect", "not the paper's", "more seeds", "max seeds"


def look(deltas: list[float], first: int, last: int, paper: float | None, alpha: float = ALPHA) -> Look:
    """The sequential decision after len(deltas) seeds, for a grid of `first` seeds run up to `last`."""
    n = len(deltas)
    if n < first or n < 2:
        raise ValueError(f"a look needs at least {max(first, 2)} paired seeds; got {n}")
    level = nominal_levels(first, last, alpha)[min(n, last) - first]
    x = np.asarray(deltas, dtype=float)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = stats.t.ppf(1 - level / 2, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if not low <= 0 <= high:
        decision = "effect"
    elif paper is not None and paper != 0 and not low <= paper <= high:
        decision = "not the paper's"
    else:
        decision = "max seeds" if n >= last else "more seeds"
    return Look(n, mean, low, high, level, decision)


def declared_rate(effect: float, first: int, last: int, paper: float | None, pairs: int, seed: int) -> tuple[float, float]:
    """Simulation: over `pairs` tricks whose per-seed deltas are N(effect, 1), the share for which
    the procedure declared an effect, and the mean number of seeds it took."""
    rng = np.random.default_rng(seed)
    declared, seeds = 0, 0
    for _ in range(pairs):
        deltas = list(rng.normal(effect, 1.0, first))
        while True:
            result = look(deltas, first, last, paper)
            if result.decision != "more seeds":
                break
            deltas.append(rng.normal(effect, 1.0))
        declared += result.decision == "effect"
        seeds += result.n
    return declared / pairs, seeds / pairs
