"""The recommend task: load a trained model once, print top-K movies, optionally as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from movierec.errors import ConfigError
from movierec.serving.recommender import Recommender

TITLE_WIDTH = 60


def recommend(cfg: DictConfig) -> pd.DataFrame:
    """Recommendations for `cfg.user_id` (or a new user's `cfg.ratings`); print them."""
    try:
        run = str(cfg.run_id)
    except MissingMandatoryValue:
        raise ConfigError(
            "model must be set (model= or run_id=): an MLflow run id, "
            "models:/<name>@champion, a bundle folder or a checkpoint"
        ) from None
    user_id, ratings = _plain(cfg.get("user_id")), _plain(cfg.get("ratings"))
    if user_id is None and not ratings:
        raise ConfigError("user_id must be set (or ratings=[[movieId,stars],...] for a new user)")
    options = {
        "exclude_rated": bool(cfg.get("exclude_rated", True)),
        "genre": _plain(cfg.get("genre")),
    }
    recommender = Recommender.load(run, cfg.get("tracking_uri"))
    if user_id == "all":
        return export_all(recommender, cfg, options)
    if ratings:
        frame = _for_new_user(recommender, user_id, ratings, int(cfg.k), options)
    else:
        frame = recommender.recommend(user_id, int(cfg.k), fallback=cfg.get("fallback"), **options)
    print(format_recommendations(frame, recommender))
    if cfg.get("json"):
        path = Path(to_absolute_path(str(cfg.json)))
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"run": recommender.source, "k": int(cfg.k), **options}
        payload["recommendations"] = frame.to_dict(orient="records")
        path.write_text(json.dumps(payload, indent=2))
        print(f"written to {path}")
    return frame


def export_all(recommender: Recommender, cfg: DictConfig, options: dict) -> pd.DataFrame:
    """Top-k of every user to `cfg.out` (Parquet), written block by block: memory stays
    bounded by one block of users whatever the user count. Returns the first block."""
    import pyarrow as pa  # here: one user's answer writes no Parquet and shows no bar
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    if not cfg.get("out"):
        raise ConfigError("user_id=all writes every user's top k to a file: set out=recs.parquet")
    path = Path(to_absolute_path(str(cfg.out)))
    if path.suffix not in (".parquet", ".pq"):
        raise ConfigError(f"out={cfg.out}: user_id=all writes Parquet; name a .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")  # renamed into place once complete
    first, rows = None, 0
    blocks = recommender.iter_all_users(int(cfg.k), **options)
    with tqdm(total=recommender.model.n_users, unit="user", desc="recommend") as bar:
        writer = None
        try:
            for frame in blocks:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(partial, table.schema)
                    first = frame
                writer.write_table(table)
                rows += len(frame)
                bar.update(frame["userId"].nunique())
        finally:
            if writer is not None:
                writer.close()
    partial.replace(path)
    print(f"top {cfg.k} for {recommender.model.n_users:,} users ({rows:,} rows) written to {path}")
    return first if first is not None else pd.DataFrame()


def format_recommendations(frame: pd.DataFrame, recommender: Recommender) -> str:
    """A table per user: rank, movieId, predicted rating (or, for a ranking-only model,
    its ranking score; for a model with a ranking output, both), title, genres."""
    blocks = []
    for user_id, rows in frame.groupby("userId", sort=False):
        source = rows["source"].iloc[0]
        # a ranking-only model predicts no stars: show its score, and say it is one
        scored = "score" in rows and rows["rating"].isna().all()
        columns = ["score"] if scored else ["rating"]
        if "score" in rows and not scored:  # ranked by its own score, rated in stars
            columns.append("score")
        if source == "popular":
            head = (
                f"userId {user_id} is not in the training data: the {len(rows)} most popular "
                "movies (rating = damped mean rating)"
            )
        else:
            who = "a new user" if source == "new_user" else f"userId {user_id}"
            head = f"top {len(rows)} for {who} from {recommender.source}"
            if scored:
                head += " (score: the model's ranking score, not stars; it predicts no ratings)"
            elif len(columns) == 2:
                head += " (ranked by score, the model's ranking output; rating: predicted stars)"
        digits = {name: _distinct_digits(rows[name].to_numpy()) for name in columns}
        cells = "  ".join(f"{name:>{digits[name] + 4}}" for name in columns)
        lines = [head, f"{'rank':>4}  {'movieId':>7}  {cells}  {'title':<{TITLE_WIDTH}}  genres"]
        for row in rows.itertuples(index=False):
            title = (
                row.title if len(row.title) <= TITLE_WIDTH else row.title[: TITLE_WIDTH - 1] + "…"
            )
            values = "  ".join(
                f"{getattr(row, name):>{digits[name] + 4}.{digits[name]}f}" for name in columns
            )
            lines.append(
                f"{row.rank:>4}  {row.movieId:>7}  {values}  {title:<{TITLE_WIDTH}}  {row.genres}"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no movies left to recommend"


def _distinct_digits(values: np.ndarray, most: int = 4) -> int:
    """Decimals (2 to `most`) at which distinct `values` print distinct."""
    distinct = len(np.unique(values))
    for digits in range(2, most):
        if len(np.unique(np.round(values, digits))) == distinct:
            return digits
    return most


def _for_new_user(
    recommender: Recommender, user_id, ratings, k: int, options: dict
) -> pd.DataFrame:
    if user_id is not None and recommender.model.known_users([user_id]).all():
        raise ConfigError(
            f"user_id={user_id} is in the training data; ratings= is for a user the model has "
            "not seen (leave user_id unset)"
        )
    try:
        given = {int(movie): float(stars) for movie, stars in ratings}
    except (TypeError, ValueError):
        raise ConfigError(
            f"ratings={ratings!r}: expected [[movieId, stars], ...], e.g. ratings=[[1,5],[260,4.5]]"
        ) from None
    return recommender.recommend_new_user(
        given, k, user_id=int(user_id) if user_id is not None else -1, **options
    )


def _plain(value):
    if isinstance(value, (ListConfig, DictConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
