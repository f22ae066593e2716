"""Both engines take the preprocessing steps in one order: the order `steps.run` calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data import steps
from movierec.data.preprocess import PandasEngine
from movierec.data.sources import DataSettings, FetchedSource, SideTables
from movierec.data.spark.engine import SparkEngine


@pytest.mark.parametrize("engine", [PandasEngine, SparkEngine])
def test_every_engine_implements_every_step(engine):
    assert issubclass(engine, steps.Engine)
    assert not engine.__abstractmethods__


class _Recording(steps.Engine):
    """Ratings of movies 10 and 99 (99 not in the movies file); records each step."""

    label = "recorded"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def read(self) -> int:
        self.calls.append("read")
        return 3

    def count_users(self) -> int:
        self.calls.append("count_users")
        return 2

    def check_ids(self) -> None:
        self.calls.append("check_ids")

    def check_scale(self, scale) -> None:
        self.calls.append("check_scale")

    def drop_duplicates(self) -> int:
        self.calls.append("drop_duplicates")
        return 1

    def movie_counts(self):
        self.calls.append("movie_counts")
        return np.array([10, 99]), np.array([1, 1])

    def drop_movies(self, movie_ids) -> None:
        self.calls.append(f"drop_movies {movie_ids.tolist()}")

    def user_ids(self):
        self.calls.append("user_ids")
        return np.array([1])

    def write(self, user_ids, movie_ids, folds) -> None:
        self.calls.append(f"write {movie_ids.tolist()}")


def test_run_takes_the_steps_in_order(monkeypatch):
    side = SideTables(movies=pd.DataFrame({"movieId": [10], "title": ["a"], "genres": ["Drama"]}))
    checked = []
    monkeypatch.setattr(steps, "read_side_tables", lambda *a: checked.append("side") or side)
    monkeypatch.setattr(steps.validation, "verify_counts", lambda *a, **k: checked.append(k))
    engine = _Recording()
    settings = DataSettings("ml_100k", missing_movies="drop")
    entry = steps.run(engine, settings, FetchedSource(files={}, checksum="abc"))
    assert engine.calls == [
        "read",
        "count_users",
        "check_ids",
        "check_scale",
        "drop_duplicates",
        "movie_counts",
        "drop_movies [99]",
        "user_ids",
        "write [10]",
    ]
    assert checked == ["side", {"ratings": 3, "users": 2, "catalog_movies": 1}]
    assert entry.meta["unknown_movies"] == 1 and entry.meta["n_ratings"] == 1
    assert entry.movies["movieId"].tolist() == [10] and entry.genres == ["Drama"]
