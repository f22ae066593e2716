"""MovieLens-shaped synthetic data for scale benchmarks, as GroupLens's big sets are out of reach.

`generate_movielens_like` writes two files in the ml-latest / ml-25m CSV layout:

    ratings.csv  userId,movieId,rating,timestamp  one row per (user, movie), sorted by userId
                 then movieId; ids are integers; rating in stars, 0.5..5.0 in 0.5 steps,
                 written "4.0"; timestamp in unix seconds, 1995-01-09..2023-11-14
    movies.csv   movieId,title,genres  every movie, rated or not; ids sparse like MovieLens's;
                 title "Synthetic Movie 17 (1998)"; genres "|"-joined ml-25m labels

The shape follows ml-25m: users rate at least 20 movies (when n_ratings / n_users allows) with a
lognormal tail above (median ≈ 70, mean ≈ 154 at 25M); movie popularity is Zipf (exponent 1)
with an exponential cutoff, so the top movie reaches about half the users and the tail a handful
or nobody. A rating is user bias + movie bias + a rank-8 user·movie term + noise, rounded to whole
or half stars by user (mean ≈ 3.5, std ≈ 1.05), so a recommender has structure to learn.
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
# ml-25m genre labels and the share of its movies carrying each.
GENRES = {"Action": .118, "Adventure": .066, "Animation": .047, "Children": .047, "Comedy": .27,
          "Crime": .085, "Documentary": .09, "Drama": .41, "Fantasy": .044, "Film-Noir": .006,
          "Horror": .096, "IMAX": .003, "Musical": .017, "Mystery": .047, "Romance": .124,
          "Sci-Fi": .058, "Thriller": .139, "War": .03, "Western": .022}  # fmt: skip
NO_GENRES, NO_GENRES_SHARE = "(no genres listed)", 0.005
MIN_USER_RATINGS, USER_SIGMA = 20, 1.4  # GroupLens drops users under 20 ratings
ZIPF_OFFSET, ZIPF_CUTOFF = 15.0, 4.5  # flatten the head and bend the tail as in ml-25m
RANK, FACTOR_STD, USER_STD, MOVIE_STD, NOISE_STD, LATENT_MEAN = 8, 0.44, 0.55, 0.35, 0.72, 3.58
WHOLE_STAR_USERS = 0.4
T_START, T_END = calendar.timegm((1995, 1, 9, 0, 0, 0)), calendar.timegm((2023, 11, 14, 0, 0, 0))
SAMPLING_ROUNDS = 6
GUMBEL_CELLS = 1 << 22  # users x movies scored at once when topping up by exact sampling


def generate_movielens_like(
    out_dir: str | os.PathLike, *, n_users: int, n_movies: int, n_ratings: int, seed: int = 0
) -> Path:
    """Write `ratings.csv` (n_ratings rows) and `movies.csv` (n_movies rows) into `out_dir`.

    User ids are 1..n_users and every user has at least one rating; (userId, movieId) pairs are
    unique; some movies may go unrated. The same arguments give byte-identical files. The folder
    is built beside `out_dir` and renamed into place, so it is either complete or absent; one
    that already holds both files is returned as is.

    Raises:
        ConfigError: a size is not a positive integer, n_ratings lies outside
            [n_users, n_users * n_movies], or `out_dir` holds something else.
    """
    for name, value in (("n_users", n_users), ("n_movies", n_movies), ("n_ratings", n_ratings)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not n_users <= n_ratings <= n_users * n_movies:
        raise ConfigError(
            f"n_ratings={n_ratings} must lie in [n_users, n_users * n_movies] = "
            f"[{n_users}, {n_users * n_movies}]: every user rates a movie, each at most once"
        )
    out = Path(out_dir)
    if all((out / name).is_file() for name in FILES):
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out_dir {out} exists but lacks {' or '.join(FILES)}; remove it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would follow the folder into place
        _write(staging, np.random.default_rng(seed), n_users, n_movies, n_ratings)
        try:
            staging.replace(out)
        except OSError:
            if not all((out / name).is_file() for name in FILES):
                raise
            # Another process finished this folder first; theirs stands.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write(folder: Path, rng: np.random.Generator, n_users: int, n_movies: int, n: int) -> None:
    movie_ids = np.cumsum(rng.geometric(0.3, n_movies))  # ml-25m: 62k movies, ids up to 209k
    rank = rng.permutation(n_movies)  # so popularity is unrelated to id
    pop = np.exp(-ZIPF_CUTOFF * rank / n_movies) / (rank + 1 + ZIPF_OFFSET)
    pop /= pop.sum()
    floor = min(MIN_USER_RATINGS, n // n_users)
    weights = rng.lognormal(0.0, USER_SIGMA, n_users)
    degrees = floor + _split(n - floor * n_users, weights, cap=n_movies - floor)
    keys = _sample_pairs(rng, degrees, pop)
    user, movie = keys // n_movies, keys % n_movies
    del keys

    log_pop = np.log(pop)  # popular movies rate a little higher, as in MovieLens
    log_pop = (log_pop - log_pop.mean()) / max(log_pop.std(), 1e-9)
    movie_bias = rng.normal(0, MOVIE_STD, n_movies) + 0.15 * log_pop
    score = (rng.normal(0, USER_STD, n_users)[user] + movie_bias[movie]).astype(np.float32)
    user_f = rng.normal(0, FACTOR_STD, (RANK, n_users)).astype(np.float32)
    movie_f = rng.normal(0, FACTOR_STD, (RANK, n_movies)).astype(np.float32)
    for k in range(RANK):  # one factor at a time keeps memory at one float per rating
        score += user_f[k][user] * movie_f[k][movie]
    score += rng.standard_normal(n, dtype=np.float32) * np.float32(NOISE_STD)
    # Centre on the pairs actually drawn, which lean to popular, better-rated movies.
    score += np.float32(LATENT_MEAN - score.mean(dtype=np.float64))
    # Some users never give half stars (MovieLens added them only in 2003).
    step = np.where(rng.random(n_users) < WHOLE_STAR_USERS, 2, 1).astype(np.float32)[user]
    halves = np.clip(np.rint(score * 2 / step) * step, step, 10).astype(np.int8)
    del score, step

    # Each user is active over a window and moves through their rows in it, give or take a few.
    start = rng.uniform(T_START, T_END, n_users)
    span = np.minimum(rng.lognormal(math.log(7 * 86400), 2.0, n_users), T_END - start)
    position = np.arange(n, dtype=np.float64) - (np.cumsum(degrees) - degrees)[user]
    frac = np.clip((position + 4 * rng.random(n) - 1.5) / degrees[user], 0.0, 1.0)
    timestamp = (start[user] + span[user] * frac).astype(np.int64)
    del position, frac

    rating = pa.array(halves * np.float32(0.5)).cast(pa.decimal128(2, 1))  # written "4.0"
    names = ["userId", "movieId", "rating", "timestamp"]
    table = pa.table([user + 1, movie_ids[movie], rating, timestamp], names=names)
    del user, movie, halves, timestamp
    with pa.OSFile(str(folder / "ratings.csv"), "wb") as sink:
        sink.write(",".join(names).encode() + b"\n")  # pyarrow would quote the names
        pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    _write_movies(folder / "movies.csv", rng, movie_ids)


def _write_movies(path: Path, rng: np.random.Generator, movie_ids: np.ndarray) -> None:
    n, share = len(movie_ids), np.array(list(GENRES.values()))
    flags = rng.random((n, len(GENRES))) < share
    bare = ~flags.any(axis=1)
    flags[bare, rng.choice(len(GENRES), bare.sum(), p=share / share.sum())] = True
    codes, inverse = np.unique(flags @ (1 << np.arange(len(GENRES))), return_inverse=True)
    labels = ["|".join(g for j, g in enumerate(GENRES) if c >> j & 1) for c in codes.tolist()]
    genres = np.array(labels, dtype=object)[inverse]
    genres[rng.random(n) < NO_GENRES_SHARE] = NO_GENRES
    years = np.clip(2024 - rng.exponential(16, n), 1902, 2023).astype(int).tolist()
    # MovieLens moves a leading article to the end; the comma exercises CSV quoting.
    article = np.where(rng.random(n) < 0.06, ", The", "").tolist()
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("movieId", "title", "genres"))
        writer.writerows(
            (i, f"Synthetic Movie {i}{a} ({y})", g)
            for i, a, y, g in zip(movie_ids.tolist(), article, years, genres, strict=True)
        )


def _split(total: int, weights: np.ndarray, cap: int) -> np.ndarray:
    """Integers about proportional to `weights`, each <= cap, summing to total <= cap * size."""
    lo, hi = 0.0, cap / weights.min()
    for _ in range(100):  # bisect the level t with sum(min(t * weights, cap)) <= total
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(mid * weights, cap).sum() <= total else (lo, mid)
    share = np.minimum(lo * weights, cap)
    counts = share.astype(np.int64)
    order = np.argsort(counts - share, kind="stable")  # largest rounding loss first
    while (short := total - int(counts.sum())) > 0:
        counts[order[counts[order] < cap][:short]] += 1
    return counts


def _sample_pairs(rng: np.random.Generator, degrees: np.ndarray, pop: np.ndarray) -> np.ndarray:
    """Sorted keys user * n_movies + movie: degrees[u] distinct movies for user u, drawn in
    proportion to `pop` without replacement (successive sampling)."""
    n_users, n_movies = len(degrees), len(pop)
    cdf = np.cumsum(pop) / pop.sum()
    need, held, parts = degrees.copy(), np.zeros(n_users), [np.zeros(0, np.int64)]
    for round_ in range(SAMPLING_ROUNDS):
        if not need.any():
            break
        # Draws of a movie the user already has are wasted, so later rounds oversample by the
        # popularity mass still unrated: heavy users hold the popular movies early on.
        draws = np.ceil(need * (1.0 if round_ == 0 else 1.2) / np.maximum(1 - held, 1e-3))
        users = np.repeat(np.arange(n_users), np.minimum(draws, 8 * n_movies).astype(np.int64))
        keys = users * n_movies + np.searchsorted(cdf, rng.random(users.size), "right")
        del users
        keys, first = np.unique(keys, return_index=True)
        new = np.ones(keys.size, bool)
        for part in parts:
            new &= ~_contains(part, keys)
        keys, first = keys[new], first[new]
        # Keep each user's first `need` new movies in draw order, as one draw at a time would.
        order = np.argsort(first, kind="stable")  # draws are laid out user by user
        user = keys[order] // n_movies
        count = np.bincount(user, minlength=n_users)
        keep = np.empty(keys.size, bool)
        keep[order] = np.arange(keys.size) - (np.cumsum(count) - count)[user] < need[user]
        keys = keys[keep]
        parts.append(keys)
        user, movie = keys // n_movies, keys % n_movies
        need -= np.bincount(user, minlength=n_users)
        held += np.bincount(user, pop[movie], minlength=n_users)
    keys = np.concatenate(parts)
    keys.sort()
    if not need.any():
        return keys
    # Whoever is still short wants most of the catalogue; Gumbel top-k samples them exactly.
    short = np.flatnonzero(need)
    slot = np.full(n_users, -1)
    slot[short] = np.arange(short.size)
    held_slot = slot[keys // n_movies]
    held_movie, held_slot = keys[held_slot >= 0] % n_movies, held_slot[held_slot >= 0]
    rows, extra = max(1, GUMBEL_CELLS // n_movies), [keys]
    for lo in range(0, short.size, rows):
        block = short[lo : lo + rows]
        score = np.log(pop) + rng.gumbel(size=(block.size, n_movies))
        a, b = np.searchsorted(held_slot, [lo, lo + rows])
        score[held_slot[a:b] - lo, held_movie[a:b]] = -np.inf
        top = np.argsort(-score, axis=1)
        extra.append((block[:, None] * n_movies + top)[np.arange(n_movies) < need[block, None]])
    return np.sort(np.concatenate(extra))


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(keys.size, bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[at] == keys
