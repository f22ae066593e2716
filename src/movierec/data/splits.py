"""Train/validation/test splits of the ratings: random, k-fold, canonical ml-100k, temporal,
new users (cold_start).

A split assigns each rating row of a `RatingsData` to train, val or test. Splits depend
only on the data and their settings (seeded numpy generators), so every DDP rank and
every rerun computes the same assignment.

Cold start: a val/test rating whose user or movie has no training rating is "cold".
`cold_start="keep"` (default) evaluates them anyway (models fall back to features, biases
and untrained embeddings), `cold_start="drop"` removes them; either way they are counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold

from movierec.checks import check_choice
from movierec.data.processed import RatingsData
from movierec.errors import ConfigError, DataError

log = logging.getLogger(__name__)

COLD_START_POLICIES = ("keep", "drop")
TEMPORAL_MODES = ("global", "per_user")


@dataclass(frozen=True)
class SplitIndices:
    """Row indices (int64, sorted) into `RatingsData.ratings` for each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    report: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass(frozen=True)
class Split:
    """Base of all splits; subclasses implement `_assign`."""

    val_fraction: float = 0.1
    cold_start: str = "keep"
    seed: int = 0

    name = "split"
    fold: int | str | None = None

    def __post_init__(self) -> None:
        _check_fraction("split.val_fraction", self.val_fraction)
        check_choice("split.cold_start", self.cold_start, COLD_START_POLICIES)

    @property
    def folds(self) -> list[int]:
        """Folds `fold=all` runs; one (None) for splits without folds."""
        return [self.fold] if isinstance(self.fold, int) else []

    def assign(self, data: RatingsData) -> SplitIndices:
        """Assign every rating of `data`; apply and report the cold-start policy."""
        train, val, test = (_sorted(rows, data.n_ratings) for rows in self._assign(data))
        report: dict[str, int] = {}
        users = data.ratings["user"].to_numpy()
        movies = data.ratings["movie"].to_numpy()
        seen_users = np.zeros(data.n_users, dtype=bool)
        seen_movies = np.zeros(data.n_movies, dtype=bool)
        seen_users[users[train]] = True
        seen_movies[movies[train]] = True
        parts = {"val": val, "test": test}
        for part, rows in parts.items():
            cold_user = ~seen_users[users[rows]]
            cold_movie = ~seen_movies[movies[rows]]
            cold = cold_user | cold_movie
            report[f"{part}_cold_user_ratings"] = int(cold_user.sum())
            report[f"{part}_cold_movie_ratings"] = int(cold_movie.sum())
            if self.cold_start == "drop":
                parts[part] = rows[~cold]
                report[f"{part}_cold_dropped"] = int(cold.sum())
        log.info("split %s: %s", self.describe(), report)
        return SplitIndices(train, parts["val"], parts["test"], report)

    def describe(self) -> str:
        return self.name if self.fold is None else f"{self.name}/fold{self.fold}"

    def _assign(self, data: RatingsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _carve_val(self, rows: np.ndarray, salt: int) -> tuple[np.ndarray, np.ndarray]:
        """Split `rows` into (train, val) with `val_fraction` of them in val, seeded."""
        rng = np.random.default_rng([self.seed, salt])
        shuffled = rng.permutation(rows)
        n_val = int(round(len(rows) * self.val_fraction))
        return shuffled[n_val:], shuffled[:n_val]


@dataclass(frozen=True)
class RandomSplit(Split):
    """Seeded random split with `val_fraction` and `test_fraction` of the ratings."""

    test_fraction: float = 0.1
    name = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction("split.test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"split.val_fraction + split.test_fraction = "
                f"{self.val_fraction + self.test_fraction:g}; expected < 1"
            )

    def _assign(self, data: RatingsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.random.default_rng(self.seed).permutation(data.n_ratings)
        n_test = int(round(data.n_ratings * self.test_fraction))
        n_val = int(round(data.n_ratings * self.val_fraction))
        return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


@dataclass(frozen=True)
class ColdStartSplit(Split):
    """New users: a seeded `user_fraction` of the users are held out entirely, every rating
    of theirs in test and none in train or val; the other users' ratings are split into
    train and val (`val_fraction` of them). The cold-start protocol
    (`movierec.ranking.cold_start`) then gives a model a few of each held-out user's
    ratings and ranks the rest."""

    user_fraction: float = 0.1
    name = "cold_start"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction("split.user_fraction", self.user_fraction)
        if self.user_fraction <= 0:
            raise ConfigError(
                f"split.user_fraction={self.user_fraction!r}: expected a fraction in (0, 1) "
                "of the users to hold out"
            )

    def held_out_users(self, n_users: int) -> np.ndarray:
        """The held-out user indices, sorted (seeded by `seed`)."""
        n_held = max(1, int(round(n_users * self.user_fraction)))
        order = np.random.default_rng([self.seed, 7]).permutation(n_users)
        return np.sort(order[:n_held])

    def _assign(self, data: RatingsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        users = data.ratings["user"].to_numpy()
        held = np.isin(users, self.held_out_users(data.n_users))
        train, val = self._carve_val(np.flatnonzero(~held), salt=0)
        return train, val, np.flatnonzero(held)


@dataclass(frozen=True)
class KFoldSplit(Split):
    """Fold `fold` (1-based) of a seeded `n_folds`-fold split; val carved from the rest."""

    n_folds: int = 5
    fold: int | str = 1
    name = "kfold"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ConfigError(f"split.n_folds={self.n_folds!r}: expected an integer ≥ 2")
        _check_fold(self.fold, self.n_folds)

    @property
    def folds(self) -> list[int]:
        return list(range(1, self.n_folds + 1))

    def _assign(self, data: RatingsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kfold = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        rest, test = list(kfold.split(np.empty((data.n_ratings, 1))))[int(self.fold) - 1]
        train, val = self._carve_val(rest, salt=int(self.fold))
        return train, val, test


@dataclass(frozen=True)
class PredefinedSplit(Split):
    """ml-100k's canonical u{fold}.base / u{fold}.test; val carved from u{fold}.base."""

    fold: int | str = 1
    val_fraction: float = 0.05
    name = "predefined"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fold(self.fold, 5)

    @property
    def folds(self) -> list[int]:
        return [1, 2, 3, 4, 5]

    def _assign(self, data: RatingsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if "fold" not in data.ratings:
            raise ConfigError(
                f"split=predefined needs a dataset with canonical folds (data=ml_100k); "
                f"{data.name} has none — use split=kfold or split=random"
            )
        fold = data.ratings["fold"].to_numpy()
        is_test = fold == int(self.fold)
        train, val = self._carve_val(np.flatnonzero(~is_test), salt=int(self.fold))
        return train, val, np.flatnonzero(is_test)


@dataclass(frozen=True)
class TemporalSplit(Split):
    """Latest ratings are held out: globally (one time cut) or per user (each user's last)."""

    test_fraction: float = 0.1
    mode: str = "global"
    name = "temporal"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction("split.test_fraction", self.test_fraction)
        check_choice("split.mode", self.mode, TEMPORAL_MODES)

    def _assign(self, data: RatingsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not data.has_timestamps:
            raise DataError(f"split=temporal needs timestamps; {data.name} has none")
        time = data.ratings["timestamp"].to_numpy()
        rows = np.arange(data.n_ratings)
        if self.mode == "global":
            order = np.lexsort((rows, time))
            n_test = int(round(data.n_ratings * self.test_fraction))
            n_val = int(round(data.n_ratings * self.val_fraction))
            cut_test, cut_val = data.n_ratings - n_test, data.n_ratings - n_test - n_val
            return order[:cut_val], order[cut_val:cut_test], order[cut_test:]
        users = data.ratings["user"].to_numpy()
        order = np.lexsort((rows, time, users))
        counts = np.bincount(users, minlength=data.n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sorted_users = users[order]
        rank = np.arange(len(order)) - starts[sorted_users]  # position in the user's history
        per_user = counts[sorted_users]
        n_test = np.floor(per_user * self.test_fraction).astype(np.int64)
        n_val = np.floor(per_user * self.val_fraction).astype(np.int64)
        is_test = rank >= per_user - n_test
        is_val = ~is_test & (rank >= per_user - n_test - n_val)
        return order[~is_test & ~is_val], order[is_val], order[is_test]


def check_fit_parts(indices: SplitIndices, split: Split, data: str) -> None:
    """A training needs training ratings to fit and validation ratings to pick its best
    epoch: refuse a split that leaves either empty, in one line naming `data` and the
    split, before anything is built (Lightning's early stopping fails after an epoch)."""
    sizes = indices.sizes()
    empty = [
        name for part, name in (("train", "training"), ("val", "validation")) if not sizes[part]
    ]
    if empty:
        counts = ", ".join(f"{part} {count:,}" for part, count in sizes.items())
        raise DataError(
            f"{data}: split {split.describe()} leaves the {' and '.join(empty)} part empty "
            f"({counts} ratings); a training needs at least one rating in each, to fit and "
            f"to pick the best epoch: use more ratings or a larger split.val_fraction "
            f"(now {split.val_fraction:g})"
        )


def _sorted(rows: np.ndarray, n: int) -> np.ndarray:
    """Distinct row indices (k,) of n rows, sorted, in O(n): `np.sort` of a split's part."""
    chosen = np.zeros(n, dtype=bool)
    chosen[rows] = True
    return np.flatnonzero(chosen)


def _check_fraction(key: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"{key}={value!r}: expected a fraction in [0, 1)")


def _check_fold(fold: int | str, n_folds: int) -> None:
    if fold == "all":
        raise ConfigError(
            "split.fold=all runs every fold from scripts/train.py; a single split needs "
            f"split.fold in 1..{n_folds}"
        )
    if not isinstance(fold, int) or not 1 <= fold <= n_folds:
        raise ConfigError(f"split.fold={fold!r}: expected an integer in 1..{n_folds} or 'all'")
