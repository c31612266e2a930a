"""`--until-resolved` on synthetic runs: which tricks get another seed, the numbering of the added
seeds, the cap, failed cells, and a sweep continued from the store's runs alone."""

from types import SimpleNamespace

import pytest

from harness import grid as G
from harness import resolve


@pytest.fixture
def grid(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("""
name: g
preset: cifar_alexnet
design: leave_one_out
axes: {model.lrn: [true, false], model.dropout: [0.5, 0.0], data.split_seed: [0, 1]}
seeds: [0, 1, 2]
until_resolved: {max_seeds: 5}
""")
    return G.load(path)


def finished(err):
    return [SimpleNamespace(status="FINISHED", metrics={"test_err": err})]


def runs_for(grid, errors):
    """{cell key: [run]} from {(pair or 'baseline', seed): error or None (a FAILED run)}."""
    out = {}
    for cell in grid.cells:
        who = "baseline" if cell.trick == "baseline" else G.pair_name(cell.trick, cell.values[cell.trick])
        if (who, cell.seed) in errors:
            err = errors[(who, cell.seed)]
            out[cell.key] = finished(err) if err is not None else [SimpleNamespace(status="FAILED", metrics={})]
    return out


BASE = {("baseline", s): 50.0 for s in range(5)}
# no LRN: +10 points on every seed (an effect); no dropout: about +0.2 (the paper gives no number:
# unresolved until the cap); split seed: noise around zero (no claim: unresolved)
ROUND0 = BASE | {("model.lrn=false", s): e for s, e in enumerate([60.0, 60.5, 59.8])} \
    | {("model.dropout=0.0", s): e for s, e in enumerate([50.1, 50.6, 49.9])} \
    | {("data.split_seed=1", s): e for s, e in enumerate([49.0, 51.5, 50.2])}


def test_a_round_adds_the_next_seed_to_unresolved_tricks_with_the_full_model(grid):
    by = {o.pair: o for o in resolve.outcomes(grid, runs_for(grid, ROUND0))}
    assert by["model.lrn=false"].why == "effect" and by["model.lrn=false"].next_seed is None
    assert by["model.dropout=0.0"].why == "more seeds" and by["model.dropout=0.0"].next_seed == 3
    assert by["data.split_seed=1"].paired == {0: -1.0, 1: 1.5, 2: pytest.approx(0.2)}
    grown = resolve.next_round(grid, runs_for(grid, ROUND0))
    assert grown.added_seeds == {"model.dropout=0.0": [3], "data.split_seed=1": [3]}
    added = sorted((c.trick, c.seed) for c in grown.cells if c.seed == 3)
    assert added == [("baseline", 3), ("data.split_seed", 3), ("model.dropout", 3)]  # the baseline once
    assert len(grown.cells) == len(grid.cells) + 3


def test_the_cap_ends_it_and_the_store_alone_gives_back_the_rounds(grid):
    errors = dict(ROUND0)
    current = grid
    for _ in range(10):
        nxt = resolve.next_round(current, runs_for(current, errors))
        if nxt is None:
            break
        for pair, seeds in nxt.added_seeds.items():  # every new cell runs: this trick keeps its noise
            errors.setdefault((pair, seeds[-1]), 50.3 if pair == "model.dropout=0.0" else 50.0 + (-1) ** seeds[-1])
        current = nxt
    by = {o.pair: o for o in resolve.outcomes(current, runs_for(current, errors))}
    assert by["model.dropout=0.0"].seeds == [0, 1, 2, 3, 4] and by["model.dropout=0.0"].why in ("max seeds", "effect")
    assert max(len(s) for s in current.added_seeds.values()) <= 2  # 3 grid seeds + 2 = max_seeds 5
    # a sweep started again reads which seeds were added from the runs that exist
    assert resolve.with_added_seeds_from_runs(grid, runs_for(current, errors)).added_seeds == current.added_seeds


def test_a_failed_cell_counts_as_tried(grid):
    errors = ROUND0 | {("model.dropout=0.0", 1): None}
    by = {o.pair: o for o in resolve.outcomes(grid, runs_for(grid, errors))}
    assert by["model.dropout=0.0"].look is None and by["model.dropout=0.0"].why.startswith("runs failed: 2 of 3")


def test_added_seeds_are_checked(grid):
    with pytest.raises(G.GridError, match="added_seeds.model.towers=1: not a trick of this grid"):
        G.with_seeds(grid, {"model.towers=1": [3]})
    with pytest.raises(G.GridError, match="distinct integers not in seeds"):
        G.with_seeds(grid, {"model.lrn=false": [2]})
    with pytest.raises(G.GridError, match="more than until_resolved.max_seeds=5"):
        G.with_seeds(grid, {"model.lrn=false": [3, 4, 5]})


def test_a_trick_whose_added_cells_keep_failing_stops_at_the_cap(grid):
    errors = dict(ROUND0)
    errors |= {("model.dropout=0.0", s): None for s in (3, 4)} | {("baseline", s): 50.0 for s in (3, 4)}
    current = G.with_seeds(grid, {"model.dropout=0.0": [3, 4]})
    by = {o.pair: o for o in resolve.outcomes(current, runs_for(current, errors))}
    assert by["model.dropout=0.0"].next_seed is None
    assert by["model.dropout=0.0"].why == "max seeds (5 tried, 3 finished in both cells)"


def test_seeds_written_in_the_file_are_kept_with_those_the_store_shows(grid):
    by_hand = G.with_seeds(grid, {"model.lrn=false": [3]})
    errors = ROUND0 | {("data.split_seed=1", 3): 50.0, ("baseline", 3): 50.0}
    with_split = G.with_seeds(grid, {"data.split_seed=1": [3]})
    assert resolve.with_added_seeds_from_runs(by_hand, runs_for(with_split, errors)).added_seeds == {
        "model.lrn=false": [3], "data.split_seed=1": [3]}


@pytest.mark.parametrize("args, message", [
    (["--until-resolved", "--max-seeds", "0"], "until_resolved.max_seeds: expected a number of seeds above the grid's 3, at most 100; got 0"),
    (["--max-seeds", "5"], "--max-seeds: goes with --until-resolved"),
])
def test_bad_until_resolved_arguments_exit_2_with_one_line_and_no_store(args, message, tmp_path, monkeypatch, capsys):
    from harness import cli

    path = tmp_path / "g.yaml"
    path.write_text("name: g\npreset: cifar_alexnet\ndesign: leave_one_out\naxes: {model.lrn: [true, false]}\n"
                    "seeds: [0, 1, 2]\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", str(path), *args]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "mlruns").exists()
