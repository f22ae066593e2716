"""Write a MovieLens-shaped synthetic dataset for scale benchmarks.

    python scripts/make_synthetic.py --out data/synthetic-25m \\
        --users 162541 --movies 59047 --ratings 25000095 --seed 0

An existing complete folder is reused, not regenerated.
"""

from __future__ import annotations

import argparse
import sys
import time

from movierec.data.synthetic import generate_movielens_like
from movierec.errors import MovieRecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to hold ratings.csv and movies.csv")
    parser.add_argument("--users", type=int, required=True, help="number of users")
    parser.add_argument("--movies", type=int, required=True, help="number of movies")
    parser.add_argument("--ratings", type=int, required=True, help="number of ratings")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        out = generate_movielens_like(
            args.out,
            n_users=args.users,
            n_movies=args.movies,
            n_ratings=args.ratings,
            seed=args.seed,
        )
    except MovieRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{out} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
