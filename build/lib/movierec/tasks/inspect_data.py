"""The inspect_data task: load, validate and split a dataset, print its statistics."""

from __future__ import annotations

from typing import Any

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from movierec.config import build
from movierec.data.inspection import export_graph, format_summary, summarize


def inspect_data(cfg: DictConfig) -> dict[str, Any]:
    """Print the dataset report for `cfg.data` / `cfg.split`; export the graph if asked."""
    datamodule = build(cfg.data, "data", split=cfg.split)
    datamodule.prepare_data()
    datamodule.setup()
    summary = summarize(datamodule.data, datamodule.indices)
    print(format_summary(summary))
    if cfg.get("export"):
        path = export_graph(datamodule.data, to_absolute_path(cfg.export))
        print(f"graph written to {path}")
    return summary
