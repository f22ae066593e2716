"""`Recommender`: top-K movies for users of a trained model, in original ids.

    rec = Recommender.load("<mlflow run id | bundle folder | checkpoint>")
    rec.recommend([1, 2, 3], k=10)                      # one DataFrame, 10 rows per user
    rec.recommend([999999], k=10, fallback="popular")   # unknown user → popularity
    rec.recommend_new_user({1: 5.0, 260: 4.5}, k=10)    # a user given at request time

The graph is encoded once per loaded model; each block of users is scored against every
movie in one decoder call. Rows are ranked by the unclamped predicted rating; `rating`
is the prediction clamped to the rating scale. A ranking-only model (one that predicts no
ratings, e.g. LightGCN) has no stars to show: its rows have `rating` NaN and carry the
model's ranking `score` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from movierec.errors import ConfigError, DataError
from movierec.ranking.scoring import user_chunks
from movierec.serving.bundle import TrainedModel
from movierec.serving.cold_start import embed_new_user

FALLBACKS = ("popular",)
COLUMNS = ["userId", "rank", "movieId", "title", "genres", "rating", "source"]


class UnknownUserError(DataError):
    """Recommendations were asked for users the model was not trained with."""


class Recommender:
    """Recommendations from one loaded `TrainedModel`.

    Args:
        model: the loaded model.
        source: how to name the model in messages (e.g. "run 3f2a…").
    """

    def __init__(self, model: TrainedModel, source: str = "the model") -> None:
        self.model = model
        self.source = source
        labels = model.movies["genres"].fillna("").str.split("|")
        self._genres = sorted({g for row in labels for g in row if g})
        self._movie_genres = labels
        # the columns a result row shows, as arrays: a request then builds one small frame
        self._movie_ids = model.movies["movieId"].to_numpy().astype(np.int64)
        self._titles = model.movies["title"].to_numpy()
        self._genre_names = model.movies["genres"].to_numpy()
        self._user_ids = model.users["userId"].to_numpy()

    @classmethod
    def load(cls, run: str, tracking_uri: str | None = None) -> Recommender:
        """Load from an MLflow run id (via `tracking_uri`), a bundle folder or a checkpoint."""
        from movierec.serving.loading import load_trained_model

        model, source = load_trained_model(run, tracking_uri)
        return cls(model, source)

    @property
    def genres(self) -> list[str]:
        return self._genres

    def recommend(
        self,
        user_ids: Iterable[int] | int,
        k: int = 10,
        *,
        exclude_rated: bool = True,
        genre: str | Iterable[str] | None = None,
        fallback: str | None = None,
    ) -> pd.DataFrame:
        """Top-`k` movies for each user, in the order of `user_ids`.

        Args:
            user_ids: original userIds.
            k: movies per user (fewer when fewer movies are left).
            exclude_rated: leave out movies the user has rated (train, val and test).
            genre: keep only movies with this genre (or any of these genres).
            fallback: "popular" to answer users the model does not know with the
                popularity baseline (`movierec.ranking.popularity`); None refuses them.

        Returns:
            `COLUMNS`: userId, rank (1..k), movieId, title, genres, rating (stars),
            source ("model" or "popular"); for a ranking-only model also `score` (its
            ranking score, not stars), with `rating` NaN on its rows.
        """
        _check_k(k)
        if fallback is not None and fallback not in FALLBACKS:
            raise ConfigError(
                f"fallback={fallback!r} is not valid; expected one of null, {', '.join(FALLBACKS)}"
            )
        ids = np.array(list(dict.fromkeys(_as_ids(user_ids, "userId").tolist())), dtype=np.int64)
        known = self.model.known_users(ids)
        if not known.all() and fallback is None:
            raise UnknownUserError(self._unknown_message(ids[~known]))
        allowed = self._genre_mask(genre)
        frames = []
        known_ids = ids[known]
        if len(known_ids):
            users = torch.from_numpy(self.model.user_index(known_ids))
            for chunk in user_chunks(users, self.model.n_movies):
                scores = self.model.score_users(chunk)
                excluded = self.model.rated.mask(chunk) if exclude_rated else None
                frames.append(self._top(chunk, scores, excluded, allowed, k, "model"))
        if not known.all():
            unknown = np.unique(ids[~known])
            scores = self.model.popularity.scorer()(unknown)
            rating = self.model.popularity.rating.expand(len(unknown), -1)
            frames.append(self._top(unknown, scores, None, allowed, k, "popular", rating))
        if known.all() and frames:
            # the chunks follow `ids` and each chunk's rows go user by user, then by rank
            return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        result = pd.concat(frames, ignore_index=True) if frames else _empty()
        order = {uid: i for i, uid in enumerate(ids.tolist())}
        result = result.sort_values(
            ["userId", "rank"], key=lambda c: c.map(order) if c.name == "userId" else c
        )
        return result.reset_index(drop=True)

    def iter_all_users(
        self,
        k: int = 10,
        *,
        exclude_rated: bool = True,
        genre: str | Iterable[str] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Top-`k` of every known user, one block of users at a time (`COLUMNS`)."""
        _check_k(k)
        allowed = self._genre_mask(genre)
        users = torch.arange(self.model.n_users)
        for chunk in user_chunks(users, self.model.n_movies):
            scores = self.model.score_users(chunk)
            excluded = self.model.rated.mask(chunk) if exclude_rated else None
            yield self._top(chunk, scores, excluded, allowed, k, "model")

    def recommend_new_user(
        self,
        ratings: Mapping[int, float] | pd.DataFrame,
        k: int = 10,
        *,
        exclude_rated: bool = True,
        genre: str | Iterable[str] | None = None,
        user_id: int = -1,
    ) -> pd.DataFrame:
        """Top-`k` movies for a user the model has not seen, from the ratings given now.

        Args:
            ratings: movieId → stars, or a frame with movieId and rating columns.
            user_id: the userId written into the result.
            k, exclude_rated, genre: as in `recommend` (rated = the given movies).

        Raises:
            ColdStartUnsupported: the model cannot embed new users (see `cold_start`).
        """
        _check_k(k)
        if isinstance(ratings, pd.DataFrame):
            movie_ids, stars = ratings["movieId"].to_numpy(), ratings["rating"].to_numpy()
        else:
            movie_ids, stars = np.array(list(ratings.keys())), np.array(list(ratings.values()))
        if len(movie_ids) == 0:
            raise DataError("a new user needs at least one rating (movieId → stars)")
        movies = torch.from_numpy(self.model.movie_index(_as_ids(movie_ids, "movieId")))
        stars_t = torch.as_tensor(np.asarray(stars, dtype=np.float32))
        low, high = self.model.rating_scale
        outside = (stars_t < low) | (stars_t > high) | ~torch.isfinite(stars_t)
        if outside.any():
            shown = ", ".join(f"{s:g}" for s in stars_t[outside].tolist()[:5])
            raise DataError(f"ratings must be within {low:g}–{high:g} stars, got {shown}")
        module = self.model.module
        with torch.no_grad():
            embeddings, user = embed_new_user(
                module.net, module.graph, self.model.embeddings, movies, stars_t
            )
            scores = module.net.score_users(embeddings, torch.tensor([user]))
        excluded = None
        if exclude_rated:
            excluded = torch.zeros(1, self.model.n_movies, dtype=torch.bool)
            excluded[0, movies] = True
        ids = np.array([user_id], dtype=np.int64)
        return self._top(ids, scores, excluded, self._genre_mask(genre), k, "new_user")

    # ------------------------------------------------------------------ helpers

    def _top(
        self,
        users: torch.Tensor | np.ndarray,
        scores: torch.Tensor,
        excluded: torch.Tensor | None,
        allowed: torch.Tensor | None,
        k: int,
        source: str,
        rating: torch.Tensor | None = None,
    ) -> pd.DataFrame:
        """Rows of the k best-scored candidates of each row of `scores` (B, n_movies)."""
        scores = scores.float()
        if excluded is not None:
            scores = scores.masked_fill(excluded, -torch.inf)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, -torch.inf)
        values, movies = scores.topk(min(k, scores.shape[1]), dim=1)
        # a ranking-only model's score orders movies but is no rating: show it as a score
        ranks_only = rating is None and not self.model.predicts_ratings
        if ranks_only:
            shown = torch.full_like(values, torch.nan)
        else:
            shown = rating.gather(1, movies) if rating is not None else values
            shown = self.model.clamp(shown)
        keep = torch.isfinite(values)  # fewer than k candidates left
        row, col = torch.nonzero(keep, as_tuple=True)
        movie_index = movies[row, col].numpy()
        if isinstance(users, torch.Tensor):  # model users: indices → userIds
            user_ids = self._user_ids[users.numpy()]
        else:
            user_ids = np.asarray(users)
        frame = pd.DataFrame(
            {
                "userId": user_ids[row.numpy()].astype(np.int64),
                "rank": col.numpy().astype(np.int64) + 1,
                "movieId": self._movie_ids[movie_index],
                "title": self._titles[movie_index],
                "genres": self._genre_names[movie_index],
                "rating": shown[row, col].double().numpy(),
                "source": source,
            }
        )
        if ranks_only:
            frame["score"] = values[row, col].double().numpy()
        return frame

    def _genre_mask(self, genre: str | Iterable[str] | None) -> torch.Tensor | None:
        """(1, n_movies) bool of movies with any of the genres; None = no filter."""
        if genre is None:
            return None
        wanted = [genre] if isinstance(genre, str) else list(genre)
        by_lower = {g.lower(): g for g in self._genres}
        unknown = [g for g in wanted if str(g).lower() not in by_lower]
        if unknown or not wanted:
            raise DataError(
                f"unknown genre(s) {', '.join(map(str, unknown)) or '(none given)'}; "
                f"expected any of {', '.join(self._genres)}"
            )
        names = {by_lower[str(g).lower()] for g in wanted}
        keep = [bool(names.intersection(row)) for row in self._movie_genres]
        return torch.tensor(keep).unsqueeze(0)

    def _unknown_message(self, unknown: np.ndarray) -> str:
        shown = ", ".join(str(u) for u in np.unique(unknown)[:10])
        verb = "is" if len(np.unique(unknown)) == 1 else "are"
        return (
            f"user_id={shown} {verb} not in the training data of {self.source} "
            f"({self.model.n_users:,} users); use fallback=popular to recommend the most "
            "popular movies instead"
        )


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k={k!r}: expected an integer ≥ 1")


def _as_ids(values, column: str) -> np.ndarray:
    array = np.atleast_1d(np.asarray(values))
    try:
        ids = array.astype(np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{column} values must be integers, got {list(array[:5])}") from None
    if not np.array_equal(ids, array.astype(np.float64)):
        raise DataError(f"{column} values must be integers, got {list(array[:5])}")
    return ids


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
