"""Cold-start evaluation of a run trained on `split=cold_start` (`ranking.cold_start`).

    python scripts/cold_start.py <run folder>     # a scripts/train.py run's output folder

The run's split is rebuilt from its `.hydra/config.yaml`; its best checkpoint folds each
held-out user in from N of their ratings (`RatingNet.embed_new_user`) and ranks the rest,
next to the popularity baseline of the same training ratings. A model that cannot embed a
new user is refused with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

from movierec.config import build
from movierec.data.splits import ColdStartSplit
from movierec.errors import ConfigError
from movierec.ranking.cold_start import GIVEN, cold_start_metrics
from movierec.ranking.popularity import Popularity
from movierec.serving.cold_start import embed_new_user
from movierec.serving.loading import RUN_CONFIG, _best_checkpoint
from movierec.training.checkpoints import load_predictor


def evaluate_cold_start(run_dir: str | Path, given=GIVEN, seed: int = 0) -> pd.DataFrame:
    """One row per (scorer, N): NDCG@10, Recall@10 and users counted."""
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / RUN_CONFIG)
    datamodule = build(cfg.data, "data", split=cfg.split)
    if not isinstance(datamodule.split, ColdStartSplit):
        raise ConfigError(
            f"{run_dir}: trained on split={datamodule.split.name}; the cold-start protocol "
            "needs a run trained with split=cold_start"
        )
    datamodule.prepare_data()
    datamodule.setup()
    split = datamodule.split_data
    module = load_predictor(_best_checkpoint(run_dir), key="run_dir").eval()
    net, graph = module.net, split.graph
    user, movie, stars = (t.numpy() for t in split.rows("test"))
    n_movies = datamodule.schema.n_movies
    with torch.no_grad():
        embeddings = net.encode(graph)

    def model_scores(movies: torch.Tensor, given_stars: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            grown, new = embed_new_user(net, graph, embeddings, movies, given_stars)
            return net.score_users(grown, torch.tensor([new]))

    _, train_movie, train_stars = split.rows("train")
    popularity = Popularity.from_ratings(train_movie, train_stars, n_movies).score

    rows = []
    for name, scorer in ((type(net).__name__, model_scores), ("popular", lambda m, s: popularity)):
        results = cold_start_metrics(scorer, user, movie, stars, n_movies, given, seed=seed)
        for n, values in results.items():
            rows.append({"scorer": name, "given": n, **values})
    return pd.DataFrame(rows)
