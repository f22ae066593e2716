"""Where a dataset's files come from: the settings, the fetched files, their layout.

`DataSettings` is what `conf/data/*.yaml` configures. `fetch_source` makes the input
available locally (download a release, generate synthetic data, or check a user's files)
and returns its files and checksum; `ratings_file` says where the ratings are and how they
are laid out, for any engine, and `read_side_tables` parses the small files beside them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.checks import check_choice
from movierec.data import catalog, readers
from movierec.data.download import archive_sha256, ensure_archive
from movierec.data.files import FileRef
from movierec.errors import ConfigError, DataError

MIRROR_ENV = "MOVIELENS_MIRROR"
CUSTOM_SOURCES = ("ratings_csv", "synthetic")
ENGINES = ("pandas", "spark")
PARQUET_SUFFIXES = (".parquet", ".pq")


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
        engine: "pandas" (default) or "spark", which reads, checks and indexes the ratings.
        spark: the Spark engine's settings (master, driver_memory, log_level, conf; see
            `spark.SparkSettings`).
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
    engine: str = "pandas"
    spark: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("data.engine", self.engine, ENGINES)

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
    """Input files of a dataset and a checksum identifying their content.

    `files` are local paths (a ratings folder of part files for the Spark engine);
    `ratings_uri` replaces `files["ratings"]` for ratings only Spark can reach (hdfs://, …).
    """

    files: dict[str, Path]
    checksum: str
    archive: Path | None = None
    ratings_uri: str | None = None


@dataclass(frozen=True)
class RatingsLayout:
    """What a ratings file's layout means to its readers.

    Attributes:
        header: its first line names the columns (`fields.RATINGS_HEADER`).
        text: a delimited text file, whose rows may fail to split (Parquet is not).
        read: the pandas engine's reader, (file, delimiter) → columns (None: Spark only).
    """

    header: bool
    text: bool
    read: Callable[[FileRef, str], readers.Columns] | None


#: `RatingsFile.layout` → what it means: the one place a layout is told apart
RATINGS_LAYOUTS = {
    "csv": RatingsLayout(True, True, lambda ref, _: readers.read_ratings_csv(ref)),
    "delimited": RatingsLayout(False, True, readers.read_ratings_delimited),
    "parquet": RatingsLayout(False, False, None),
}


@dataclass(frozen=True)
class RatingsFile:
    """Where a dataset's ratings are and how they are laid out, for any engine.

    Attributes:
        label: the name errors show (a path or `archive.zip:member`).
        ref: the file as the pandas readers open it (None for a folder or a remote URI).
        location: the path or URI Spark reads (None for a zip member: extract `ref` first).
        layout: "csv" (header userId,movieId,rating[,timestamp]), "delimited" (no header,
            `fields.DELIMITED_RATING_NAMES`) or "parquet" (Spark engine only).
        delimiter: field separator of "csv" and "delimited".
    """

    label: str
    ref: FileRef | None
    location: str | None
    layout: str
    delimiter: str = ","

    @property
    def form(self) -> RatingsLayout:
        """What `layout` means to the readers (`RATINGS_LAYOUTS`)."""
        return RATINGS_LAYOUTS[self.layout]


@dataclass
class SideTables:
    """The small tables beside the ratings (see `readers` for their columns)."""

    movies: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    genre_order: list[str] | None = None
    folds: pd.DataFrame | None = None  # userId, movieId, fold (canonical test fold)


def fetch_source(settings: DataSettings) -> FetchedSource:
    """Download, generate or locate the dataset's input files (local ones: ratings only
    Spark reaches are listed by the Spark engine, see `has_remote_ratings`)."""
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


def ratings_file(settings: DataSettings, fetched: FetchedSource) -> RatingsFile:
    """The ratings input of the fetched dataset (not read yet)."""
    spec = settings.spec
    if spec is None:
        if fetched.ratings_uri is not None:
            uri = fetched.ratings_uri
            return RatingsFile(uri, None, uri, _file_layout(uri))
        path = fetched.files["ratings"]
        ref = FileRef.from_path(path) if path.is_file() else None
        return RatingsFile(str(path), ref, str(path), _file_layout(str(path)))
    assert fetched.archive is not None
    layout = ARCHIVE_LAYOUTS[spec.layout]
    ref = FileRef.from_zip(fetched.archive, f"{spec.folder}/{layout.ratings}")
    return RatingsFile(ref.label, ref, None, layout.ratings_layout, layout.delimiter)


def read_side_tables(settings: DataSettings, fetched: FetchedSource) -> SideTables:
    """Parse the movies, users, genre and fold files of the fetched dataset (all small)."""
    spec = settings.spec
    if spec is None:
        movies = fetched.files.get("movies")
        return SideTables(readers.read_movies_csv(FileRef.from_path(movies)) if movies else None)
    assert fetched.archive is not None

    def member(name: str) -> FileRef:
        return FileRef.from_zip(fetched.archive, f"{spec.folder}/{name}")

    return ARCHIVE_LAYOUTS[spec.layout].side_tables(member, spec)


def _csv_side_tables(member, spec) -> SideTables:
    return SideTables(readers.read_movies_csv(member("movies.csv")))


def _dat_side_tables(member, spec) -> SideTables:
    movies = readers.read_movies_dat(member("movies.dat"), spec.encoding)
    users = readers.read_users_dat(member("users.dat")) if spec.has_user_side_features else None
    return SideTables(movies, users)


def _ml100k_side_tables(member, spec) -> SideTables:
    return SideTables(
        readers.read_movies_ml100k(member("u.item"), member("u.genre")),
        readers.read_users_ml100k(member("u.user")),
        genre_order=readers.read_ml100k_genre_names(member("u.genre")),
        folds=_read_ml100k_folds(member, spec.predefined_folds),
    )


@dataclass(frozen=True)
class ArchiveLayout:
    """How a GroupLens archive lays out its files (`catalog.DatasetSpec.layout`).

    Attributes:
        ratings: the ratings member's name in the archive's folder.
        ratings_layout: "csv" (with a header) or "delimited" (`RatingsFile.layout`).
        delimiter: the ratings' field separator.
        side_tables: (member opener, spec) → the movies, users, genres and folds read.
    """

    ratings: str
    ratings_layout: str
    delimiter: str
    side_tables: Callable[[Callable[[str], FileRef], Any], SideTables]


ARCHIVE_LAYOUTS = {
    "csv": ArchiveLayout("ratings.csv", "csv", ",", _csv_side_tables),  # latest, 25m, 32m
    "dat": ArchiveLayout("ratings.dat", "delimited", "::", _dat_side_tables),  # 1m, 10m
    "ml100k": ArchiveLayout("u.data", "delimited", "\t", _ml100k_side_tables),
}


def _file_layout(location: str) -> str:
    """Parquet by suffix or by a folder of `.parquet` parts; CSV otherwise."""
    path = Path(location.removeprefix("file://"))
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    if path.is_dir() and any(p.suffix.lower() in PARQUET_SUFFIXES for p in path.iterdir()):
        return "parquet"
    return "csv"


def _read_ml100k_folds(member, folds: tuple[int, ...]) -> pd.DataFrame:
    """The canonical u1..u5 test files partition u.data; tag each rating with its fold."""
    parts = []
    for k in folds:
        test = readers.read_ratings_delimited(member(f"u{k}.test"), "\t")
        parts.append(
            pd.DataFrame({"userId": test["userId"], "movieId": test["movieId"], "fold": k})
        )
    return pd.concat(parts, ignore_index=True)


def _user_files(settings: DataSettings) -> FetchedSource:
    if not settings.ratings_path:
        raise ConfigError("data=ratings_csv needs data.ratings_path=<your ratings CSV>")
    spark = settings.engine == "spark"
    ratings = Path(settings.ratings_path.removeprefix("file://")).expanduser()
    files = {"ratings": ratings}
    if settings.movies_path:
        files["movies"] = Path(settings.movies_path).expanduser()
    for role, path in files.items():
        _check_input(path, role, folder_ok=spark and role == "ratings")
    digest = hashlib.sha256()
    for role in sorted(files):
        digest.update(role.encode())
        for part in _data_files(files[role]):
            _check_readable(part, role)
            digest.update(archive_sha256(part).encode())
    return FetchedSource(files=files, checksum=digest.hexdigest())


def _check_input(path: Path, role: str, folder_ok: bool) -> None:
    """A user's input file exists and is a file (the Spark engine also reads a folder of
    part files, Spark's own output); else one line naming it."""
    if path.is_dir() and not folder_ok:
        raise DataError(f"{path}: is a directory, expected a {role} file (data.{role}_path)")
    if not (path.is_file() or path.is_dir()):
        raise DataError(f"{path}: {role} file not found (data.{role}_path)")


def _check_readable(path: Path, role: str) -> None:
    """This process may read `path` (its checksum may come from a sidecar, and the
    readers open it later); else one line naming it."""
    try:
        path.open("rb").close()
    except PermissionError:
        raise DataError(
            f"{path}: the {role} file cannot be read (permission denied; data.{role}_path)"
        ) from None


def is_remote(location: str) -> bool:
    """A URI with a scheme other than file:// (hdfs://, s3a://, …), read only by Spark."""
    return "://" in location and not location.startswith("file://")


def has_remote_ratings(settings: DataSettings) -> bool:
    """The user's ratings are a URI for the Spark engine, which fetches them itself."""
    path = settings.ratings_path
    return (
        settings.name == "ratings_csv"
        and settings.engine == "spark"
        and bool(path)
        and (is_remote(str(path)))
    )


def _data_files(path: Path) -> list[Path]:
    """`path` itself, or the files of a folder that Spark reads (not `_*` or `.*`), sorted."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
    )


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
