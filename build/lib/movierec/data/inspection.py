"""Descriptive statistics of a processed dataset and its split, as printed by inspect_data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from movierec.data.graph import build_graph, to_networkx
from movierec.data.processed import RatingsData
from movierec.data.splits import SplitIndices
from movierec.errors import ConfigError

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
GRAPH_WRITERS = {".graphml": nx.write_graphml, ".gexf": nx.write_gexf, ".gml": nx.write_gml}


def summarize(data: RatingsData, indices: SplitIndices | None = None) -> dict[str, Any]:
    """Counts, density, rating histogram, degree quantiles and genre counts of `data`."""
    ratings = data.ratings
    values, counts = np.unique(ratings["rating"].to_numpy(), return_counts=True)
    user_degree = np.bincount(ratings["user"].to_numpy(), minlength=data.n_users)
    movie_degree = np.bincount(ratings["movie"].to_numpy(), minlength=data.n_movies)
    genre_counts = data.genre_matrix().sum(axis=0).astype(int)
    summary: dict[str, Any] = {
        "dataset": data.name,
        "source": data.meta.get("source", ""),
        "users": data.n_users,
        "movies": data.n_movies,
        "catalog_movies": int(data.meta.get("catalog_movies", data.n_movies)),
        "ratings": data.n_ratings,
        "duplicates_dropped": int(data.meta.get("duplicates_dropped", 0)),
        "unknown_movies": int(data.meta.get("unknown_movies", 0)),
        "density": data.n_ratings / (data.n_users * data.n_movies),
        "rating_scale": data.rating_scale,
        "mean_rating": float(ratings["rating"].mean()),
        "rating_histogram": {float(v): int(c) for v, c in zip(values, counts, strict=True)},
        "user_degree_quantiles": _quantiles(user_degree),
        "movie_degree_quantiles": _quantiles(movie_degree),
        "genres": len(data.genres),
        "genre_counts": dict(
            sorted(zip(data.genres, genre_counts.tolist(), strict=True), key=lambda kv: -kv[1])
        ),
    }
    if indices is not None:
        summary["split"] = indices.sizes()
        summary["cold_start"] = indices.report
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable report of `summarize`'s output."""
    low, high = summary["rating_scale"]
    lines = [
        f"dataset          {summary['dataset']}  ({summary['source']})",
        f"users            {summary['users']:,}",
        f"movies           {summary['movies']:,} rated "
        f"({summary['catalog_movies']:,} in the movies file)",
        f"ratings          {summary['ratings']:,} "
        f"({summary['duplicates_dropped']:,} duplicates dropped)",
        f"density          {summary['density']:.4%}",
        f"rating scale     {low:g}–{high:g}, mean {summary['mean_rating']:.3f}",
        f"genres           {summary['genres']}",
        "rating histogram",
    ]
    total = summary["ratings"]
    for value, count in summary["rating_histogram"].items():
        bar = "#" * max(1, round(40 * count / total)) if count else ""
        lines.append(f"  {value:>4g}  {count:>12,}  {count / total:6.1%}  {bar}")
    for kind in ("user", "movie"):
        q = summary[f"{kind}_degree_quantiles"]
        cells = "  ".join(f"{k}={v:g}" for k, v in q.items())
        lines.append(f"{kind} degree        {cells}".replace("user degree ", "user degree  "))
    lines.append("genre counts (movies)")
    for genre, count in summary["genre_counts"].items():
        lines.append(f"  {genre:<20} {count:>8,}")
    if "split" in summary:
        sizes = "  ".join(f"{k}={v:,}" for k, v in summary["split"].items())
        lines.append(f"split            {sizes}")
        cold = "  ".join(f"{k}={v:,}" for k, v in summary["cold_start"].items())
        lines.append(f"cold start       {cold}")
    return "\n".join(lines)


def export_graph(data: RatingsData, path: str | os.PathLike) -> Path:
    """Write every rating as an edge of a NetworkX graph; format from the file suffix."""
    target = Path(path)
    writer = GRAPH_WRITERS.get(target.suffix.lower())
    if writer is None:
        raise ConfigError(
            f"export={target}: unknown graph format {target.suffix!r}; expected one of "
            f"{', '.join(GRAPH_WRITERS)}"
        )
    graph = build_graph(data, np.arange(data.n_ratings), user_feature_kind="none")
    nxg = to_networkx(data, graph)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    Path(tmp).chmod(0o644)
    try:
        writer(nxg, tmp)
        Path(tmp).replace(target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _quantiles(degrees: np.ndarray) -> dict[str, float]:
    values = np.quantile(degrees, QUANTILES)
    names = ("min", "p25", "p50", "p75", "p90", "p99", "max")
    return {name: float(v) for name, v in zip(names, values, strict=True)}
