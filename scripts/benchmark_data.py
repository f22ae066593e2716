"""Data-layer benchmark: load + validate + index (cold, from the source files), reload from
the processed cache (warm), split and build the graph; seconds and peak RSS per dataset.

    python scripts/benchmark_data.py ml_100k ml_latest_small
    python scripts/benchmark_data.py --ratings data/synthetic-25m/ratings.csv \\
        --movies data/synthetic-25m/movies.csv

Each dataset runs in a fresh process with a fresh cache folder, so "cold" really parses.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(name: str, ratings: str | None, movies: str | None, mirror: str | None) -> dict:
    from movierec.data.cache import load_ratings_data, prepare_processed
    from movierec.data.graph import build_graph
    from movierec.data.sources import DataSettings
    from movierec.data.splits import RandomSplit

    with tempfile.TemporaryDirectory() as cache:
        settings = DataSettings(
            name, cache, mirror=mirror, ratings_path=ratings, movies_path=movies
        )
        if name not in ("ratings_csv", "synthetic"):
            prepare_processed(DataSettings(name, cache, mirror=mirror, verify_counts=False))
            # the archive fetch is not what we time: remove the processed entry only
            shutil.rmtree(Path(cache) / "processed")
        started = time.perf_counter()
        prepare_processed(settings)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        data = load_ratings_data(settings)
        warm = time.perf_counter() - started
        started = time.perf_counter()
        split = RandomSplit().assign(data)
        graph = build_graph(data, split.train)
        graph_s = time.perf_counter() - started
    return {
        "dataset": name if ratings is None else Path(ratings).parent.name,
        "ratings": data.n_ratings,
        "users": data.n_users,
        "movies": data.n_movies,
        "cold_load_validate_s": round(cold, 2),
        "warm_load_s": round(warm, 2),
        "split_and_graph_s": round(graph_s, 2),
        "total_cold_s": round(cold + graph_s, 2),
        "edges": int(graph["user", "rates", "movie"].edge_index.shape[1]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


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
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        name = args.datasets[0] if args.datasets else "ratings_csv"
        print(json.dumps(measure(name, args.ratings, args.movies, args.mirror)))
        return
    jobs = [[name] for name in args.datasets]
    if args.ratings:
        jobs.append(
            ["--ratings", args.ratings] + (["--movies", args.movies] if args.movies else [])
        )
    rows = []
    for job in jobs:
        mirror = ["--mirror", args.mirror] if args.mirror else []
        out = subprocess.run(
            [sys.executable, __file__, "--one", *job, *mirror], capture_output=True, text=True
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
