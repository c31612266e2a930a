"""Report statistics on a tracking store filled with synthetic runs whose metrics are chosen here,
so every number is checked against a hand computation; regeneration gives identical bytes; a failed
cell shows up as missing. No training, no data."""

import math
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness import cli
from harness import config as C
from harness import grid as G
from harness import tracking
from harness import report
from harness.report import stats as S
from harness.report import tables
from conftest import fresh_store

TRICKS = """
name: syn_tricks
preset: cifar_alexnet
design: leave_one_out
axes: {model.lrn: [true, false], model.pool: [overlap, plain]}
seeds: [0, 1, 2]
set: {model.width: 0.25}
"""

SPEED = """
name: syn_speed
preset: cifar_convnet4
design: factorial
axes: {model.activation: [relu, tanh]}
lr: {model.activation: {relu: [0.01, 0.02], tanh: [0.01, 0.02]}}
seeds: [0, 1, 2]
stop: {train_err_below: 25, max_epochs: 40}
"""


def fill(tmp_path, uri: str, text: str, metrics_of, recorded: dict | None = None) -> None:
    """A sweep in the store: its parent and one child per cell, metrics from `metrics_of(cell)`:
    (status, {final metrics}, {curve key: [values by epoch]}), or None for a cell not run yet;
    `recorded`: what the sweep decided as it ran (grid.STATE_KEYS), in its parent's grid.yaml."""
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    grid = G.load(path)
    if recorded:
        grid = G.from_record(grid.as_dict() | recorded, path, "recorded")
    root = str(tmp_path / "artifacts")
    parent = tracking.start_run(uri, grid.name, root, grid.name, {}, {"sweep": grid.name, "sweep_role": "parent",
                                "grid_file": "grid.yaml"}, yaml.safe_dump(grid.as_dict()), config_name="grid.yaml")
    for cell in grid.cells:
        if (outcome := metrics_of(cell)) is None:
            continue
        status, final, curves = outcome
        tags = {"sweep_parent": parent, "cell": cell.key, "trick": cell.trick, "seed": str(cell.seed),
                "dataset_sha256": "ab" * 32, "device": "cpu (2 cores)", "git_commit": "abc123",
                **{f"axis.{k}": str(v) for k, v in cell.values.items()}}
        run = tracking.start_run(uri, grid.name, root, cell.name, C.flatten(cell.config), tags, "", parent)
        epochs, now = len(next(iter(curves.values()))), int(time.time() * 1000)
        points = [(key, epoch, now, float(value)) for key, values in curves.items() for epoch, value in enumerate(values, 1)]
        tracking.log_batch(uri, run, points=points + [(key, epochs, now, float(value)) for key, value in final.items()])
        tracking.end_run(uri, run, status, {"failure_reason": "diverged"} if status == "FAILED" else None)
    tracking.end_run(uri, parent, "FINISHED")


# test error by (trick, seed); the full model's validation curve reaches 30 at epoch 3.
TEST_ERR = {("baseline", 0): 20.0, ("baseline", 1): 22.0, ("baseline", 2): 21.0,
            ("model.lrn", 0): 21.5, ("model.lrn", 1): 23.0, ("model.lrn", 2): 22.0,
            ("model.pool", 0): 19.0, ("model.pool", 1): 23.0, ("model.pool", 2): 99.0}
VAL = {"baseline": [50.0, 40.0, 30.0], "model.lrn": [45.0, 30.0, 29.0], "model.pool": [60.0, 50.0, 40.0]}


def trick_metrics(cell):
    status = "FAILED" if (cell.trick, cell.seed) == ("model.pool", 2) else "FINISHED"
    test = TEST_ERR[(cell.trick, cell.seed)]
    train = [70.0, 50.0, test - 5.0]  # final train error 5 points under test error: gap -5
    return status, {"test_err": test}, {"train_err": train, "val_err": VAL[cell.trick], "train_time_s": [10.0, 20.0, 30.0],
                                        "lr": [0.01, 0.01, 0.001]}  # one cut, at epoch 3


# epochs to < 25% training error by (activation, lr) per seed; None = never within 40 epochs.
REACH = {("relu", 0.01): [6, 5, 7], ("relu", 0.02): [4, 4, 5],
         ("tanh", 0.01): [30, 36, 33], ("tanh", 0.02): [20, None, 22]}


def speed_metrics(cell):
    epoch = REACH[(cell.config.model.activation, cell.config.optim.lr)][cell.seed]
    length = epoch or 40
    curve = [25.0 + (length - e) + 0.5 for e in range(1, length)] + [24.5 if epoch else 26.0]
    return "FINISHED", {"test_err": 50.0}, {"train_err": curve, "val_err": curve,
                                            "train_time_s": [3.0 * e for e in range(1, length + 1)]}


@pytest.fixture(scope="module")
def made_once(tmp_path_factory) -> Path:
    """A store holding both synthetic sweeps, made once per module."""
    root = tmp_path_factory.mktemp("store")
    uri = fresh_store(root / "mlflow.db")
    (root / "t").mkdir()
    (root / "s").mkdir()
    fill(root / "t", uri, TRICKS, trick_metrics)
    fill(root / "s", uri, SPEED, speed_metrics)
    return root / "mlflow.db"


@pytest.fixture
def store(made_once, tmp_path) -> str:
    """This test's copy of the module's store (its runs' artifacts stay in the module's folder, which
    no test writes)."""
    shutil.copyfile(made_once, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def test_statistics_against_hand_computation():
    # deltas 1.5, 1.0, 1.0: mean 7/6, sd sqrt(1/12), t = 7 on 2 df
    d = S.paired_delta({0: 20, 1: 22, 2: 21}, {0: 21.5, 1: 23, 2: 22, 3: 50})
    assert d.n == 3 and d.mean == pytest.approx(7 / 6)
    half = 4.302653 * math.sqrt(1 / 12) / math.sqrt(3)
    assert (d.low, d.high) == (pytest.approx(7 / 6 - half, abs=1e-5), pytest.approx(7 / 6 + half, abs=1e-5))
    assert d.p == pytest.approx(1 - 7 / math.sqrt(51), abs=1e-6)  # two-sided p for t on 2 df
    assert S.verdict(d, 2.0) == "reproduces" and S.verdict(d, -1.0) == "contradicts"
    # d's interval is [0.4496, 1.8838]: which of the paper's and the later studies' deltas it keeps
    assert S.sides_with(d, 1.0, -0.1) == "the paper" and S.sides_with(d, 3.0, 1.0) == "later studies"
    assert S.sides_with(d, 2.0, -0.1) == "neither" and S.sides_with(d, 1.0, 1.5) == "both"
    assert S.sides_with(d, None, -0.1) == "neither" and S.sides_with(d, None, 1.0) == "later studies"
    assert S.sides_with(d, 1.0, math.nan) == "-"
    assert S.verdict(S.paired_delta({0: 1, 1: 1}, {0: 0, 1: 2}), 1.0) == "inconclusive"
    assert S.verdict(S.paired_delta({0: 1}, {0: 5}), 1.0) == S.ONE_SEED  # one seed: no interval
    same = S.paired_delta({0: 90.0, 1: 89.0}, {0: 90.0, 1: 89.0})  # e.g. two nets both stuck at chance
    assert math.isnan(same.low) and math.isnan(same.p) and S.verdict(same, 1.0) == S.NOT_ESTIMABLE
    # 80% power, paired t, effect/sd = 1: the normal approximation gives 7.85, the t-test needs 10
    assert S.seeds_for_power(1.0, 1.0) == 10
    assert S.seeds_for_power(None, 1.0) is None and S.seeds_for_power(1.0, math.nan) is None
    assert S.first_epoch([(1, 30.0), (2, 25.0), (3, 24.9)], 25, strict=True) == 3
    assert S.first_epoch([(1, 30.0), (2, 25.0), (3, 24.9)], 25, strict=False) == 2
    r = S.ratio_interval({0: 30, 1: 36, 2: 33}, {0: 4, 1: 4, 2: 5})
    assert r.mean == pytest.approx((7.5 * 9 * 6.6) ** (1 / 3))


def test_trick_table_numbers_and_missing_cell(store, tmp_path, capsys):
    out = tmp_path / "reports"
    # the report is written whole, and the command exits 1 with the failed cell as its last line
    assert cli.main(["report", "--tracking-uri", store, "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert "report written to" in printed.out
    assert printed.err.strip().splitlines()[-1] == ("harness: 1 cell(s) failed, left out of the report (run their "
                                                    "sweep again to retry them): syn_tricks: "
                                                    "alexnet_cifar-relu-lrn-nonovl-drop0.5-2t-pca-w0.25-s2")
    table = pd.read_csv(out / "syn_tricks" / "tricks.csv").set_index("switch")
    lrn, pool = table.loc["model.lrn=False"], table.loc["model.pool=plain"]
    assert (lrn["n"], lrn["missing"]) == (3, 0)
    assert lrn["base_err"] == 21.0 and lrn["base_sd"] == 1.0
    assert lrn["ablated_err"] == pytest.approx(22.1667, abs=1e-4)
    assert lrn["delta"] == pytest.approx(1.1667, abs=1e-4)
    assert (lrn["ci_low"], lrn["ci_high"]) == (pytest.approx(0.4496, abs=1e-4), pytest.approx(1.8838, abs=1e-4))
    assert lrn["paper_delta"] == 2.0 and lrn["verdict"] == "reproduces"  # the CIFAR-10 LRN claim, 13% -> 11%
    # later studies: VGG's and Mishkin's -0.1 for LRN; the interval holds neither it nor the paper's +2.0;
    # pool's [-12.7, +12.7] (t(1) x sqrt(2) / sqrt(2)) holds both the paper's +0.4 and Mishkin's -1.3
    assert lrn["later_delta"] == pytest.approx(-0.1) and lrn["sides_with"] == "neither"
    assert pool["later_delta"] == pytest.approx(-1.3) and pool["sides_with"] == "both"
    assert lrn["gap_base"] == -5.0 and lrn["gap_ablated"] == -5.0
    # lrn-off validation curve reaches each seed's full-model best (30) at epoch 2; pool-off never does
    assert (lrn["epochs_to_base_best"], lrn["reached_base_best"]) == (2.0, 3)
    assert pool["reached_base_best"] == 0
    # the failed seed is missing, not averaged: deltas -1 and +1 over 2 seeds
    assert (pool["n"], pool["missing"], pool["delta"]) == (2, 1, 0.0)
    assert pool["ablated_err"] == 21.0 and pool["verdict"] == "inconclusive"
    # sd of the differences sqrt(2); the paper's 0.4 needs ~((1.96 + 0.84) / 0.283)^2 = 98, plus the t penalty
    assert 98 <= pool["seeds_for_80pct_power"] <= 103
    readme = (out / "README.md").read_text()
    assert "- `alexnet_cifar-relu-lrn-nonovl-drop0.5-2t-pca-w0.25-s2`: FAILED: diverged" in readme
    assert "**Reproduces**: local response normalisation (+1.17 points vs paper +2.0, n=3)" in readme
    assert "Still learning" not in readme  # 'Not converged' (below) already says it of every run in the section
    # the failed cell is retried by the next sweep: the report says so first among its findings
    assert ("Findings: **In progress.** 1 of 9 cells is still to run (the sweep's command, run again, runs only "
            "those): every interval and verdict below can still move. **Not converged.**") in readme
    # one cut, and the full model's best validation error fell from 40 to 30 in its last epoch (a quarter of 3: 1)
    assert ("**Not converged.** The full model's learning rate was cut once (fewest over its seeds; the paper's: 3 "
            "times in 90 epochs) and its best validation error still fell 10.0 points in its last epoch") in readme
    assert (out / "syn_tricks" / "deltas.png").stat().st_size > 10_000
    assert "+1.17 [+0.45, +1.88]" in (out / "syn_tricks" / "tricks.md").read_text()
    assert "-0.1 (VGG 2014; Mishkin 2016)" in (out / "syn_tricks" / "tricks.md").read_text()
    assert "- local response normalisation: VGG 2014: net A 29.6% top-1 error without LRN, 29.7% with" in readme
    assert " 0.020 " in (out / "syn_tricks" / "tricks.md").read_text()  # p as formatted, not re-parsed to 0.02
    assert "\\toprule" in (out / "syn_tricks" / "tricks.tex").read_text()
    parent = tracking.find_runs(store, "syn_tricks", "tags.sweep_role = 'parent'")[0]
    logged = {f.path for f in tracking.client(store).list_artifacts(parent.run_id, "report")}
    assert logged == {"report/deltas.png", "report/deltas.svg"}


def test_a_full_model_counts_as_converged_after_two_cuts_or_a_flat_last_quarter():
    assert tables.Convergence(cuts=2, fall=5.0, last=2).converged  # the rate cut twice
    assert tables.Convergence(cuts=0, fall=0.5, last=2).converged  # validation error flat
    assert not tables.Convergence(cuts=1, fall=0.6, last=2).converged
    # a trained-out full model says what shows it, where an unconverged one is warned about
    rate = "(fewest over its seeds; the paper's: 3 times in 90 epochs)"
    assert report._convergence(tables.Convergence(cuts=3, fall=0.3, last=15)) == (
        f"The full model trained out: its learning rate was cut 3 times {rate} and its best validation error fell "
        "0.3 points in its last 15 epochs. ")
    assert report._convergence(tables.Convergence(cuts=0, fall=-0.04, last=15)).endswith(
        "was never cut (fewest over its seeds; the paper's: 3 times in 90 epochs) and its best validation error did "
        "not move in its last 15 epochs. ")
    assert "error rose 2.0 points in its last 15" in report._convergence(tables.Convergence(cuts=2, fall=-2.0, last=15))
    assert report._convergence(tables.Convergence(cuts=2, fall=3.0, last=15)) == (
        f"The full model counts as trained out by its rate cuts: its learning rate was cut twice {rate}, though its "
        "best validation error still fell 3.0 points in its last 15 epochs. ")


def test_a_leave_one_out_sweep_reported_after_one_seed_says_so(tmp_path):
    """Seed 0 of every cell finished, seeds 1 and 2 not run yet (a sweep committed between sessions):
    each trick's delta is its one seed's, with no interval and no verdict beyond that."""
    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, TRICKS, lambda cell: trick_metrics(cell) if cell.seed == 0 else None)
    out = tmp_path / "reports"
    assert cli.main(["report", "--tracking-uri", uri, "--out", str(out)]) == 0
    table = pd.read_csv(out / "syn_tricks" / "tricks.csv").set_index("switch")
    lrn = table.loc["model.lrn=False"]
    assert (lrn["n"], lrn["missing"], lrn["delta"]) == (1, 2, 1.5) and math.isnan(lrn["ci_low"])
    assert set(table["verdict"]) == {S.ONE_SEED}
    readme = (out / "README.md").read_text()
    assert "Findings: **In progress.** 6 of 9 cells are still to run" in readme
    assert ("**One seed: no interval**: local response normalisation (+1.50 points vs paper +2.0, n=1); "
            "overlapping pooling (-1.00 points vs paper +0.4, n=1).") in readme


def test_tricks_whose_full_model_has_not_finished_are_named_without_a_number(tmp_path):
    """Every trick's cells finished, the full model's none: no delta, no 'nan', no chart of nothing."""
    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, TRICKS, lambda cell: None if cell.trick == "baseline" else trick_metrics(cell))
    out = tmp_path / "reports"
    cli.main(["report", "--tracking-uri", uri, "--out", str(out)])
    readme = (out / "README.md").read_text()
    assert ("**No seed with both runs**: local response normalisation; overlapping pooling." in readme
            and "nan" not in readme)
    assert not (out / "syn_tricks" / "deltas.png").exists()


def test_trick_off_runs_that_stopped_still_learning_are_named(tmp_path):
    """The full model trained out (two cuts on every seed). No-LRN seed 0 was cut once but its
    validation error went flat (30, 30 in its last quarter): trained out. No-LRN seed 1 was cut once
    and its best still fell 40 -> 35 in its last epoch: named, with the rule it failed."""
    cut_twice, cut_once = [0.01, 0.001, 0.0001, 0.0001], [0.01, 0.01, 0.01, 0.001]
    flat, falling = [50.0, 40.0, 30.0, 30.0], [50.0, 45.0, 40.0, 35.0]

    def metrics(cell):
        rates, val = {("model.lrn", 0): (cut_once, flat), ("model.lrn", 1): (cut_once, falling)}.get(
            (cell.trick, cell.seed), (cut_twice, flat))
        test = TEST_ERR[("baseline", cell.seed)] + (0.0 if cell.trick == "baseline" else 1.0)
        return "FINISHED", {"test_err": test}, {"train_err": [70.0, 50.0, 40.0, test - 5.0], "val_err": val,
                                                "train_time_s": [10.0, 20.0, 30.0, 40.0], "lr": rates}

    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, TRICKS, metrics)
    out = tmp_path / "reports"
    assert cli.main(["report", "--tracking-uri", uri, "--out", str(out)]) == 0
    assert ("**Still learning**: 1 of 6 trick-off runs stopped with their rate cut fewer than 2 times and their best "
            "validation error still falling more than 0.5 points in their last quarter: local response normalisation "
            "(seed 1). Their errors might still have moved.") in (out / "README.md").read_text()


def test_an_effect_the_paper_gives_no_number_for_says_which_way_it_goes(tmp_path):
    """Dropout off lowers the test error by 2, 3 and 2.5 points on seeds 0-2: the interval
    (-2.5 +- t(2) x 0.5 / sqrt(3) = [-3.74, -1.26]) is clear of 0, the paper has no number for
    dropout, and a bare '-2.50 points' would read as dropout helping."""
    grid = TRICKS.replace("name: syn_tricks", "name: syn_dropout").replace(
        "{model.lrn: [true, false], model.pool: [overlap, plain]}", "{model.dropout: [0.5, 0.0]}")
    off = {0: 18.0, 1: 19.0, 2: 18.5}

    def metrics(cell):  # the full model's as in trick_metrics (20, 22, 21), the dropout-off cell's from `off`
        test = off[cell.seed] if cell.trick == "model.dropout" else TEST_ERR[("baseline", cell.seed)]
        return "FINISHED", {"test_err": test}, {"train_err": [70.0, 50.0, test - 5.0], "val_err": VAL["baseline"],
                                                "train_time_s": [10.0, 20.0, 30.0], "lr": [0.01, 0.01, 0.001]}

    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, grid, metrics)
    out = tmp_path / "reports"
    assert cli.main(["report", "--tracking-uri", uri, "--out", str(out)]) == 0
    row = pd.read_csv(out / "syn_dropout" / "tricks.csv").iloc[0]
    assert (row["delta"], row["verdict"]) == (-2.5, S.EFFECT)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(-3.742, abs=1e-3), pytest.approx(-1.258, abs=1e-3))
    assert "**Effect (paper gives no number)**: dropout (-2.50 points, n=3: it hurts)." in (out / "README.md").read_text()


@pytest.mark.parametrize("left", [None, "KILLED", "crashed", "diverged"])
def test_a_rate_whose_seeds_are_not_tried_yet_is_not_scored_as_missing_the_target(tmp_path, left):
    """Half-way through the grid: ReLU at 0.02 has run seed 0 (4 epochs to the target), at 0.01
    all three (6, 5, 7). Seeds 1 and 2 at 0.02 never run, cut off (KILLED) or crashed (FAILED,
    retried by the next sweep) are no misses: 0.02 is the fastest so far (it lost to 0.01, its
    seeds to come counted as misses). A divergence is a miss: 0.01 then."""
    def half_way(cell):
        if cell.config.model.activation == "relu" and cell.config.optim.lr == 0.02 and cell.seed > 0:
            status = {"KILLED": "KILLED", "crashed": "FAILED", "diverged": "FAILED"}.get(left)
            return None if left is None else (status, {}, {"train_err": [60.0]})
        return speed_metrics(cell)

    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, SPEED, half_way)
    if left == "crashed":  # fill marks every FAILED run diverged: this one ended otherwise
        for run in tracking.find_runs(uri, "syn_speed"):
            if run.status == "FAILED":
                tracking.client(uri).set_tag(run.run_id, "failure_reason", "out of memory")
    out = tmp_path / "reports"
    code = cli.main(["report", "syn_speed", "--tracking-uri", uri, "--out", str(out)])
    assert code == (left in ("crashed", "diverged"))  # 1: a factorial grid's failed cells are still to do
    ratio = pd.read_csv(out / "syn_speed" / "speed_ratio.csv").iloc[0]
    assert (ratio["relu_lr"], ratio["tanh_lr"]) == (0.01 if left == "diverged" else 0.02, 0.01)


def test_speed_table_picks_fastest_rates_and_ratio(store, tmp_path):
    out = tmp_path / "reports"
    cli.main(["report", "syn_speed", "--tracking-uri", store, "--out", str(out)])
    cells = pd.read_csv(out / "syn_speed" / "speed_cells.csv")
    relu_fast = cells[(cells.activation == "relu") & (cells.lr == 0.02)].iloc[0]
    assert relu_fast["fastest"] and relu_fast["epochs_mean"] == pytest.approx(13 / 3, abs=1e-4)
    assert relu_fast["seconds_mean"] == pytest.approx(13.0, abs=1e-4)  # 3 s per epoch
    tanh_censored = cells[(cells.activation == "tanh") & (cells.lr == 0.02)].iloc[0]
    assert not tanh_censored["fastest"] and tanh_censored["reached"] == 2  # one seed never got there
    ratio = pd.read_csv(out / "syn_speed" / "speed_ratio.csv").iloc[0]
    assert (ratio["relu_lr"], ratio["tanh_lr"], ratio["n"]) == (0.02, 0.01, 3)
    assert ratio["ratio"] == pytest.approx((7.5 * 9 * 6.6) ** (1 / 3), abs=1e-4)
    assert (ratio["ci_low"], ratio["ci_high"]) == (pytest.approx(5.185, abs=1e-3), pytest.approx(11.249, abs=1e-3))
    assert ratio["verdict"] == "reproduces: ReLU faster, 6x inside the interval"
    assert (out / "syn_speed" / "relu_speed.svg").is_file()
    # the ratio at every target: fractional epochs, linear between epochs from chance (90%) at epoch 0
    curve = pd.read_csv(out / "syn_speed" / "speed_curve.csv").set_index("target")
    assert list(curve.index) == list(range(80, 20, -5))
    # each epoch's value sits at its middle (e - 0.5). At 25%: a run reaching it in epoch L goes from
    # 26.5 (at L - 1.5) to 24.5 (at L - 0.5): crosses at L - 0.75. ReLU (0.02) L = 4, 4, 5; tanh (0.01) 30, 36, 33
    assert curve.loc[25, "ratio"] == pytest.approx((29.25 / 3.25 * 35.25 / 3.25 * 32.25 / 4.25) ** (1 / 3), abs=1e-4)
    # at 80%: both cross before epoch 1's middle, from 90 (at 0) to L + 24.5 (at 0.5): ReLU 28.5, 28.5, 29.5;
    # tanh 54.5, 60.5, 57.5
    relu = [5 / 61.5, 5 / 61.5, 5 / 60.5]
    tanh = [5 / 35.5, 5 / 29.5, 5 / 32.5]
    assert curve.loc[80, "ratio"] == pytest.approx(math.prod(t / r for t, r in zip(tanh, relu)) ** (1 / 3), abs=1e-4)
    assert "the deepest target every seed reached with both activations (or failing that, 2+ seeds) was 25% " \
        "training error" in (out / "syn_speed" / "section.md").read_text()


def test_regenerating_gives_identical_bytes(store, tmp_path):
    out = tmp_path / "reports"
    cli.main(["report", "--tracking-uri", store, "--out", str(out)])
    first = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    cli.main(["report", "--tracking-uri", store, "--out", str(out)])
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == first
    assert len(first) == (3 + 2 + 1 + 1) + (9 + 4 + 1 + 1) + 1  # per sweep: tables, figures, section, runs; README


def test_a_sweep_with_no_finished_cell_reports_what_is_missing(tmp_path, capsys):
    uri = fresh_store(tmp_path / "mlflow.db")
    fill(tmp_path, uri, SPEED.replace("syn_speed", "syn_failed"),
         lambda cell: ("FAILED", {}, {"train_err": [90.0]}))
    out = tmp_path / "reports"
    assert cli.main(["report", "--tracking-uri", uri, "--out", str(out)]) == 1
    section = (out / "syn_failed" / "section.md").read_text()
    assert "0/12 cells finished" in section and "No cell has finished yet" in section
    assert section.count(": FAILED: diverged") == 12
    assert sorted(p.name for p in (out / "syn_failed").iterdir()) == ["runs.zip", "section.md"]  # no empty tables or figures


def test_speed_verdict_when_only_one_activation_reaches_the_target():
    from harness.report.tables import speed_verdict
    no_ratio = S.ratio_interval({}, {})
    assert speed_verdict(no_ratio, 0, 2, 3) == \
        "contradicts: tanh reached the target (2/3 seeds), ReLU in none"
    # the third seed diverged (no finished run): it counts in the denominator
    assert speed_verdict(no_ratio, 2, 0, 3).startswith("ReLU faster: it reached the target (2/3")
    assert speed_verdict(no_ratio, 1, 1, 2).startswith("not measurable")
    same = S.ratio_interval({0: 30, 1: 60}, {0: 5, 1: 10})  # 6x in every seed: no interval, the value decides
    assert speed_verdict(same, 2, 2, 2) == \
        "reproduces: ReLU 6x faster (every seed gives the same ratio)"


def test_a_cpu_scale_sweep_says_so_and_points_to_the_full_scale_one(store, tmp_path):
    cpu = SPEED.replace("name: syn_speed", "name: syn_speed_cpu\nfull_scale: syn_speed")
    alone = fresh_store(tmp_path / "alone.db")
    for folder, uri in (("c", store), ("a", alone)):
        (tmp_path / folder).mkdir()
        fill(tmp_path / folder, uri, cpu, speed_metrics)
    cli.main(["report", "--tracking-uri", alone, "--out", str(tmp_path / "alone")])
    section = (tmp_path / "alone" / "syn_speed_cpu" / "section.md").read_text()
    assert "**CPU scale.**" in section and "No full-scale results are committed yet" in section
    cli.main(["report", "syn_speed_cpu", "--tracking-uri", store, "--out", str(tmp_path / "both")])
    section = (tmp_path / "both" / "syn_speed_cpu" / "section.md").read_text()
    assert "The full-scale sweep's report is [`syn_speed`](#syn_speed)" in section
    assert "CPU scale" not in (tmp_path / "both" / "syn_speed" / "section.md").read_text()


def test_a_store_experiment_whose_name_is_a_path_gets_no_folder(tmp_path, capsys):
    """MLflow accepts any experiment name; a report folder is made from it: '..' under --out would
    write beside it. Refused, exit 2, before anything is written."""
    uri = fresh_store(tmp_path / "mlflow.db")
    tracking.start_run(uri, "..", str(tmp_path / "artifacts"), "..", {}, {"sweep": "..", "sweep_role": "parent"},
                       "name: x\n", config_name="grid.yaml")
    out = tmp_path / "deep" / "reports"
    assert cli.main(["report", "--tracking-uri", uri, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep '..': letters, digits" in err
    assert not (tmp_path / "deep").exists()
