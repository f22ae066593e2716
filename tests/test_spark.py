"""The Spark engine (`data.engine=spark`) gives what the pandas engine gives: the same index
maps, ratings, report and splits, and the same error for the same bad file.

One local[2] SparkSession serves the whole module (the engine reuses an active session).
In CI (CI=true) pyspark must be installed: these tests fail there instead of skipping.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from movierec.data.cache import load_ratings_data, prepare_processed
from movierec.data.sources import DataSettings
from movierec.data.splits import KFoldSplit, RandomSplit
from movierec.errors import ConfigError, DataError
from tests.conftest import PROJECT_ROOT
from tests.helpers.configs import FAST, TINY_DATA, compose_train
from tests.helpers.movielens_layouts import write_movies_csv, write_ratings_csv
from tests.helpers.runs import train_one_split


@pytest.fixture(scope="module")
def spark():
    try:
        import pyspark  # noqa: F401

        from movierec.data.spark import SparkSettings, spark_session
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but pyspark is missing: install the project with .[dev,spark]")
        pytest.skip("pyspark is not installed (pip install -e '.[spark]')")
    settings = SparkSettings(
        master="local[2]", log_level="ERROR", conf={"spark.sql.shuffle.partitions": "4"}
    )
    try:
        with spark_session(settings) as session:
            yield session
    except ConfigError as err:  # e.g. no Java
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(err))


def _pair(cache: Path, name: str, **kwargs):
    """(pandas, spark) processed data of the same input."""
    pandas = load_ratings_data(DataSettings(name, str(cache), **kwargs))
    spark = load_ratings_data(DataSettings(name, str(cache), engine="spark", **kwargs))
    return pandas, spark


def _assert_same(pandas, spark, same_source: bool = True) -> None:
    for part in ("ratings", "users", "movies"):
        pd.testing.assert_frame_equal(getattr(pandas, part), getattr(spark, part))
    assert pandas.genres == spark.genres and pandas.rating_scale == spark.rating_scale
    assert (pandas.meta["engine"], spark.meta["engine"]) == ("pandas", "spark")
    skip = {"engine"} if same_source else {"engine", "source", "source_checksum"}
    assert {k: v for k, v in pandas.meta.items() if k not in skip} == {
        k: v for k, v in spark.meta.items() if k not in skip
    }


def _entries(cache: Path) -> list[Path]:
    """Everything left in the processed folder (entries, staging or scratch folders)."""
    processed = cache / "processed"
    return sorted(processed.iterdir()) if processed.exists() else []


# ----------------------------------------------------------------------------- equality


@pytest.mark.parametrize("name", ["ml_latest_small", "ml_1m", "ml_10m", "ml_100k"])
def test_every_layout_matches_pandas(spark, tiny_mirror: Path, tmp_path: Path, name: str):
    pandas, spark_data = _pair(
        tmp_path / "cache", name, mirror=str(tiny_mirror), verify_counts=False
    )
    _assert_same(pandas, spark_data)
    if name != "ml_100k":  # the other tiny releases hold one duplicate rating
        assert spark_data.meta["duplicates_dropped"] == 1
    if name == "ml_100k":
        assert list(spark_data.ratings["fold"]) == list(pandas.ratings["fold"])


@pytest.fixture
def many_partitions(spark):
    """Cut even a 2 MB file into ~10 Spark partitions, so file order must survive them."""
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    before = {k: spark.conf.get(k) for k in keys}
    spark.conf.set(keys[0], "262144")
    spark.conf.set(keys[1], "0")
    yield
    for key, value in before.items():
        spark.conf.set(key, value)


@pytest.mark.integration
def test_real_ml_latest_small_matches_pandas(
    spark, many_partitions, real_mirror: Path, tmp_path: Path
):
    pandas, spark_data = _pair(tmp_path / "cache", "ml_latest_small", mirror=str(real_mirror))
    _assert_same(pandas, spark_data)  # index maps, ratings and normalized ratings, report
    assert (spark_data.n_users, spark_data.n_movies, spark_data.n_ratings) == (610, 9724, 100_836)
    assert spark_data.ratings["rating_norm"].dtype == np.float32
    for split in (RandomSplit(seed=7), KFoldSplit(n_folds=5, fold=2, seed=3)):
        a, b = split.assign(pandas), split.assign(spark_data)
        for part in ("train", "val", "test"):
            np.testing.assert_array_equal(getattr(a, part), getattr(b, part))


def test_duplicates_are_resolved_like_pandas(spark, many_partitions, tmp_path: Path):
    # (1, 2): latest timestamp wins; (3, 4): a timestamp tie, the last in file wins;
    # enough rows that Spark cuts the file into several partitions.
    rng = np.random.default_rng(0)
    rows = [(1, 2, 1.0, 300), (3, 4, 2.0, 50), (1, 2, 5.0, 100), (3, 4, 4.5, 50)]
    rows += [
        (int(u), int(m), float(r), int(t))
        for u, m, r, t in zip(
            rng.integers(1, 300, 40_000),
            rng.integers(1, 500, 40_000),
            rng.integers(1, 11, 40_000) / 2,
            rng.integers(0, 5, 40_000),
            strict=True,
        )
    ]
    rows.append((1, 2, 3.0, 200))
    path = write_ratings_csv(tmp_path / "r.csv", rows)
    pandas, spark_data = _pair(tmp_path / "cache", "ratings_csv", ratings_path=str(path))
    _assert_same(pandas, spark_data)
    assert spark_data.meta["duplicates_dropped"] > 1000


def test_missing_movie_policies_match_pandas(spark, tmp_path: Path):
    ratings = write_ratings_csv(tmp_path / "r.csv", [(1, 10, 4.0, 1), (2, 777, 3.0, 2)])
    movies = write_movies_csv(tmp_path / "m.csv")
    for policy in ("drop", "keep"):
        pandas, spark_data = _pair(
            tmp_path / "cache",
            "ratings_csv",
            ratings_path=str(ratings),
            movies_path=str(movies),
            missing_movies=policy,
        )
        _assert_same(pandas, spark_data)
    assert spark_data.meta["unknown_movies"] == 1


# ----------------------------------------------------------------------------- errors

BAD_FILES = [
    # duplicates, a NaN and a bad value: the bad value is what both engines name
    "userId,movieId,rating,timestamp\n1,2,4,5\n1,2,3,6\n1,3,NaN,7\n2,3,abc,8\n",
    "userId,movieId,rating\n1,2,4\nx,3,4\n",
    "userId,movieId,rating\n1,2,4\n1,2.5,4\n",
    "userId,movieId,rating\n1,2,4\n1,3,\n",
    "userId,movieId,rating\n1,2,NaN\n",
    "userId,movieId,rating\nNA,2,4\n1,3,abc\n",  # "NA" is named once another field fails
    "userId,movieId,rating\n1,2,4\n+5,3,4\n",  # pyarrow refuses, pandas would read it
    "userId,movieId,score\n1,2,4\n",
    "",
    "userId,movieId,rating\n",
    "userId,movieId,rating\n1,2,4\n1,3,7\n",
    "userId,movieId,rating\n1,2,4\n1,3\n",
    "userId,movieId,rating\n-1,2,4\n",
    "rating,movieId,userId\n4,2,1\n4.5,3,-2\n",  # columns in another order
]


@pytest.mark.parametrize("content", BAD_FILES, ids=range(len(BAD_FILES)))
def test_bad_file_gets_the_pandas_message(spark, tmp_path: Path, content: str):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    messages = []
    for engine in ("pandas", "spark"):
        settings = DataSettings(
            "ratings_csv", str(tmp_path / "cache"), ratings_path=str(path), engine=engine
        )
        with pytest.raises(DataError) as info:
            prepare_processed(settings)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert str(path) in messages[1]
    assert _entries(tmp_path / "cache") == []  # no entry, no staging or scratch folder


def test_a_bad_ratings_file_is_named_before_a_bad_movies_file(spark, tmp_path: Path):
    """Both engines read the ratings first (`steps.run`), then the movies file."""
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating\n1,x,4\n")
    movies = tmp_path / "movies.csv"
    movies.write_text("movieId,title\n1,a\n")  # no genres column
    messages = []
    for engine in ("pandas", "spark"):
        settings = DataSettings(
            "ratings_csv",
            str(tmp_path / "cache"),
            ratings_path=str(ratings),
            movies_path=str(movies),
            engine=engine,
        )
        with pytest.raises(DataError) as info:
            prepare_processed(settings)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "column 'movieId': 'x' is not an integer" in messages[1]


def test_fast_path_fields_read_as_pandas_reads_them(spark):
    """Every field the engine takes on its fast path converts, in the pandas readers, to the
    value Spark gave it; all others go to the readers' own rules."""
    from movierec.data import fields
    from movierec.data.spark.scan import Column, column_exprs

    texts = [
        "5", "-5", "05", "+5", " 5", "5.0", "1e3", "0x10", "abc", "", "NA", "nan",
        "99999999999999999999", "3.5", ".5", "5.", "+2.5", "1E-3", "inf", "3.4028236e38",
        "1.00000017881393432617187499", "0.1", "٣", "1_0", "5d",
    ]  # fmt: skip
    frame = spark.createDataFrame(pd.DataFrame({"x": texts}))
    for dtype in (pa.int64(), pa.float32()):
        column = Column("x", dtype, 0)
        rows = frame.select(*column_exprs(column, "string", "t")).collect()
        judged = fields.classify_tokens(texts, dtype, 0)
        fast = [i for i, row in enumerate(rows) if not row[column.odd]]
        assert fast, dtype
        for i in fast:
            assert judged.converts[i], texts[i]
            assert rows[i][column.value] == judged.values[i], texts[i]


# ----------------------------------------------------------------------------- inputs


@pytest.mark.integration
def test_parquet_folder_and_uri_inputs(spark, real_mirror: Path, tmp_path: Path):
    """ml-latest-small's ratings as Parquet part files (read in part-name order) give what
    pandas gives from the CSV; so does the same folder named by URI (the remote path)."""
    from movierec.data.processed import RatingsData
    from movierec.data.spark import build_processed, fetch_remote_ratings

    with zipfile.ZipFile(real_mirror / "ml-latest-small.zip") as zf:
        csv = tmp_path / "ratings.csv"
        csv.write_bytes(zf.read("ml-latest-small/ratings.csv"))
    table = pacsv.read_csv(csv)
    folder = tmp_path / "ratings-parquet"
    folder.mkdir()
    cuts = [0, 30_000, 70_000, table.num_rows]
    for part, (start, stop) in enumerate(itertools.pairwise(cuts)):
        pq.write_table(table.slice(start, stop - start), folder / f"part-{part:05d}.parquet")
    (folder / "_SUCCESS").write_text("")
    cache = tmp_path / "cache"
    pandas = load_ratings_data(DataSettings("ratings_csv", str(cache), ratings_path=str(csv)))
    spark_data = load_ratings_data(
        DataSettings("ratings_csv", str(cache), ratings_path=str(folder), engine="spark")
    )
    _assert_same(pandas, spark_data, same_source=False)

    settings = DataSettings("ratings_csv", str(cache), ratings_path=folder.as_uri(), engine="spark")
    fetched = fetch_remote_ratings(settings)
    assert fetched.ratings_uri == folder.as_uri() and fetched.files == {}
    staging = cache / "processed" / "by-uri"
    staging.mkdir()
    build_processed(settings, fetched, staging)
    by_uri = RatingsData.load(staging)
    pd.testing.assert_frame_equal(by_uri.ratings, pandas.ratings)


def test_pandas_engine_refuses_parquet_with_a_hint(tmp_path: Path):
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"userId": [1], "movieId": [2], "rating": [4.0]}), path)
    with pytest.raises(ConfigError, match="set data.engine=spark to read Parquet"):
        load_ratings_data(DataSettings("ratings_csv", str(tmp_path / "c"), ratings_path=str(path)))


# ----------------------------------------------------------------------------- settings


def test_missing_pyspark_is_a_clear_error(monkeypatch, tiny_mirror: Path, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` raises ImportError
    settings = DataSettings(
        "ml_latest_small", str(tmp_path / "cache"), mirror=str(tiny_mirror), engine="spark"
    )
    with pytest.raises(ConfigError) as info:
        prepare_processed(settings)
    assert str(info.value) == "data.engine=spark needs pyspark: pip install 'movierec[spark]'"
    assert not (tmp_path / "cache").exists()  # stopped before downloading anything


def test_engine_and_spark_settings_are_checked():
    from movierec.data.spark import SparkSettings

    with pytest.raises(ConfigError, match=r"data.engine='dask' is not valid; .* pandas, spark"):
        DataSettings(engine="dask")
    with pytest.raises(ConfigError, match=r"data.spark.masterr is not a setting"):
        SparkSettings.from_mapping({"masterr": "local[2]"})
    parsed = SparkSettings.from_mapping({"master": "yarn", "conf": {"spark.executor.cores": 4}})
    assert SparkSettings.from_mapping({}) == SparkSettings("local[*]", "4g", "WARN", {})
    nested = {"conf": {"spark": {"driver": {"memory": "4g"}}}}  # +data.spark.conf.spark.…=4g
    assert SparkSettings.from_mapping(nested).conf == {"spark.driver.memory": "4g"}
    assert parsed == SparkSettings("yarn", "4g", "WARN", {"spark.executor.cores": "4"})


def test_engine_is_part_of_the_cache_key(tmp_path: Path):
    from movierec.data.cache import cache_key
    from movierec.data.sources import FetchedSource

    fetched = FetchedSource(files={}, checksum="abc")
    pandas = cache_key(DataSettings("ml_100k"), fetched)
    assert cache_key(DataSettings("ml_100k", engine="spark"), fetched) != pandas
    assert pandas == cache_key(DataSettings("ml_100k", spark={"master": "yarn"}), fetched)


# ----------------------------------------------------------------------------- command line


@pytest.mark.integration
def test_inspect_data_with_spark_prints_the_pandas_report(
    spark, real_mirror: Path, tmp_path: Path, capsys
):
    """The acceptance command's config path (`data.engine=spark` through Hydra), in process."""
    from movierec.tasks.inspect_data import inspect_data

    printed = []
    for engine in ("pandas", "spark"):
        overrides = ["data=ml_100k", f"data.mirror={real_mirror}", f"data.engine={engine}"]
        inspect_data(compose_train(tmp_path / engine, overrides, config_name="inspect_data"))
        printed.append(capsys.readouterr().out)
    assert "ratings          100,000 (0 duplicates dropped)" in printed[1]
    assert printed[1] == printed[0]


def test_training_on_the_spark_engine(spark, tmp_path: Path):
    cfg = compose_train(
        tmp_path, [*TINY_DATA, "data.engine=spark", "model=mf", "trainer.max_epochs=2", *FAST]
    )
    metrics = train_one_split(cfg)
    assert 0 < metrics["test/rmse"] < 5
    entries = list((tmp_path / "data" / "processed").glob("synthetic-*/meta.json"))
    assert len(entries) == 1 and '"engine": "spark"' in entries[0].read_text()


def test_cli_spark_that_cannot_start_is_one_error_line(tmp_path: Path):
    path = write_ratings_csv(tmp_path / "r.csv")
    env = dict(os.environ, MOVIEREC_DATA_DIR=str(tmp_path / "cache"), JAVA_HOME="/nonexistent")
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "inspect_data.py"),
            "data=ratings_csv",
            f"data.ratings_path={path}",
            "data.engine=spark",
            "data.spark.master='local[2]'",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: Spark did not start (data.spark.master='local[2]')")
    assert "Java 17" in errors[0] and "Traceback" not in result.stderr
    assert _entries(tmp_path / "cache") == []


def test_a_malformed_master_url_is_refused_before_spark_starts():
    from movierec.data.spark import SparkSettings

    for master in ("nonsense://nowhere", "local[0]", "local[two]", ""):
        with pytest.raises(ConfigError, match="is not a Spark master URL; expected local"):
            SparkSettings.from_mapping({"master": master or " "})
    for master in ("local", "local[2]", "local[*]", "local[4,2]", "spark://h:7077", "yarn"):
        assert SparkSettings.from_mapping({"master": master}).master == master
