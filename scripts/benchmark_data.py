"""Data-layer benchmark: load + validate + index (cold, from the source files), reload from
the processed cache (warm), split and build the graph; seconds and peak RSS per dataset.

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
        started = time.perf_counter()
        prepare_processed(settings)
        cold = time.perf_counter() - started
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
    return {
        "dataset": name if ratings is None else Path(ratings).parent.name,
        "engine": engine if engine == "pandas" else f"spark {spark_settings.master}",
        "ratings": data.n_ratings,
        "users": data.n_users,
        "movies": data.n_movies,
        "cold_load_validate_s": round(cold, 2),
        "warm_load_s": round(warm, 2),
        "split_and_graph_s": round(graph_s, 2),
        "total_cold_s": round(cold + graph_s, 2),
        "edges": int(graph["user", "rates", "movie"].edge_index.shape[1]),
        "cold_peak_rss_mb": round(cold_rss),  # Python, until the entry is built
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **extra,
    }


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
