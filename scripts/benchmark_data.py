"""Data-layer benchmark: load + validate + index (cold, from the source files), reload from
the processed cache (warm), split and build the graph; seconds and peak RSS per dataset.
Beside them, the floor: a plain pyarrow parse of the same ratings file into typed columns
(page cache warm, best of two), and the cold times as multiples of it.

    python scripts/benchmark_data.py ml_100k ml_latest_small
    python scripts/benchmark_data.py --ratings data/synthetic-25m/ratings.csv \\
        --movies data/synthetic-25m/movies.csv
    python scripts/benchmark_data.py ml_latest_small --engine spark --master 'local[2]'

Each dataset runs in a fresh process with a fresh cache folder, so "cold" really parses.
With --engine spark the Spark session is started first (spark_start_s, not in the cold
time) and the JVM's own peak RSS is reported beside the Python process's.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(
    name: str,
    ratings: str | None,
    movies: str | None,
    mirror: str | None,
    engine: str = "pandas",
    spark: dict | None = None,
) -> dict:
    # PyG is imported before the clock, like torch below: `build_graph` imports it lazily
    # (1–3 s, mostly torch._dynamo), which is start-up cost, not data work
    from torch_geometric.data import HeteroData  # noqa: F401

    from movierec.data.cache import load_ratings_data, prepare_processed
    from movierec.data.graph import build_graph
    from movierec.data.sources import DataSettings
    from movierec.data.splits import RandomSplit

    extra: dict = {}
    with tempfile.TemporaryDirectory() as cache, contextlib.ExitStack() as stack:
        settings = DataSettings(
            name,
            cache,
            mirror=mirror,
            ratings_path=ratings,
            movies_path=movies,
            engine=engine,
            spark=spark or {},
        )
        if name not in ("ratings_csv", "synthetic"):
            prepare_processed(DataSettings(name, cache, mirror=mirror, verify_counts=False))
            # the archive fetch is not what we time: remove the processed entry only
            shutil.rmtree(Path(cache) / "processed")
        if engine == "spark":
            from movierec.data.spark import SparkSettings, spark_session

            spark_settings = SparkSettings.from_mapping(spark or {})
            started = time.perf_counter()
            session = stack.enter_context(spark_session(spark_settings))
            extra["spark_start_s"] = round(time.perf_counter() - started, 2)
            jvm = session.sparkContext._gateway.proc.pid  # the spark-submit launcher execs java
        started, cpu = time.perf_counter(), time.process_time()
        prepare_processed(settings)
        cold = time.perf_counter() - started
        cold_cpu = time.process_time() - cpu
        cold_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if engine == "spark":
            extra["jvm_peak_rss_mb"] = _peak_rss_mb(jvm)
        started = time.perf_counter()
        data = load_ratings_data(settings)
        warm = time.perf_counter() - started
        started = time.perf_counter()
        split = RandomSplit().assign(data)
        graph = build_graph(data, split.train)
        graph_s = time.perf_counter() - started
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        edges = int(graph["user", "rates", "movie"].edge_index.shape[1])
        sizes = (data.n_ratings, data.n_users, data.n_movies)
        del data, split, graph
        gc.collect()
        floor = parse_floor(settings)
    return {
        "dataset": name if ratings is None else Path(ratings).parent.name,
        "engine": engine if engine == "pandas" else f"spark {spark_settings.master}",
        "ratings": sizes[0],
        "users": sizes[1],
        "movies": sizes[2],
        "cold_load_validate_s": round(cold, 2),
        "warm_load_s": round(warm, 2),
        "split_and_graph_s": round(graph_s, 2),
        "total_cold_s": round(cold + graph_s, 2),
        "edges": edges,
        "cold_peak_rss_mb": round(cold_rss),  # Python, until the entry is built
        "peak_rss_mb": round(peak_rss),  # before the floor's parse
        **extra,
        "cold_cpu_s": round(cold_cpu, 2),  # all threads of this process (not the JVM's)
        "parse_floor_s": round(floor, 2),
        "cold_x_floor": round(cold / floor, 1),
        "total_x_floor": round((cold + graph_s) / floor, 1),
    }


def parse_floor(settings) -> float:
    """Seconds of the best of two plain parses of the settings' ratings file by pyarrow's
    CSV reader into typed columns (no checks, no copies): what no loader can beat."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from movierec.data.sources import fetch_source, ratings_file

    source = ratings_file(settings, fetch_source(settings))
    if source.ref is None:
        return float("nan")  # Parquet or a folder of parts: no single file to parse
    names = ["userId", "movieId", "rating", "timestamp"]
    types = dict(zip(names, [pa.int64(), pa.int64(), pa.float32(), pa.int64()], strict=True))
    delimiter, columns = source.delimiter, None
    if delimiter == "::":  # split on ":"; the empty fields between the colons are skipped
        delimiter = ":"
        columns = [n for name in names for n in (name, f"_{name}")][:-1]
    elif source.layout != "csv":
        columns = names
    else:  # the header's columns (timestamp is optional)
        header = source.ref.first_line().decode("utf-8-sig").strip().split(",")
        names = [name for name in names if name in header]
        types = {name: types[name] for name in names}
    options = {
        "read_options": pacsv.ReadOptions(column_names=columns),
        "parse_options": pacsv.ParseOptions(delimiter=delimiter),
        "convert_options": pacsv.ConvertOptions(column_types=types, include_columns=names),
    }
    best = float("inf")
    for _ in range(2):
        with contextlib.ExitStack() as stack:
            if source.ref.path is not None:
                where = str(source.ref.path)
            else:  # a zip member, inflated as it is parsed
                where = stack.enter_context(source.ref.open())
            started = time.perf_counter()
            table = pacsv.read_csv(where, **options)
            best = min(best, time.perf_counter() - started)
        del table
    return best


def _peak_rss_mb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    raise RuntimeError(f"no VmHWM for pid {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("datasets", nargs="*", default=[])
    parser.add_argument("--ratings", help="a ratings CSV (data=ratings_csv)")
    parser.add_argument("--movies", help="its movies CSV")
    parser.add_argument(
        "--mirror", default=None, help="MovieLens mirror (default $MOVIELENS_MIRROR)"
    )
    parser.add_argument("--engine", choices=("pandas", "spark"), default="pandas")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark setting, e.g. spark.driver.memory=4g (repeatable)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    spark = {"master": args.master, "conf": dict(kv.split("=", 1) for kv in args.spark_conf)}
    if args.one:
        name = args.datasets[0] if args.datasets else "ratings_csv"
        row = measure(name, args.ratings, args.movies, args.mirror, args.engine, spark)
        print(json.dumps(row))
        return
    jobs = [[name] for name in args.datasets]
    if args.ratings:
        jobs.append(
            ["--ratings", args.ratings] + (["--movies", args.movies] if args.movies else [])
        )
    engine = ["--engine", args.engine, "--master", args.master]
    engine += [f"--spark-conf={kv}" for kv in args.spark_conf]
    rows = []
    for job in jobs:
        mirror = ["--mirror", args.mirror] if args.mirror else []
        out = subprocess.run(
            [sys.executable, __file__, "--one", *job, *mirror, *engine],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print(
            "| "
            + " | ".join(f"{row[k]:,}" if isinstance(row[k], int) else str(row[k]) for k in keys)
            + " |"
        )


if __name__ == "__main__":
    main()
