"""Training end to end: configs compose, every model trains, determinism, resume, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from movierec.config import build, module_settings
from movierec.errors import ConfigError
from movierec.ranking.metrics import METRICS
from movierec.tasks.cross_validation import cross_validate
from movierec.tasks.train import train
from movierec.training.checkpoints import RECORD_KEY
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import CONFIG_DIR, FAST, RMSE_SELECTION, TINY_DATA, compose_train
from tests.helpers.runs import train_one_split

MODELS = ["sage", "gcn", "mf", "gcmc"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if p.stem[0] != "_")


@pytest.mark.parametrize("group", ["data", "split", "model", "trainer", "logger", "experiment"])
def test_every_config_option_composes(group: str):
    for option in _options(group):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="train", overrides=[f"{group}={option}"])
        assert cfg.model._target_ and cfg.data.name and cfg.trainer._target_


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("model", MODELS)
def test_fast_dev_run_every_model(tmp_path: Path, model: str, precision: str):
    overrides = [f"model={model}", "trainer.fast_dev_run=true", f"trainer.precision={precision}"]
    cfg = compose_train(tmp_path, [*TINY_DATA, *overrides, *FAST])
    metrics = train_one_split(cfg)
    assert 0 < metrics["test/rmse"] < 5
    assert metrics["parameters"] > 0
    for name in METRICS:  # ranking metrics at both default K, every model
        for k in (10, 20):
            assert 0 <= metrics[f"test/{name}_at_{k}"] <= 1, (name, k)


def test_ranking_metrics_are_on_by_default_and_can_be_turned_off(tmp_path: Path):
    base = [*TINY_DATA, "model=mf", "trainer.fast_dev_run=true", *FAST]
    on = train_one_split(compose_train(tmp_path / "on", [*base, "ranking.k=5"]))
    assert {k for k in on if "_at_" in k} == {f"test/{m}_at_5" for m in METRICS}
    for off_value in ("0", "[]"):
        off = train_one_split(
            compose_train(tmp_path / off_value, [*base, f"ranking.k={off_value}"])
        )
        assert "test/rmse" in off and not any("_at_" in key for key in off)


def test_a_list_of_k_logs_every_metric_at_each_k_test_and_val(tmp_path: Path):
    overrides = [
        *TINY_DATA, "model=mf", "trainer.max_epochs=2", "callbacks.early_stopping=null",
        "ranking.k=[3,7]", "ranking.validate=true",
        "selection.metric=val/map_at_7", "selection.mode=max", *FAST, "logger=csv",
    ]  # fmt: skip
    cfg = compose_train(tmp_path, overrides)
    assert list(cfg.ranking.k) == [3, 7]
    metrics = train_one_split(cfg)
    for stage in ("val", "test"):
        for name in METRICS:
            low, high = metrics[f"{stage}/{name}_at_3"], metrics[f"{stage}/{name}_at_7"]
            assert 0 <= low <= 1 and 0 <= high <= 1, (stage, name)
            if name in ("recall", "hit_rate", "coverage"):  # can only grow with K
                assert low <= high, (stage, name)
    epochs = _epochs(tmp_path / "run", "val/map_at_7")
    assert len(epochs) == 2 and "val/coverage_at_3" in epochs
    assert metrics["val/map_at_7"] == pytest.approx(epochs["val/map_at_7"].max())


def _epochs(run_dir: Path, metric: str) -> pd.DataFrame:
    """Per-epoch validation metrics of a `logger=csv` run, indexed by epoch."""
    csv = next((run_dir / "csv").glob("*/metrics.csv"))
    return pd.read_csv(csv).dropna(subset=[metric]).set_index("epoch")


def test_checkpoints_can_be_chosen_on_validation_ranking(tmp_path: Path):
    overrides = [
        *TINY_DATA, "model=mf", "trainer.max_epochs=6", "callbacks.early_stopping=null",
        "ranking.k=5", "ranking.validate=true",
        "selection.metric=val/ndcg_at_5", "selection.mode=max",
        *FAST, "logger=csv",
    ]  # fmt: skip
    metrics = train_one_split(compose_train(tmp_path, overrides))
    epochs = _epochs(tmp_path / "run", "val/ndcg_at_5")
    assert len(epochs) == 6 and epochs["val/ndcg_at_5"].between(0, 1).all()
    best = epochs["val/ndcg_at_5"].idxmax()  # first epoch with the highest value
    assert metrics["best_epoch"] == best
    assert metrics["val/ndcg_at_5"] == pytest.approx(epochs["val/ndcg_at_5"].max())
    # the reported val RMSE is the chosen epoch's, not the best RMSE of the run
    assert metrics["val/rmse"] == pytest.approx(epochs.loc[best, "val/rmse"])


@pytest.mark.parametrize("checkpoint", ["saved", "none"])
def test_selection_metric_picks_the_best_epoch(tmp_path: Path, checkpoint: str):
    # val/mae, min: the checkpoint, the plateau scheduler and train()'s value all follow it
    overrides = [
        *TINY_DATA, "model=mf", "trainer.max_epochs=8", "callbacks.early_stopping=null",
        "model.lr=0.1", "model.scheduler=plateau", "model.scheduler_kwargs={patience:1}",
        "selection.metric=val/mae", "selection.mode=min", *FAST, "logger=csv",
    ]  # fmt: skip
    if checkpoint == "none":  # then the per-epoch history picks
        overrides += ["callbacks.model_checkpoint=null", "test=false"]
    cfg = compose_train(tmp_path, overrides)
    value = train(cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    epochs = _epochs(tmp_path / "run", "val/mae")
    assert len(epochs) == 8
    best = epochs["val/mae"].idxmin()
    assert epochs["val/rmse"].idxmin() != best  # here RMSE would pick another epoch
    assert written["best_epoch"] == best
    assert value == pytest.approx(epochs["val/mae"].min())
    assert written["val/mae"] == pytest.approx(value)
    assert written["val/rmse"] == pytest.approx(epochs.loc[best, "val/rmse"])
    assert written["selection"] == "min(val/mae)"
    # the last epoch's values, read when the fit ends (a test afterwards logs others)
    assert written["val/mae_last"] == pytest.approx(epochs["val/mae"].iloc[-1])
    assert written["val/rmse_last"] == pytest.approx(epochs["val/rmse"].iloc[-1])
    if checkpoint == "saved":
        import torch

        saved = torch.load(written["best_checkpoint"], map_location="cpu", weights_only=True)
        assert saved["epoch"] == best
        assert saved["hyper_parameters"]["selection"] == {"metric": "val/mae", "mode": "min"}


def test_seed_makes_runs_identical(tmp_path: Path):
    # mini-batches of 128: a few steps per epoch, so the seed moves every output
    overrides = [*TINY_DATA, "model=sage", "data.batch_size=128", "trainer.max_epochs=3", *FAST]
    first = train_one_split(compose_train(tmp_path / "a", [*overrides, "seed=7"]))
    second = train_one_split(compose_train(tmp_path / "b", [*overrides, "seed=7"]))
    assert first["test/rmse"] == second["test/rmse"]
    other = train_one_split(compose_train(tmp_path / "c", [*overrides, "seed=8"]))
    assert other["test/rmse"] != first["test/rmse"]


def test_same_seed_same_metrics_where_threads_split_the_work(tmp_path: Path):
    """A graph large enough for torch's parallel CPU kernels (2 threads here and in CI);
    test_model_families checks the gradients bit for bit."""
    data = ["data=synthetic", "data.synthetic.n_users=900", "data.synthetic.n_movies=1600",
            "data.synthetic.n_ratings=60000"]  # fmt: skip
    overrides = [*data, "model=gcn", "trainer.max_epochs=3", "ranking.k=0", *FAST]
    runs = [train_one_split(compose_train(tmp_path / name, overrides)) for name in "ab"]
    for key in ("test/rmse", "test/mae", "val/rmse", "best_epoch"):
        assert runs[0][key] == runs[1][key], key


def test_resume_continues_the_epoch_count(tmp_path: Path):
    base = [*TINY_DATA, "model=mf", "callbacks.early_stopping=null", *FAST]
    first = train_one_split(compose_train(tmp_path / "a", [*base, "trainer.max_epochs=3"]))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file() and first["epochs"] == 3
    resumed = train_one_split(
        compose_train(tmp_path / "b", [*base, "trainer.max_epochs=5", f"ckpt_path={last}"])
    )
    assert resumed["resumed_from_epoch"] == 2  # epochs 0..2 done before
    assert resumed["epochs_this_run"] == 2 and resumed["epochs"] == 5


def test_resume_takes_a_checkpoint_of_the_former_flat_objective_layout(tmp_path: Path):
    """A checkpoint recorded `model.loss`, … before the objective moved under
    `model.objective`: the same settings, so the resume goes on."""
    base = [*TINY_DATA, "model=mf", "callbacks.early_stopping=null", *FAST]
    train_one_split(compose_train(tmp_path / "a", [*base, "trainer.max_epochs=2"]))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    config = checkpoint[RECORD_KEY]["config"]
    former = {k.replace("model.objective.", "model."): v for k, v in config.items()}
    assert former != config and "model.loss" in former
    checkpoint[RECORD_KEY]["config"] = former
    torch.save(checkpoint, last)
    resumed = train_one_split(
        compose_train(tmp_path / "b", [*base, "trainer.max_epochs=3", f"ckpt_path={last}"])
    )
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 3


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ("seed=1", "written with seed=0, this run has seed=1; resume with seed=0"),
        ("model.net.dim=8", "written with other settings: model.net.dim=64 (this run: 8)"),
    ],
)
def test_resume_refuses_another_seed_or_config(tmp_path: Path, changed: str, message: str):
    base = [*TINY_DATA, "model=mf", *FAST]
    train_one_split(compose_train(tmp_path / "a", [*base, "trainer.max_epochs=1"]))
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_train(
        tmp_path / "b", [*base, "trainer.max_epochs=2", f"ckpt_path={last}", changed]
    )
    with pytest.raises(ConfigError, match=re.escape(f"ckpt_path={last}: {message}")):
        train_one_split(cfg)
    assert not (tmp_path / "b" / "data").exists()  # refused before the data is read


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path: Path):
    # two trainings that shared a run folder: the folder's run id is the other one's
    base = [*TINY_DATA, "model=mf", *FAST]
    train_one_split(compose_train(tmp_path / "a", [*base, "trainer.max_epochs=1"]))
    (tmp_path / "a" / "run" / "mlflow_run_id").write_text("0123456789abcdef")
    last = tmp_path / "a" / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_train(tmp_path / "b", [*base, "trainer.max_epochs=2", f"ckpt_path={last}"])
    with pytest.raises(ConfigError, match="but its run folder continues run 0123456789abcdef"):
        train_one_split(cfg)
    moved = tmp_path / "last.ckpt"  # a checkpoint away from any run folder starts a new run
    moved.write_bytes(last.read_bytes())
    cfg = compose_train(tmp_path / "c", [*base, "trainer.max_epochs=2", f"ckpt_path={moved}"])
    assert train_one_split(cfg)["resumed_from_epoch"] == 0


def test_metrics_json_and_return_value(tmp_path: Path):
    cfg = compose_train(tmp_path, [*TINY_DATA, "model=mf", "trainer.max_epochs=4", *FAST])
    value = train(cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert value == pytest.approx(written["val/rmse"])  # the sweep objective is val, not test
    assert {"test/rmse", "test/mae", "seconds_per_epoch", "best_epoch"} <= set(written)
    _check_ranking_metrics(cfg, written)


def _check_ranking_metrics(cfg, written: dict) -> None:
    """The logged test/*_at_10 equal torchmetrics' retrieval metrics recomputed from the
    best checkpoint: candidates = movies unrated in train+val, relevant = test rating ≥ 4."""
    import torch
    from torchmetrics.retrieval import RetrievalNormalizedDCG, RetrievalRecall

    from movierec.config import build
    from movierec.training.module import RatingPredictor

    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    model = RatingPredictor.load_from_checkpoint(written["best_checkpoint"], map_location="cpu")
    model.eval()
    n_users, n_movies = datamodule.data.n_users, datamodule.data.n_movies
    seen = torch.zeros(n_users, n_movies, dtype=torch.bool)
    relevant = torch.zeros(n_users, n_movies, dtype=torch.bool)
    for part in ("train", "val"):
        user, movie, _ = datamodule.rows(part)
        seen[user, movie] = True
    user, movie, rating = datamodule.rows("test")
    relevant[user[rating >= 4], movie[rating >= 4]] = True
    with torch.no_grad():
        embeddings = model.net.encode(datamodule.graph)
        pairs = torch.cartesian_prod(torch.arange(n_users), torch.arange(n_movies))
        scores = model.net.decode(embeddings, pairs[:, 0], pairs[:, 1]).rating
    scores = scores.view(n_users, n_movies)
    index = torch.arange(n_users).unsqueeze(1).expand(-1, n_movies)
    keep = ~seen & relevant.any(dim=1, keepdim=True)  # users with something relevant
    args = (scores[keep], relevant[keep])
    ndcg = RetrievalNormalizedDCG(top_k=10)(*args, indexes=index[keep])
    recall = RetrievalRecall(top_k=10)(*args, indexes=index[keep])
    assert written["test/ndcg_at_10"] == pytest.approx(float(ndcg), abs=1e-5)
    assert written["test/recall_at_10"] == pytest.approx(float(recall), abs=1e-5)
    assert 0 < written["test/hit_rate_at_10"] <= 1
    assert 0 <= written["test/precision_at_10"] <= 1


def test_cross_validation_refuses_a_checkpoint_before_any_data(tmp_path: Path):
    overrides = [*TINY_DATA, "split=kfold", "split.fold=all", "ckpt_path=/x/last.ckpt"]
    with pytest.raises(ConfigError, match=r"ckpt_path=/x/last.ckpt resumes one split"):
        cross_validate(compose_train(tmp_path, overrides))
    assert not (tmp_path / "data").exists()


def test_a_terminated_cross_validation_exits_as_killed(tmp_path: Path, monkeypatch):
    """SIGTERM in a fold (Lightning raises SIGTERMException, a SystemExit of status 0)
    ends the cross-validation with 128 + SIGTERM, as it ends a single training."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from movierec.training.module import RatingPredictor

    def terminated(*args, **kwargs):
        raise SIGTERMException

    monkeypatch.setattr(RatingPredictor, "training_step", terminated)
    overrides = [*TINY_DATA, *FAST, "model=mf", "split=kfold", "split.n_folds=2", "split.fold=all"]
    with pytest.raises(SystemExit) as exited:
        cross_validate(compose_train(tmp_path, overrides))
    assert exited.value.code == 128 + signal.SIGTERM
    assert not (tmp_path / "run" / "cv_metrics.json").exists()


def test_kfold_all_runs_every_fold(tmp_path: Path, capsys):
    cfg = compose_train(
        tmp_path,
        [
            *TINY_DATA,
            "model=mf",
            "split=kfold",
            "split.n_folds=3",
            "split.fold=all",
            "trainer.max_epochs=2",
            *FAST,
        ],
    )
    value = cross_validate(cfg)
    summary = json.loads((tmp_path / "run" / "cv_metrics.json").read_text())
    assert [row["fold"] for row in summary["folds"]] == [1, 2, 3]
    assert value == pytest.approx(summary["mean"]["val/rmse"])
    out = capsys.readouterr().out
    # one line per fold, then one mean ± std table
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("fold ")] == [
        ["fold", "1"], ["fold", "2"], ["fold", "3"]
    ]  # fmt: skip
    assert re.search(r"^test/rmse\s+\d\.\d{4} ± \d\.\d{4}$", out, re.MULTILINE), out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.objective.loss=hinge"],
            "model.objective.loss='hinge' is not valid; expected one of mse, huber",
        ),
        (["model.lr=-0.1"], "model.lr=-0.1: expected a positive learning rate"),
        (["model.net.hidden=0"], "model.net.hidden=0: expected a positive number"),
        (["model.net.aggr=median"], "model.net.aggr='median' is not valid; expected one of mean"),
        (["data.user_features=none", "model.net.id_embeddings=false"], "needs user input features"),
        (["model=mf", "model.net.dim=0"], "model.net.dim=0"),
        (
            ["model=gcn", "model.objective.loss=cross_entropy"],
            "does not suit GcnNet; expected one of huber",
        ),
        (["model.scheduler=linear"], "model.scheduler='linear' is not valid"),
        (["model.optimizer=adamx"], "model.optimizer='adamx' is not valid; expected one of adam"),
        (
            ["model.optimizer={_target_:torch.optim.Nope,_partial_:true}"],
            "model.optimizer._target_='torch.optim.Nope': cannot import it",
        ),
        (["ranking.k=-1"], "ranking.k=-1: expected an integer ≥ 1 or a list of them"),
        (["ranking.k=[10,-1]"], "ranking.k=[10, -1]: expected an integer ≥ 1 or a list"),
        (["ranking.k=a"], "ranking.k='a': expected an integer ≥ 1 or a list"),
        (["ranking.k=[]", "ranking.validate=true"], "ranking.validate=true needs ranking.k"),
        (
            ["model.objective.bpr_weight=-0.5"],
            "model.objective.bpr_weight=-0.5: expected ≥ 0 (0 = off)",
        ),
        (["ranking.k=0", "ranking.validate=true"], "ranking.validate=true needs ranking.k ≥ 1"),
        (
            ["model.objective.bpr_positive_rating=high"],
            "model.objective.bpr_positive_rating='high': expected",
        ),
        (["selection.mode=up"], "selection.mode='up': expected min or max"),
        (
            ["selection.metric=val/foo"],
            "selection.metric='val/foo' is not logged by this run; expected one of val/rmse, "
            "val/mae",
        ),
        (["selection.metric=test/rmse"], "selection.metric='test/rmse': expected a validation"),
        (["selection.metric=val/ndcg_at_10"], "need ranking.validate=true"),
        (
            ["selection.metric=val/ndcg_at_5", "ranking.k=5", "ranking.validate=true"],
            None,  # logged: accepted (trains one epoch)
        ),
        (
            ["selection.metric=val/ndcg_at_5", "ranking.validate=true"],  # ranking.k=[10, 20]
            "a ranking metric's K must be one of ranking.k",
        ),
        (["selection.metric=val/mrr_at_20", "ranking.validate=true"], None),
        (
            ["callbacks.early_stopping.monitor=val/mae"],
            "callbacks.early_stopping.monitor='val/mae' differs from selection.metric='val/rmse'",
        ),
        (
            ["callbacks.model_checkpoint.mode=max"],
            "callbacks.model_checkpoint.mode='max' differs from selection.mode='min'",
        ),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, overrides: list[str], message: str):
    cfg = compose_train(
        tmp_path, [*TINY_DATA, *RMSE_SELECTION, *overrides, "trainer.max_epochs=1", *FAST]
    )
    if message is None:
        train_one_split(cfg)
        return
    with pytest.raises(ConfigError) as info:
        train_one_split(cfg)
    assert message in str(info.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # rejected before training


def test_any_torch_optimizer_and_scheduler_come_from_config(tmp_path: Path):
    """`_target_` nodes build the optimizer and scheduler; `model.lr` reaches the optimizer
    unless its node sets lr; presets and nodes give the same training."""
    base = [*TINY_DATA, "model=mf", "trainer.max_epochs=2", *FAST]
    node = [
        "model.optimizer={_target_:torch.optim.Adam,_partial_:true}",
        "model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1}",
        "model.scheduler_kwargs={gamma:0.5}",
    ]
    preset = [
        "model.optimizer=adam",
        "model.scheduler=step",
        "model.scheduler_kwargs={step_size:1,gamma:0.5}",
    ]
    by_node = train_one_split(compose_train(tmp_path / "a", [*base, *node]))
    by_preset = train_one_split(compose_train(tmp_path / "b", [*base, *preset]))
    assert by_node["test/rmse"] == by_preset["test/rmse"]
    cfg = compose_train(
        tmp_path / "c", [*base, "model.optimizer={_target_:torch.optim.RAdam,_partial_:true}"]
    )
    model = build(module_settings(cfg.model), "model", schema=_schema(tmp_path / "c", cfg))
    optimizer = model.configure_optimizers()
    assert type(optimizer).__name__ == "RAdam" and optimizer.defaults["lr"] == cfg.model.lr


def _schema(tmp_path: Path, cfg) -> dict:
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule.schema.as_dict()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.lr=-1", "error: model.lr=-1: expected a positive learning rate"),
        ("selection.metric=val/foo", "error: selection.metric='val/foo' is not logged"),
        ("selection.mode=up", "error: selection.mode='up': expected min or max"),
        ("trainer.max_epochs=-3", "error: trainer.max_epochs=-3: expected an integer ≥ -1"),
        (
            "model.objective.loss=hinge",
            "error: model.objective.loss='hinge' is not valid; expected one of mse,",
        ),
        ("data.batch_size=-5", "error: data.batch_size=-5: expected an integer ≥ 0"),
    ],
)
def test_cli_rejects_invalid_setting_with_one_line(tmp_path: Path, override: str, message: str):
    env = dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "d"), MOVIEREC_LOG_DIR=str(tmp_path))
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "train.py"),
            *TINY_DATA,
            override,
            "logger=none",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))  # refused before training


@pytest.mark.integration
def test_short_ml100k_training_beats_global_mean(tmp_path: Path, real_mirror: Path, ml100k):
    from movierec.data.splits import PredefinedSplit

    split = PredefinedSplit(fold=1).assign(ml100k)
    ratings = ml100k.ratings["rating"].to_numpy()
    train_mean = ratings[split.train].mean()
    global_mean_rmse = float(((ratings[split.test] - train_mean) ** 2).mean() ** 0.5)
    cfg = compose_train(
        tmp_path,
        [
            "data=ml_100k",
            f"data.mirror={real_mirror}",
            "split=predefined",
            "model=mf",
            "trainer.max_epochs=25",
            *FAST,
        ],
    )
    metrics = train_one_split(cfg)
    assert metrics["test/rmse"] < global_mean_rmse - 0.1, (metrics, global_mean_rmse)
