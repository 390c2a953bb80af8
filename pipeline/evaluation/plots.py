"""Figures people would rather look at than read: confusion matrix and per-class scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a CI runner or a DVC stage
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_confusion(
    cm: np.ndarray, labels: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> None:
    """Heat map coloured by row share (recall per class), annotated with counts and shares."""
    plt = _pyplot()
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of actual class")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{title} (n={int(cm.sum())})")
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    _save(fig, path)
    plt.close(fig)


def plot_per_class(
    per_class: dict[str, dict[str, float]], path: str | Path, title: str = "Per-class scores"
) -> None:
    """Grouped bars of precision, recall and F1 for every class, support under each name."""
    plt = _pyplot()
    labels = list(per_class)
    scores = ("precision", "recall", "f1")
    x = np.arange(len(labels))
    width = 0.27
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for k, score in enumerate(scores):
        values = [per_class[label][score] for label in labels]
        ax.bar(x + (k - 1) * width, values, width, label=score)
    ax.set_xticks(x, [f"{label}\n(n={per_class[label]['support']})" for label in labels])
    ax.set_ylim(0, 1.15)  # headroom for the legend above the bars
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(loc="upper center", ncols=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    plt.close(fig)
