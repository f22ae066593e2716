"""Benchmark table: models × datasets × seeds → RMSE, MAE, ranking metrics, time, memory, size.

Ranking columns: Recall, NDCG and MAP at 10 and 20 and catalogue coverage at 10 (the
default `ranking.k=[10, 20]`; README "Ranking metrics").

    python scripts/benchmark.py                      # every model × dataset × 3 seeds
    python scripts/benchmark.py --datasets ml_100k_5fold   # 6 models over u1..u5
    python scripts/benchmark.py --single-seed seed_sage seed_gcn   # the README table
    python scripts/benchmark.py --seeds 0 --models mf sage --datasets ml_100k
    python scripts/benchmark.py --fresh ...          # drop the rows of earlier invocations
    python scripts/benchmark.py --models sage mf --datasets ml_100k --cold-start   # + new users

Each cell is a fresh `scripts/train.py` process (so peak RSS is per run); results land in
`benchmarks/results/` as results.csv (every run), summary.csv / summary.md (mean ± std),
summary.png (test RMSE bar plot) and summary.html (the comparison report of
`movierec-report`: leaderboard, paired tests against the best model). A run replaces the
rows of the (dataset, model, seed, fold) it runs in results.csv and keeps the others, so
the table can be built in parts; results.csv is rewritten after every run, so an
interrupted benchmark keeps what it measured. The `ml_100k_5fold` dataset is one
cross-validation (`split.fold=all`, first seed only) of sage_rating, gcn, gcmc and the three best
rankers, ease, lightgcn and xsimgcl: one row per fold, summarized as mean ± std over the folds.
Every dataset also gets a `popular` row: the popularity baseline
(`scripts/popular_baseline.py`, no training, one run; `--no-popular` leaves it out).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from movierec.ranking.significance import PER_USER_FILE
from movierec.tracking.report_html import comparison_report, leaderboard

ROOT = Path(__file__).resolve().parents[1]

# How each model is run: the seed experiments for the seed designs, the families'
# defaults for sage and gcn, GC-MC's tuned config (its own per dataset), plain MF; the `_bpr` rows
# add the BPR ranking term (README, Ranking objective) at the weight that beat the
# popularity baseline's NDCG@10 on ml-100k.
MODEL_OVERRIDES = {
    "mf": ["model=mf"],
    "mf_bpr": ["model=mf", "model.objective.bpr_weight=2"],
    "seed_sage": ["experiment=seed_notebook_sage"],
    "seed_gcn": ["experiment=seed_spark_gcn"],
    "sage": ["model=sage"],  # the default: two outputs, rated and ranked by a BPR-trained score
    "sage_rating": ["model=sage", "experiment=rating_only"],  # the rating output alone
    "gcn": ["model=gcn"],
    "gcmc": {"ml_100k": ["experiment=best_ml100k"], "ml_100k_5fold": ["experiment=best_ml100k"],
             "ml_latest_small": ["experiment=best_ml_latest_small"]},
    "gcmc_bpr": ["experiment=best_ml100k_ranking"],
    # ranking only (no RMSE/MAE: shown as "–"); the epoch (EASE: λ) chosen on val NDCG@10
    "ease": ["model=ease"],
    "lightgcn": ["model=lightgcn"],
    "simgcl": ["model=simgcl"],
    "xsimgcl": ["model=xsimgcl"],
    # two outputs on one encoder: rated in stars, ranked by a BPR-trained score (val NDCG@10)
    "gcn_two": ["model=gcn", "experiment=two_outputs"],
}  # fmt: skip
DATASET_OVERRIDES = {
    "ml_100k": ["data=ml_100k", "split=predefined", "split.fold=1"],
    # GroupLens's five canonical folds u1..u5 as one cross-validation run: one row per fold
    "ml_100k_5fold": ["data=ml_100k", "split=predefined", "split.fold=all"],
    "ml_latest_small": [
        "data=ml_latest_small",
        "split=random",
        "split.seed=0",
        "data.user_features=placeholder",  # no side features in ml-latest-small
    ],
}
#: cross-validation datasets (one seed, one row per fold) and the models they run
CV_DATASETS = {"ml_100k_5fold"}
FOLD_MODELS = ("sage_rating", "gcn", "gcmc", "ease", "lightgcn", "xsimgcl")  # + best rankers
# The popularity baseline: deterministic and untrained, so one run per dataset.
BASELINE = "popular"
#: (metric, header) of the ranking columns, in table order
RANKING = [("test/recall_at_10", "Recall@10"), ("test/ndcg_at_10", "NDCG@10"),
           ("test/map_at_10", "MAP@10"), ("test/recall_at_20", "Recall@20"),
           ("test/ndcg_at_20", "NDCG@20"), ("test/map_at_20", "MAP@20"),
           ("test/coverage_at_10", "coverage@10")]  # fmt: skip
COLUMNS = ["test/rmse", "test/mae", "val/rmse", "fit_seconds", "seconds_to_best",
           "seconds_per_epoch", "peak_rss_mb", "epochs", "parameters",
           *(m for m, _ in RANKING)]  # fmt: skip
SPREAD = ("test/rmse", "test/mae", *(m for m, _ in RANKING))
#: the best row and the paired tests against it are by this metric
SIGNIFICANCE = "test/ndcg_at_10"


def run_one(
    model: str, dataset: str, seed: int, out: Path, extra: list[str], split: str | None = None
) -> list[dict]:
    """One training (or one cross-validation: one row per fold) as table rows; `split`
    replaces the dataset's split (its `split.*` keys dropped)."""
    run_dir = out / "runs" / f"{dataset}-{model}-seed{seed}"
    data_overrides = DATASET_OVERRIDES[dataset]
    if split is not None:
        data_overrides = [o for o in data_overrides if not o.startswith("split")]
        data_overrides = [*data_overrides, f"split={split}"]
    if model == BASELINE:
        script = "popular_baseline.py"
        overrides = [*data_overrides, f"hydra.run.dir={run_dir}"]
    else:
        script = "train.py"
        model_overrides = MODEL_OVERRIDES[model]
        if isinstance(model_overrides, dict):
            model_overrides = model_overrides[dataset]
        overrides = [
            *model_overrides,
            *data_overrides,
            f"seed={seed}",
            "logger=none",
            "callbacks.progress_bar=null",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run_dir}",
            *extra,
        ]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *overrides],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{dataset}/{model}/seed {seed} failed:\n{result.stderr[-3000:]}")
    wall_seconds = time.perf_counter() - started
    cv_file = run_dir / "cv_metrics.json"
    if cv_file.exists():  # split.fold=all
        folds = json.loads(cv_file.read_text())["folds"]
    else:
        folds = [{"fold": 0, **json.loads((run_dir / "metrics.json").read_text())}]
    rows = []
    for metrics in folds:
        row = {"dataset": dataset, "model": model, "seed": seed, "fold": metrics["fold"]}
        row |= {c: metrics.get(c) for c in COLUMNS}
        row["wall_seconds"] = wall_seconds / len(folds)
        fold_dir = run_dir / f"fold{metrics['fold']}" if cv_file.exists() else run_dir
        row["per_user"] = str(fold_dir / PER_USER_FILE)
        print(
            f"{dataset:>16} {model:>6} seed {seed} fold {row['fold']}: "
            f"test RMSE {_or_dash(row['test/rmse'], '.4f')} "
            f"MAE {_or_dash(row['test/mae'], '.4f')} NDCG@10 {row['test/ndcg_at_10']:.4f}  "
            f"{row['fit_seconds']:.0f}s",
            flush=True,
        )
        rows.append(row)
    return rows


def cold_start_table(dataset: str, models: list[str], seed: int, out: Path) -> pd.DataFrame:
    """Each model trained on `split=cold_start` (10 % of the users held out of training),
    then given N of each held-out user's ratings and ranking the rest (`scripts/cold_start.py`):
    NDCG@10 and Recall@10 per N beside the popularity baseline."""
    from movierec.tasks.cold_start import evaluate_cold_start

    tables = []
    for model in models:
        run_one(model, dataset, seed, out / "cold_start", [], split="cold_start")
        table = evaluate_cold_start(out / "cold_start" / "runs" / f"{dataset}-{model}-seed{seed}")
        if tables:  # the popularity rows are the same for every model of the dataset
            table = table[table["scorer"] != "popular"]
        tables.append(table.assign(dataset=dataset, model=model, seed=seed))
    return pd.concat(tables, ignore_index=True)


def merge_results(new: pd.DataFrame, path: Path, fresh: bool) -> pd.DataFrame:
    """The runs of `path` with those run now replacing the same (dataset, model, seed),
    so rerunning one model updates its rows and keeps the rest of the table."""
    if fresh or not path.exists():
        return new
    old = pd.read_csv(path)
    if "fold" not in old:  # written before the 5-fold rows existed
        old["fold"] = 0
    key = ["dataset", "model", "seed", "fold"]
    kept = old[~old.set_index(key).index.isin(new.set_index(key).index)]
    merged = pd.concat([kept, new], ignore_index=True)
    order = {name: i for i, name in enumerate([BASELINE, *MODEL_OVERRIDES])}
    rank = merged["model"].map(order).fillna(len(order))
    datasets = {name: i for i, name in enumerate(DATASET_OVERRIDES)}
    merged = merged.assign(_d=merged["dataset"].map(datasets).fillna(len(datasets)), _m=rank)
    return merged.sort_values(["_d", "_m", "seed", "fold"]).drop(columns=["_d", "_m"])


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    grouped = rows.groupby(["dataset", "model"], sort=False)
    summary = grouped[COLUMNS].mean()
    for metric in SPREAD:
        summary[f"{metric} std"] = grouped[metric].std(ddof=1).fillna(0.0)
    summary["runs"] = grouped.size()  # seeds, or folds × seeds for a cross-validation
    return add_significance(summary.reset_index(), rows)


def add_significance(summary: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, each model's Wilcoxon signed-rank p-value against the dataset's best
    row by mean test NDCG@10, paired per test user (per fold and user in a
    cross-validation), and whether it holds after Holm's correction over the dataset's
    models (`p vs best`, `holm`; the best row gets neither): the comparison report's
    `p per user` (`movierec.tracking.report_html.leaderboard`)."""
    summary = summary.assign(**{"best": False, "p vs best": math.nan, "holm": None})
    for dataset, runs in rows.groupby("dataset", sort=False):
        board = leaderboard(runs.rename(columns={"model": "group"}), SIGNIFICANCE)
        for model, tested in board.iterrows():
            index = summary.index[(summary["dataset"] == dataset) & (summary["model"] == model)]
            summary.loc[index, "best"] = model == board.index[0]
            summary.loc[index, "p vs best"] = tested["p per user"]
            summary.loc[index, "holm"] = tested["p per user holm"]
    return summary


def to_markdown(summary: pd.DataFrame) -> str:
    header = (
        "| dataset | model | test RMSE | test MAE | val RMSE | train s | s to best | s/epoch "
        "| epochs | peak RSS MB | parameters | runs | "
        + " | ".join(h for _, h in RANKING)
        + " | p vs best (NDCG@10) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * (len(RANKING) + 1)
    )
    lines = [header]
    for _, r in summary.iterrows():

        def spread(metric: str, row=r) -> str:  # no std from a single seed; – for no value
            if pd.isna(row[metric]):
                return "–"
            std = f" ± {row[f'{metric} std']:.4f}" if row["runs"] > 1 else ""
            return f"{row[metric]:.4f}{std}"

        lines.append(
            f"| {r['dataset']} | {r['model']} | {spread('test/rmse')} "
            f"| {spread('test/mae')} | {_or_dash(r['val/rmse'], '.4f')} "
            f"| {r['fit_seconds']:.0f} | {_or_dash(r['seconds_to_best'], '.1f')} "
            f"| {_or_dash(r['seconds_per_epoch'], '.3f')} "
            f"| {r['epochs']:.0f} | {r['peak_rss_mb']:.0f} | {r['parameters']:,.0f} | {r['runs']} "
            + "".join(f"| {spread(m)} " for m, _ in RANKING)
            + f"| {_p_value(r)} |"
        )
    return "\n".join(lines)


def _p_value(row: pd.Series) -> str:
    """`best`, the p-value with † where it holds after Holm's correction, or –."""
    if row["best"]:
        return "best"
    if pd.isna(row["p vs best"]):
        return "–"
    return f"{row['p vs best']:.2g}{' †' if row['holm'] else ''}"


def _or_dash(value: float, spec: str) -> str:
    return "–" if pd.isna(value) else format(value, spec)


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Test RMSE per model, a panel per dataset with a rated row (ranking-only rows and
    datasets have no RMSE: left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = summary.dropna(subset=["test/rmse"])
    if rated.empty:
        return
    datasets = list(dict.fromkeys(rated["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = rated[rated["dataset"] == dataset]
        ax.bar(part["model"], part["test/rmse"], yerr=part["test/rmse std"], capsize=4)
        low = part["test/rmse"].min()
        ax.set_ylim(low - 0.05, part["test/rmse"].max() + 0.03)
        ax.set_title(dataset)
        ax.set_ylabel("test RMSE (stars)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODEL_OVERRIDES))
    parser.add_argument("--datasets", nargs="+", default=list(DATASET_OVERRIDES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--single-seed",
        nargs="*",
        default=[],
        metavar="MODEL",
        help="models to run with the first seed only (e.g. the slow seed designs)",
    )
    parser.add_argument(
        "--no-popular", action="store_true", help="leave out the popularity baseline rows"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start results.csv over instead of replacing only the rows run now",
    )
    parser.add_argument(
        "--cold-start",
        nargs="*",
        metavar="MODEL",
        help="also the cold-start protocol for these models (default sage mf), first seed",
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models if m != BASELINE]
    if not args.no_popular:
        models.insert(0, BASELINE)
    results = args.out / "results.csv"
    frame = None
    for dataset in args.datasets:
        chosen = [m for m in models if m in FOLD_MODELS] if dataset in CV_DATASETS else models
        for model in chosen:
            single = model in (*args.single_seed, BASELINE) or dataset in CV_DATASETS
            for seed in args.seeds[:1] if single else args.seeds:
                rows = pd.DataFrame(run_one(model, dataset, seed, args.out, args.overrides))
                # written after every run, so an interrupted benchmark keeps what it measured
                frame = merge_results(rows, results, fresh=args.fresh and frame is None)
                frame.to_csv(results, index=False)
    if frame is None:
        raise SystemExit("nothing to run: check --models and --datasets")
    summary = summarize(frame)
    summary.to_csv(args.out / "summary.csv", index=False)
    markdown = to_markdown(summary)
    (args.out / "summary.md").write_text(markdown + "\n")
    plot(summary, args.out / "summary.png")
    if args.cold_start is not None:
        cold = [cold_start_table(d, args.cold_start or ["sage", "mf"], args.seeds[0], args.out)
                for d in args.datasets if d not in CV_DATASETS]  # fmt: skip
        pd.concat(cold).to_csv(args.out / "cold_start.csv", index=False)
        print(pd.concat(cold).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    page = comparison_report(frame.rename(columns={"model": "group"}), title="movierec benchmark")
    (args.out / "summary.html").write_text(page)  # the comparison report: p-values, per seed
    print(markdown)


if __name__ == "__main__":
    main()
