import os
import re
import subprocess
import sys

import pytest

from harness import config as C


def test_overrides_are_typed_and_nested():
    cfg = C.load("cifar_convnet4", ["model.activation=tanh", "optim.lr=1e-4", "seed=3",
                                    "data.augment=true", "trainer.max_epochs=5"])
    assert cfg.model.activation == "tanh"
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)  # YAML reads 1e-4 as text
    assert cfg.seed == 3 and cfg.data.augment is True and cfg.trainer.max_epochs == 5
    assert cfg.model.name == "convnet4"  # from the preset
    assert cfg.optim.momentum == 0.9  # from the dataclass default


@pytest.mark.parametrize("override, message", [
    ("model.lrm=false", "model.lrm: unknown key"),
    ("modle.lrn=false", "modle: unknown key"),
    ("model.lrn=maybe", "model.lrn: expected true or false"),
    ("model.activation=sigmoid", "model.activation: expected one of relu, tanh"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs: expected an integer"),
    ("optim.lr=fast", "optim.lr: expected a finite number"),
    ("model.towers=3", "model.towers: expected one of 1, 2"),
    ("model.dropout=1.5", "model.dropout: must be in [0, 1)"),
    ("lrn", "an override is key=value"),
    ("tracking.system_metrics_s=0.5", "tracking.system_metrics_s: seconds between samples: 0 (none) or 1 to 86,400"),
    ("tracking.system_metrics_s=1e10", "tracking.system_metrics_s: seconds between samples"),
    ("tracking.log_model=some", "tracking.log_model: expected one of final, best, none"),
])
def test_bad_values_name_their_key(override, message):
    with pytest.raises(C.ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        C.load("cifar_alexnet", [override])


def test_impossible_combinations():
    # 0.3 * 96 = 28.8 -> 29 kernels in conv1: cannot split into two towers.
    with pytest.raises(C.ConfigError, match=r"model.width: .*odd kernel counts in conv1"):
        C.load("cifar_alexnet", ["model.width=0.3"])
    C.load("cifar_alexnet", ["model.width=0.3", "model.towers=1"])  # fine with one tower
    with pytest.raises(C.ConfigError, match="model.towers: convnet4 has one tower"):
        C.load("cifar_convnet4", ["model.towers=2"])
    with pytest.raises(C.ConfigError, match="data.dataset: model.name=alexnet is built for imagenet"):
        C.load("imagenet_alexnet", ["data.dataset=cifar10"])
    with pytest.raises(C.ConfigError, match="preset 'nope': unknown"):
        C.load("nope")


def test_resolved_config_round_trips_through_yaml():
    cfg = C.load("cifar_alexnet", ["model.lrn=false", "seed=7"])
    assert C.from_yaml(C.to_yaml(cfg), "here") == cfg
    assert C.flatten(cfg)["model.lrn"] is False and C.flatten(cfg)["seed"] == 7


def test_run_name_spells_out_the_switches():
    cfg = C.load("cifar_alexnet", ["seed=3"])
    assert C.run_name(cfg) == "alexnet_cifar-relu-lrn-ovl-drop0.5-2t-pca-s3"
    cfg = C.load("cifar_alexnet", ["seed=3", "model.towers=1", "model.lrn=false", "model.width=0.5"])
    assert C.run_name(cfg) == "alexnet_cifar-relu-nolrn-ovl-drop0.5-1t-pca-w0.5-s3"


def test_cli_bad_config_exits_2_before_anything_is_written(tmp_path):
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/store/mlflow.db",
               HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "harness.cli", "train", "model.lrn=maybe"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("harness: config error: preset cifar_convnet4: "
                                   "model.lrn: expected true or false; got 'maybe'")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no cache, no mlruns/


@pytest.mark.parametrize("override, message", [
    ("data.image_size=224", "data.image_size: model.name=alexnet needs 227"),
    ("optim.momentum=-0.1", "optim.momentum: must be in [0, 1)"),
    ("optim.momentum=5", "optim.momentum: must be in [0, 1) (at 1 or more the steps grow without end); got 5.0"),
    ("trainer.accelerator=tpu9", "trainer.accelerator: expected one of"),
    ("model.width=.inf", "model.width: expected a finite number; got inf"),
    ("optim.lr=.inf", "optim.lr: expected a finite number; got inf"),  # every number a run uses, in one place
    ("optim.momentum=-.inf", "optim.momentum: expected a finite number"),
    ("data.pca_jitter=.nan", "data.pca_jitter: expected a finite number"),
    ("tracking.experiment=..", "tracking.experiment: letters, digits"),  # a name that becomes a folder
    ("tracking.experiment=a/../../b", "tracking.experiment: letters, digits"),
    ("seed=-1", "seed: must be in"),
    ("model.width=1e9", "model.width: must be in (0, 16]"),  # terabytes of weights, allocated mid-run
    ("data.train_subset=" + "9" * 5000, "data.train_subset: cannot read '99999999999999999999'... (5,000 characters)"),
])
def test_values_that_would_only_fail_mid_training_are_rejected_up_front(override, message):
    with pytest.raises(C.ConfigError, match=re.escape(message)):
        C.load("imagenet_alexnet", [override])


def test_a_key_given_twice_in_a_yaml_file_is_refused_naming_the_file_the_line_and_the_key(tmp_path):
    """YAML forbids it; PyYAML would keep the last in silence (the run would use a value the reader
    of the file may not see). A merge key's values may be overridden, as YAML means them to be."""
    path = tmp_path / "p.yaml"
    path.write_text("optim:\n  lr: 0.01\n  momentum: 0.9\n  lr: 0.1\n")
    with pytest.raises(C.ConfigError, match=re.escape(f"{path}: not valid YAML at line 4 (key 'lr' given twice)")):
        C.load(str(path))
    assert C.parse_yaml("base: &b {lr: 1}\nover:\n  <<: *b\n  lr: 2\n", "x")["over"] == {"lr": 2}
