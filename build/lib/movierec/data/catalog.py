"""The MovieLens releases movierec knows: where they live, their layout and documented sizes.

Counts are the ones GroupLens documents in each release's README; they are checked after
parsing so a truncated or substituted archive is caught (`data.verify_counts=false` skips it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from movierec.errors import ConfigError

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class DatasetSpec:
    """One GroupLens release.

    Attributes:
        name: config name (`data=<name>`).
        archive: zip file name at GroupLens and in a mirror.
        folder: top-level folder inside the zip.
        layout: parser to use: "csv" (latest, 25m, 32m), "dat" (1m, 10m), "ml100k".
        members: files (relative to `folder`) that must be present in the archive.
        rating_scale: (lowest, highest) rating allowed, in stars.
        expected_ratings / expected_users / expected_catalog_movies: documented sizes.
        encoding: text encoding of the movies file.
    """

    name: str
    archive: str
    folder: str
    layout: str
    members: tuple[str, ...]
    rating_scale: tuple[float, float]
    expected_ratings: int | None = None
    expected_users: int | None = None
    expected_catalog_movies: int | None = None
    encoding: str = "utf-8"
    has_user_side_features: bool = False
    predefined_folds: tuple[int, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return GROUPLENS_BASE_URL + self.archive


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="ml_latest_small",
            archive="ml-latest-small.zip",
            folder="ml-latest-small",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            rating_scale=(0.5, 5.0),
            expected_ratings=100_836,
            expected_users=610,
            expected_catalog_movies=9_742,
        ),
        DatasetSpec(
            name="ml_100k",
            archive="ml-100k.zip",
            folder="ml-100k",
            layout="ml100k",
            members=(
                "u.data",
                "u.item",
                "u.user",
                "u.genre",
                *(f"u{k}.{part}" for k in range(1, 6) for part in ("base", "test")),
            ),
            rating_scale=(1.0, 5.0),
            expected_ratings=100_000,
            expected_users=943,
            expected_catalog_movies=1_682,
            encoding="latin-1",
            has_user_side_features=True,
            predefined_folds=(1, 2, 3, 4, 5),
        ),
        DatasetSpec(
            name="ml_1m",
            archive="ml-1m.zip",
            folder="ml-1m",
            layout="dat",
            members=("ratings.dat", "movies.dat", "users.dat"),
            rating_scale=(1.0, 5.0),
            expected_ratings=1_000_209,
            expected_users=6_040,
            expected_catalog_movies=3_883,
            encoding="latin-1",
            has_user_side_features=True,
        ),
        DatasetSpec(
            name="ml_10m",
            archive="ml-10m.zip",
            folder="ml-10M100K",
            layout="dat",
            members=("ratings.dat", "movies.dat"),
            rating_scale=(0.5, 5.0),
            expected_ratings=10_000_054,
            expected_catalog_movies=10_681,
        ),
        DatasetSpec(
            name="ml_25m",
            archive="ml-25m.zip",
            folder="ml-25m",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            rating_scale=(0.5, 5.0),
            expected_ratings=25_000_095,
            expected_users=162_541,
            expected_catalog_movies=62_423,
        ),
        DatasetSpec(
            name="ml_32m",
            archive="ml-32m.zip",
            folder="ml-32m",
            layout="csv",
            members=("ratings.csv", "movies.csv"),
            rating_scale=(0.5, 5.0),
            expected_ratings=32_000_204,
            expected_users=200_948,
            expected_catalog_movies=87_585,
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """Look up a release by its config name; raise a `ConfigError` listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(
            f"data.name={name!r} is not a known MovieLens release; expected one of: {known} "
            "(or data=ratings_csv for your own file)"
        ) from None
