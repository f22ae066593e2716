"""PNG plots logged with every run: training curves and predicted-vs-true ratings."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs write files, never open windows
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchmetrics.functional import mean_squared_error


def plot_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """The epoch's training loss (left, log scale: an early spike would flatten the rest)
    and the validation metrics (right, every `val/*` key), against the epoch. `history`
    maps a metric to its (step, value) points in logging order, one per epoch."""
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss = [value for _, value in history.get("train/loss_epoch") or []]
    if loss:
        loss_ax.plot(range(len(loss)), loss, label="train/loss_epoch")
        if min(loss) > 0:
            loss_ax.set_yscale("log")
    for key in (k for k in history if k.startswith("val/")):
        values = [value for _, value in history.get(key) or []]
        if values:
            metric_ax.plot(range(len(values)), values, label=key)
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="loss")
    metric_ax.set(title="validation", xlabel="epoch")
    for ax in (loss_ax, metric_ax):
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_predictions(
    true: np.ndarray, predicted: np.ndarray, scale: tuple[float, float], path: Path
) -> Path:
    """Distribution of predicted ratings for each true rating (box plot) and the diagonal."""
    levels = np.unique(true)
    groups = [predicted[true == level] for level in levels]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.boxplot(groups, positions=levels, widths=0.3 if len(levels) > 5 else 0.5, showfliers=False)
    ax.plot(scale, scale, "--", color="grey", label="perfect")
    rmse = float(
        mean_squared_error(torch.from_numpy(predicted), torch.from_numpy(true), squared=False)
    )
    ax.set(
        title=f"test predictions (RMSE {rmse:.4f}, n={len(true):,})",
        xlabel="true rating",
        ylabel="predicted rating",
        xlim=(scale[0] - 0.5, scale[1] + 0.5),
        ylim=(scale[0] - 0.25, scale[1] + 0.25),
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
