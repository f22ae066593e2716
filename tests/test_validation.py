"""Bad input gets a precise error (file, line, column, value) and leaves no cache entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from movierec.data.cache import load_ratings_data
from movierec.data.sources import DataSettings
from movierec.errors import ConfigError, DataError
from tests.conftest import PROJECT_ROOT
from tests.helpers.movielens_layouts import write_movies_csv, write_ratings_csv


def _load(tmp_path: Path, ratings: Path, **kwargs):
    settings = DataSettings(
        "ratings_csv", str(tmp_path / "cache"), ratings_path=str(ratings), **kwargs
    )
    return load_ratings_data(settings)


def _cache_entries(tmp_path: Path) -> list[Path]:
    processed = tmp_path / "cache" / "processed"
    return sorted(processed.iterdir()) if processed.exists() else []


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (
            "userId,movieId,rating\n1,2,4\n1,3,abc\n",
            r"line 3, column 'rating': 'abc' is not a number",
        ),
        (
            "userId,movieId,rating\n1,2,4\nx,3,4\n",
            r"line 3, column 'userId': 'x' is not an integer",
        ),
        (
            "userId,movieId,rating\n1,2,4\n1,2.5,4\n",
            r"line 3, column 'movieId': '2.5' is not an integer",
        ),
        ("userId,movieId,rating\n1,2,4\n1,3,\n", r"line 3, column 'rating': missing or NaN"),
        ("userId,movieId,rating\n1,2,NaN\n", r"line 2, column 'rating': missing or NaN"),
        (
            "userId,movieId,score\n1,2,4\n",
            r"missing column\(s\) rating; expected a header .* found: userId,movieId,score",
        ),
        ("", r"file is empty"),
        ("userId,movieId,rating\n", r"no data rows"),
        (
            "userId,movieId,rating\n1,2,4\n1,3,7\n",
            r"rating 7 .* outside the dataset's scale \[0.5, 5\]",
        ),
        ("userId,movieId,rating\n1,2,4\n1,3\n", r"malformed file"),
        ("userId,movieId,rating\n-1,2,4\n", r"non-negative integer ID"),
    ],
)
def test_bad_ratings_file_is_refused_with_its_location(tmp_path: Path, content: str, pattern: str):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=pattern) as info:
        _load(tmp_path, path)
    assert str(path) in str(info.value)
    assert _cache_entries(tmp_path) == []  # nothing half-written is left to be trusted
    leftovers = list((tmp_path / "cache").rglob("*"))
    assert not [p for p in leftovers if p.name.startswith(".")]


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope\.csv: ratings file not found"):
        _load(tmp_path, tmp_path / "nope.csv")


def test_a_folder_given_as_the_ratings_file_is_named_as_one(tmp_path: Path):
    folder = tmp_path / "ratings"
    folder.mkdir()
    with pytest.raises(DataError) as info:
        _load(tmp_path, folder)
    assert str(info.value) == (
        f"{folder}: is a directory, expected a ratings file (data.ratings_path)"
    )


def test_an_unreadable_ratings_file_is_named(tmp_path: Path, monkeypatch):
    """Opening the file fails as it does for a file this process may not read (tests run
    as root, which reads any file: the refusal is simulated at `open`)."""
    path = write_ratings_csv(tmp_path / "r.csv")
    real_open = Path.open

    def refused(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    with pytest.raises(DataError) as info:
        _load(tmp_path, path)
    assert str(info.value) == (
        f"{path}: the ratings file cannot be read (permission denied; data.ratings_path)"
    )
    assert _cache_entries(tmp_path) == []


def test_a_split_with_no_validation_rating_is_refused_before_training(tmp_path: Path):
    from movierec.tasks.train import train
    from tests.helpers.configs import FAST, compose_train

    path = write_ratings_csv(tmp_path / "r.csv", [(1, 10, 4.0, 1)])
    cfg = compose_train(
        tmp_path, [*FAST, "data=ratings_csv", f"data.ratings_path={path}", "model=mf"]
    )
    with pytest.raises(DataError) as info:
        train(cfg)
    assert str(info.value) == (
        f"data.ratings_path={path}: split random leaves the validation part empty (train 1, "
        "val 0, test 0 ratings); a training needs at least one rating in each, to fit and to "
        "pick the best epoch: use more ratings or a larger split.val_fraction (now 0.1)"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any epoch


def test_duplicates_keep_the_latest_rating(tmp_path: Path):
    path = write_ratings_csv(
        tmp_path / "r.csv",
        [(1, 2, 1.0, 300), (1, 2, 5.0, 100), (1, 3, 2.0, 50), (1, 2, 3.0, 200)],
    )
    data = _load(tmp_path, path)
    assert data.n_ratings == 2
    assert data.meta["duplicates_dropped"] == 2
    row = data.ratings[data.ratings["movie"] == data.movie_index([2])[0]]
    assert row["rating"].item() == 1.0  # timestamp 300 is the latest


def test_duplicates_without_timestamp_keep_the_last_in_file(tmp_path: Path):
    path = write_ratings_csv(
        tmp_path / "r.csv", [(1, 2, 1.0), (1, 2, 4.0)], "userId,movieId,rating"
    )
    data = _load(tmp_path, path)
    assert data.n_ratings == 1 and data.ratings["rating"].item() == 4.0


@pytest.mark.parametrize("policy", ["error", "drop", "keep"])
def test_missing_movie_policy(tmp_path: Path, policy: str):
    ratings = write_ratings_csv(tmp_path / "r.csv", [(1, 10, 4.0, 1), (1, 777, 3.0, 2)])
    movies = write_movies_csv(tmp_path / "m.csv")
    if policy == "error":
        with pytest.raises(DataError, match=r"absent from the movies file \(movieId 777\)"):
            _load(tmp_path, ratings, movies_path=str(movies), missing_movies=policy)
        return
    data = _load(tmp_path, ratings, movies_path=str(movies), missing_movies=policy)
    assert data.meta["unknown_movies"] == 1
    if policy == "drop":
        assert list(data.movies["movieId"]) == [10]
    else:
        assert list(data.movies["movieId"]) == [10, 777]
        assert data.genre_matrix()[1].sum() == 0


def test_unknown_policy_names_allowed_values(tmp_path: Path):
    ratings = write_ratings_csv(tmp_path / "r.csv", [(1, 777, 3.0, 2)])
    movies = write_movies_csv(tmp_path / "m.csv")
    with pytest.raises(ConfigError, match="error, drop, keep"):
        _load(tmp_path, ratings, movies_path=str(movies), missing_movies="ignore")


def test_documented_counts_are_verified(tiny_mirror: Path, tmp_path: Path):
    with pytest.raises(DataError, match=r"GroupLens documents 100,836"):
        load_ratings_data(DataSettings("ml_latest_small", str(tmp_path), mirror=str(tiny_mirror)))


def test_changed_setting_invalidates_cache_and_unchanged_reuses_it(tmp_path: Path, monkeypatch):
    from movierec.data import readers

    ratings = write_ratings_csv(tmp_path / "r.csv")
    calls = []
    original = readers.read_ratings_csv
    monkeypatch.setattr(readers, "read_ratings_csv", lambda *a: calls.append(1) or original(*a))
    _load(tmp_path, ratings)
    _load(tmp_path, ratings)
    assert len(calls) == 1  # second run read the processed cache, not the CSV
    _load(tmp_path, ratings, rating_scale=(0.0, 5.0))
    assert len(calls) == 2 and len(_cache_entries(tmp_path)) == 2
    ratings.write_text(ratings.read_text() + "5,10,1.0,1\n")  # new content, new checksum
    assert _load(tmp_path, ratings).n_users == 5
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("userId,movieId,rating\n1,2,4\n1,3,abc\n", "'abc' is not a number"),
        ("userId,movieId\n1,2\n", "missing column(s) rating"),
        ("", "file is empty"),
    ],
)
def test_cli_reports_one_line_error_and_exits_nonzero(tmp_path: Path, content: str, needle: str):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    env = dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "cache"))
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "inspect_data.py"),
            "data=ratings_csv",
            f"data.ratings_path={path}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and str(path) in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache" / "processed").exists() or not any(
        (tmp_path / "cache" / "processed").iterdir()
    )


def test_cli_names_a_missing_required_setting(tmp_path: Path):
    env = dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "inspect_data.py"), "data=ratings_csv"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    assert "error: data.ratings_path must be set" in result.stderr
