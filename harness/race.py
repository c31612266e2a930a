"""Learning-rate races: each variant of a grid trained at the rate that trains it fastest, chosen on
seeds the estimate never uses (grid key `race`; Figure 1's protocol: "each network at the learning
rate that trains it fastest").

The rule, for every variant (a combination of the grid's axis values):
1. The race: the variant at every rate of the ladder (`lowest * factor^k` up to `highest`) on each
   selection seed. A race cell stops when its epoch training error is below the grid's target, when
   its loss diverges, when it stalls (`stop.stalled_epochs`), at `stop.max_epochs`, or once it has
   trained as many epochs as the fastest cell of its race (same variant and selection seed) needed to
   reach the target without reaching it itself: it can no longer win (out-raced), so a race costs
   about (rates x the winner's epochs), not (rates x max_epochs).
2. The winner: on each selection seed, the rate that reached the target in the fewest fractional
   epochs (`crossing`); over the seeds, the rate that won on the most seeds, and between rates that
   won as many, the lower (further from divergence: a rate at the edge of stability makes the
   result depend on the processor). Out-racing cuts the losers of a seed short, so only each
   seed's winner is known for certain: the rule reads nothing else, and no order in which the
   cells ran can change it. Where the winner is the highest or lowest rate
   run so far, the ladder is extended by one rate that way and the race goes on, until the winner
   has a slower (or stalled, or diverged) rate on both sides.
3. The choice is recorded in the parent run's grid.yaml (`race_state`), once: a resumed sweep, its
   other workers and the report read it from there and never choose again. Then the estimate: the
   grid's `seeds` at the chosen rate, stopped only by the target, a stall or the epoch cap.

Choosing on other seeds than those that measure keeps the winner's curse (the selected rate's lucky
seed) out of the estimate. Every decision is read from the tracking store, so a sweep stopped at any
point, or continued elsewhere from its imported runs file, decides the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.config import ConfigError
from harness.grid import Cell, Grid, rate_step, variant_name, with_race_state

OUTRACED = "out-raced"
MAX_EXTENSIONS = 8  # rates added past either end of the ladder, at most (then the end rate is chosen)
CHANCE = {"cifar10": 90.0}  # top-1 training error of an untrained net (a uniform guess), where races start


def crossing(curve: list[tuple[int, float]], target: float, start: float) -> float | None:
    """The fractional epoch at which a training-error curve first goes below the target. An epoch's
    training error is the mean over its steps, so it is placed at the epoch's middle (e - 0.5);
    linear between those points, from `start` (chance: an untrained net's error) at epoch 0."""
    previous_at, previous = 0.0, start
    for epoch, value in sorted(curve):
        at = epoch - 0.5
        if value < target:
            if previous <= target:  # already below at epoch 0 (a target above chance)
                return previous_at
            return previous_at + (at - previous_at) * (previous - target) / (previous - value)
        previous_at, previous = at, value
    return None


@dataclass(frozen=True)
class Entry:
    """One race cell's outcome."""

    rate: float
    seed: int
    outcome: str  # target | stalled | out-raced | max_epochs | diverged | failed | todo
    epochs: float | None  # fractional epochs to the target; None if it did not reach it
    trained: int  # epochs trained


def outcome(run) -> str:
    """What ended a run (a RunRecord or a report's run): the stop rule, 'diverged', or 'failed'."""
    if run.status == "FINISHED":
        return run.tags.get("stopped_by", "max_epochs")
    if run.status == "FAILED" and run.tags.get("failure_reason") == "diverged":
        return "diverged"
    return "failed"


def target(grid: Grid) -> float:
    return float(grid.stop["train_err_below"])


def outraced(grid: Grid, cell: Cell, runs: dict[str, list], epochs: int) -> str | None:
    """'out-raced' once the cell has trained as many epochs as the fastest finished cell of its race
    needed to reach the target (called after each epoch that did not reach it), else None."""
    rivals = [c for c in grid.cells if c.stage == "race" and c.seed == cell.seed and c.key != cell.key
              and variant_name(c.values) == variant_name(cell.values)]
    best = [int(r.tags.get("epochs_trained", 0)) for c in rivals for r in runs.get(c.key, [])
            if r.status == "FINISHED" and r.tags.get("stopped_by") == "target"]
    return OUTRACED if best and epochs >= min(best) else None


def standings(grid: Grid, runs: dict[str, list], curves, skip: frozenset[str] = frozenset()) -> dict[str, list[Entry]]:
    """Per variant (but those in `skip`), every race cell's outcome; `curves(run)` gives a run's
    training-error curve."""
    start, goal = CHANCE.get(grid.cells[0].config.data.dataset, 100.0), target(grid)
    out: dict[str, list[Entry]] = {}
    for cell in grid.cells:
        if cell.stage != "race" or variant_name(cell.values) in skip:
            continue
        attempts = runs.get(cell.key, [])
        done = [r for r in attempts if r.status == "FINISHED"] or attempts[-1:]
        how = outcome(done[0]) if done and done[0].status in ("FINISHED", "FAILED") else "todo"
        epochs = crossing(curves(done[0]), goal, start) if how == "target" else None
        trained = int(done[0].tags.get("epochs_trained", 0)) if done else 0
        out.setdefault(variant_name(cell.values), []).append(Entry(cell.values["optim.lr"], cell.seed, how, epochs, trained))
    return out


def winner(entries: list[Entry]) -> float | None:
    """The rate that was fastest on the most selection seeds, then the lower rate (ties within a
    seed, too: the lower rate); None if no rate reached the target."""
    won: dict[float, int] = {}
    for seed in {e.seed for e in entries}:
        reached = [e for e in entries if e.seed == seed and e.epochs is not None]
        if reached:
            best = min(reached, key=lambda e: (e.epochs, e.rate))
            won[best.rate] = won.get(best.rate, 0) + 1
    return min(won, key=lambda rate: (-won[rate], rate)) if won else None


def next_round(grid: Grid, runs: dict[str, list], curves) -> Grid | None:
    """The grid with the race's next decisions (rates added at an end, rates chosen), or None when
    nothing more can be decided: every variant has chosen, or waits on cells that failed (a crash,
    not a divergence: the next invocation retries them)."""
    state = {k: dict(v) for k, v in grid.race_state.items()}
    changed = False
    chosen = frozenset(v for v, decided in state.items() if "chosen" in decided)
    for variant, entries in standings(grid, runs, curves, skip=chosen).items():
        if any(e.outcome in ("todo", "failed") for e in entries):
            continue
        decided = state.setdefault(variant, {})
        rates = sorted({e.rate for e in entries})
        best = winner(entries)
        ladder = grid.race.ladder()
        if best is not None and best == rates[-1] and sum(r > ladder[-1] for r in rates) < MAX_EXTENSIONS:
            decided["rates"] = rates + [rate_step(best, grid.race.factor)]
        elif best is not None and best == rates[0] and sum(r < ladder[0] for r in rates) < MAX_EXTENSIONS:
            decided["rates"] = [rate_step(best, 1 / grid.race.factor)] + rates
        else:
            decided["rates"] = rates
            decided["chosen"] = "none" if best is None else best
        changed = True
    return with_race_state(grid, state) if changed else None


def recorded(grid: Grid, recorded_grid: dict, parent_id: str) -> Grid:
    """The grid with the race state its sweep recorded (`claims.recorded_grid`). A race declared
    otherwise than it ran is refused: its choices were made on those seeds and that ladder."""
    ran = recorded_grid.get("race")
    mine = dataclasses.asdict(grid.race)
    if isinstance(ran, dict):
        ran = {"factor": 2.0, **ran}  # a recorded race without a factor had the default
    if ran is not None and ran != mine:
        def shown(race) -> str:
            return ", ".join(f"{k} {race.get(k)}" for k in mine) if isinstance(race, dict) else repr(race)
        raise ConfigError(f"race: sweep {grid.name} raced with {shown(ran)}, and its choices were made so; keep "
                          f"that race (another race needs another sweep name); the file now says {shown(mine)}")
    try:
        return with_race_state(grid, recorded_grid.get("race_state") or {})
    except ConfigError as err:
        raise ConfigError(f"grid.yaml of the sweep's parent run {parent_id}: {err} (a race recorded for another "
                          "grid: restore the grid it ran, or use another sweep name)") from None


def settled(grid: Grid, run) -> bool:
    """Whether a cell's run is a result: FINISHED, or, in a grid with a race, diverged (a rate that
    diverges is an outcome of the race, and the same seed on the same machine diverges again)."""
    return run.status == "FINISHED" or (grid.race is not None and run.status == "FAILED" and outcome(run) == "diverged")


def describe_choice(grid: Grid) -> list[str]:
    """One line per variant: the rate chosen, or where its race stands."""
    lines = []
    for variant, decided in sorted(grid.race_state.items()):
        chosen = decided.get("chosen")
        if chosen is None:
            continue
        lines.append(f"race {variant}: " + ("no rate reached the target" if chosen == "none" else
                                            f"lr {chosen:g} chosen from {', '.join(f'{r:g}' for r in decided['rates'])}"))
    return lines
