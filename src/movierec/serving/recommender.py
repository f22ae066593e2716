"""`Recommender`: top-K movies for users of a trained model, in original ids.

    rec = Recommender.load("<mlflow run id | bundle folder | checkpoint>")
    rec.recommend([1, 2, 3], k=10)                      # one DataFrame, 10 rows per user
    rec.recommend([999999], k=10, fallback="popular")   # unknown user → popularity
    rec.recommend_new_user({1: 5.0, 260: 4.5}, k=10)    # a user given at request time

The graph is encoded once per loaded model (a bundle stores it encoded); each block of
users is scored against every movie in one decoder call. Ranking is NumPy: a known user of
a bundle with scoring tables is answered without importing torch. Rows are ranked by the
unclamped predicted rating (equal scores by movie index); `rating` is the prediction
clamped to the rating scale. A model with a ranking output of its own (`ranks_by_score`,
SAGE or GCN with `model.net.ranking=dot`) is ranked by that `score`, and its rows show
the predicted stars unclamped (no two tie at the top of the scale). A ranking-only model
(one that predicts no ratings, e.g. LightGCN) has no stars to show: its rows have
`rating` NaN and carry the model's ranking `score` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from movierec.checks import check_choice
from movierec.errors import ConfigError, DataError
from movierec.ranking.scoring import user_chunks
from movierec.serving.bundle import TrainedModel

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
            ranking score, not stars), with `rating` NaN on its rows; for a model with a
            ranking output also `score`, with `rating` its unclamped stars.
        """
        _check_k(k)
        check_choice("fallback", fallback, (None, *FALLBACKS))
        ids = np.array(list(dict.fromkeys(_as_ids(user_ids, "userId").tolist())), dtype=np.int64)
        known = self.model.known_users(ids)
        if not known.all() and fallback is None:
            raise UnknownUserError(self._unknown_message(ids[~known]))
        allowed = self._genre_mask(genre)
        frames = []
        known_ids = ids[known]
        if len(known_ids):
            users = self.model.user_index(known_ids)
            for chunk in user_chunks(users, self.model.n_movies):
                frames.append(self._top_of_users(chunk, exclude_rated, allowed, k))
        if not known.all():
            unknown = np.unique(ids[~known])
            popularity, shape = self.model.popularity, (len(unknown), self.model.n_movies)
            scores = np.broadcast_to(popularity.score.numpy(), shape)
            rating = np.broadcast_to(popularity.rating.numpy(), shape)
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
        users = np.arange(self.model.n_users)
        for chunk in user_chunks(users, self.model.n_movies):
            yield self._top_of_users(chunk, exclude_rated, allowed, k)

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
        import torch  # the network's encoder runs: torch is needed here, not before

        from movierec.serving.cold_start import embed_new_user

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
            scores = module.net.score_users(embeddings, torch.tensor([user])).float().numpy()

        def rate(top: np.ndarray) -> np.ndarray:
            pair_users = np.full(top.size, user, dtype=np.int64)
            stars = self.model.rate_pairs(pair_users, top.ravel(), embeddings)
            return stars.reshape(top.shape)

        excluded = None
        if exclude_rated:
            excluded = np.zeros((1, self.model.n_movies), dtype=bool)
            excluded[0, movies.numpy()] = True
        ids = np.array([user_id], dtype=np.int64)
        allowed = self._genre_mask(genre)
        return self._top(ids, scores, excluded, allowed, k, "new_user", rate=rate)

    # ------------------------------------------------------------------ helpers

    def _top_of_users(
        self, users: np.ndarray, exclude_rated: bool, allowed: np.ndarray | None, k: int
    ) -> pd.DataFrame:
        """`_top` of model users (indices (B,)) scored by the model."""
        scores = self.model.score_users(users)
        excluded = self.model.rated.mask(users) if exclude_rated else None

        def rate(movies: np.ndarray) -> np.ndarray:
            pair_users = np.repeat(users, movies.shape[1])
            return self.model.rate_pairs(pair_users, movies.ravel()).reshape(movies.shape)

        return self._top(self._user_ids[users], scores, excluded, allowed, k, "model", rate=rate)

    def _top(
        self,
        user_ids: np.ndarray,
        scores: np.ndarray,
        excluded: np.ndarray | None,
        allowed: np.ndarray | None,
        k: int,
        source: str,
        rating: np.ndarray | None = None,
        rate: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> pd.DataFrame:
        """Rows of the k best-scored candidates of each row of `scores` (B, n_movies).

        Args:
            user_ids: (B,) the userId each row is written with.
            excluded: (B, n_movies) bool of movies left out, or None.
            allowed: (n_movies,) bool of movies kept (a genre filter), or None.
            rating: (B, n_movies) stars shown in place of the scores (the fallback's).
            rate: the model's unclamped stars of each row's movies (B, k) → (B, k), for a
                model that ranks by a score of its own (`ranks_by_score`).
        """
        scores = np.array(scores, dtype=np.float32)  # a copy: the masks write into it
        if excluded is not None:
            scores[excluded] = -np.inf
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        values, movies = _top_k(scores, k)
        # a ranking-only model's score orders movies but is no rating: show it as a score
        ranks_only = rating is None and not self.model.predicts_ratings
        two_outputs = rating is None and rate is not None and self.model.ranks_by_score
        if ranks_only:
            shown = np.full(values.shape, np.nan)
        elif two_outputs:  # stars unclamped: the top of the list does not tie at the scale's end
            shown = rate(movies)
        else:
            shown = np.take_along_axis(rating, movies, 1) if rating is not None else values
            shown = self.model.clamp(shown)
        row, col = np.nonzero(np.isfinite(values))  # fewer than k candidates left
        movie_index = movies[row, col]
        frame = pd.DataFrame(
            {
                "userId": np.asarray(user_ids)[row].astype(np.int64),
                "rank": col.astype(np.int64) + 1,
                "movieId": self._movie_ids[movie_index],
                "title": self._titles[movie_index],
                "genres": self._genre_names[movie_index],
                "rating": shown[row, col].astype(np.float64),
                "source": source,
            }
        )
        if ranks_only or two_outputs:
            frame["score"] = values[row, col].astype(np.float64)
        return frame

    def _genre_mask(self, genre: str | Iterable[str] | None) -> np.ndarray | None:
        """(n_movies,) bool of movies with any of the genres; None = no filter."""
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
        return np.array([bool(names.intersection(row)) for row in self._movie_genres])

    def _unknown_message(self, unknown: np.ndarray) -> str:
        shown = ", ".join(str(u) for u in np.unique(unknown)[:10])
        verb = "is" if len(np.unique(unknown)) == 1 else "are"
        return (
            f"user_id={shown} {verb} not in the training data of {self.source} "
            f"({self.model.n_users:,} users); use fallback=popular to recommend the most "
            "popular movies instead"
        )


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` largest of each row of `scores` (B, M), best first, and their columns:
    (B, min(k, M)) values and int64 columns. Equal scores rank by column."""
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        columns = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        columns = np.broadcast_to(np.arange(k), scores.shape)
    values = np.take_along_axis(scores, columns, 1)
    order = np.lexsort((columns, -values), axis=1)
    return np.take_along_axis(values, order, 1), np.take_along_axis(columns, order, 1)


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
