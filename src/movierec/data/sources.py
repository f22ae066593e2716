"""Where a dataset's files come from and how they are read into raw tables.

`DataSettings` is what `conf/data/*.yaml` configures. `fetch_source` makes the input
available locally (download a release, generate synthetic data, or check a user's files)
and returns its files and checksum; `read_source` parses them with the right reader.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from movierec.data import catalog, readers
from movierec.data.download import archive_sha256, ensure_archive
from movierec.data.readers import FileRef
from movierec.errors import ConfigError, DataError

MIRROR_ENV = "MOVIELENS_MIRROR"
CUSTOM_SOURCES = ("ratings_csv", "synthetic")


@dataclass(frozen=True)
class DataSettings:
    """Dataset selection and preprocessing settings (the `data` config group).

    Attributes:
        name: a release in `catalog.DATASETS`, "ratings_csv" or "synthetic".
        cache_dir: folder for archives and processed data.
        mirror: folder or base URL with GroupLens's zip names; `MOVIELENS_MIRROR` if unset.
        url: override for the archive URL (default: GroupLens).
        sha256: expected archive checksum, verified when given.
        verify_counts: compare parsed sizes with the counts GroupLens documents.
        missing_movies: "error" | "drop" | "keep" for ratings of movies not in the movies file.
        rating_scale: (low, high) stars; default from the release, (0.5, 5.0) for files.
        ratings_path / movies_path: the user's files for `ratings_csv`.
        synthetic: n_users, n_movies, n_ratings, seed for `synthetic`.
    """

    name: str = "ml_latest_small"
    cache_dir: str = "data"
    mirror: str | None = None
    url: str | None = None
    sha256: str | None = None
    verify_counts: bool = True
    missing_movies: str = "error"
    rating_scale: tuple[float, float] | None = None
    ratings_path: str | None = None
    movies_path: str | None = None
    synthetic: dict[str, int] = field(default_factory=dict)

    @property
    def spec(self) -> catalog.DatasetSpec | None:
        return None if self.name in CUSTOM_SOURCES else catalog.get_spec(self.name)

    @property
    def scale(self) -> tuple[float, float]:
        if self.rating_scale is not None:
            low, high = (float(v) for v in self.rating_scale)
            if not low < high:
                raise ConfigError(f"data.rating_scale=[{low}, {high}]: expected low < high")
            return (low, high)
        spec = self.spec
        return spec.rating_scale if spec else (0.5, 5.0)

    @property
    def effective_mirror(self) -> str | None:
        return self.mirror or os.environ.get(MIRROR_ENV) or None


@dataclass(frozen=True)
class FetchedSource:
    """Local input files of a dataset and a checksum identifying their content."""

    files: dict[str, Path]
    checksum: str
    archive: Path | None = None


@dataclass
class RawTables:
    """Parsed but unvalidated tables (see `readers` for their columns)."""

    label: str
    ratings: pd.DataFrame
    movies: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    genre_order: list[str] | None = None
    folds: pd.DataFrame | None = None  # userId, movieId, fold (canonical test fold)


def fetch_source(settings: DataSettings) -> FetchedSource:
    """Download, generate or locate the dataset's input files."""
    if settings.name == "ratings_csv":
        return _user_files(settings)
    if settings.name == "synthetic":
        return _synthetic_files(settings)
    spec = catalog.get_spec(settings.name)
    members = [f"{spec.folder}/{m}" for m in spec.members]
    archive = ensure_archive(
        spec.archive,
        members,
        Path(settings.cache_dir) / "archives",
        mirror=settings.effective_mirror,
        url=settings.url or spec.url,
        sha256=settings.sha256,
    )
    return FetchedSource(files={}, checksum=archive_sha256(archive), archive=archive)


def read_source(settings: DataSettings, fetched: FetchedSource) -> RawTables:
    """Parse the fetched files with the reader for their layout."""
    spec = settings.spec
    if spec is None:
        return _read_csv_files(fetched.files)
    assert fetched.archive is not None

    def member(name: str) -> FileRef:
        return FileRef.from_zip(fetched.archive, f"{spec.folder}/{name}")

    if spec.layout == "csv":
        ratings = readers.read_ratings_csv(member("ratings.csv"))
        return RawTables(member("ratings.csv").label, ratings, readers.read_movies_csv(member("movies.csv")))
    if spec.layout == "dat":
        ratings = readers.read_ratings_delimited(member("ratings.dat"), "::")
        movies = readers.read_movies_dat(member("movies.dat"), spec.encoding)
        users = readers.read_users_dat(member("users.dat")) if spec.has_user_side_features else None
        return RawTables(member("ratings.dat").label, ratings, movies, users)
    if spec.layout == "ml100k":
        ratings = readers.read_ratings_delimited(member("u.data"), "\t")
        movies = readers.read_movies_ml100k(member("u.item"), member("u.genre"))
        genre_order = readers.read_ml100k_genre_names(member("u.genre"))
        folds = _read_ml100k_folds(member, spec.predefined_folds)
        return RawTables(
            member("u.data").label,
            ratings,
            movies,
            readers.read_users_ml100k(member("u.user")),
            genre_order=genre_order,
            folds=folds,
        )
    raise AssertionError(f"unknown layout {spec.layout}")


def _read_ml100k_folds(member, folds: tuple[int, ...]) -> pd.DataFrame:
    """The canonical u1..u5 test files partition u.data; tag each rating with its fold."""
    parts = []
    for k in folds:
        test = readers.read_ratings_delimited(member(f"u{k}.test"), "\t")
        parts.append(pd.DataFrame({"userId": test["userId"], "movieId": test["movieId"], "fold": k}))
    return pd.concat(parts, ignore_index=True)


def _read_csv_files(files: dict[str, Path]) -> RawTables:
    ratings_ref = FileRef.from_path(files["ratings"])
    ratings = readers.read_ratings_csv(ratings_ref)
    movies = readers.read_movies_csv(FileRef.from_path(files["movies"])) if "movies" in files else None
    return RawTables(ratings_ref.label, ratings, movies)


def _user_files(settings: DataSettings) -> FetchedSource:
    if not settings.ratings_path:
        raise ConfigError("data=ratings_csv needs data.ratings_path=<your ratings CSV>")
    files = {"ratings": Path(settings.ratings_path).expanduser()}
    if settings.movies_path:
        files["movies"] = Path(settings.movies_path).expanduser()
    for role, path in files.items():
        if not path.is_file():
            raise DataError(f"{path}: {role} file not found (data.{role}_path)")
    digest = hashlib.sha256()
    for role in sorted(files):
        digest.update(role.encode())
        digest.update(archive_sha256(files[role]).encode())
    return FetchedSource(files=files, checksum=digest.hexdigest())


def _synthetic_files(settings: DataSettings) -> FetchedSource:
    from movierec.data.synthetic import generate_movielens_like

    params = {k: int(settings.synthetic[k]) for k in ("n_users", "n_movies", "n_ratings", "seed")}
    tag = "-".join(f"{k}{v}" for k, v in params.items())
    folder = generate_movielens_like(Path(settings.cache_dir) / "synthetic" / tag, **params)
    return _user_files(
        DataSettings(
            name="ratings_csv",
            ratings_path=str(folder / "ratings.csv"),
            movies_path=str(folder / "movies.csv"),
        )
    )
