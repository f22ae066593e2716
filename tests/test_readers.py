"""Parsing of every GroupLens layout, through the real fetch → read → preprocess path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.data.cache import load_ratings_data
from movierec.data.sources import DataSettings
from tests.helpers.movielens_layouts import MOVIES, RATINGS

# (dataset, has timestamps with half stars, has user side features)
LAYOUTS = [
    ("ml_latest_small", True, False),
    ("ml_25m", True, False),
    ("ml_32m", True, False),
    ("ml_1m", False, True),
    ("ml_10m", True, False),
    ("ml_100k", False, True),
]


@pytest.mark.parametrize(("name", "half_stars", "side"), LAYOUTS)
def test_every_layout_parses_to_the_same_shape(
    tiny_mirror: Path, tmp_path: Path, name, half_stars, side
):
    data = load_ratings_data(
        DataSettings(name, str(tmp_path / "cache"), mirror=str(tiny_mirror), verify_counts=False)
    )
    assert data.has_timestamps
    assert data.has_user_side_features == side
    assert list(data.users["userId"]) == [1, 2, 3, 4]
    rated = sorted({m for _, m, _, _ in RATINGS})
    assert list(data.movies["movieId"]) == rated  # only rated movies become nodes
    titles = dict(zip(data.movies["movieId"], data.movies["title"], strict=True))
    assert titles[20] == 'Amélie, "Le fabuleux destin" (2001)'  # quotes, commas, latin-1
    assert titles[10] == "Toy Story (1995)"
    # indices are positions in the sorted original IDs
    first = data.ratings.iloc[0]
    assert data.users["userId"][first["user"]] == 1
    assert data.movies["movieId"][first["movie"]] == 10
    if half_stars:
        by_pair = {
            (int(data.users["userId"][u]), int(data.movies["movieId"][m])): r
            for u, m, r in data.ratings[["user", "movie", "rating"]].itertuples(index=False)
        }
        assert by_pair[(2, 40)] == 4.5
        assert by_pair[(3, 20)] == 2.5  # the later of the two duplicate ratings is kept
        assert data.meta["duplicates_dropped"] == 1
    low, high = data.rating_scale
    assert np.all((data.ratings["rating_norm"] >= 0) & (data.ratings["rating_norm"] <= 1))
    np.testing.assert_allclose(
        data.ratings["rating_norm"], (data.ratings["rating"] - low) / (high - low), rtol=1e-6
    )


def test_genre_columns_cover_every_genre_in_the_movies_file(tiny_data):
    expected = sorted({g for _, _, gs in MOVIES for g in gs.split("|")})
    assert tiny_data.genres == expected  # includes "(no genres listed)" and unrated Drama
    matrix = tiny_data.genre_matrix()
    assert matrix.shape == (tiny_data.n_movies, len(expected))
    row = tiny_data.movie_index([30])[0]
    on = {tiny_data.genres[i] for i in np.flatnonzero(matrix[row])}
    assert on == {"Action", "Crime", "Thriller"}


def test_ml100k_layout_has_19_genre_flags_and_folds(tiny_mirror: Path, tmp_path: Path):
    data = load_ratings_data(
        DataSettings("ml_100k", str(tmp_path / "c"), mirror=str(tiny_mirror), verify_counts=False)
    )
    assert len(data.genres) == 19
    assert data.genres[0] == "unknown" and "Children's" in data.genres
    assert sorted(data.ratings["fold"].unique()) == [1, 2, 3, 4, 5]
    assert set(data.users.columns) >= {"age", "gender", "occupation"}
    assert data.users.loc[data.users["userId"] == 2, "gender"].item() == "F"


def test_ratings_csv_source_with_and_without_movies(tmp_path: Path):
    from tests.helpers.movielens_layouts import write_movies_csv, write_ratings_csv

    ratings = write_ratings_csv(tmp_path / "r.csv")
    movies = write_movies_csv(tmp_path / "m.csv")
    with_movies = load_ratings_data(
        DataSettings(
            "ratings_csv", str(tmp_path / "c"), ratings_path=str(ratings), movies_path=str(movies)
        )
    )
    assert with_movies.n_movies == 4 and "Comedy" in with_movies.genres
    without = load_ratings_data(
        DataSettings("ratings_csv", str(tmp_path / "c"), ratings_path=str(ratings))
    )
    assert without.genres == [] and without.n_ratings == with_movies.n_ratings


def test_unknown_ids_are_named(tiny_data):
    from movierec.errors import DataError

    assert list(tiny_data.user_index([4, 1])) == [3, 0]
    with pytest.raises(DataError, match="999"):
        tiny_data.movie_index([10, 999])
