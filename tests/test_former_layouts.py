"""Settings of the former layout (the objective's keys flat in the model node, the ranking
and selection arguments under names of their own): refused by name in a config, read as
today's in a checkpoint (`training.former_layouts`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl

from movierec.errors import ConfigError
from movierec.tasks.settings_check import check_train_settings
from movierec.training.former_layouts import current_identity, grouped_arguments
from movierec.training.module import RatingPredictor
from tests.helpers.configs import TINY_DATA, compose_train
from tests.helpers.graphs import synthetic_train_graph

MF = {"_target_": "movierec.models.mf.BiasedMF", "dim": 4}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+model.loss=bpr", "model.loss: the objective's settings sit under model.objective; "
                            "write model.objective.loss"),
        ("+model.bpr_weight=1", "write model.objective.bpr_weight"),
        ("ranking.relevant_rating=null", "ranking.relevant_rating=None: expected a rating"),
    ],
)  # fmt: skip
def test_the_settings_check_names_a_former_or_missing_key(tmp_path: Path, override, message):
    cfg = compose_train(tmp_path, [*TINY_DATA, override])
    with pytest.raises(ConfigError, match=message):
        check_train_settings(cfg)


def test_a_plateau_scheduler_without_a_selection_is_refused_when_it_would_train():
    """A module built for inference (a bundle, a snapshot) needs no selection; the plateau
    scheduler, which watches it, is refused when the optimizers are configured."""
    _, schema = synthetic_train_graph(10, 12, 60, seed=0)
    module = RatingPredictor(MF, schema.as_dict(), scheduler="plateau")
    with pytest.raises(ConfigError, match="plateau watches selection.metric"):
        module.configure_optimizers()
    selection = {"metric": "val/mae", "mode": "min"}
    module = RatingPredictor(MF, schema.as_dict(), scheduler="plateau", selection=selection)
    module.trainer = pl.Trainer(max_epochs=4, logger=False, enable_checkpointing=False)
    assert module.configure_optimizers()["lr_scheduler"]["monitor"] == "val/mae"


def test_a_former_checkpoints_arguments_are_grouped_as_today():
    former = {"net": MF, "loss": "mse", "bpr_weight": 0.5, "ranking_k": [5],
              "validate_ranking": True, "validation_users": 7, "relevant_rating": 3.5,
              "selection_metric": "val/ndcg_at_5", "selection_mode": "max"}  # fmt: skip
    assert grouped_arguments(former) == {
        "objective": {"loss": "mse", "bpr_weight": 0.5},
        "ranking": {"k": [5], "validate": True, "val_users": 7, "relevant_rating": 3.5},
        "selection": {"metric": "val/ndcg_at_5", "mode": "max"},
    }
    today = {"net": MF, "objective": {"loss": "mse"}, "ranking": {"k": [5]}, "selection": None}
    assert grouped_arguments(today) == {}


def test_a_former_run_record_reads_as_todays():
    recorded = {"model.loss": "bpr", "model.net.dim": "8", "data.name": "ml_100k"}
    assert current_identity(recorded) == {
        "model.objective.loss": "bpr",
        "model.net.dim": "8",
        "data.name": "ml_100k",
    }
