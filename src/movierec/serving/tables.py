"""A bundle's NumPy files: the scoring tables and every user's rated movies.

    scoring.npz   user (n_users, d) and movie (n_movies, d) float32 node tables, encoded
                  once on the training graph in eval mode; the network's scoring head as
                  `spec` (JSON) and `state/<name>` weights; rating_scale (2,);
                  predicts_ratings; network (its class name, for messages)
    rated.npz     offsets (n_users + 1,) int64 and movies (nnz,) int32: the movies each
                  user rated in training, validation and test, user by user

Both are read with NumPy alone (`allow_pickle=False`), so a known user is ranked and
rated without importing torch (`serving.numpy_heads` says why). `serving.snapshot`
writes scoring.npz from a trained network; `serving.bundle` writes rated.npz.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movierec.errors import DataError
from movierec.serving.numpy_heads import NumpyHead

SCORING = "scoring.npz"
RATED = "rated.npz"
STATE = "state/"


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """`np.savez` to a temporary name renamed over `path`: a reader never finds half."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as file:
        np.savez(file, **arrays)
    partial.replace(path)


def read_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Every array of `path` (each checked present in `names`); a missing or damaged file
    is a `DataError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        missing = [name for name in names if name not in arrays]
        if missing:
            raise KeyError(f"no array {', '.join(missing)}")
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise damaged(path, err) from None
    return arrays


def damaged(path: Path, err: BaseException) -> DataError:
    """The one-line error for a bundle file that is missing or cannot be read."""
    reason = " ".join(str(err).split())[:200]
    return DataError(
        f"bundle file {path} is missing or damaged ({reason}); download the model again "
        "(e.g. `mlflow artifacts download`) or retrain it"
    )


def write_scoring(
    path: Path,
    *,
    user: np.ndarray,
    movie: np.ndarray,
    spec: Mapping[str, Any],
    state: Mapping[str, np.ndarray],
    rating_scale: tuple[float, float],
    predicts_ratings: bool,
    network: str,
) -> None:
    """Write scoring.npz (see the module docstring)."""
    arrays = {
        "user": np.ascontiguousarray(user, dtype=np.float32),
        "movie": np.ascontiguousarray(movie, dtype=np.float32),
        "spec": np.array(json.dumps(dict(spec))),
        "rating_scale": np.array(rating_scale, dtype=np.float64),
        "predicts_ratings": np.array(bool(predicts_ratings)),
        "network": np.array(str(network)),
    }
    arrays.update({f"{STATE}{name}": np.asarray(value) for name, value in state.items()})
    write_npz(path, arrays)


@dataclass
class ScoringTables:
    """Encoded tables and the head that scores them, in NumPy.

    Attributes:
        user, movie: (n_users, d) and (n_movies, d) float32 node tables.
        head: the network's scoring head.
        rating_scale: (lowest, highest) stars; predictions are clamped to it.
        predicts_ratings: whether the head's score is in stars (False: a ranking score).
        network: the network's class name, for messages.
    """

    user: np.ndarray
    movie: np.ndarray
    head: NumpyHead
    rating_scale: tuple[float, float]
    predicts_ratings: bool
    network: str

    @classmethod
    def load(cls, path: Path) -> ScoringTables:
        names = ("user", "movie", "spec", "rating_scale", "predicts_ratings", "network")
        arrays = read_npz(path, names)
        state = {k[len(STATE) :]: v for k, v in arrays.items() if k.startswith(STATE)}
        try:
            head = NumpyHead(json.loads(str(arrays["spec"])), state)
        except (json.JSONDecodeError, DataError) as err:
            raise DataError(f"bundle file {path}: {err}") from None
        low, high = (float(v) for v in arrays["rating_scale"])
        return cls(
            arrays["user"],
            arrays["movie"],
            head,
            (low, high),
            bool(arrays["predicts_ratings"]),
            str(arrays["network"]),
        )

    @property
    def ranks_by_score(self) -> bool:
        """Whether the head ranks by a score distinct from its rating (a second output)."""
        return self.head.ranks_by_score

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Unclamped scores the network ranks by, of every movie for user indices (B,):
        (B, n_movies) float32."""
        return self.head.score_grid(self.user, self.movie, users)

    def score_pairs(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """Unclamped ratings (a ranking-only head: scores) of the (user, movie) index pairs:
        (B,) float32."""
        return self.head.score_pairs(self.user, self.movie, users, movies)


@dataclass(frozen=True)
class RatedMovies:
    """Movies of user u are `movies[offsets[u]:offsets[u + 1]]` (rated.npz).

    Attributes:
        offsets: (n_users + 1,) int64, non-decreasing.
        movies: (nnz,) int32 movie indices, grouped by user.
        n_movies: the width of `mask`.
    """

    offsets: np.ndarray
    movies: np.ndarray
    n_movies: int

    @classmethod
    def from_pairs(
        cls, user: np.ndarray, movie: np.ndarray, n_users: int, n_movies: int
    ) -> RatedMovies:
        """From (N,) user and movie index arrays (duplicates are harmless)."""
        user = np.asarray(user, dtype=np.int64)
        order = np.argsort(user, kind="stable")
        offsets = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(user, minlength=n_users), out=offsets[1:])
        return cls(offsets, np.asarray(movie, dtype=np.int32)[order], n_movies)

    def mask(self, users: np.ndarray) -> np.ndarray:
        """(B, n_movies) bool: True where user `users[i]` rated the movie."""
        users = np.asarray(users, dtype=np.int64)
        starts, ends = self.offsets[users], self.offsets[users + 1]
        counts = ends - starts
        rows = np.repeat(np.arange(len(users)), counts)
        positions = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        result = np.zeros((len(users), self.n_movies), dtype=bool)
        result[rows, self.movies[np.repeat(starts, counts) + positions]] = True
        return result

    def save(self, path: Path) -> None:
        arrays = {"offsets": self.offsets, "movies": self.movies}
        write_npz(path, {**arrays, "n_movies": np.array(self.n_movies)})

    @classmethod
    def load(cls, path: Path) -> RatedMovies:
        arrays = read_npz(path, ("offsets", "movies", "n_movies"))
        return cls(arrays["offsets"], arrays["movies"], int(arrays["n_movies"]))
