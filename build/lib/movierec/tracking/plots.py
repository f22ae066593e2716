"""PNG plots logged with every run: training curves and predicted-vs-true ratings."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs write files, never open windows
import matplotlib.pyplot as plt
import numpy as np


def plot_curves(history: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """Loss (left) and the validation metrics (right, every other key) against the step."""
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("train/loss_epoch", loss_ax), ("train/loss_step", loss_ax)):
        points = history.get(key) or []
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, label=key, alpha=0.8 if key.endswith("epoch") else 0.3)
    for key in (k for k in history if not k.startswith("train/")):
        points = history.get(key) or []
        if points:
            steps, values = zip(*points, strict=True)
            metric_ax.plot(steps, values, label=key)
    loss_ax.set(title="training loss", xlabel="step", ylabel="loss")
    metric_ax.set(title="validation", xlabel="step")
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
    rmse = float(np.sqrt(np.mean((predicted - true) ** 2)))
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
