"""`harness sweep GRID --until-resolved`: after each round of cells, which tricks get one more seed.

A trick (a leave-one-out pair: its cell and the full model's, 'axis=value') is looked at over the
seeds where both cells FINISHED, by the sequential rule of `harness.sequential`: it stops once its
interval excludes zero or the paper's delta, or once it has had `max_seeds` seeds (failed cells
count as tried). Otherwise its next seed joins the grid, with the full model's cell for that seed
(shared by every trick that needs it). Everything is read from the tracking store, so a sweep
stopped in any round continues where it was, and the report reads the same rule from the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import paper
from harness import sequential as Q
from harness.grid import BASELINE, Grid, pair_name, with_seeds

METRIC = "test_err"


@dataclass(frozen=True)
class Outcome:
    pair: str  # 'axis=value'
    seeds: list[int]  # the seeds tried: the grid's, then those added
    paired: dict[int, float]  # seed -> delta (trick's error minus the full model's), both FINISHED
    look: Q.Look | None  # None: fewer finished pairs than the grid's seeds
    next_seed: int | None  # the seed to add next round, or None: this trick is done

    @property
    def why(self) -> str:
        if self.next_seed is not None:
            return "more seeds"
        if self.look is None:
            return f"runs failed: {len(self.paired)} of {len(self.seeds)} seeds finished in both cells"
        if self.look.decision == "more seeds":  # the cap reached with some cells failed
            return f"max seeds ({len(self.seeds)} tried, {len(self.paired)} finished in both cells)"
        return self.look.decision


def _errors(grid: Grid, runs: dict[str, list]) -> dict[tuple[str, int], float]:
    """(pair or 'baseline', seed) -> the FINISHED run's test error, for every cell of the grid."""
    out = {}
    for cell in grid.cells:
        done = [r for r in runs.get(cell.key, []) if r.status == "FINISHED" and METRIC in r.metrics]
        if done:
            who = BASELINE if cell.trick == BASELINE else pair_name(cell.trick, cell.values[cell.trick])
            out[(who, cell.seed)] = done[0].metrics[METRIC]
    return out


def with_added_seeds_from_runs(grid: Grid, runs: dict[str, list]) -> Grid:
    """The grid with every seed some earlier round added (a trick cell of that seed has a run)."""
    first = max(grid.seeds) + 1  # added seeds run on from the grid's highest, one per round
    candidate = with_seeds(grid, {pair: list(range(first, first + grid.max_seeds - len(grid.seeds)))
                                  for pair in grid.pairs()})
    added = {pair: list(seeds) for pair, seeds in grid.added_seeds.items()}  # and any the file names
    for cell in candidate.cells:
        if cell.trick != BASELINE and cell.seed not in grid.seeds and runs.get(cell.key):
            added.setdefault(pair_name(cell.trick, cell.values[cell.trick]), []).append(cell.seed)
    return with_seeds(grid, {pair: sorted(set(seeds)) for pair, seeds in added.items()})


def outcomes(grid: Grid, runs: dict[str, list]) -> list[Outcome]:
    errors, dataset = _errors(grid, runs), grid.cells[0].config.data.dataset
    out = []
    for axis, choices in grid.axes.items():
        for value in choices[1:]:
            pair = pair_name(axis, value)
            seeds = grid.seeds + grid.added_seeds.get(pair, [])
            paired = {s: errors[(pair, s)] - errors[(BASELINE, s)] for s in seeds
                      if (pair, s) in errors and (BASELINE, s) in errors}
            claim = paper.claim(axis, dataset)
            look = (Q.look(list(paired.values()), len(grid.seeds), grid.max_seeds, claim.top1 if claim else None)
                    if len(paired) >= max(2, len(grid.seeds)) else None)
            more = look is not None and look.decision == "more seeds" and len(seeds) < grid.max_seeds
            out.append(Outcome(pair, seeds, paired, look, max(seeds) + 1 if more else None))
    return out


def next_round(grid: Grid, runs: dict[str, list]) -> Grid | None:
    """The grid with the next round's seeds added, or None when every trick is done."""
    chosen = [o for o in outcomes(grid, runs) if o.next_seed is not None]
    if not chosen:
        return None
    return with_seeds(grid, grid.added_seeds | {o.pair: grid.added_seeds.get(o.pair, []) + [o.next_seed] for o in chosen})
