"""Grid files -> cells: designs, learning-rate sub-grids, names, hashes, bases, and errors that name
the file and key. No torch, no stores."""

from pathlib import Path

import pytest
import yaml

from harness import cli
from harness import config as C
from harness import grid as G

ABLATIONS = Path(__file__).resolve().parents[1] / "ablations"


def write(tmp_path, text: str, name: str = "g.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


LOO = """
name: loo
preset: cifar_alexnet
design: leave_one_out
axes:
  model.lrn: [true, false]
  model.depth: [full, no_conv3, no_conv4]
seeds: [0, 1]
set: {model.width: 0.25, trainer.max_epochs: 2}
"""


def test_leave_one_out_is_full_model_plus_one_change_per_value(tmp_path):
    grid = G.load(write(tmp_path, LOO))
    # baseline + lrn off + two depth variants, each for 2 seeds
    assert len(grid.cells) == (1 + 1 + 2) * 2
    tricks = [(c.trick, c.values["model.lrn"], c.values["model.depth"]) for c in grid.cells if c.seed == 0]
    assert tricks == [("baseline", True, "full"), ("model.lrn", False, "full"),
                      ("model.depth", True, "no_conv3"), ("model.depth", True, "no_conv4")]
    assert [c.seed for c in grid.cells] == [0] * 4 + [1] * 4  # seed-major: whole replicates first
    cell = grid.cells[1]  # lrn off, seed 0
    assert (cell.config.model.lrn, cell.config.model.width, cell.config.trainer.max_epochs) == (False, 0.25, 2)
    assert cell.name == "alexnet_cifar-relu-nolrn-ovl-drop0.5-2t-pca-w0.25-s0"
    assert cell.config.tracking.experiment == "loo" and cell.config.tracking.run_name == cell.name
    assert len({c.key for c in grid.cells}) == len(grid.cells)


def test_factorial_with_per_activation_rates_and_stop(tmp_path):
    grid = G.load(write(tmp_path, """
name: speed
preset: cifar_convnet4
design: factorial
axes: {model.activation: [relu, tanh], model.init: [paper, pytorch]}
lr: {model.activation: {relu: [0.01, 0.02], tanh: [0.005]}}
seeds: [3]
stop: {train_err_below: 25, max_epochs: 7}
"""))
    assert len(grid.cells) == 2 * 2 + 1 * 2  # relu: 2 inits x 2 rates; tanh: 2 inits x 1 rate
    rates = sorted((c.values["model.activation"], c.config.optim.lr) for c in grid.cells)
    assert rates == [("relu", 0.01), ("relu", 0.01), ("relu", 0.02), ("relu", 0.02), ("tanh", 0.005), ("tanh", 0.005)]
    assert all(c.config.trainer.stop_train_err == 25 and c.config.trainer.max_epochs == 7 for c in grid.cells)
    assert {c.trick for c in grid.cells} == {""}
    names = {c.name for c in grid.cells}
    assert "convnet4-tanh-nolrn-ovl-nopca-noaug-torchinit-lr0.005-s3" in names


def test_with_couples_settings_to_an_axis_value(tmp_path):
    grid = G.load(write(tmp_path, """
name: coupled
preset: cifar_convnet4
design: factorial
axes: {model.init: [paper, pytorch]}
with: {model.init: {pytorch: {data.normalize: standard, optim.lr: 0.05}}}
seeds: [0]
"""))
    pairs = [(c.config.model.init, c.config.data.normalize, c.config.optim.lr) for c in grid.cells]
    assert pairs == [("paper", "paper", 0.01), ("pytorch", "standard", 0.05)]
    assert [c.values for c in grid.cells] == [{"model.init": "paper"}, {"model.init": "pytorch"}]
    bad = write(tmp_path, "name: b\npreset: cifar_convnet4\ndesign: factorial\naxes: {model.init: [paper]}\n"
                          "seeds: [0]\nwith: {model.init: {torch: {data.normalize: standard}}}\n", "bad.yaml")
    with pytest.raises(C.ConfigError, match="with.model.init: torch: not values of the axis"):
        G.load(bad)


def test_cell_key_ignores_where_a_cell_runs_but_not_what_it_computes(tmp_path):
    path = write(tmp_path, LOO)
    base = G.load(path).cells
    moved = G.load(path, ["trainer.threads=1", "trainer.progress_bar=false", "tracking.artifact_root=/elsewhere",
                          "trainer.checkpoint_dir=/elsewhere", "data.data_dir=/data"]).cells
    assert [c.key for c in moved] == [c.key for c in base]
    changed = G.load(path, ["optim.weight_decay=0.001"]).cells
    assert not {c.key for c in changed} & {c.key for c in base}
    # Reordering the axes renames nothing and re-hashes nothing.
    swapped = LOO.replace("  model.lrn: [true, false]\n", "").replace("seeds:", "  model.lrn: [true, false]\nseeds:")
    assert list(yaml.safe_load(swapped)["axes"]) == ["model.depth", "model.lrn"]
    assert {c.key for c in G.load(write(tmp_path, swapped, "s.yaml")).cells} == {c.key for c in base}


def test_leave_one_out_may_ablate_the_learning_rate_itself(tmp_path):
    axes = "axes:\n  model.lrn: [true, false]\n  optim.lr: [0.01, 0.02]\n"
    grid = G.load(write(tmp_path, LOO.replace("axes:\n  model.lrn: [true, false]\n  model.depth: [full, no_conv3, no_conv4]\n", axes)))
    assert [(c.trick, c.config.optim.lr) for c in grid.cells if c.seed == 0] == [
        ("baseline", 0.01), ("model.lrn", 0.01), ("optim.lr", 0.02)]


def test_recorded_grid_re_expands_to_the_cells_that_ran(tmp_path):
    """The parent run records as_dict(); the report re-expands it: command-line overrides of stop
    settings must survive the round trip, or the report would find none of the cells."""
    speed = write(tmp_path, "name: s\npreset: cifar_convnet4\ndesign: factorial\n"
                            "axes: {model.activation: [relu, tanh]}\nseeds: [0]\n"
                            "stop: {train_err_below: 25, max_epochs: 60}\n")
    ran = G.load(speed, ["trainer.max_epochs=30", "trainer.stop_train_err=20"])
    assert ran.stop == {"train_err_below": 20, "max_epochs": 30}
    recorded = write(tmp_path, yaml.safe_dump(ran.as_dict()), "recorded.yaml")
    assert [c.key for c in G.load(recorded).cells] == [c.key for c in ran.cells]


def test_base_file_merges_set_and_replaces_seeds(tmp_path):
    write(tmp_path, LOO, "full.yaml")
    small = G.load(write(tmp_path, "name: small\nbase: full.yaml\nseeds: [5]\nset: {trainer.max_epochs: 1}\n"))
    assert small.name == "small" and [c.seed for c in small.cells] == [5] * 4
    assert all(c.config.model.width == 0.25 and c.config.trainer.max_epochs == 1 for c in small.cells)


@pytest.mark.parametrize("change, message", [
    (("design: leave_one_out", "design: random"), "design: expected one of leave_one_out, factorial"),
    (("model.lrn: [true, false]", "model.lrnn: [true, false]"), "model.lrnn: unknown key"),
    (("model.lrn: [true, false]", "model.lrn: [true, maybe]"), "model.lrn: expected true or false"),
    (("model.lrn: [true, false]", "model.lrn: [true]"), "axes.model.lrn: expected a list of at least 2"),
    (("seeds: [0, 1]", "seeds: [0, 0]"), "seeds: expected a list of distinct integers"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nstop: {train_err_above: 3}"), "stop.train_err_above: unknown key"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nlr: {model.pool: {overlap: [0.1]}}"), "lr.model.pool: not one of the axes"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nlr: {model.lrn: {true: [0.1]}}"), "lr.model.lrn: no list of rates for model.lrn=False"),
    (("name: loo", "name: loo\nepochs: 3"), "epochs: unknown key"),
    (("model.width: 0.25", "model.width: 0.3"), "model.width: two towers split"),
    (("preset: cifar_alexnet", "preset: 3"), "preset: expected a preset name"),
    (("model.lrn: [true, false]", "3: [true, false]"), "axes.3: expected a config key"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nwith: [model.lrn]"), "with: expected {axis:"),
    (("seeds: [0, 1]", "seeds: [0, 1]\nlr: [0.01, 0.02]"), "lr: a leave_one_out grid pairs"),
    # names that become folders (experiment, artifacts, reports/<name>/): never a path out of them
    (("name: loo", "name: .."), "name: letters, digits"),
    (("name: loo", "name: ."), "name: letters, digits"),
    (("name: loo", "name: ../x"), "name: letters, digits"),
    (("name: loo", "name: .hidden"), "name: letters, digits"),
    (("name: loo", "name: loo\nfull_scale: ../x"), "full_scale: letters, digits"),
    # numbers a run cannot use, wherever they are written
    (("model.width: 0.25", "model.width: .inf"), "model.width: expected a finite number; got inf"),
    (("model.lrn: [true, false]", "optim.lr: [0.01, .inf]"), "optim.lr: expected a finite number; got inf"),
    (("model.lrn: [true, false]", "optim.momentum: [0.9, .nan]"), "optim.momentum: expected a finite number"),
    # grids that would never finish expanding
    (("seeds: [0, 1]", f"seeds: {list(range(G.MAX_SEEDS + 1))}"), f"seeds: {G.MAX_SEEDS + 1:,} seeds; at most"),
    (("model.depth: [full, no_conv3, no_conv4]", "model.depth: [full, no_conv3, no_conv4]\n" + "".join(
        f"  data.cifar_pad: {list(range(10_000))}\n" for _ in range(1))), "more than 10,000 cells"),
])
def test_bad_grid_names_the_file_and_key(tmp_path, change, message):
    path = write(tmp_path, LOO.replace(*change))
    with pytest.raises(C.ConfigError) as err:
        G.load(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_bad_grid_exits_2_and_creates_no_store(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, LOO.replace("model.lrn: [true, false]", "model.lrn: [true, 3]"))
    assert cli.main(["sweep", str(path)]) == 2
    assert "model.lrn: expected true or false" in capsys.readouterr().err
    assert not (tmp_path / "mlruns").exists()


def test_shipped_grids_load_and_cpu_presets_say_so():
    grids = {p.stem: G.load(p) for p in sorted(ABLATIONS.glob("*.yaml"))}
    assert {"relu_speed", "relu_speed_cpu", "cifar_tricks", "cifar_tricks_cpu", "imagenet_tricks"} <= set(grids)
    for name, full in (("relu_speed_cpu", "relu_speed"), ("cifar_tricks_cpu", "cifar_tricks"),
                       ("relu_speed_full_cpu", "relu_speed")):
        assert grids[name].about.startswith("CPU PRESET") or name == "relu_speed_full_cpu"
        assert grids[name].full_scale == full and full in grids  # the report names the full-scale grid
    tricks = grids["cifar_tricks"]
    assert len(tricks.seeds) >= 3 and {c.trick for c in tricks.cells} == {
        "baseline", "model.lrn", "model.pool", "model.dropout", "data.pca_jitter", "model.towers",
        "model.activation", "model.depth"}
    speed = grids["relu_speed"]
    assert all(c.config.data.augment is False and c.config.optim.weight_decay == 0 for c in speed.cells)
    assert {c.config.model.init for c in speed.cells} == {"paper", "pytorch"}
    assert {c.config.trainer.stop_train_err for c in speed.cells} == {25}


def test_a_grid_or_preset_that_cannot_be_read_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "broken.yaml").write_text("name: g\npreset: [unclosed\n")
    for name, message in (("folder.yaml", "a folder, not a YAML file"), ("binary.yaml", "not a text file (not UTF-8)"),
                          ("broken.yaml", "not valid YAML at line 3")):
        for command in (["sweep", name], ["train", "--preset", name]):
            assert cli.main(command) == 2
            err = capsys.readouterr().err
            assert f"{name}: {message}" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "mlruns").exists()


def test_a_recorded_grid_holds_no_base_to_merge(tmp_path):
    recorded = G.load(write(tmp_path, LOO)).as_dict()
    assert [c.key for c in G.from_record(recorded, "grid.yaml", "recorded").cells] == [
        c.key for c in G.load(write(tmp_path, LOO)).cells]
    with pytest.raises(C.ConfigError, match="^recorded: base: unknown key"):
        G.from_record(recorded | {"base": "other.yaml"}, "grid.yaml", "recorded")


def test_an_override_of_a_key_each_cell_sets_is_exit_2_naming_it(tmp_path, capsys):
    """The command line's key=value applies to every cell; one the cells set themselves (an axis,
    a `with` setting, the seed) would be silently dropped, so it is refused before any store."""
    path = write(tmp_path, LOO + "with: {model.lrn: {true: {optim.lr: 0.02}}}\n")
    for override, message in (("model.lrn=false", "model.lrn: axes.model.lrn sets it for each cell"),
                              ("optim.lr=0.05", "optim.lr: with.model.lrn sets it for each cell"),
                              ("seed=4", "seed: seeds sets it for each cell")):
        assert cli.main(["sweep", str(path), "--dry-run", override]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and message in err, err
    assert G.load(path, ["model.width=0.5"]).cells[0].config.model.width == 0.5  # a key no cell sets: every cell


def test_a_grid_file_past_its_bounds_is_refused_at_once(tmp_path):
    """A YAML alias bomb (9^9 values from 1 kB) and a file far larger than any grid stop before
    anything walks them: in well under a second."""
    import time

    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x"]'] + [
        f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = write(tmp_path, "\n".join(lines) + "\nname: bomb\nabout: *l8\n" + LOO.replace("name: loo\n", ""))
    huge = write(tmp_path, LOO + "#" * C.MAX_YAML_BYTES, "huge.yaml")
    for path, message in ((bomb, f"expands to more than {C.MAX_YAML_VALUES:,} values"),
                          (huge, f"a grid or preset file is at most {C.MAX_YAML_BYTES:,}")):
        started = time.perf_counter()
        with pytest.raises(C.ConfigError, match=message):
            G.load(path)
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("where", ["override", "set", "nested set", "with"])
@pytest.mark.parametrize("key", ["tracking.uri", "tracking.experiment", "tracking.run_name"])
def test_a_setting_the_sweep_makes_itself_is_refused_not_dropped(tmp_path, where, key):
    """The sweep records every cell in its own store, experiment and run names: a value given for
    one of them would be silently ignored."""
    grid = "name: g\npreset: cifar_convnet4\ndesign: factorial\naxes: {model.activation: [relu, tanh]}\nseeds: [0]\n"
    section, leaf = key.split(".")
    grid += {"override": "", "set": f"set: {{{key}: x}}\n", "nested set": f"set: {{{section}: {{{leaf}: x}}}}\n",
             "with": f"with: {{model.activation: {{tanh: {{{key}: x}}}}}}\n"}[where]
    path = write(tmp_path, grid, "g.yaml")
    named = {"override": key, "set": f"set.{key}", "nested set": f"set.{key}", "with": f"with.model.activation.tanh.{key}"}
    with pytest.raises(C.ConfigError, match=f"{named[where]}: the sweep .*, so this setting would change nothing"):
        G.load(path, [f"{key}=x"] if where == "override" else [])
