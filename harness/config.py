"""The one source of truth for a run: typed dataclasses, YAML presets, key=value overrides.

A run is `RunConfig`: one small dataclass per concern (model, data, optim, trainer, tracking).
Presets in `harness/presets/*.yaml` fill some fields; `key=value` overrides on the command line
fill more; `validate` then rejects unknown keys, wrong types and impossible combinations with a
`ConfigError` that names the key. Nothing here touches data, models or MLflow, so a bad config
fails in milliseconds, before any data is read or any run is created.

Units: learning rate per example-averaged loss; errors everywhere in percent; epochs are passes
over the training split; `width` multiplies every layer's kernel/unit count (1.0 = the paper).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class ModelConfig:
    """The network and the paper's architectural switches."""

    name: Literal["alexnet", "alexnet_cifar", "convnet4", "convnet80sec"] = "alexnet"
    num_classes: int = 0  # 0 = take it from the data set
    activation: Literal["relu", "tanh"] = "relu"
    lrn: bool = True  # local response normalisation after the activations of conv1 and conv2
    pool: Literal["overlap", "plain"] = "overlap"  # max-pool 3x3 stride 2, or 2x2 stride 2
    dropout: float = 0.5  # p on the outputs of fc6 and fc7; 0 = off
    towers: Literal[1, 2] = 2  # 2 = grouped conv2/conv4/conv5, the paper's two-GPU connectivity
    one_tower: Literal["half", "full"] = "half"  # towers=1: paper's one-GPU net, or full-width dense
    depth: Literal["full", "no_conv3", "no_conv4"] = "full"  # the paper's "remove a middle layer"
    width: float = 1.0  # multiplier on every layer's kernel count (1.0 = the paper's)
    # N(0, 0.01) weights + unit biases; torch's default; or He et al.'s N(0, 2/fan_in), zero biases
    init: Literal["paper", "pytorch", "kaiming"] = "paper"


@dataclass
class DataConfig:
    """Where the images come from and what is done to them."""

    dataset: Literal["cifar10", "imagenet"] = "cifar10"
    source: str = "cifar10-jpeg.zip"  # zip, folder tree or cifar-10-batches-py; relative to data_dir
    data_dir: str = ""  # "" = $HARNESS_DATA_DIR, else ./data
    sha256: str = ""  # expected checksum of a file source; "" = SHA256SUMS beside it, if any
    cache_dir: str = ""  # "" = $HARNESS_CACHE_DIR, else ~/.cache/harness
    val_size: int = 5000  # images held out of the training set for learning-rate decisions
    split_seed: int = 0  # which images are held out (independent of the run's seed)
    train_subset: int = 0  # train on the first N images of the shuffled train split; 0 = all
    test_subset: int = 0  # evaluate on the first N test images; 0 = all
    batch_size: int = 128  # images per SGD step
    augment: bool = True  # random crops and horizontal mirrors
    pca_jitter: float = 0.1  # sigma of the paper's PCA colour noise; 0 = off
    test_crops: Literal[1, 10] = 1  # centre view, or 4 corners + centre and their mirrors
    normalize: Literal["paper", "standard"] = "paper"  # 0-255 minus channel mean, or z-scored
    cifar_pad: int = 4  # pixels of zero padding for CIFAR random crops (and 10-crop views)
    image_size: int = 227  # ImageNet crop side (227 makes conv1's arithmetic exact)
    resize: int = 256  # ImageNet short side before cropping
    num_workers: int = 2  # DataLoader workers for ImageNet decoding


@dataclass
class OptimConfig:
    """The paper's recipe: SGD with momentum, weight decay, learning rate divided by 10 on plateau."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["plateau", "step", "constant"] = "plateau"
    lr_factor: float = 0.1  # multiply the rate by this at each decay
    plateau_patience: int = 3  # epochs without a better validation error before a decay
    step_every: int = 30  # epochs between decays for the step schedule


@dataclass
class TrainerConfig:
    """How Lightning runs the loop."""

    max_epochs: int = 90
    stop_train_err: float = 0.0  # stop once an epoch's training error (%) is below this; 0 = off
    stop_stalled: int = 0  # stop once the training error has not improved for this many epochs; 0 = off
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    # NHWC activations: "auto" = where measured faster (see `channels_last`); true/false force it.
    channels_last: Literal["auto", True, False] = "auto"
    # torch.compile the network: "auto" = where measured to pay (see `compiles`); true/false force it.
    compile: Literal["auto", True, False] = "auto"
    deterministic: bool = False
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    checkpoint_dir: str = "mlruns/checkpoints"  # one sub-folder per MLflow run id
    progress_bar: bool = True


@dataclass
class TrackingConfig:
    """Where the run is recorded."""

    uri: str = ""  # "" = $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db
    artifact_root: str = "mlruns"  # artifacts of experiments this project creates (a tracking server keeps its own)
    experiment: str = "harness"
    run_name: str = ""  # "" = derived from the switches and the seed
    log_checkpoint: bool = False  # also upload the final checkpoint as an artifact
    # The trained network as an MLflow model (harness.trained): "final" = the last epoch's weights;
    # "best" = the epoch's with the lowest validation error (kept beside the model while training, and
    # in each checkpoint: twice the weights); "none" = no model (the paper's net is 240 MB a run).
    log_model: Literal["final", "best", "none"] = "final"
    # Seconds between samples of MLflow's system metrics (CPU, memory, GPU); 0 = none. The cost of
    # one sample, against this interval, is in `harness bench`.
    system_metrics_s: float = 10.0


@dataclass
class RunConfig:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# The paper's tricks, each one key. Tags, run names and the sweep axes all come from this list.
SWITCHES = (
    "model.activation",
    "model.lrn",
    "model.pool",
    "model.dropout",
    "model.towers",
    "model.depth",
    "model.init",
    "model.width",
    "data.augment",
    "data.pca_jitter",
    "data.test_crops",
)


def channels_last(t: TrainerConfig, device_type: str) -> bool:
    """trainer.channels_last for a device, decided once per run. "auto" picks NHWC on CPUs, where
    oneDNN's convolutions run it 1.2-1.5x faster for both CIFAR nets (`harness bench`, reports/bench/),
    and on CUDA with bf16, the tensor cores' native layout; NCHW elsewhere (fp32 CUDA, MPS), which
    nothing here has measured."""
    if t.channels_last != "auto":
        return t.channels_last
    return device_type == "cpu" or (device_type == "cuda" and t.precision == "bf16-mixed")


def compiles(t: TrainerConfig, device_type: str) -> bool:
    """trainer.compile for a device, decided once per run. "auto" compiles on CUDA only. On a 2-core
    AMD EPYC a compiled training step of either bench net (convnet4, the quarter-width CIFAR AlexNet)
    was no faster than the eager one, in fp32 or bf16, after 30-60 s of compiling (torch 2.14,
    `harness bench`: reports/bench/). On a GPU a small network's step is bound by kernel launches,
    which compiling fuses away: PyTorch's own advice, not measured here (no GPU was lent)."""
    if t.compile != "auto":
        return t.compile
    return device_type == "cuda"


# ------------------------------------------------------------------------- dict <-> dataclass

def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def flatten(cfg: RunConfig) -> dict[str, Any]:
    """{'model.lrn': True, ...}: the form of params, tags and overrides."""
    flat: dict[str, Any] = {}
    for key, value in to_dict(cfg).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _fields(cls: type) -> dict[str, tuple[Any, dataclasses.Field]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check one leaf value against its annotation, converting only what is unambiguous."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(choice, int) and isinstance(value, str) and value == str(choice):
                return choice
        raise ConfigError(f"{key}: expected one of {', '.join(map(str, choices))}; got {_quoted(value)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false; got {_quoted(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer; got {_quoted(value)}")
    if hint is float:  # the one reader of every number a run uses: finite, or refused here
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads '1e-4' as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
        raise ConfigError(f"{key}: expected a finite number; got {_quoted(value)}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string; got {_quoted(value)}")
    raise TypeError(f"{key}: unsupported annotation {hint!r}")  # a bug in this file, not input


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping; got {values!r}")
    fields = _fields(cls)
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{full}: unknown key (known: {', '.join(fields)})")
        hint, _ = fields[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{full}.")
        else:
            kwargs[key] = _coerce(full, value, hint)
    return cls(**kwargs)


def from_dict(values: dict[str, Any]) -> RunConfig:
    cfg = _build(RunConfig, values or {}, "")
    validate(cfg)
    return cfg


def from_yaml(text: str, where: str) -> RunConfig:
    """A resolved config as written with every run."""
    values = parse_yaml(text, where)
    try:
        return from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'model.lrn': False, 'seed': 3} -> {'model': {'lrn': False}, 'seed': 3}."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.strip().split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: conflicts with another override")
        node[leaf] = value
    return nested


def _hint(key: str) -> Any:
    """The annotation of a dotted key ('data.sha256' -> str); None where it names no field."""
    node: Any = RunConfig
    for part in key.split("."):
        if not dataclasses.is_dataclass(node) or part not in _fields(node):
            return None
        node = _fields(node)[part][0]
    return node


def parse_flat(overrides: list[str]) -> dict[str, Any]:
    """['model.lrn=false', 'seed=3'] -> {'model.lrn': False, 'seed': 3} (values read as YAML)."""
    flat: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r}: an override is key=value, for example model.lrn=false")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        except ValueError as err:  # YAML's reading failed past its parser: an integer past int's 4,300 digits, a bad date
            if _hint(key.strip()) is not str:
                raise ConfigError(f"{key.strip()}: cannot read {_quoted(raw)} ({str(err).split(';')[0][:120]})") from None
            value = raw
        # A text key keeps the text as typed where YAML reads it as something else: YAML reads
        # data.sha256=000...0 as the integer 0, and str(0) would lose the 64 digits given.
        flat[key.strip()] = raw.strip() if _hint(key.strip()) is str and not isinstance(value, str) else value
    return flat


# What every cell's run records and the report reads of each one: a run without them is not one of
# a sweep's cells.
RECORDED_PARAMS = ("model.activation", "model.init", "optim.lr")


def check_recorded_run(params: dict[str, str], tags: dict[str, str]) -> None:
    """A cell's run as its store holds it (text): its `seed` tag an integer, RECORDED_PARAMS there,
    and each param that names a setting read back as that setting's type, else ConfigError naming
    the tag or key: the report computes with them, and a store or runs file written by other hands
    may hold anything. Params that name no setting (another version's) are not read."""
    if "seed" not in tags:
        raise ConfigError("tag seed: missing")
    _coerce("tag seed", parse_flat([f"seed={tags['seed']}"])["seed"], int)
    missing = [key for key in RECORDED_PARAMS if key not in params]
    if missing:
        raise ConfigError(f"param {missing[0]}: missing (every cell's run records {', '.join(RECORDED_PARAMS)})")
    for key, text in params.items():
        hint = _hint(key)
        if hint is not None and not dataclasses.is_dataclass(hint):
            _coerce(key, parse_flat([f"{key}={text}"])[key], hint)


def _quoted(value: Any) -> str:
    """A value as an error quotes it (repr), a long one by its start and its length: a hostile
    file's megabyte of text is not repeated on the one line that names it."""
    text = value if isinstance(value, str) else repr(value)
    return repr(value) if len(text) <= 40 else f"{text[:20]!r}... ({len(text):,} characters)"


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """['model.lrn=false', 'seed=3'] -> {'model': {'lrn': False}, 'seed': 3}."""
    return nest(parse_flat(overrides))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


class SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's, where built: 5x faster, as safe
    """PyYAML's safe loader, refusing a key given twice in one mapping (YAML forbids it; PyYAML
    keeps the last in silence, so `lr: 0.01` above `lr: 0.1` would run 0.1 unseen)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key.value!r} given twice", key.start_mark)
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep)


PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_YAML_BYTES = 1 << 18  # a grid or preset is a page of text: a file a hundred times larger is a mistake
MAX_YAML_VALUES = 100_000  # values once YAML's aliases are followed: an alias bomb stops here, at once


def plain_name_problem(name: Any) -> str | None:
    """The one check on a name that becomes a folder or a path (a sweep, an experiment, a report's
    folder, a runs file's sweep): letters, digits, '.', '_' and '-', starting with a letter or a
    digit, so never '.', '..', a hidden name, an option or a path. None when it passes."""
    if isinstance(name, str) and PLAIN_NAME.fullmatch(name):
        return None
    return f"letters, digits, '_', '.' or '-', starting with a letter or a digit (at most 128); got {name!r}"


def _count_values(values: Any, where: Any) -> None:
    seen, stack = 0, [values]
    while stack:
        value = stack.pop()
        seen += 1
        if seen > MAX_YAML_VALUES:
            raise ConfigError(f"{where}: expands to more than {MAX_YAML_VALUES:,} values (YAML aliases?); "
                              "a grid or preset holds far fewer")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def read_yaml(path: Path) -> dict[str, Any]:
    """The one reader of YAML files a user gives (presets, grids): every way one cannot be read is
    a ConfigError of one line naming the file (and, for bad YAML, the line); a file past
    MAX_YAML_BYTES is refused unread."""
    try:
        if path.is_file() and path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a grid or preset file is at most "
                              f"{MAX_YAML_BYTES:,}")
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    values = parse_yaml(text, path)
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return values or {}


def parse_yaml(text: str | bytes, where: Any) -> Any:
    """YAML text as values, safely (no tags that build objects), refused past MAX_YAML_VALUES once
    aliases are followed: for files a user gives and for YAML a store or a runs file holds."""
    try:
        values = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{line} ({what})") from None
    except (ValueError, RecursionError) as err:  # an integer past int's 4,300 digits, a bad date; nesting past the stack
        raise ConfigError(f"{where}: a value YAML cannot read ({type(err).__name__}: {str(err).split(';')[0][:120]})") from None
    _count_values(values, where)
    return values


def preset_dict(preset: str) -> dict[str, Any]:
    """A preset by name (harness/presets/NAME.yaml) or by path to a YAML file."""
    path = Path(preset)
    if path.suffix in {".yaml", ".yml"}:
        return read_yaml(path)
    if preset not in preset_names():
        raise ConfigError(f"preset {preset!r}: unknown (known: {', '.join(preset_names())})")
    return read_yaml(PRESET_DIR / f"{preset}.yaml")


def load(preset: str | None = None, overrides: list[str] | None = None,
         values: dict[str, Any] | None = None) -> RunConfig:
    """A preset, then `key=value` overrides, then `values` ({'model.lrn': False, ...}) on top."""
    base = preset_dict(preset) if preset else {}
    try:
        return from_dict(_merge(_merge(base, parse_overrides(overrides or [])), nest(values or {})))
    except ConfigError as err:
        where = f"preset {preset}: " if preset else ""
        raise ConfigError(f"{where}{err}") from None


# ---------------------------------------------------------------------------------- validation

# The kernel counts before `width`; models/alexnet.py builds from the same table.
ALEXNET_CONV_KERNELS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256}
MODEL_DATASET = {"alexnet": "imagenet", "alexnet_cifar": "cifar10", "convnet4": "cifar10", "convnet80sec": "cifar10"}
FIGURE1_NETS = ("convnet4", "convnet80sec")  # cuda-convnet's small CIFAR nets: one tower, no dropout


# model.width multiplies the FC widths too, so parameters grow as its square: at 16 the paper's net
# holds ~16 billion (62 GB of fp32 weights, past any one GPU); more is a typo, not an experiment.
MAX_WIDTH = 16


def scaled(count: int, width: float) -> int:
    return max(1, round(count * width))


def validate(cfg: RunConfig) -> None:
    """Impossible combinations and out-of-range numbers, each named by its key."""
    m, d, o, t = cfg.model, cfg.data, cfg.optim, cfg.trainer

    def require(ok: bool, key: str, why: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: {why}")

    require(0 < m.width <= MAX_WIDTH, "model.width", f"must be in (0, {MAX_WIDTH}] (parameters grow as its square: "
            f"16 is ~16 billion for the paper's net); got {m.width}")
    require(plain_name_problem(cfg.tracking.experiment) is None, "tracking.experiment",
            plain_name_problem(cfg.tracking.experiment) or "")
    require(0 <= cfg.seed < 2**32, "seed", f"must be in [0, 2**32); got {cfg.seed}")
    require(0 <= m.dropout < 1, "model.dropout", f"must be in [0, 1); got {m.dropout}")
    require(m.num_classes >= 0, "model.num_classes", "must be >= 0 (0 = from the data)")
    require(d.pca_jitter >= 0, "data.pca_jitter", f"must be >= 0; got {d.pca_jitter}")
    require(d.batch_size > 0, "data.batch_size", "must be positive")
    require(d.val_size >= 0, "data.val_size", "must be >= 0")
    require(d.train_subset >= 0 and d.test_subset >= 0, "data.train_subset", "must be >= 0")
    require(d.cifar_pad >= 0, "data.cifar_pad", "must be >= 0")
    require(not d.sha256 or re.fullmatch(r"[0-9a-fA-F]{64}", d.sha256) is not None, "data.sha256",
            f"expected 64 hexadecimal digits (quote it in a YAML file); got {d.sha256!r}")
    require(0 < d.image_size <= d.resize, "data.image_size", f"must be in (0, data.resize={d.resize}]")
    require(d.num_workers >= 0, "data.num_workers", "must be >= 0")
    require(o.lr > 0, "optim.lr", f"must be positive; got {o.lr}")
    require(0 <= o.momentum < 1, "optim.momentum", f"must be in [0, 1) (at 1 or more the steps grow without end); got {o.momentum}")
    require(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    require(o.step_every > 0, "optim.step_every", "must be positive")
    require(o.plateau_patience >= 0, "optim.plateau_patience", "must be >= 0")
    require(t.threads >= 0, "trainer.threads", "must be >= 0 (0 = torch's default)")
    require(0 < o.lr_factor < 1, "optim.lr_factor", "must be in (0, 1)")
    require(t.max_epochs > 0, "trainer.max_epochs", "must be positive")
    require(0 <= t.stop_train_err < 100, "trainer.stop_train_err", "must be a percent in [0, 100)")
    require(t.stop_stalled >= 0, "trainer.stop_stalled", "must be >= 0 (0 = off)")
    # At most a day: past threading's longest wait (~292 years) the sampler's thread dies with a traceback.
    require(cfg.tracking.system_metrics_s == 0 or 1 <= cfg.tracking.system_metrics_s <= 86_400,
            "tracking.system_metrics_s",
            f"seconds between samples: 0 (none) or 1 to 86,400 (a day); got {cfg.tracking.system_metrics_s}")

    expected = MODEL_DATASET[m.name]
    require(
        d.dataset == expected,
        "data.dataset",
        f"model.name={m.name} is built for {expected} images; got data.dataset={d.dataset}",
    )
    if m.name == "alexnet":
        # conv1 (11x11, stride 4, no padding) must give 55x55 maps for fc6 to see 6x6x256.
        require(d.image_size == 227, "data.image_size", f"model.name=alexnet needs 227; got {d.image_size}")
    if d.dataset == "cifar10" and d.test_crops == 10:
        require(d.cifar_pad > 0, "data.cifar_pad", "10 test crops need a padding to shift by (> 0)")
    if m.name in FIGURE1_NETS:
        # The Figure 1 nets have no grouped layers, no dropout and no conv3/conv4 to drop.
        require(m.towers == 1, "model.towers", f"{m.name} has one tower; set model.towers=1")
        require(m.dropout == 0, "model.dropout", f"{m.name} has no dropout layer; set 0")
        require(m.depth == "full", "model.depth", f"{m.name} has no conv3/conv4 to remove")
    if m.towers == 2:
        require(m.one_tower == "half", "model.one_tower", "applies only with model.towers=1")
        # Any conv layer can feed a grouped one (depth removes conv3 or conv4), so all must split.
        odd = [n for n, k in ALEXNET_CONV_KERNELS.items() if scaled(k, m.width) % 2]
        require(
            not odd,
            "model.width",
            f"two towers split every conv layer's kernels in halves; width={m.width} "
            f"gives odd kernel counts in {', '.join(odd)}",
        )


def run_name(cfg: RunConfig) -> str:
    """A readable label from the switches and the seed, e.g. 'alexnet_cifar-relu-lrn-ovl-drop0.5-pca-2t-s3'."""
    m, d = cfg.model, cfg.data
    parts = [m.name, m.activation, "lrn" if m.lrn else "nolrn", "ovl" if m.pool == "overlap" else "nonovl"]
    if m.name not in FIGURE1_NETS:
        parts += [f"drop{m.dropout:g}" if m.dropout else "nodrop"]
        parts += ["2t" if m.towers == 2 else f"1t{'-full' if m.one_tower == 'full' else ''}"]
        parts += [m.depth.replace("_", "-")] if m.depth != "full" else []
    parts += ["pca" if d.pca_jitter else "nopca"] + ([] if d.augment else ["noaug"])
    parts += [f"w{m.width:g}"] if m.width != 1 else []
    parts += {"pytorch": ["torchinit"], "kaiming": ["heinit"]}.get(m.init, [])
    parts += ["10crop"] if d.test_crops == 10 else []
    return "-".join(parts + [f"s{cfg.seed}"])
