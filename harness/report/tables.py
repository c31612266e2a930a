"""The report's tables as pandas DataFrames of numbers, and their CSV, Markdown and LaTeX forms.

`trick_table`: a leave-one-out sweep, one row per trick turned off, against the full model.
`speed_table`: a sweep with a training-error target (Figure 1), one row per activation,
initialisation and learning rate, and the ReLU/tanh ratio per initialisation.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness import paper
from harness import sequential as Q
from harness.grid import BASELINE, pair_name, variant_name
from harness.race import CHANCE, crossing, outcome
from harness.report import stats as S
from harness.report.store import CellRun, SweepRecord


def _by_seed(runs: list[CellRun], metric: str) -> dict[int, float]:
    return {r.seed: r.metrics[metric] for r in runs if metric in r.metrics}


def _gap(runs: list[CellRun]) -> float:
    """Mean final training error minus test error (negative: the net fits its training set better)."""
    gaps = [r.metrics["train_err"] - r.metrics["test_err"] for r in runs if {"train_err", "test_err"} <= set(r.metrics)]
    return S.mean_std(gaps)[0]


def _epochs_to_best(baseline: list[CellRun], ablated: list[CellRun]) -> tuple[float, int]:
    """Mean epochs the ablated runs take to reach their seed's baseline best validation error,
    over the seeds that reach it; and how many reach it."""
    best = {r.seed: min(v for _, v in r.curves.get("val_err", [])) for r in baseline if r.curves.get("val_err")}
    hits = [S.first_epoch(r.curves.get("val_err", []), best[r.seed], strict=False) for r in ablated if r.seed in best]
    reached = [h for h in hits if h is not None]
    return (S.mean_std(reached)[0] if reached else math.nan), len(reached)


CONVERGED_CUTS = 2  # learning-rate cuts that count as trained out (the paper: 3 in 90 epochs; issue 20: 2)
FLAT_POINTS = 0.5  # validation error that fell no more than this over the last quarter has flattened


@dataclass(frozen=True)
class Convergence:
    """How far the full model's runs trained: the fewest learning-rate cuts among them, and how much
    their best validation error still fell in the last quarter of their epochs (mean over runs)."""
    cuts: int
    fall: float  # points: best before the last quarter minus best within it (> 0: still improving)
    last: int  # epochs in that last quarter

    @property
    def converged(self) -> bool:
        return self.cuts >= CONVERGED_CUTS or self.fall <= FLAT_POINTS


def _run_convergence(run: CellRun) -> Convergence | None:
    """One run's cuts and fall, or None where it holds no rate or validation curve."""
    rates, val = [v for _, v in sorted(run.curves.get("lr", []))], [v for _, v in sorted(run.curves.get("val_err", []))]
    if not rates or len(val) < 2:
        return None
    last = max(1, len(val) // 4)
    return Convergence(sum(1 for a, b in zip(rates, rates[1:]) if b < a), min(val[:-last]) - min(val[-last:]), last)


def convergence(sweep: SweepRecord) -> Convergence | None:
    """The full model's convergence, or None where its runs hold no rate or validation curve."""
    runs = [c for c in (_run_convergence(r) for r in sweep.runs if r.trick == BASELINE) if c is not None]
    if not runs:
        return None
    return Convergence(min(c.cuts for c in runs), S.mean_std([c.fall for c in runs])[0], min(c.last for c in runs))


def trick_off_runs(sweep: SweepRecord) -> list[CellRun]:
    """A leave-one-out sweep's runs with one trick turned off (not the full model's)."""
    return [r for r in sweep.runs if r.trick not in ("", BASELINE)]


def still_learning(sweep: SweepRecord) -> list[CellRun]:
    """The trick-off runs that stopped before they trained out by the full model's rule (fewer than
    CONVERGED_CUTS cuts and a best validation error still falling more than FLAT_POINTS in their last
    quarter): their test errors, and so their deltas, might still have moved."""
    return [r for r in trick_off_runs(sweep) if (c := _run_convergence(r)) is not None and not c.converged]


def trick_table(sweep: SweepRecord) -> pd.DataFrame:
    baseline = [r for r in sweep.runs if r.trick == BASELINE]
    dataset = sweep.param("data.dataset")
    top5 = dataset == "imagenet"
    seeds_total = len(sweep.grid.get("seeds", []))
    rows = []
    groups: dict[tuple[str, str], list[CellRun]] = {}
    for run in trick_off_runs(sweep):
        groups.setdefault((run.trick, run.axes.get(run.trick, "?")), []).append(run)
    max_seeds = (sweep.grid.get("until_resolved") or {}).get("max_seeds", 0)
    for (key, value), ablated in sorted(groups.items()):
        claim = paper.claim(key, dataset)
        delta = S.paired_delta(_by_seed(baseline, "test_err"), _by_seed(ablated, "test_err"))
        tried = seeds_total + len((sweep.grid.get("added_seeds") or {}).get(pair_name(key, value), []))
        stopped = ""
        if max_seeds:  # seeds were added by the sequential rule: its interval, not the fixed-n one
            delta, stopped = _sequential(delta, _by_seed(baseline, "test_err"), _by_seed(ablated, "test_err"),
                                         seeds_total, max_seeds, claim.top1 if claim else None)
        epochs, reached = _epochs_to_best(baseline, ablated)
        later = paper.later(key)
        later_numbers = [study.top1 for study in later if study.top1 is not None]
        later_delta = float(np.mean(later_numbers)) if later_numbers else math.nan
        ablated_seeds = set(_by_seed(ablated, "test_err"))
        paired_base = [v for s, v in _by_seed(baseline, "test_err").items() if s in ablated_seeds or not max_seeds]
        row = {
            "trick": claim.label if claim else key, "switch": f"{key}={value}", "n": delta.n,
            "missing": tried - delta.n, "stopped": stopped,
            # the full model over the seeds this trick has (with --until-resolved it may have more)
            "base_err": S.mean_std(paired_base)[0], "base_sd": S.mean_std(paired_base)[1],
            "ablated_err": S.mean_std(list(_by_seed(ablated, "test_err").values()))[0],
            "ablated_sd": S.mean_std(list(_by_seed(ablated, "test_err").values()))[1],
            "delta": delta.mean, "ci_low": delta.low, "ci_high": delta.high, "p": delta.p,
            "paper_delta": claim.top1 if claim else None, "paper_source": claim.source if claim else "",
            "verdict": S.verdict(delta, claim.top1 if claim else None),
            "later_delta": later_delta, "later_cite": "; ".join(study.cite for study in later),
            "later_source": "; ".join(f"{study.source}: {study.words}" for study in later),
            "sides_with": S.sides_with(delta, claim.top1 if claim else None, later_delta),
            "gap_base": _gap(baseline), "gap_ablated": _gap(ablated),
            "epochs_to_base_best": epochs, "reached_base_best": reached,
            "seeds_for_80pct_power": S.seeds_for_power(claim.top1 if claim else None, delta.sd),
        }
        if top5:
            d5 = S.paired_delta(_by_seed(baseline, "test_err5"), _by_seed(ablated, "test_err5"))
            row |= {"delta5": d5.mean, "ci5_low": d5.low, "ci5_high": d5.high,
                    "paper_delta5": claim.top5 if claim else None,
                    "verdict5": S.verdict(d5, claim.top5 if claim else None)}
        rows.append(row)
    return pd.DataFrame(rows)


def _sequential(delta: S.Interval, baseline: dict[int, float], ablated: dict[int, float], first: int,
                max_seeds: int, paper_delta: float | None) -> tuple[S.Interval, str]:
    """The interval and stopping reason of `--until-resolved` (harness.sequential) at the last look."""
    seeds = sorted(set(baseline) & set(ablated))
    if len(seeds) < max(2, first):
        return delta, "runs failed"
    look = Q.look([ablated[s] - baseline[s] for s in seeds], first, max_seeds, paper_delta)
    # no fixed-n p-value beside a sequential interval: the two could disagree
    return S.Interval(delta.n, delta.mean, look.low, look.high, math.nan, delta.sd), look.decision


def _pm(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def _ci(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:+.2f}" if math.isnan(low) else f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def _num(x, fmt: str = "{:.2f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _later(delta: float, cited: str) -> str:
    """The later studies' delta and who measured it (their words are in the CSV and under the table)."""
    if math.isnan(delta):
        return f"no number ({cited})" if cited else "-"
    return f"{delta:+.1f} ({cited})"


def trick_display(table: pd.DataFrame) -> list[dict[str, str]]:
    """The table as a reader sees it: mean ± sd, delta [95% CI], the paper's delta, the verdict."""
    out = []
    for r in table.to_dict("records"):
        seeds = f"{r['n']}" + (f" ({r['missing']} missing)" if r["missing"] else "")
        row = {"trick off": f"{r['trick']} ({r['switch']})",
               "seeds": seeds + (f", stopped: {r['stopped']}" if r.get("stopped") else ""),
               "full model top-1": _pm(r["base_err"], r["base_sd"]), "trick off top-1": _pm(r["ablated_err"], r["ablated_sd"]),
               "delta [95% CI]": _ci(r["delta"], r["ci_low"], r["ci_high"]), "p": _num(r["p"], "{:.3f}"),
               "paper": _num(r["paper_delta"], "{:+.1f}") + (f" ({r['paper_source']})" if _num(r["paper_delta"]) != "-" else ""),
               "verdict": r["verdict"],
               "later studies": _later(r["later_delta"], r["later_cite"]), "sides with": r["sides_with"]}
        if "delta5" in r:
            row |= {"delta top-5": _ci(r["delta5"], r["ci5_low"], r["ci5_high"]), "paper top-5": _num(r["paper_delta5"], "{:+.1f}")}
        row |= {"train-test gap (full / off)": f"{_num(r['gap_base'])} / {_num(r['gap_ablated'])}",
                "epochs to full model's best val": f"{_num(r['epochs_to_base_best'], '{:.1f}')} ({r['reached_base_best']}/{r['n']} reach it)",
                "seeds for 80% power": _num(r["seeds_for_80pct_power"], "{:.0f}")}
        out.append(row)
    return out


# --------------------------------------------------------------------------- Figure 1 speed

def setting(run: CellRun) -> str:
    """What a Figure 1 ratio holds fixed while ReLU and tanh differ: the other axes' values (the
    network of a race grid: 'convnet4'), or the initialisation ('paper initialisation')."""
    return _setting(run.axes, run.params["model.init"])


def _setting(axes: dict, init: str) -> str:
    others = {k: str(v) for k, v in sorted(axes.items()) if k not in ("model.activation", "optim.lr")}
    if not others or list(others) == ["model.init"]:
        return f"{init} initialisation"
    return ", ".join(others.values())


def _cells_of(sweep: SweepRecord, name: str, activation: str, lr: str | None) -> list:
    """The grid's cells (outside a race) of setting `name` and `activation`, at `lr` where given."""
    return [cell for cell in sweep.cells if cell.stage != "race" and cell.config.model.activation == activation
            and _setting(cell.values, cell.config.model.init) == name
            and (lr is None or float(cell.config.optim.lr) == float(lr))]


def _seeds_with_outcome(sweep: SweepRecord, name: str, activation: str, lr: str | None) -> int:
    """Seeds of the grid whose cell of `name`, `activation` (at `lr`, where there is one) has an
    outcome: a FINISHED run, or a race grid's diverged one. A cell never run, running, killed or
    failed otherwise (retried by the next sweep) is still to run: a sweep reported half-way."""
    return len({cell.seed for cell in _cells_of(sweep, name, activation, lr) if cell.key in sweep.settled})


def _seeds_not_tried(sweep: SweepRecord, name: str, activation: str, lr: str) -> int:
    """Seeds whose cell has neither finished nor diverged (never run, running, cut off, or failed
    otherwise: a crash the next sweep retries): no evidence yet of whether that rate reaches the
    target. A divergence is evidence: it did not."""
    return len({cell.seed for cell in _cells_of(sweep, name, activation, lr)
                if not any(outcome(run) != "failed" for run in sweep.attempts.get(cell.key, []))})


def speed_groups(sweep: SweepRecord) -> dict[tuple[str, str, str], list[CellRun]]:
    """(activation, setting, learning rate) -> that cell's runs over seeds; in a grid with a race,
    the estimate's runs only (the race's are `race_table`'s)."""
    groups: dict[tuple[str, str, str], list[CellRun]] = {}
    for run in sweep.runs:
        cell = sweep.cell(run.cell)
        if cell is not None and cell.stage == "race":
            continue
        groups.setdefault((run.params["model.activation"], setting(run), run.params["optim.lr"]), []).append(run)
    return groups


def _epochs_to_target(runs: list[CellRun], target: float) -> dict[int, int | None]:
    return {r.seed: S.first_epoch(r.curves.get("train_err", []), target, strict=True) for r in runs}


def _seconds_at(run: CellRun, epoch: int | None) -> float:
    times = dict(run.curves.get("train_time_s", []))
    return times.get(epoch, math.nan) if epoch else math.nan


def fastest_rates(sweep: SweepRecord, target: float) -> dict[tuple[str, str], str]:
    """Per (activation, setting), the rate the ratio uses. A race's: its recorded choice. Otherwise
    the rate with the fewest mean epochs to the target among the grid's (a rate whose seeds do not
    all reach it loses to one whose seeds do; a seed whose run diverged has not reached it; a seed
    not tried yet, in a sweep reported half-way, is no miss), ties to the lower
    final training error."""
    groups = speed_groups(sweep)
    if sweep.grid.get("race"):
        chosen = {c.key: c.values["optim.lr"] for c in sweep.cells if c.stage == "estimate"}  # at the chosen rates
        return {(act, name): lr for (act, name, lr), runs in groups.items() if runs[0].cell in chosen}
    best: dict[tuple[str, str], tuple] = {}
    seeds = len(sweep.grid.get("seeds", []))
    for (act, name, lr), runs in groups.items():
        epochs = list(_epochs_to_target(runs, target).values())
        reached = [e for e in epochs if e is not None]
        tried = max(seeds - _seeds_not_tried(sweep, name, act, lr), len(epochs)) if sweep.cells else max(seeds, len(epochs))
        score = (tried - len(reached), np.mean(reached) if reached else math.inf,
                 np.mean([r.metrics.get("train_err", math.inf) for r in runs]), float(lr))
        if (act, name) not in best or score < best[(act, name)][0]:
            best[(act, name)] = (score, lr)
    return {k: v[1] for k, v in best.items()}


def speed_table(sweep: SweepRecord, target: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cell epochs to the target, and per setting the tanh/ReLU ratio at each's fastest rate."""
    winners = fastest_rates(sweep, target)
    groups = speed_groups(sweep)
    rates = Counter((act, name) for act, name, _ in groups)  # "(fastest)" only where there was a choice
    cells = []
    for (act, name, lr), runs in sorted(groups.items()):
        epochs = _epochs_to_target(runs, target)
        reached = [e for e in epochs.values() if e is not None]
        seconds = [_seconds_at(r, epochs[r.seed]) for r in runs if epochs[r.seed] is not None]
        mean, sd = S.mean_std(reached)
        cells.append({"activation": act, "setting": name, "lr": float(lr), "seeds": len(runs),
                      "reached": len(reached), "epochs_mean": mean, "epochs_sd": sd,
                      "seconds_mean": S.mean_std(seconds)[0],
                      "max_epochs": max(len(r.curves.get("train_err", [])) for r in runs),
                      "final_train_err": S.mean_std([r.metrics.get("train_err", math.nan) for r in runs])[0],
                      "fastest": winners.get((act, name)) == lr and bool(reached) and rates[(act, name)] > 1})
    ratios = []
    seeds = len(sweep.grid.get("seeds", []))  # a seed without a finished run counts as not reaching the target
    no_rate = _raced_to_no_rate(sweep)
    for name in sorted({k[1] for k in groups}):
        if not all((act, name) in winners or (act, name) in no_rate for act in ("relu", "tanh")) or \
                all((act, name) in no_rate for act in ("relu", "tanh")):
            continue
        relu, tanh = ({} if (act, name) in no_rate else _epochs_to_target(groups[(act, name, winners[(act, name)])], target)
                      for act in ("relu", "tanh"))
        ratio = S.ratio_interval({s: e for s, e in tanh.items() if e}, {s: e for s, e in relu.items() if e})
        relu_hits, tanh_hits = (sum(e is not None for e in d.values()) for d in (relu, tanh))
        row_seeds = max(seeds, len(relu), len(tanh))
        relu_ran, tanh_ran = (_seeds_with_outcome(sweep, name, act, winners.get((act, name))) if sweep.cells else row_seeds
                              for act in ("relu", "tanh"))
        ratios.append({"setting": name, "relu_lr": float(winners.get(("relu", name), math.nan)),
                       "tanh_lr": float(winners.get(("tanh", name), math.nan)),
                       "relu_reached": relu_hits, "tanh_reached": tanh_hits, "seeds": row_seeds,
                       "relu_ran": relu_ran, "tanh_ran": tanh_ran,
                       "ratio": ratio.mean, "ci_low": ratio.low, "ci_high": ratio.high, "n": ratio.n,
                       "paper_ratio": paper.RELU_SPEEDUP, "verdict": speed_verdict(ratio, relu_hits, tanh_hits, row_seeds)})
    return pd.DataFrame(cells), pd.DataFrame(ratios)


def _raced_to_no_rate(sweep: SweepRecord) -> set[tuple[str, str]]:
    """(activation, setting) whose race ended with no rate at the target: no estimate, and the
    other activation's seeds alone answer which is faster."""
    state = sweep.grid.get("race_state") or {}
    out = set()
    for run in sweep.runs:
        cell = sweep.cell(run.cell)
        if cell and cell.stage == "race" and state.get(variant_name(cell.values), {}).get("chosen") == "none":
            out.add((run.params["model.activation"], setting(run)))
    return out


def race_table(sweep: SweepRecord, target: float) -> pd.DataFrame:
    """A race grid's race: per variant and rate, each selection seed's outcome (epochs to the target,
    or what stopped it), and which rate was chosen."""
    state = sweep.grid.get("race_state") or {}
    rows = []
    for cell in sweep.cells:
        if cell.stage != "race":
            continue
        variant, attempts = variant_name(cell.values), sweep.attempts.get(cell.key, [])
        run = next((r for r in attempts if r.status == "FINISHED"), attempts[-1] if attempts else None)
        how = ("not run yet" if run is None else outcome(run) if run.status in ("FINISHED", "FAILED")
               else run.status.lower())
        curve = sorted(run.history(["train_err"])["train_err"]) if run else []
        rows.append({"variant": variant, "lr": cell.values["optim.lr"], "seed": cell.seed, "outcome": how,
                     "epochs_to_target": crossing(curve, target, CHANCE.get(cell.config.data.dataset, 100.0))
                     if how == "target" else math.nan,
                     "epochs_trained": len(curve), "last_train_err": curve[-1][1] if curve else math.nan,
                     "chosen": state.get(variant, {}).get("chosen") == cell.values["optim.lr"]})  # validated by G.load
    return pd.DataFrame(sorted(rows, key=lambda r: (r["variant"], -r["lr"], r["seed"])))


def race_display(table: pd.DataFrame) -> list[dict[str, str]]:
    shown = []
    for r in table.to_dict("records"):
        if r["outcome"] == "target":
            what = f"{r['epochs_to_target']:.2f} epochs"
        elif r["outcome"] == "not run yet":
            what = "not run yet"
        elif r["epochs_trained"] == 0:
            what = f"{r['outcome']} in its first epoch"
        else:
            what = (f"{r['outcome']} after {r['epochs_trained']} epoch{'s' if r['epochs_trained'] != 1 else ''} "
                    f"(training error {_num(r['last_train_err'], '{:.1f}')}%)")
        shown.append({"variant": r["variant"], "lr": f"{r['lr']:g}" + (" (chosen)" if r["chosen"] else ""),
                      "selection seed": str(r["seed"]), "to the target, or what stopped it": what})
    return shown


SPEED_TARGETS = tuple(range(80, 20, -5))  # training error (%): Figure 1's 25 and the shallower ones


def speed_curve(sweep: SweepRecord, target: float) -> pd.DataFrame:
    """Per setting and training-error target (80, 75, ... 25%): tanh's epochs to the target
    over ReLU's, per seed (fractional epochs, `S.crossing`), with a t-interval on the log ratios;
    the rates are each activation's fastest at the grid's own target. Rows where 2+ seeds had
    both activations below the target."""
    winners, groups = fastest_rates(sweep, target), speed_groups(sweep)
    start = CHANCE.get(sweep.param("data.dataset"), 100.0)
    seeds = len(sweep.grid.get("seeds", []))
    rows = []
    for name in sorted({k[1] for k in groups}):
        if ("relu", name) not in winners or ("tanh", name) not in winners:
            continue
        relu = groups[("relu", name, winners[("relu", name)])]
        tanh = groups[("tanh", name, winners[("tanh", name)])]
        for t in SPEED_TARGETS:
            at = {act: {r.seed: crossing(r.curves.get("train_err", []), t, start) for r in runs}
                  for act, runs in (("relu", relu), ("tanh", tanh))}
            both = {s for s in at["relu"] if at["relu"][s] and at["tanh"].get(s)}
            if len(both) < 2:
                continue
            ratio = S.ratio_interval({s: at["tanh"][s] for s in both}, {s: at["relu"][s] for s in both})
            rows.append({"setting": name, "target": t, "relu_epochs": S.mean_std([at["relu"][s] for s in both])[0],
                         "tanh_epochs": S.mean_std([at["tanh"][s] for s in both])[0], "n": ratio.n, "seeds": seeds,
                         "ratio": ratio.mean, "ci_low": ratio.low, "ci_high": ratio.high})
    return pd.DataFrame(rows)


def speed_curve_display(curve: pd.DataFrame) -> list[dict[str, str]]:
    return [{"setting": r["setting"], "training error target": f"{r['target']:g}%",
             "epochs ReLU / tanh (mean)": f"{r['relu_epochs']:.2f} / {r['tanh_epochs']:.2f}",
             "tanh/ReLU [95% CI]": f"{r['ratio']:.2f}" + ("" if math.isnan(r["ci_low"]) else
                                                          f" [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"),
             "seeds": f"{r['n']} of {r['seeds']}"} for r in curve.to_dict("records")]


def speed_verdict(ratio: S.Interval, relu_hits: int, tanh_hits: int, seeds: int) -> str:
    """Against 'ReLU ~6x faster': the interval of tanh/ReLU epochs decides (every seed giving the
    same ratio: that value); where one activation never reached the target (stopped at the cap or
    stalled) and the other did in 2+ of the grid's `seeds`, that alone answers which is faster."""
    if ratio.n < 2:
        if relu_hits == 0 and tanh_hits >= 2:
            return f"contradicts: tanh reached the target ({tanh_hits}/{seeds} seeds), ReLU in none"
        if tanh_hits == 0 and relu_hits >= 2:
            return f"ReLU faster: it reached the target ({relu_hits}/{seeds} seeds), tanh in none"
        return "not measurable: too few seeds reached the target with both activations"
    low, high, agree = ratio.low, ratio.high, ""
    if math.isnan(low):
        low = high = ratio.mean
        agree = " (every seed gives the same ratio)"
    if high < 1:
        return "contradicts: tanh faster" + agree
    if low <= 1:
        return ("inconclusive: interval contains 1" if not agree else "no difference") + agree
    if low <= paper.RELU_SPEEDUP <= high:
        return ("reproduces: ReLU faster, 6x inside the interval" if not agree else "reproduces: ReLU 6x faster") + agree
    return f"ReLU faster, but {'less' if high < paper.RELU_SPEEDUP else 'more'} than 6x" + agree


def speed_display(cells: pd.DataFrame, ratios: pd.DataFrame, target: float) -> tuple[list[dict], list[dict]]:
    shown_cells = [{"activation": r["activation"], "setting": r["setting"], "lr": f"{r['lr']:g}" + (" (fastest)" if r["fastest"] else ""),
                    f"seeds below {target:g}%": f"{r['reached']}/{r['seeds']}",
                    "epochs [mean ± sd]": _pm(r["epochs_mean"], r["epochs_sd"]) if r["reached"] else f"> {r['max_epochs']}",
                    "training seconds": _num(r["seconds_mean"], "{:.0f}"),
                    "final train err": _num(r["final_train_err"])} for r in cells.to_dict("records")]
    shown_ratios = [{"setting": r["setting"], "rates (ReLU / tanh)": " / ".join(
                         "none reached it" if math.isnan(r[k]) else f"{r[k]:g}" for k in ("relu_lr", "tanh_lr")),
                     "tanh/ReLU epochs [95% CI]": (f"{r['ratio']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
                                                   if r["n"] >= 2 and not math.isnan(r["ci_low"]) else
                                                   f"{r['ratio']:.2f}" if r["n"] else "-"),
                     "seeds": f"{r['n']} of {r['seeds']}", "paper": f"~{r['paper_ratio']:g}x", "verdict": r["verdict"]}
                    for r in ratios.to_dict("records")]
    return shown_cells, shown_ratios


# ------------------------------------------------------------------------------------ output

def write(table: pd.DataFrame, shown: list[dict[str, str]], stem: Path) -> list[Path]:
    """stem.csv (numbers, 4 decimals), stem.md and stem.tex (as shown)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    table.round(4).to_csv(paths[0], index=False, lineterminator="\n")
    paths[1].write_text(markdown(shown) + "\n")
    paths[2].write_text(tabulate(shown, headers="keys", tablefmt="latex_booktabs", disable_numparse=True) + "\n")
    return paths


def markdown(shown: list[dict[str, str]]) -> str:
    return tabulate(shown, headers="keys", tablefmt="github", disable_numparse=True) if shown else "(no rows)"
