"""The statistics of the report, as small pure functions over {seed: value} mappings.

Errors are percent; a delta is ablated minus baseline (positive: the trick helps). Intervals are
95% Student-t intervals over seeds; deltas are paired by seed (same seed, same data order and
initial draw where the two nets allow), so seed-to-seed spread common to both cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

T_QUANTILE_95 = 0.975  # the quantile of a two-sided 95% interval
EFFECT = "effect (paper gives no number)"  # an interval clear of 0 where the paper has no delta
NOT_ESTIMABLE = "not estimable: the same for every seed"
ONE_SEED = "one seed: no interval"
NO_PAIRED_SEED = "no seed with both runs"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan with fewer than 2 values)."""
    if not values:
        return math.nan, math.nan
    x = np.asarray(values, dtype=float)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


@dataclass(frozen=True)
class Interval:
    n: int  # seeds in the comparison
    mean: float
    low: float
    high: float
    p: float  # two-sided one-sample t-test of mean = 0
    sd: float  # sample sd of the per-seed values


def t_interval(values: list[float]) -> Interval:
    n = len(values)
    mean, sd = mean_std(values)
    if n < 2:
        return Interval(n, mean, math.nan, math.nan, math.nan, sd)
    if sd <= 1e-9 * max(1.0, abs(mean)):  # identical across seeds: no t-interval (it would claim certainty)
        return Interval(n, mean, math.nan, math.nan, math.nan, sd)
    half = stats.t.ppf(T_QUANTILE_95, n - 1) * sd / math.sqrt(n)
    p = 2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1)
    return Interval(n, mean, mean - half, mean + half, float(p), sd)


def paired_delta(baseline: dict[int, float], ablated: dict[int, float]) -> Interval:
    """Ablated minus baseline over the seeds both have."""
    seeds = sorted(set(baseline) & set(ablated))
    return t_interval([ablated[s] - baseline[s] for s in seeds])


def verdict(delta: Interval, paper: float | None) -> str:
    """reproduces: same sign as the paper, interval excludes 0; contradicts: opposite sign,
    interval excludes 0; inconclusive: interval contains 0; not estimable: the same value for every
    seed, so no interval; one seed (a sweep reported before its second, or a grid of one): no
    interval; no seed with both runs: nothing to pair yet."""
    if delta.n == 0:
        return NO_PAIRED_SEED
    if delta.n == 1:
        return ONE_SEED
    if math.isnan(delta.low):
        return NOT_ESTIMABLE
    if delta.low <= 0 <= delta.high:
        return "inconclusive"
    if paper is None or paper == 0:
        return EFFECT
    return "reproduces" if (delta.mean > 0) == (paper > 0) else "contradicts"


def sides_with(delta: Interval, paper: float | None, later: float | None) -> str:
    """Which reference the measured interval keeps: the paper's delta, the later studies', both
    (it cannot tell them apart) or neither (a paper without a number keeps nothing); '-' where
    there is no later number or no interval."""
    if later is None or math.isnan(later) or math.isnan(delta.low):
        return "-"
    keeps_paper = paper is not None and delta.low <= paper <= delta.high
    keeps_later = delta.low <= later <= delta.high
    if keeps_paper == keeps_later:
        return "both" if keeps_paper else "neither"
    return "the paper" if keeps_paper else "later studies"


def seeds_for_power(effect: float | None, sd: float, power: float = 0.8, limit: int = 10_000) -> int | None:
    """Seeds a paired two-sided t-test at 5% needs to detect `effect` with the given power,
    when per-seed differences have standard deviation `sd`. None when it cannot be said."""
    if effect is None or not math.isfinite(sd) or sd <= 0 or effect == 0:
        return None
    d = abs(effect) / sd
    for n in range(2, limit + 1):
        critical = stats.t.ppf(T_QUANTILE_95, n - 1)
        shift = d * math.sqrt(n)
        achieved = stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)
        if achieved >= power:
            return n
    return None


def first_epoch(curve: list[tuple[int, float]], target: float, strict: bool) -> int | None:
    """The first epoch whose value is below the target (strict) or at/below it; None if none."""
    for epoch, value in sorted(curve):
        if value < target or (not strict and value == target):
            return epoch
    return None


def ratio_interval(numerator: dict[int, float], denominator: dict[int, float]) -> Interval:
    """Geometric-mean ratio over seeds both have, with a t-interval on the log ratios (exp'd)."""
    seeds = sorted(s for s in set(numerator) & set(denominator) if numerator[s] > 0 and denominator[s] > 0)
    logs = t_interval([math.log(numerator[s] / denominator[s]) for s in seeds])
    return Interval(logs.n, math.exp(logs.mean) if logs.n else math.nan, math.exp(logs.low),
                    math.exp(logs.high), logs.p, logs.sd)
