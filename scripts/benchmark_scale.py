"""Scale benchmark: seconds per epoch and peak RSS of full-graph training as ratings grow.

    python scripts/benchmark_scale.py                # 1M, 5M, 25M × sage, gcn, lightgcn
    python scripts/benchmark_scale.py --sizes 25000095 --epochs 1
    python scripts/benchmark_scale.py --sizes 1000000 --models sage --epochs 2
    python scripts/benchmark_scale.py --sizes 25000095 --trainer gpu --precision bf16-mixed

Each size is a MovieLens-shaped synthetic dataset with ML-25M's users : movies : ratings
proportions (`scripts/make_synthetic.py`, reused when present under data/). Every run is a
fresh `scripts/train.py` process on the sparse message-passing path with full-batch
training (one optimizer step per epoch over all training ratings), decoding in
checkpointed chunks and evaluating in batches, so memory is bounded by the graph, not by
the number of rating pairs. LightGCN trains full batch too (BPR, its 4 negatives per
rating) and validates NDCG@10 on a fixed sample of 10,000 validation users
(`ranking.val_users`), so selection works as in its config at a bounded cost.

Beside each size, the floor: one CSR × dense (n_movies, 64) product of the training
adjacency's shape (scripts/floors.py), measured in this run; every epoch is printed as a
multiple of it (`epoch_x_floor`), which compares across machines and loads. Run it on a
quiet machine (`uptime` is printed first). Results: benchmarks/results/scale.csv, scale.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from floors import ratings_file_floor

ROOT = Path(__file__).resolve().parents[1]
ML25M = {"users": 162_541, "movies": 59_047, "ratings": 25_000_095}
CHUNK = 1_000_000  # rating pairs per decoder chunk and per evaluation batch
#: per-model settings on top of the common ones (what the model's config would not bound)
MODEL_OVERRIDES = {
    "lightgcn": ["ranking.k=[10]", "ranking.validate=true", "ranking.val_users=10000"],
}


def dataset(n_ratings: int, data_dir: Path) -> Path:
    """Folder with ratings.csv/movies.csv of `n_ratings` (generated once)."""
    if n_ratings == ML25M["ratings"] and (data_dir / "synthetic-25m" / "ratings.csv").exists():
        return data_dir / "synthetic-25m"
    share = n_ratings / ML25M["ratings"]
    out = data_dir / f"synthetic-{n_ratings}"
    command = [
        sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(out),
        "--users", str(round(ML25M["users"] * share)),
        "--movies", str(round(ML25M["movies"] * share)), "--ratings", str(n_ratings),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return out


def full_batch_overrides(model: str, ratings: Path | str, movies: Path | str) -> list[str]:
    """train.py overrides for one full-batch model on a ratings/movies CSV pair, decoding
    and evaluating in `CHUNK`s, with no logger and no top-K test (shared with
    scripts/profile_epoch.py, so both measure the same training)."""
    return [
        f"model={model}", "data=ratings_csv",
        f"data.ratings_path={ratings}", f"data.movies_path={movies}",
        "data.rating_scale=[0.5,5.0]", "data.batch_size=0", f"data.eval_batch_size={CHUNK}",
        f"model.objective.decode_chunk_size={CHUNK}", "logger=none",
        "ranking.k=0",  # top-K over every user × movie is a separate, costlier question
    ]  # fmt: skip


def run_one(
    model: str, size: int, folder: Path, epochs: int, out: Path, extra: list[str], floor: float
) -> dict:
    run_dir = out / "scale-runs" / f"{folder.name}-{model}"
    overrides = [
        *full_batch_overrides(model, folder / "ratings.csv", folder / "movies.csv"),
        "model.net.message_passing=sparse", f"trainer.max_epochs={epochs}",
        "callbacks.early_stopping=null", "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
        *MODEL_OVERRIDES.get(model, []), *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *overrides],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{folder.name}/{model} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = {
        "ratings": size,
        "model": model,
        "last_epoch_s": metrics["last_epoch_seconds"],
        "mean_epoch_s": metrics["seconds_per_epoch"],
        "floor_ms": round(floor * 1000, 1),
        "epoch_x_floor": round(metrics["last_epoch_seconds"] / floor),
        "peak_rss_mb": metrics["peak_rss_mb"],
        "peak_gpu_mb": metrics.get("peak_gpu_mb"),
        "test_rmse": metrics.get("test/rmse"),
        "wall_s": time.perf_counter() - started,
    }
    print(
        f"{row['ratings']:>11,} {model:>8}: epoch {row['last_epoch_s']:.1f} s "
        f"({row['epoch_x_floor']}× the {floor:.3f} s floor), "
        f"peak RSS {row['peak_rss_mb']:,.0f} MB, wall {row['wall_s']:.0f} s",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000, ML25M["ratings"]]
    )
    parser.add_argument("--models", nargs="+", default=["sage", "gcn", "lightgcn"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument(
        "--trainer", default=None, help="trainer config (conf/trainer): cpu, gpu, ddp, …"
    )
    parser.add_argument(
        "--precision", default=None, help="trainer.precision, e.g. bf16-mixed (GPU)"
    )
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides")
    args = parser.parse_args()
    if args.trainer:
        args.overrides = [f"trainer={args.trainer}", *args.overrides]
    if args.precision:
        args.overrides = [f"trainer.precision={args.precision}", *args.overrides]
    args.out.mkdir(parents=True, exist_ok=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    rows = []
    for size in args.sizes:
        folder = dataset(size, args.data_dir)
        floor = ratings_file_floor(folder / "ratings.csv")
        print(f"{size:>11,} floor: {floor:.3f} s (CSR × dense, 64 wide)", flush=True)
        for model in args.models:
            rows.append(run_one(model, size, folder, args.epochs, args.out, args.overrides, floor))
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "scale.csv", index=False)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(False)]
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
