"""The cross-validation task (`split.fold=all`): every fold trained as `tasks.train`
trains one split, each a child run of one parent run, then the folds' mean ± std."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only

from movierec.config import build
from movierec.errors import ConfigError
from movierec.tasks.describe import describe_run
from movierec.tasks.recording import run_links
from movierec.tasks.result_table import fold_line, summary_lines, write_json
from movierec.tasks.train import train_fold, training_parts
from movierec.tracking.recorder import open_cv_parent, record_cv_summary
from movierec.tracking.resume import read_resume
from movierec.tracking.tracker import Run, Tracker
from movierec.training.selection import Selection

log = logging.getLogger(__name__)


def cross_validate(cfg: DictConfig, tracker: Tracker | None = None) -> float:
    """Train every fold of `cfg.split` (`split.fold=all`) as `tasks.train` trains one, as
    children of one parent run; print each fold and mean ± std; return the mean of the
    folds' best `selection.metric`."""
    if cfg.get("ckpt_path"):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} resumes one split, not split.fold=all: resume the "
            "fold's own training with split.fold=<n>"
        )
    selection, tracker = training_parts(cfg, tracker)
    probe = build(OmegaConf.merge(cfg.split, {"fold": 1}), "split")
    base_dir = Path(cfg.paths.output_dir)
    parent = None
    if tracker is not None:
        description = describe_run(cfg)
        parent = open_cv_parent(tracker, description, probe.name, len(probe.folds), selection)
    with parent if parent is not None else nullcontext():
        summary = _run_folds(cfg, probe.folds, base_dir, tracker, parent, selection)
        if parent is not None:
            record_cv_summary(parent, summary, base_dir / "cv_metrics.json", selection)
    if rank_zero_only.rank == 0:
        links = {}
        if parent is not None:
            links = run_links(str(cfg.mlflow_ui), parent, selection, summary)
        print("\n".join(summary_lines(summary, links)))
    return summary[selection.metric][0]


def _run_folds(
    cfg: DictConfig,
    folds: list[int],
    base_dir: Path,
    tracker: Tracker | None,
    parent: Run | None,
    selection: Selection,
) -> dict[str, tuple[float, float]]:
    rows = []
    for fold in folds:
        fold_cfg = cfg.copy()
        with open_dict(fold_cfg):
            fold_cfg.split.fold = fold
            fold_cfg.paths.output_dir = str(base_dir / f"fold{fold}")
        log.info("fold %d of %d", fold, len(folds))
        parent_run_id = parent.run_id if parent else None
        resume = read_resume(fold_cfg)  # a fresh start, recording the fold's settings
        metrics = train_fold(fold_cfg, selection, tracker, resume, parent_run_id, report=False)
        rows.append({"fold": fold, **metrics})
        if rank_zero_only.rank == 0:
            print(fold_line(fold, metrics, selection.metric))
    summary = {
        name: _mean_std([r[name] for r in rows])
        for name in _summary_metrics(rows[0], selection)
        if all(isinstance(r.get(name), (int, float)) for r in rows)
    }
    if rank_zero_only.rank == 0:
        write_json(
            base_dir / "cv_metrics.json",
            {
                "folds": rows,
                "mean": {k: v[0] for k, v in summary.items()},
                "std": {k: v[1] for k, v in summary.items()},
            },
        )
    return summary


def _summary_metrics(row: dict[str, Any], selection: Selection) -> list[str]:
    """What a cross-validation summarizes: the selection metric, the chosen epoch's other
    validation metrics, then the test metrics (not the last epoch's `_last` values)."""
    names = [selection.metric]
    names += [k for k in row if k.startswith("val/") and not k.endswith("_last")]
    names += [k for k in row if k.startswith("test/")]
    return list(dict.fromkeys(names))


def _mean_std(values: list[float]) -> tuple[float, float]:
    """The folds' mean and sample standard deviation (0 for one fold; NaN in, NaN out)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
