"""Synthetic MovieLens-shaped data: exact sizes, realistic shape, determinism, atomic output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.data import synthetic
from movierec.data.synthetic import generate_movielens_like
from movierec.errors import ConfigError

SIZES = {"n_users": 200, "n_movies": 300, "n_ratings": 5000}
GENRE_LABELS = {*synthetic.GENRES, synthetic.NO_GENRES}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = generate_movielens_like(tmp_path_factory.mktemp("syn") / "small", **SIZES, seed=3)
    return pd.read_csv(out / "ratings.csv"), pd.read_csv(out / "movies.csv")


def test_files_have_the_movielens_csv_layout(tmp_path):
    out = generate_movielens_like(tmp_path / "s", **SIZES)
    assert out == tmp_path / "s"
    ratings_text = (out / "ratings.csv").read_text().splitlines()
    assert ratings_text[0] == "userId,movieId,rating,timestamp"
    user, movie, rating, timestamp = ratings_text[1].split(",")
    assert user.isdigit() and movie.isdigit() and timestamp.isdigit()
    assert len(rating) == 3 and rating[1] == "."  # "4.0", "3.5"
    assert (out / "movies.csv").read_text().splitlines()[0] == "movieId,title,genres"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no staging folder left


def test_pairs_are_exact_and_unique(small):
    ratings, movies = small
    assert len(ratings) == SIZES["n_ratings"]
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert set(ratings["userId"]) == set(range(1, SIZES["n_users"] + 1))
    assert ratings["movieId"].isin(movies["movieId"]).all()
    keys = ratings["userId"].to_numpy() * 10**9 + ratings["movieId"].to_numpy()
    assert (np.diff(keys) > 0).all()  # sorted by userId, then movieId, like GroupLens's files


def test_movies_cover_every_id_with_gaps_and_valid_genres(small):
    _, movies = small
    assert len(movies) == SIZES["n_movies"] and movies["movieId"].is_unique
    assert movies["movieId"].min() >= 1 and movies["movieId"].max() > SIZES["n_movies"]
    assert movies["title"].str.fullmatch(r"Synthetic Movie \d+(, The)? \(\d{4}\)").all()
    genres = movies["genres"].str.split("|")
    assert all(set(g) <= GENRE_LABELS for g in genres)
    assert all(g == [synthetic.NO_GENRES] for g in genres if synthetic.NO_GENRES in g)


def test_ratings_look_like_movielens(small):
    ratings, _ = small
    values = ratings["rating"].to_numpy()
    assert values.min() >= 0.5 and values.max() <= 5.0
    assert np.all(values * 2 == np.round(values * 2))
    assert 3.2 <= values.mean() <= 3.8 and 0.85 <= values.std() <= 1.25
    whole = np.mean(values == np.round(values))
    assert whole > 0.6  # whole stars are more common than half stars


def test_timestamps_advance_per_user_between_1995_and_2023(small):
    ratings, _ = small
    stamps = pd.to_datetime(ratings["timestamp"], unit="s")
    assert stamps.min().year >= 1995 and stamps.max().year <= 2023
    row = ratings.groupby("userId").cumcount()
    by_user = ratings.assign(row=row).groupby("userId")[["row", "timestamp"]]
    assert by_user.corr(method="spearman").xs("row", level=1)["timestamp"].median() > 0.5


def test_degrees_are_heavy_tailed(small):
    ratings, _ = small
    movie_degree = ratings.groupby("movieId").size()
    user_degree = ratings.groupby("userId").size()
    assert movie_degree.max() > 5 * movie_degree.median()
    assert user_degree.min() >= 20  # 5000 / 200 allows MovieLens's minimum
    assert user_degree.max() > 3 * user_degree.median()


def test_biases_learned_on_train_beat_the_global_mean(small):
    ratings, _ = small
    test = ratings.sample(frac=0.2, random_state=0)
    train = ratings.drop(test.index)
    mu = train["rating"].mean()
    user_bias = (train["rating"] - mu).groupby(train["userId"]).sum() / (
        train.groupby("userId").size() + 5
    )
    movie_bias = (train["rating"] - mu - train["userId"].map(user_bias)).groupby(
        train["movieId"]
    ).sum() / (train.groupby("movieId").size() + 5)
    predicted = (
        mu + test["userId"].map(user_bias).fillna(0) + test["movieId"].map(movie_bias).fillna(0)
    )
    rmse = np.sqrt(np.mean((predicted - test["rating"]) ** 2))
    baseline = np.sqrt(np.mean((mu - test["rating"]) ** 2))
    assert rmse < 0.95 * baseline


def test_same_seed_gives_same_bytes(tmp_path):
    a = generate_movielens_like(tmp_path / "a", **SIZES, seed=7)
    b = generate_movielens_like(tmp_path / "b", **SIZES, seed=7)
    c = generate_movielens_like(tmp_path / "c", **SIZES, seed=8)
    for name in synthetic.FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "ratings.csv").read_bytes() != (c / "ratings.csv").read_bytes()


@pytest.mark.parametrize("rounds", [0, 1])
@pytest.mark.parametrize(("n_users", "n_movies", "n_ratings"), [(5, 10, 50), (20, 30, 590)])
def test_exact_top_up_fills_dense_users(
    tmp_path, monkeypatch, rounds, n_users, n_movies, n_ratings
):
    monkeypatch.setattr(synthetic, "SAMPLING_ROUNDS", rounds)  # force the Gumbel top-k path
    out = generate_movielens_like(
        tmp_path / "d", n_users=n_users, n_movies=n_movies, n_ratings=n_ratings
    )
    ratings = pd.read_csv(out / "ratings.csv")
    assert len(ratings) == n_ratings and not ratings.duplicated(["userId", "movieId"]).any()
    assert ratings["userId"].nunique() == n_users


def test_existing_complete_folder_is_reused(tmp_path):
    out = generate_movielens_like(tmp_path / "s", **SIZES)
    (out / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,0\n")
    assert generate_movielens_like(out, **SIZES) == out
    assert len((out / "ratings.csv").read_text().splitlines()) == 2


def test_incomplete_folder_is_not_mistaken_for_a_dataset(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(ConfigError, match="out_dir"):
        generate_movielens_like(out, **SIZES)
    (out / "movies.csv").unlink()  # an empty folder is simply filled
    generate_movielens_like(out, **SIZES)
    assert all((out / name).is_file() for name in synthetic.FILES)


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        ({"n_users": 10, "n_movies": 5, "n_ratings": 51}, "n_ratings"),
        ({"n_users": 10, "n_movies": 5, "n_ratings": 9}, "n_ratings"),
        ({"n_users": 0, "n_movies": 5, "n_ratings": 9}, "n_users"),
        ({"n_users": 10, "n_movies": 2.5, "n_ratings": 20}, "n_movies"),
    ],
)
def test_impossible_sizes_raise_config_error(tmp_path, sizes, named):
    with pytest.raises(ConfigError, match=named):
        generate_movielens_like(tmp_path / "bad", **sizes)
    assert not (tmp_path / "bad").exists()
