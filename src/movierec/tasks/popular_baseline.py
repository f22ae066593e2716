"""The `popular` baseline as a task: `Popularity`'s metrics on a dataset's split.

Written to `<output_dir>/metrics.json` under the names a training uses (`test/rmse`,
`test/ndcg_at_10`, `test/map_at_20`, …) so the benchmark lines it up with the trained
models: RMSE/MAE of the damped mean rating on val and test, and every ranking metric of
`movierec.ranking.metrics` at every K of `ranking.k` for the most-rated movies under the
protocol of `movierec.ranking.protocol`.
"""

from __future__ import annotations

import json
import math
import resource
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torchmetrics.functional import mean_absolute_error, mean_squared_error

from movierec.config import build
from movierec.ranking.metrics import TopKRanking
from movierec.ranking.popularity import DAMPING, Popularity
from movierec.ranking.protocol import RankingProtocol
from movierec.ranking.scoring import evaluate_ranking
from movierec.ranking.settings import RankingSettings
from movierec.ranking.significance import PER_USER_FILE, write_per_user


def evaluate_popularity(cfg: DictConfig) -> dict[str, Any]:
    """Metrics of the popularity baseline on `cfg.data` / `cfg.split`; print and write them."""
    started = time.perf_counter()
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    _, movie, rating = datamodule.rows("train")
    damping = float((cfg.get("popularity") or {}).get("damping", DAMPING))
    popularity = Popularity.from_ratings(movie, rating, datamodule.data.n_movies, damping)
    metrics: dict[str, Any] = {}
    for part in ("val", "test"):
        _, movie, rating = datamodule.rows(part)
        predicted, true = popularity.rating[movie].double(), rating.double()
        empty = not len(true)
        rmse = math.nan if empty else float(mean_squared_error(predicted, true, squared=False))
        metrics[f"{part}/rmse"] = rmse
        metrics[f"{part}/mae"] = math.nan if empty else float(mean_absolute_error(predicted, true))
    settings = RankingSettings.from_settings(cfg.get("ranking"))
    protocol = RankingProtocol.from_split(datamodule.split_data, settings.relevant_rating)
    ks = settings.k
    if ks:
        ranking = TopKRanking(ks, datamodule.data.n_movies, per_user=True)
        evaluate_ranking(
            popularity.scorer(), protocol.users, protocol.exclude, protocol.relevant, ranking
        )
        metrics.update(ranking.compute("test"))
        user_ids = datamodule.data.users["userId"].to_numpy()
        write_per_user(ranking, user_ids, Path(cfg.paths.output_dir) / PER_USER_FILE)
    metrics.update(
        {
            "ranked_users": len(protocol.users),
            "fit_seconds": time.perf_counter() - started,
            "seconds_to_best": math.nan,  # no epochs: nothing is chosen
            "seconds_per_epoch": math.nan,
            "epochs": 0,
            "parameters": 0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )
    width = max(len(k) for k in metrics)
    print("\n".join(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                    for k, v in metrics.items()))  # fmt: skip
    path = Path(cfg.paths.output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2))
    return metrics
