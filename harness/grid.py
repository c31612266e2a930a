"""Ablation grids: a YAML file in `ablations/` becomes a list of cells, each a resolved RunConfig.

    name: cifar_tricks            # the sweep: its MLflow experiment and parent run, its Optuna study
    about: one line saying what the grid asks
    base: cifar_tricks.yaml       # optional: start from another grid file (a smaller preset of it)
    preset: cifar_alexnet         # the run config every cell starts from
    set:                          # overrides for every cell (dotted keys, as on the command line)
      trainer.max_epochs: 30
    design: leave_one_out         # each cell turns one trick off the full model; or: factorial
    axes:                         # key -> values; the first value is the full model's
      model.lrn: [true, false]
      model.depth: [full, no_conv3]
    seeds: [0, 1, 2]              # every cell runs once per seed
    with:                         # optional settings that go with an axis value
      model.init: {pytorch: {data.normalize: standard}}
    lr:                           # optional learning-rate choices: one list for every cell, or
      model.activation:           # one list per value of one axis (the paper tuned the rate per net)
        relu: [0.01, 0.02]
        tanh: [0.01, 0.02]
    stop:                         # optional: end a cell once its epoch training error is below a
      train_err_below: 25         # target (percent), or after max_epochs, or once its training
      max_epochs: 40              # error has not improved for stalled_epochs, whichever is first
      stalled_epochs: 5
    race:                         # optional, instead of lr: each variant's rate chosen by a race on
      seeds: [100]                # selection seeds, then `seeds` run at the chosen rate (harness.race)
      lowest: 0.000625
      highest: 0.04
      factor: 2

A cell is identified by a hash of its resolved config (`cell_key`), not by its place in the file,
so reordering axes or adding seeds never re-runs finished work. Nothing here imports torch, MLflow
or Optuna: a bad grid fails in milliseconds with the file and key in the message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import config as C

USER_KEYS = ("name", "about", "base", "preset", "set", "design", "axes", "seeds", "with", "lr", "stop",
             "until_resolved", "full_scale", "race")
STATE_KEYS = ("added_seeds", "race_state")  # what a sweep decided as it ran, recorded in its parent run's grid.yaml
STOP_KEYS = {"train_err_below": "trainer.stop_train_err", "max_epochs": "trainer.max_epochs",
             "stalled_epochs": "trainer.stop_stalled"}
DESIGNS = ("leave_one_out", "factorial")
BASELINE = "baseline"
DEFAULT_MAX_SEEDS = 10  # --until-resolved without --max-seeds
MAX_SEEDS, MAX_CELLS = 1_000, 10_000  # a grid past these is a typo (the paper's table is 24 cells)
MAX_LADDER = 20  # rates in a race's starting ladder, at most (harness.race adds at most 8 past each end)
MAX_SEEDS_LIMIT = 100  # the sequential rule's boundaries simulate 200,000 paths of this many seeds

# Settings that say how or where a cell runs, not what it computes: left out of the cell's hash,
# so a resumed sweep on another machine, thread count or tracking server still finds its cells.
NOT_IDENTITY = ("tracking", "trainer.progress_bar", "trainer.checkpoint_dir", "trainer.threads",
                "trainer.accelerator", "trainer.channels_last", "trainer.compile", "data.data_dir", "data.cache_dir",
                "data.num_workers")


@dataclass(frozen=True)
class Cell:
    name: str  # the MLflow run name, from the switches, any other axis values and the seed
    key: str  # hash of the resolved config: the identity the exactly-once rule is keyed on
    trick: str  # leave_one_out: the axis this cell changes, or 'baseline'; factorial: ''
    values: dict[str, Any]  # the axis values (and learning rate) that define the cell, seed apart
    seed: int
    config: C.RunConfig
    stage: str = ""  # a grid with a race: 'race' (a selection seed) or 'estimate' (at the chosen rate)

    @property
    def variant(self) -> str:
        """The cell's name without its seed: the runs the MLflow UI groups into one line (mean, min, max)."""
        return self.name.removesuffix(f"-s{self.seed}")


@dataclass
class Grid:
    name: str
    path: Path
    preset: str
    design: str
    axes: dict[str, list[Any]]
    seeds: list[int]
    about: str = ""
    set: dict[str, Any] = field(default_factory=dict)
    lr: Any = None  # None, [rates], or {axis: {value: [rates]}}
    with_: dict[str, dict] = field(default_factory=dict)  # {axis: {value: {key: value}}}
    stop: dict[str, Any] = field(default_factory=dict)
    # --until-resolved: the most seeds a trick may get (0 = off), and the seeds added so far to each
    # trick, keyed 'axis=value' (each added seed runs that trick's cell and the full model's)
    max_seeds: int = 0
    added_seeds: dict[str, list[int]] = field(default_factory=dict)
    full_scale: str = ""  # a small (CPU) version of the grid of this name: the report says so
    race: Race | None = None  # learning rates chosen by a race per variant (harness.race)
    # what the race has decided so far, per variant (`variant_name`): {"rates": the ladder as
    # extended, "chosen": the winning rate, or "none" when no rate reached the target}
    race_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The grid as resolved (bases merged, command-line overrides in `set`, seeds added)."""
        out = {k: getattr(self, k) for k in ("name", "about", "preset", "design", "axes", "seeds", "set")}
        return (out | ({"with": self.with_} if self.with_ else {}) | ({"lr": self.lr} if self.lr else {})
                | ({"stop": self.stop} if self.stop else {})
                | ({"until_resolved": {"max_seeds": self.max_seeds}} if self.max_seeds else {})
                | ({"added_seeds": self.added_seeds} if self.added_seeds else {})
                | ({"full_scale": self.full_scale} if self.full_scale else {})
                | ({"race": dataclasses.asdict(self.race)} if self.race else {})
                | ({"race_state": self.race_state} if self.race_state else {}))

    def pairs(self) -> list[str]:
        """The leave-one-out comparisons, 'axis=value', each a trick's cell against the full model's."""
        return [pair_name(k, v) for k, choices in self.axes.items() for v in choices[1:]]


@dataclass(frozen=True)
class Race:
    """`race:` in a grid file: the selection seeds and the ladder of rates (lowest * factor^k up to
    highest) every variant starts its race with; `harness.race` has the rule."""

    seeds: list[int]
    lowest: float
    highest: float
    factor: float = 2.0

    def ladder(self) -> list[float]:
        rates = [self.lowest]
        while rates[-1] * (1 + 1e-9) < self.highest:
            rates.append(rate_step(rates[-1], self.factor))
        return rates


def rate_step(rate: float, factor: float) -> float:
    """rate * factor, rounded to 12 significant digits (0.000625 * 2^6 is 0.04, not 0.04000000000000001)."""
    return float(f"{rate * factor:.12g}")


def variant_name(values: dict[str, Any]) -> str:
    """A cell's variant: its axis values without the learning rate ('activation=relu,name=convnet4')."""
    return ",".join(f"{k.split('.')[-1]}={str(v).lower()}" for k, v in values.items() if k != "optim.lr")


def pair_name(axis: str, value: Any) -> str:
    return f"{axis}={str(value).lower()}"


def cell_key(cfg: C.RunConfig) -> str:
    """Hash of the settings that differ from the code's defaults, less how and where the cell runs:
    adding a config field (with a default that keeps the old behaviour) renames no cell."""
    defaults = C.flatten(C.RunConfig())
    kept = {k: v for k, v in C.flatten(cfg).items()
            if v != defaults[k] and not any(k == n or k.startswith(n + ".") for n in NOT_IDENTITY)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping with its `base` chain merged in (`set` and `stop` merge key by key)."""
    path = path.resolve()
    if path in seen:
        raise C.ConfigError(f"{path}: base: a cycle ({' -> '.join(p.name for p in seen + (path,))})")
    values = C.read_yaml(path)
    for key in values:
        if key in STATE_KEYS:
            raise C.ConfigError(f"{path}: {key}: recorded by a sweep in its parent run's grid.yaml, not set in a "
                                "grid file; drop it")
        if key not in USER_KEYS:
            raise C.ConfigError(f"{path}: {key}: unknown key (known: {', '.join(USER_KEYS)})")
    if "base" not in values:
        return values
    base = values.pop("base")
    if not isinstance(base, str):
        raise C.ConfigError(f"{path}: base: expected a grid file name; got {base!r}")
    merged = _read(path.parent / base, seen + (path,))
    for key, value in values.items():
        if key in ("set", "stop") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


class GridError(C.ConfigError):
    """A grid key and what is wrong with it; `load` names the file."""

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")


def load(path: str | Path, overrides: list[str] | None = None) -> Grid:
    """Read, validate and expand a grid file; `overrides` (key=value) apply to every cell."""
    path = Path(path)
    values = _read(path)
    try:
        return _grid(path, values, overrides)
    except GridError as err:
        raise C.ConfigError(f"{path}: {err}") from None


def from_record(values: Any, path: str | Path, where: str) -> Grid:
    """A grid as a sweep recorded it (`Grid.as_dict`: its parent run's grid.yaml, a worker's spec),
    with the sweep's state (`STATE_KEYS`); `path` is the grid file it came from, `where` names the
    record in errors."""
    if not isinstance(values, dict):
        raise C.ConfigError(f"{where}: expected a mapping; got {type(values).__name__}")
    known = [k for k in USER_KEYS + STATE_KEYS if k != "base"]  # a record is resolved: no base left to merge
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise C.ConfigError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(known)})")
    try:
        return _grid(Path(path), values, None)
    except GridError as err:
        raise C.ConfigError(f"{where}: {err}") from None


def _grid(path: Path, values: dict[str, Any], overrides: list[str] | None) -> Grid:
    """Checked keys, then the settings every cell shares, then the cells."""
    _check_keys(values)
    shared, stop = _shared_settings(values, overrides)
    grid = Grid(name=values["name"], path=path, preset=values["preset"], design=values["design"],
                axes=values["axes"], seeds=values["seeds"], about=str(values.get("about", "")).strip(), set=shared,
                lr=values.get("lr"), with_=values.get("with") or {}, stop=stop,
                full_scale=values.get("full_scale") or "")
    until = values.get("until_resolved")
    grid = with_max_seeds(grid, until["max_seeds"]) if until is not None else grid
    if values.get("race") is not None:
        grid = dataclasses.replace(grid, race=_race(values, grid))
    elif values.get("race_state") is not None:
        raise GridError("race_state", "recorded by a race; this grid has no race key")
    grid = with_race_state(grid, values.get("race_state") or {}) if grid.race else grid
    grid = with_seeds(grid, values.get("added_seeds") or {})
    if grid.design == "leave_one_out" and grid.lr is not None:
        variants = [(c.seed, json.dumps({k: v for k, v in c.values.items() if k != "optim.lr"},
                                        sort_keys=True, default=str)) for c in grid.cells]
        if len(set(variants)) < len(variants):  # one variant at several rates
            raise GridError("lr", "a leave_one_out grid pairs each trick's runs with the full model's by seed: "
                       "give each cell one rate (lr: [0.01]) or use a factorial design")
    return grid


def _check_keys(values: dict[str, Any]) -> None:
    """Each top-level key's shape, alone: required keys, names, design, axes, seeds, stop, set, with."""
    for key in ("name", "preset", "design", "axes", "seeds"):
        if key not in values:
            raise GridError(key, "missing")
    for key in ("name", "full_scale"):
        problem = C.plain_name_problem(values[key]) if key in values else None
        if problem and (key == "name" or values[key]):
            raise GridError(key, problem)
    if not isinstance(values["preset"], str):
        raise GridError("preset", f"expected a preset name; got {values['preset']!r}")
    if values["design"] not in DESIGNS:
        raise GridError("design", f"expected one of {', '.join(DESIGNS)}; got {values['design']!r}")
    axes = values["axes"]
    if not isinstance(axes, dict) or not axes:
        raise GridError("axes", "expected a mapping of config keys to lists of values")
    least = 2 if values["design"] == "leave_one_out" else 1
    for key, choices in axes.items():
        if not isinstance(key, str):
            raise GridError(f"axes.{key}", "expected a config key such as model.lrn")
        if not isinstance(choices, list) or len(choices) < least:
            raise GridError(f"axes.{key}", f"expected a list of at least {least} values; got {choices!r}")
        if len({json.dumps(c) for c in choices}) < len(choices):
            raise GridError(f"axes.{key}", f"repeats a value: {choices}")
        if key == "seed":
            raise GridError("axes.seed", "seeds have their own key: seeds: [0, 1, 2]")
    seeds = values["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) < len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise GridError("seeds", f"expected a list of distinct integers; got {seeds!r}")
    if len(seeds) > MAX_SEEDS:
        raise GridError("seeds", f"{len(seeds):,} seeds; at most {MAX_SEEDS:,}")
    variants = math.prod(len(choices) for choices in axes.values())
    if variants * len(seeds) > MAX_CELLS:
        raise GridError("axes", f"{variants:,} variants x {len(seeds):,} seeds is more than {MAX_CELLS:,} cells")
    stop = values.get("stop") or {}
    if not isinstance(stop, dict):
        raise GridError("stop", f"expected a mapping; got {stop!r}")
    for key in stop:
        if key not in STOP_KEYS:
            raise GridError(f"stop.{key}", f"unknown key (known: {', '.join(STOP_KEYS)})")
    if not isinstance(values.get("set") or {}, dict):
        raise GridError("set", f"expected a mapping of config keys to values; got {values['set']!r}")
    coupled = values.get("with") or {}
    if not isinstance(coupled, dict):
        raise GridError("with", f"expected {{axis: {{value: {{key: value}}}}}}; got {coupled!r}")
    for axis, by_value in coupled.items():
        if axis not in axes:
            raise GridError(f"with.{axis}", f"not one of the axes ({', '.join(axes)})")
        if not isinstance(by_value, dict) or not all(isinstance(v, dict) for v in by_value.values()):
            raise GridError(f"with.{axis}", f"expected {{value: {{key: value}}}}; got {by_value!r}")
        unknown = {str(k).lower() for k in by_value} - {str(v).lower() for v in axes[axis]}
        if unknown:
            raise GridError(f"with.{axis}", f"{', '.join(sorted(unknown))}: not values of the axis")
    until = values.get("until_resolved")
    if until is not None and (not isinstance(until, dict) or set(until) != {"max_seeds"}):
        raise GridError("until_resolved", f"expected {{max_seeds: N}}; got {until!r}")


def _shared_settings(values: dict[str, Any], overrides: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings every cell shares (`set`, then `stop`, then the command line's key=value), and
    `stop` as resolved from them: the recorded grid then re-expands to the same cells, and the
    report reads the target that ran, also where a command-line override changed it."""
    shared = {**(values.get("set") or {}), **{STOP_KEYS[k]: v for k, v in (values.get("stop") or {}).items()}}
    given = C.parse_flat(overrides or [])
    _sweep_set(values.get("set") or {}, "set.")
    _sweep_set(given, "")
    for axis, by_value in (values.get("with") or {}).items():
        for value, settings in by_value.items():
            _sweep_set(settings, f"with.{axis}.{value}.")
    # `set` (a base file's, say) is the default that an axis or `with` changes; the command line's
    # key=value is meant for every cell, so one that a cell sets itself would silently do nothing
    owned = _set_per_cell(values)
    clash = sorted(set(given) & set(owned))
    if clash:
        raise GridError(clash[0], f"{owned[clash[0]]} sets it for each cell, so this override would change nothing "
                        "(or only some cells); change the grid file instead")
    shared.update(given)
    return shared, {k: shared[key] for k, key in STOP_KEYS.items() if key in shared}


# What the sweep sets itself in every cell's config (sweep.py, _expand): a value given would be dropped.
SWEEP_SETS = {"tracking.uri": "the sweep records every cell in its tracking store: give it with --tracking-uri",
              "tracking.experiment": "the sweep names its experiment after the grid's name",
              "tracking.run_name": "the sweep names each cell's run from its switches and seed"}


def _sweep_set(settings: dict[str, Any], where: str) -> None:
    """Refuse a key the sweep sets itself, dotted (tracking.uri) or nested (tracking: {uri: ...})."""
    flat = {f"{key}.{inner}" for key, value in settings.items() if isinstance(value, dict) for inner in value}
    for key in sorted((set(map(str, settings)) | flat) & set(SWEEP_SETS)):
        raise GridError(f"{where}{key}", f"{SWEEP_SETS[key]}, so this setting would change nothing")


def _set_per_cell(values: dict[str, Any]) -> dict[str, str]:
    """The config keys each cell sets itself, over `set` and the command line: key -> the grid key
    that sets it."""
    owned = {"seed": "seeds"}
    if values.get("lr") is not None:
        owned["optim.lr"] = "lr"
    for axis, by_value in (values.get("with") or {}).items():
        owned.update({key: f"with.{axis}" for settings in by_value.values() for key in settings})
    owned.update({key: f"axes.{key}" for key in values["axes"]})
    return owned


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _race(values: dict[str, Any], grid: Grid) -> Race:
    """`race:` checked: a target to race to, positive rates, selection seeds apart from the estimate's."""
    race = values["race"]
    known = [f.name for f in dataclasses.fields(Race)]
    if not isinstance(race, dict):
        raise GridError("race", f"expected {{seeds: [...], lowest: rate, highest: rate, factor: 2}}; got {race!r}")
    for key in race:
        if key not in known:
            raise GridError(f"race.{key}", f"unknown key (known: {', '.join(known)})")
    for key in ("seeds", "lowest", "highest"):
        if key not in race:
            raise GridError(f"race.{key}", "missing")
    seeds = race["seeds"]
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) < len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds)):
        raise GridError("race.seeds", f"expected a list of distinct integers in [0, 2**32); got {seeds!r}")
    shared = sorted(set(seeds) & set(grid.seeds))
    if shared:
        raise GridError("race.seeds", f"{shared} also in seeds: the selection seeds choose the rate and the "
                        "estimate must not reuse them (the winner's curse)")
    for key in ("lowest", "highest", "factor"):
        if key in race and not (_number(race[key]) and race[key] > 0):
            raise GridError(f"race.{key}", f"expected a positive number; got {race[key]!r}")
    if race["highest"] < race["lowest"]:
        raise GridError("race.highest", f"below race.lowest ({race['highest']} < {race['lowest']})")
    if not 1.1 <= race.get("factor", 2.0) <= 10:
        raise GridError("race.factor", f"expected a number from 1.1 to 10 (the step between rates); got {race['factor']}")
    steps = math.log(race["highest"] / race["lowest"]) / math.log(race.get("factor", 2.0))
    if steps > MAX_LADDER - 1 + 1e-9:
        raise GridError("race.highest", f"{race['lowest']} to {race['highest']} in steps of x{race.get('factor', 2.0)} "
                        f"is {math.ceil(steps) + 1} rates; at most {MAX_LADDER}")
    if not grid.stop.get("train_err_below"):
        raise GridError("stop.train_err_below", "a race needs a training-error target to race to (percent)")
    coupled = [f"with.{axis}.{value}" for axis, by_value in grid.with_.items() for value, settings in by_value.items()
               if "optim.lr" in settings]
    if grid.lr is not None or "optim.lr" in grid.axes or "optim.lr" in grid.set or coupled:
        where = "the lr key" if grid.lr is not None else "an optim.lr axis" if "optim.lr" in grid.axes else (
            "optim.lr in set (or on the command line)" if "optim.lr" in grid.set else coupled[0])
        raise GridError("race", f"the race chooses the learning rate: drop {where}")
    if grid.design != "factorial":
        raise GridError("race", "races each variant of a factorial grid; this grid is leave_one_out")
    return Race(list(seeds), float(race["lowest"]), float(race["highest"]), float(race.get("factor", 2.0)))


def with_race_state(grid: Grid, state: dict[str, Any]) -> Grid:
    """The grid with what its race has decided (`Grid.race_state`) and its cells expanded again."""
    variants = {variant_name(v) for _, v in _designs(grid)}
    if not isinstance(state, dict):
        raise GridError("race_state", f"expected {{variant: {{rates: [...], chosen: rate}}}}; got {state!r}")
    for variant, decided in state.items():
        key = f"race_state.{variant}"
        if variant not in variants:
            raise GridError(key, f"not a variant of this grid ({', '.join(sorted(variants))})")
        if not isinstance(decided, dict) or not set(decided) <= {"rates", "chosen"}:
            raise GridError(key, f"expected {{rates: [...], chosen: rate}}; got {decided!r}")
        rates = decided.get("rates", grid.race.ladder())
        if (not isinstance(rates, list) or not rates or not all(_number(r) and r > 0 for r in rates)
                or len(set(rates)) < len(rates)):
            raise GridError(f"{key}.rates", f"expected a list of distinct positive rates; got {rates!r}")
        chosen = decided.get("chosen")
        if chosen is not None and chosen != "none" and not (_number(chosen) and chosen in rates):
            raise GridError(f"{key}.chosen", f"not one of the race's rates {rates}; got {chosen!r}")
    grid = dataclasses.replace(grid, race_state={k: dict(v) for k, v in state.items()})
    grid.cells = _expand(grid)
    return grid


def with_max_seeds(grid: Grid, max_seeds: int) -> Grid:
    """The grid run with --until-resolved: seeds added to unresolved tricks, up to max_seeds each."""
    if grid.design != "leave_one_out":
        raise GridError("until_resolved", "adds seeds to a leave_one_out grid's tricks; this grid is factorial")
    if (not isinstance(max_seeds, int) or isinstance(max_seeds, bool) or max_seeds <= len(grid.seeds)
            or max_seeds > MAX_SEEDS_LIMIT):
        raise GridError("until_resolved.max_seeds", f"expected a number of seeds above the grid's "
                        f"{len(grid.seeds)}, at most {MAX_SEEDS_LIMIT}; got {max_seeds!r}")
    return dataclasses.replace(grid, max_seeds=max_seeds)


def with_seeds(grid: Grid, added: dict[str, list[int]]) -> Grid:
    """The grid with `added` seeds ({'axis=value': [seed, ...]}) and its cells expanded again."""
    if not isinstance(added, dict):
        raise GridError("added_seeds", f"expected {{axis=value: [seeds]}}; got {added!r}")
    pairs = grid.pairs() if grid.design == "leave_one_out" else []
    for pair, seeds in added.items():
        if pair not in pairs:
            raise GridError(f"added_seeds.{pair}", f"not a trick of this grid ({', '.join(pairs) or 'none'})")
        if (not isinstance(seeds, list) or len(set(map(str, seeds))) < len(seeds)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s not in grid.seeds for s in seeds)):
            raise GridError(f"added_seeds.{pair}", f"expected distinct integers not in seeds; got {seeds!r}")
        if grid.max_seeds and len(grid.seeds) + len(seeds) > grid.max_seeds:
            raise GridError(f"added_seeds.{pair}", f"more than until_resolved.max_seeds={grid.max_seeds} in all")
    grid = dataclasses.replace(grid, added_seeds={k: list(v) for k, v in added.items() if v})
    grid.cells = _expand(grid)
    return grid


def _seeds(grid: Grid, trick: str, values: dict[str, Any]) -> list[int]:
    if trick == BASELINE:
        return grid.seeds + sorted({s for seeds in grid.added_seeds.values() for s in seeds})
    return grid.seeds + grid.added_seeds.get(pair_name(trick, values[trick]), []) if trick else grid.seeds


def _rates(grid: Grid, cell: dict[str, Any]) -> list[Any]:
    """The learning rates a cell runs with: [None] (the preset's) unless the grid lists some."""
    lr = grid.lr
    if lr is None:
        return [None]
    if isinstance(lr, list) and lr:
        return lr
    if isinstance(lr, dict) and len(lr) == 1:
        (axis, by_value), = lr.items()
        if axis not in grid.axes:
            raise GridError(f"lr.{axis}", f"not one of the axes ({', '.join(grid.axes)})")
        if not isinstance(by_value, dict):
            raise GridError(f"lr.{axis}", f"expected a mapping of {axis} values to lists of rates; got {by_value!r}")
        by_text = {str(k).lower(): v for k, v in by_value.items()}
        rates = by_text.get(str(cell[axis]).lower())
        if not isinstance(rates, list) or not rates:
            raise GridError(f"lr.{axis}", f"no list of rates for {axis}={cell[axis]}")
        return rates
    raise GridError("lr", "expected a list of rates, or {axis: {value: [rates]}} for exactly one axis")


def _designs(grid: Grid) -> list[tuple[str, dict[str, Any]]]:
    """(trick, axis values) of every cell before rates and seeds."""
    full = {key: choices[0] for key, choices in grid.axes.items()}
    if grid.design == "leave_one_out":
        return [(BASELINE, full)] + [(key, {**full, key: value}) for key, choices in grid.axes.items()
                                     for value in choices[1:]]
    return [("", dict(zip(grid.axes, combo))) for combo in itertools.product(*grid.axes.values())]


def _runs(grid: Grid, trick: str, axis_values: dict[str, Any]) -> list[tuple[Any, int, str]]:
    """(learning rate, seed, stage) of each cell of one variant. A race's cells: every rate of its
    ladder on each selection seed, fastest rates first (a winner found early cuts the slower rates
    short), then the grid's seeds at the chosen rate once the race has chosen one."""
    if grid.race is None:
        return [(rate, seed, "") for rate in _rates(grid, axis_values) for seed in _seeds(grid, trick, axis_values)]
    decided = grid.race_state.get(variant_name(axis_values), {})
    rates = sorted(decided.get("rates", grid.race.ladder()), reverse=True)
    chosen = decided.get("chosen")
    return ([(rate, seed, "race") for seed in grid.race.seeds for rate in rates]
            + ([(chosen, seed, "estimate") for seed in grid.seeds] if chosen not in (None, "none") else []))


def _expand(grid: Grid) -> list[Cell]:
    if grid.lr is not None and "optim.lr" in grid.axes:
        raise GridError("lr", "optim.lr is already an axis")
    planned = sum(len(_runs(grid, trick, axis_values)) for trick, axis_values in _designs(grid))
    if planned > MAX_CELLS:
        raise GridError("axes", f"{planned:,} cells; at most {MAX_CELLS:,}")

    cells: list[Cell] = []
    for trick, axis_values in _designs(grid):
        for rate, seed, stage in _runs(grid, trick, axis_values):
            values = axis_values | ({"optim.lr": rate} if rate is not None else {})
            coupled = {k: v for axis, by_value in grid.with_.items() for value, settings in by_value.items()
                       if str(value).lower() == str(axis_values[axis]).lower() for k, v in settings.items()}
            try:
                cfg = C.load(grid.preset, values={**grid.set, **coupled, **values, "seed": seed})
            except C.ConfigError as err:
                label = ", ".join(f"{k}={v}" for k, v in values.items())
                raise GridError(f"cell {label}, seed {seed}", str(err)) from None
            cells.append(_cell(cfg, trick, values, seed, stage))
    _check_distinct(cells)
    # Seed-major order: a sweep stopped part-way holds whole replicates of the grid, not a few
    # cells with every seed and others with none. A race's cells come first, selection seed by
    # selection seed, each variant's fastest rates first (stable sort).
    order = (grid.race.seeds if grid.race else []) + _seeds(grid, BASELINE, _designs(grid)[0][1])
    cells.sort(key=lambda c: (c.stage == "estimate", order.index(c.seed),
                              -c.values.get("optim.lr", 0) if c.stage == "race" else 0))
    for cell in cells:
        cell.config.tracking.experiment = grid.name
        cell.config.tracking.run_name = cell.name
    return cells


def _cell(cfg: C.RunConfig, trick: str, values: dict[str, Any], seed: int, stage: str = "") -> Cell:
    stem = C.run_name(cfg).rsplit("-", 1)[0]  # run_name ends with -s<seed>
    # Axes the switch-based name does not show (the learning rate, weight decay, ...) are spelled out.
    extra = [f"{key.split('.')[-1]}{value:g}" if isinstance(value, float) else f"{key.split('.')[-1]}{value}"
             for key, value in values.items() if key not in C.SWITCHES and key != "model.name"]  # the stem's first word
    name = "-".join([stem, *extra, f"s{seed}"])
    return Cell(name=name, key=cell_key(cfg), trick=trick, values=values, seed=seed, config=cfg, stage=stage)


def _check_distinct(cells: list[Cell]) -> None:
    for attr in ("key", "name"):
        seen: dict[str, Cell] = {}
        for cell in cells:
            other = seen.setdefault(getattr(cell, attr), cell)
            if other is not cell:
                raise GridError("axes", f"two cells resolve to the same {'config' if attr == 'key' else 'run name'} "
                             f"({other.values} and {cell.values}, seed {cell.seed}): drop one")


def duration(seconds: float) -> str:
    """'7m05s', or '2h13m' from an hour up: how the sweep's progress and estimates show time."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def describe(grid: Grid) -> str:
    """One line of what the grid is."""
    if grid.design == "leave_one_out":
        changes = sum(len(v) - 1 for v in grid.axes.values())
        shape = f"the full model and {changes} one-trick-off variants ({', '.join(k.split('.')[-1] for k in grid.axes)})"
    else:
        shape = "factorial " + " x ".join(f"{k.split('.')[-1]}({len(v)})" for k, v in grid.axes.items())
    rates = ""
    if isinstance(grid.lr, list):
        rates = f", learning rate{'s' if len(grid.lr) > 1 else ''} {', '.join(map(str, grid.lr))}"
    elif grid.lr:
        rates = ", learning-rate sub-grid per " + next(iter(grid.lr)).split(".")[-1]
    if grid.max_seeds:
        rates += f", then seeds added until resolved (up to {grid.max_seeds} a trick)"
    if grid.race:
        r, variants = grid.race, len({variant_name(c.values) for c in grid.cells})
        races = sum(c.stage == "race" for c in grid.cells)
        return (f"sweep {grid.name}: {shape}: {variants} variants, each one's learning rate chosen by a race "
                f"({r.lowest:g} to {r.highest:g}, x{r.factor:g} apart, extended where the fastest is at an end) on "
                f"selection seed(s) {', '.join(map(str, r.seeds))}: {races} race cells so far, then "
                f"{len(grid.seeds)} seed(s) each at the chosen rate ({len(grid.cells) - races} cells so far); "
                f"preset {grid.preset}" + (f"\n  {grid.about}" if grid.about else ""))
    return (f"sweep {grid.name}: {len(grid.cells)} cells = {shape}, "
            f"{len(grid.seeds)} seed(s){rates}; preset {grid.preset}"
            + (f"\n  {grid.about}" if grid.about else ""))

