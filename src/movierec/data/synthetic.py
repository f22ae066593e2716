"""MovieLens-shaped synthetic data for scale benchmarks, where GroupLens's large sets are out of reach.

`generate_movielens_like` writes two files in the ml-latest / ml-25m CSV layout, rows sorted by
userId then movieId like GroupLens's:

    ratings.csv  userId,movieId,rating,timestamp  integer ids; rating in stars, 0.5..5.0 in 0.5
                 steps, written "4.0"; timestamp in unix seconds, 1995-01-09..2023-11-14
    movies.csv   movieId,title,genres  every movie, rated or not; sparse ids (gaps, like
                 MovieLens); title "Synthetic Movie 17 (1998)"; genres "|"-joined ml-25m labels

Shape follows MovieLens: each user rates at least 20 movies when n_ratings/n_users allows, with
a lognormal tail above that; movie popularity is Zipf (exponent 1) with an exponential cutoff,
so the top movies reach about half the users and the tail a handful or nobody. A rating is user
bias + movie bias + a rank-8 user·movie term + noise, rounded to whole stars by some users and
half stars by others (mean ≈ 3.5, std ≈ 1.05), so a recommender has real structure to learn.
"""

from __future__ import annotations

import calendar
import csv
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from movierec.errors import ConfigError

FILES = ("ratings.csv", "movies.csv")
# ml-25m genre labels with the share of its movies carrying each.
GENRES = {"Action": .118, "Adventure": .066, "Animation": .047, "Children": .047, "Comedy": .27,
          "Crime": .085, "Documentary": .09, "Drama": .41, "Fantasy": .044, "Film-Noir": .006,
          "Horror": .096, "IMAX": .003, "Musical": .017, "Mystery": .047, "Romance": .124,
          "Sci-Fi": .058, "Thriller": .139, "War": .03, "Western": .022}  # fmt: skip
NO_GENRES, NO_GENRES_SHARE = "(no genres listed)", 0.005
MIN_USER_RATINGS = 20  # GroupLens keeps only users with >= 20 ratings
USER_SIGMA = 1.4  # lognormal tail: ml-25m has median 71, mean 154, max ~32k ratings per user
ZIPF_OFFSET, ZIPF_CUTOFF = 15.0, 4.5  # flattens the head / bends the tail as in ml-25m
RANK, FACTOR_STD, NOISE_STD, LATENT_MEAN = 8, 0.44, 0.72, 3.58
T_START, T_END = calendar.timegm((1995, 1, 9, 0, 0, 0)), calendar.timegm((2023, 11, 14, 0, 0, 0))
SAMPLING_ROUNDS = 6
GUMBEL_BLOCK = 1 << 22  # cells (users x movies) per block of the exact top-k fallback


def generate_movielens_like(
    out_dir: str | os.PathLike, *, n_users: int, n_movies: int, n_ratings: int, seed: int = 0
) -> Path:
    """Write `ratings.csv` (n_ratings rows) and `movies.csv` (n_movies rows) into `out_dir`.

    User ids are 1..n_users, each rating at least one movie; the (userId, movieId) pairs are
    unique. Output is byte-identical for the same arguments. The folder appears atomically (built
    beside it, then renamed); if it already holds both files it is returned as is.

    Raises:
        ConfigError: a size is not a positive integer, or n_ratings is outside
            [n_users, n_users * n_movies].
    """
    for name, value in (("n_users", n_users), ("n_movies", n_movies), ("n_ratings", n_ratings)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not n_users <= n_ratings <= n_users * n_movies:
        raise ConfigError(
            f"n_ratings={n_ratings} must lie in [n_users, n_users * n_movies] = "
            f"[{n_users}, {n_users * n_movies}] so every user rates >= 1 movie, each at most once"
        )
    out = Path(out_dir)
    if all((out / name).is_file() for name in FILES):
        return out
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"out_dir {out} exists without {' and '.join(FILES)}; remove it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write(staging, np.random.default_rng(seed), n_users, n_movies, n_ratings)
        try:
            os.replace(staging, out)
        except OSError:
            if not all((out / name).is_file() for name in FILES):
                raise
            # Another process finished the same folder first; same seed, same bytes.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write(folder: Path, rng: np.random.Generator, n_users: int, n_movies: int, n: int) -> None:
    movie_ids = np.cumsum(rng.geometric(0.3, n_movies))  # ml-25m: 62k movies, ids up to 209k
    rank = rng.permutation(n_movies)  # popularity unrelated to id
    pop = np.exp(-ZIPF_CUTOFF * rank / n_movies) / (rank + 1 + ZIPF_OFFSET)
    pop /= pop.sum()
    degrees = _user_degrees(rng, n_users, n_movies, n)
    keys = _sample_pairs(rng, degrees, pop)
    user, movie = keys // n_movies, keys % n_movies
    del keys

    # Popular movies rate a little higher, as in MovieLens.
    log_pop = np.log(pop)
    movie_bias = rng.normal(0, 0.35, n_movies) + 0.15 * (log_pop - log_pop.mean()) / log_pop.std()
    score = rng.normal(0, 0.55, n_users)[user] + movie_bias[movie]
    user_f = rng.normal(0, FACTOR_STD, (RANK, n_users)).astype(np.float32)
    movie_f = rng.normal(0, FACTOR_STD, (RANK, n_movies)).astype(np.float32)
    score = score.astype(np.float32)
    for k in range(RANK):
        score += user_f[k][user] * movie_f[k][movie]
    score += rng.standard_normal(n, dtype=np.float32) * np.float32(NOISE_STD)
    # Centre on the ratings actually drawn: they lean to popular, better-rated movies.
    score += np.float32(LATENT_MEAN - score.mean(dtype=np.float64))
    # Some users never give half stars (MovieLens added them only in 2003).
    step = np.where(rng.random(n_users) < 0.4, 2, 1).astype(np.float32)[user]
    halves = np.clip(np.rint(score * 2 / step) * step, step, 10).astype(np.int8)
    del score, step

    # Each user is active over a window; ratings advance through it with some shuffling.
    start = rng.uniform(T_START, T_END, n_users)
    span = np.minimum(rng.lognormal(math.log(7 * 86400), 2.0, n_users), T_END - start)
    first = np.cumsum(degrees) - degrees
    pos = np.arange(n, dtype=np.float64) - first[user]
    frac = np.clip((pos + 4 * rng.random(n) - 1.5) / degrees[user], 0.0, 1.0)
    timestamp = (start[user] + span[user] * frac).astype(np.int64)
    del pos, frac

    table = pa.table(
        {
            "userId": pa.array(user + 1),
            "movieId": pa.array(movie_ids[movie]),
            "rating": pa.array(halves * np.float32(0.5)).cast(pa.decimal128(2, 1)),
            "timestamp": pa.array(timestamp),
        }
    )
    del user, movie, halves, timestamp
    with pa.OSFile(str(folder / "ratings.csv"), "wb") as sink:
        # pyarrow would quote the header names; GroupLens's files do not.
        sink.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    _write_movies(folder / "movies.csv", rng, movie_ids)


def _write_movies(path: Path, rng: np.random.Generator, movie_ids: np.ndarray) -> None:
    n = len(movie_ids)
    share = np.array(list(GENRES.values()))
    flags = rng.random((n, len(GENRES))) < share
    bare = ~flags.any(axis=1)
    flags[bare, rng.choice(len(GENRES), bare.sum(), p=share / share.sum())] = True
    codes, inverse = np.unique(flags @ (1 << np.arange(len(GENRES))), return_inverse=True)
    labels = ["|".join(g for j, g in enumerate(GENRES) if c >> j & 1) for c in codes.tolist()]
    genres = np.array(labels, dtype=object)[inverse]
    genres[rng.random(n) < NO_GENRES_SHARE] = NO_GENRES
    years = np.clip(2024 - rng.exponential(16, n), 1902, 2023).astype(int)
    # Some titles carry MovieLens's trailing article, and with it a comma that must be quoted.
    article = np.where(rng.random(n) < 0.06, ", The", "")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("movieId", "title", "genres"))
        writer.writerows(
            (i, f"Synthetic Movie {i}{a} ({y})", g)
            for i, a, y, g in zip(movie_ids.tolist(), article, years.tolist(), genres)
        )


def _user_degrees(rng: np.random.Generator, n_users: int, n_movies: int, n: int) -> np.ndarray:
    floor = min(MIN_USER_RATINGS, n // n_users)
    weights = rng.lognormal(0.0, USER_SIGMA, n_users)
    return floor + _split(n - floor * n_users, weights, cap=n_movies - floor)


def _split(total: int, weights: np.ndarray, cap: int) -> np.ndarray:
    """Integers about proportional to `weights`, each <= cap, summing to `total` <= cap * len."""
    lo, hi = 0.0, cap / weights.min()
    for _ in range(100):  # bisect the water level t: sum(min(t * w, cap)) <= total
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(mid * weights, cap).sum() <= total else (lo, mid)
    share = np.minimum(lo * weights, cap)
    counts = share.astype(np.int64)
    order = np.argsort(counts - share, kind="stable")  # largest rounding loss first
    while (short := total - int(counts.sum())) > 0:
        grow = order[counts[order] < cap][:short]
        counts[grow] += 1
    return counts


def _sample_pairs(rng: np.random.Generator, degrees: np.ndarray, pop: np.ndarray) -> np.ndarray:
    """Sorted keys user * n_movies + movie; user u gets degrees[u] distinct movies, drawn in
    proportion to `pop` without replacement (successive sampling)."""
    n_users, n_movies = len(degrees), len(pop)
    cdf = np.cumsum(pop)
    cdf /= cdf[-1]
    need, covered, parts = degrees.copy(), np.zeros(n_users), []
    for round_ in range(SAMPLING_ROUNDS):
        if not need.any():
            break
        # Draws that repeat a user's movie are wasted, so oversample by the popularity mass the
        # user has left: heavy users, who already hold the popular movies, still fill up quickly.
        draws = np.ceil(need * (1.0 if round_ == 0 else 1.2) / np.maximum(1 - covered, 1e-3))
        users = np.repeat(np.arange(n_users), np.minimum(draws, 8 * n_movies).astype(np.int64))
        keys = users * n_movies + np.searchsorted(cdf, rng.random(users.size), "right")
        del users
        keys, first = np.unique(keys, return_index=True)
        fresh = np.ones(keys.size, bool)
        for part in parts:
            fresh &= ~_contains(part, keys)
        keys, first = keys[fresh], first[fresh]
        # Keep each user's first `need` new movies in draw order, as sequential draws would.
        order = np.argsort(first, kind="stable")
        user = keys[order] // n_movies
        rank = np.arange(keys.size) - (np.cumsum(np.bincount(user, minlength=n_users)) - np.bincount(user, minlength=n_users))[user]
        keep = np.empty(keys.size, bool)
        keep[order] = rank < need[user]
        keys = keys[keep]
        parts.append(keys)
        user, movie = keys // n_movies, keys % n_movies
        need -= np.bincount(user, minlength=n_users)
        covered += np.bincount(user, pop[movie], minlength=n_users)
        print(round_, len(keys), need.sum(), np.count_nonzero(need))
    short = np.flatnonzero(need)
    for block in np.array_split(short, math.ceil(short.size * n_movies / GUMBEL_BLOCK)) if short.size else []:
        # Gumbel top-k is sampling without replacement in proportion to pop.
        score = np.log(pop) + rng.gumbel(size=(block.size, n_movies))
        for part in parts:
            lo = np.searchsorted(part, block * n_movies)
            hi = np.searchsorted(part, (block + 1) * n_movies)
            score[np.repeat(np.arange(block.size), hi - lo), part[_ranges(lo, hi)] % n_movies] = -np.inf
        top = np.argsort(-score, axis=1, kind="stable")
        take = np.arange(n_movies) < need[block, None]
        parts.append(np.sort((block[:, None] * n_movies + top)[take]))
    keys = np.concatenate(parts)
    keys.sort()
    return keys


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of arange(lo[i], hi[i]) over i."""
    length = hi - lo
    return np.arange(length.sum()) + np.repeat(lo - (np.cumsum(length) - length), length)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[at] == keys
