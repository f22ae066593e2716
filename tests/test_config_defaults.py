"""Each model's settings have one value: what `conf/model/<name>.yaml` composes is what its
network's Python signature defaults to (a network built in code behaves as `model=<name>`),
and the training module's defaults are `model/_base_.yaml`'s."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import movierec
from movierec.objective import Objective
from movierec.ranking.settings import RankingSettings
from movierec.training.module import RatingPredictor
from tests.helpers.configs import compose_train

MODEL_DIR = Path(movierec.__file__).parent / "conf" / "model"
MODELS = sorted(p.stem for p in MODEL_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def _plain(value):
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return list(value) if isinstance(value, tuple) else value


def _disagreements(target, node: dict, skip=()) -> list[str]:
    """'key: python … yaml …' for each defaulted argument of `target` the node sets
    otherwise (or leaves out)."""
    found = []
    for name, param in inspect.signature(target).parameters.items():
        if name in skip or param.default is inspect.Parameter.empty:
            continue
        yaml_value = node.get(name, "<absent>")
        if _plain(param.default) != yaml_value:
            found.append(f"{name}: python {param.default!r}, yaml {yaml_value!r}")
    return found


@pytest.mark.parametrize("model", MODELS)
def test_the_network_defaults_are_the_model_yaml(model, tmp_path):
    net = _plain(compose_train(tmp_path, [f"model={model}"]).model.net)
    module, name = net["_target_"].rsplit(".", 1)
    target = getattr(importlib.import_module(module), name)
    assert set(net) - {"_target_"} <= set(inspect.signature(target).parameters)
    assert _disagreements(target, net) == []


def test_the_training_module_defaults_are_the_base_yaml():
    base = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / "_base_.yaml"))
    # `objective` and `ranking` (None = their dataclass's defaults) are held against their
    # YAML below; `selection` comes from train.yaml, with no default here; `schema` from
    # the data (None: the split's, handed over when Lightning sets the data up)
    skip = ("objective", "ranking", "selection", "schema")
    assert _disagreements(RatingPredictor, base, skip) == []


def test_the_ranking_defaults_are_the_train_yaml():
    """`ranking` in `train.yaml` sets every `RankingSettings` field to its default (whether to
    validate on rankings is the model's call: `model.fit.validate_ranking`, default false)."""
    train = OmegaConf.load(MODEL_DIR.parent / "train.yaml")
    ranking = OmegaConf.to_container(train.ranking)
    assert set(ranking) == set(inspect.signature(RankingSettings).parameters)
    assert ranking.pop("validate") == "${oc.select:model.fit.validate_ranking,false}"
    assert RankingSettings().validate is False
    assert _disagreements(RankingSettings, ranking, skip=("validate",)) == []


def test_the_objective_defaults_are_the_base_yaml():
    """`model.objective` in `_base_.yaml` sets every `Objective` field to its default."""
    objective = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / "_base_.yaml"))["objective"]
    assert set(objective) == set(inspect.signature(Objective).parameters)
    assert _disagreements(Objective, objective) == []


def test_a_disagreement_is_found():
    def net(schema, dim: int = 32, reg: float = 0.1):
        return None

    assert _disagreements(net, {"dim": 64, "reg": 0.1}) == ["dim: python 32, yaml 64"]
